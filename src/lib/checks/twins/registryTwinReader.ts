/**
 * Adapter: the {@link TwinReader} port over azure-iothub's `Registry.getTwin` (HTTPS, `GET /twins/{id}`) for a
 * device's twin and `Registry.getModuleTwin` (`GET /twins/{id}/modules/{mid}`) for an IoT Edge module's twin.
 *
 * Needs a shared access policy with `RegistryRead` (connection string) or, for identity-based access, a data-plane
 * role that can read twins, such as "IoT Hub Data Reader", on the hub.
 */

import type { TokenCredential } from '@azure/identity';
import iothub from 'azure-iothub';
import type { Registry } from 'azure-iothub';

import type { IotHubServiceConnection } from '../../connectionCredential.js';
import { RoutingError } from '../../errors.js';
import { describeTwinOwner, isModuleTwin } from './twinResolver.js';
import type { TwinDocument, TwinOwner, TwinReader } from './twinResolver.js';

/** The Registry operations this adapter uses, so callers holding a Registry for other work can share it. */
export type TwinRegistry = Pick<Registry, 'getTwin' | 'getModuleTwin'>;

/** Reads twins over either form of the hub's service connection (`iotHubServiceConnection`). */
export function registryTwinReader(connection: IotHubServiceConnection): TwinReader {
  return 'connectionString' in connection
    ? registryTwinReaderFromConnectionString(connection.connectionString)
    : registryTwinReaderFromTokenCredential(connection.hostName, connection.credential);
}

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
 * Reads twins with a Microsoft Entra identity (managed identity in Azure, developer sign-in locally): the credential
 * comes from `connectionCredential(settings, 'IOTHUB_SERVICE_CONNECTION')`. `hostName` is the hub's host name, e.g.
 * `my-hub.azure-devices.net`.
 */
export function registryTwinReaderFromTokenCredential(hostName: string, credential: TokenCredential): TwinReader {
  if (hostName.trim().length === 0) {
    throw new RoutingError('ConfigInvalid', 'IoT Hub host name for twin resolution is empty');
  }
  return twinReaderFromRegistry(iothub.Registry.fromTokenCredential(hostName, credential));
}

export function twinReaderFromRegistry(registry: TwinRegistry): TwinReader {
  return {
    async getTwin(owner: TwinOwner) {
      try {
        const { responseBody: twin } = isModuleTwin(owner)
          ? await registry.getModuleTwin(owner.deviceId, owner.moduleId)
          : await registry.getTwin(owner.deviceId);
        return toTwinDocument(twin);
      } catch (error) {
        if (isNotFound(error)) return null;
        throw new RoutingError('TwinUnavailable', `IoT Hub twin read for ${describeTwinOwner(owner)} failed: ${summary(error)}`, {
          cause: error,
          retryAfterSeconds: retryAfterSeconds(error),
        });
      }
    },
  };
}

/**
 * The twin's owner is not registered: 404 with IoT Hub's error code `DeviceNotFound` (the SDK's
 * `DeviceNotFoundError`) or `ModuleNotFound` (404010, "the module cannot be found by IoT Hub"), which the SDK does not
 * translate: it throws a plain `Error('Not found')` that keeps the response and its body. Any other 404 (the hub
 * itself, `IotHubNotFound`) is a deployment fault, not a missing twin, and stays an error.
 */
function isNotFound(error: unknown): boolean {
  if (nameOf(error) === 'DeviceNotFoundError') return true;
  const failed = error as { response?: { statusCode?: unknown }; responseBody?: unknown } | null;
  return failed?.response?.statusCode === 404 && iotHubErrorCode(failed.responseBody) === 'ModuleNotFound';
}

/** The code in IoT Hub's error body, `{"Message":"ErrorCode:<code>;<text>", ...}`; undefined when it has none. */
function iotHubErrorCode(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  let message: unknown;
  try {
    message = (JSON.parse(body) as { Message?: unknown } | null)?.Message;
  } catch {
    return undefined;
  }
  return typeof message === 'string' ? /^ErrorCode:([A-Za-z]+);/.exec(message)?.[1] : undefined;
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
