/**
 * Adapter: the {@link TwinReader} port over azure-iothub's `Registry.getTwin` (HTTPS, `GET /twins/{id}`).
 *
 * Needs a shared access policy with `RegistryRead` (connection string) or, for identity-based access, a data-plane
 * role that can read twins, such as "IoT Hub Data Reader", on the hub.
 */

import { DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import iothub from 'azure-iothub';
import type { Registry } from 'azure-iothub';

import { RoutingError } from '../../errors.js';
import type { TwinDocument, TwinReader } from './twinResolver.js';

/** The one Registry operation this adapter uses, so callers holding a Registry for other work can share it. */
export type TwinRegistry = Pick<Registry, 'getTwin'>;

/** Reads twins with a hub-level shared access policy (`HostName=...;SharedAccessKeyName=...;SharedAccessKey=...`). */
export function registryTwinReaderFromConnectionString(connectionString: string): TwinReader {
  let registry: Registry;
  try {
    registry = iothub.Registry.fromConnectionString(connectionString);
  } catch (error) {
    // The SDK names the missing part ("...missing the property: SharedAccessKey") and never echoes the secret.
    const detail = error instanceof Error ? error.message : String(error);
    throw new RoutingError('ConfigInvalid', `IoT Hub connection string for twin resolution is not valid: ${detail}`, {
      cause: error,
    });
  }
  return twinReaderFromRegistry(registry);
}

/**
 * Reads twins with a Microsoft Entra identity (managed identity in Azure, developer sign-in locally).
 * `hostName` is the hub's host name, e.g. `my-hub.azure-devices.net`.
 */
export function registryTwinReaderFromTokenCredential(
  hostName: string,
  credential: TokenCredential = new DefaultAzureCredential(),
): TwinReader {
  if (hostName.trim().length === 0) {
    throw new RoutingError('ConfigInvalid', 'IoT Hub host name for twin resolution is empty');
  }
  return twinReaderFromRegistry(iothub.Registry.fromTokenCredential(hostName, credential));
}

export function twinReaderFromRegistry(registry: TwinRegistry): TwinReader {
  return {
    async getTwin(deviceId) {
      try {
        const { responseBody: twin } = await registry.getTwin(deviceId);
        return toTwinDocument(twin);
      } catch (error) {
        if (nameOf(error) === 'DeviceNotFoundError') return null;
        throw new RoutingError('TwinUnavailable', `IoT Hub twin read for device '${deviceId}' failed: ${summary(error)}`, {
          cause: error,
          retryAfterSeconds: retryAfterSeconds(error),
        });
      }
    },
  };
}

function toTwinDocument(twin: { tags?: unknown; properties?: { desired?: unknown; reported?: unknown } }): TwinDocument {
  // Only the named sections are kept; the SDK's Twin also carries a back-reference to the Registry.
  return {
    tags: asRecord(twin.tags),
    properties: { desired: asRecord(twin.properties?.desired), reported: asRecord(twin.properties?.reported) },
  };
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

// The SDK's errors are compared by name: its error classes are not exported from the package entry point.
function nameOf(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

function summary(error: unknown): string {
  const name = nameOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const status = (error as { response?: { statusCode?: unknown } } | null)?.response?.statusCode;
  return [typeof status === 'number' ? `HTTP ${status}` : undefined, name, message].filter(Boolean).join(' ');
}

/** IoT Hub may send Retry-After on 429/503; the SDK keeps the response on the error. */
function retryAfterSeconds(error: unknown): number | undefined {
  const header = (error as { response?: { headers?: Record<string, unknown> } } | null)?.response?.headers?.['retry-after'];
  if (typeof header !== 'string') return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
