import type { TokenCredential } from '@azure/identity';
import { ServiceBusClient, type ServiceBusClientOptions } from '@azure/service-bus';
import { RoutingError } from '../errors.js';

/**
 * How to reach a Service Bus namespace: a connection string (SAS key, or the emulator's
 * `UseDevelopmentEmulator=true`), or a namespace reached with a Microsoft Entra credential, the one
 * `connectionCredential(settings, 'SERVICEBUS_CONNECTION')` chooses (a user-assigned identity when
 * `SERVICEBUS_CONNECTION__credential=managedidentity` and `__clientId` say so, `az login` on a workstation).
 */
export type ServiceBusSettings = { connectionString: string } | { fullyQualifiedNamespace: string; credential: TokenCredential };

/**
 * Accepts `myns`, `myns.servicebus.windows.net` and `sb://myns.servicebus.windows.net/`, the three forms operators
 * copy from the portal, and returns the host name the SDK wants.
 */
export function normalizeNamespace(namespace: string): string {
  const host = namespace
    .trim()
    .replace(/^sb:\/\//i, '')
    .replace(/\/+$/, '');
  if (host === '' || /[\s/]/.test(host)) {
    throw new RoutingError('ConfigInvalid', `Service Bus namespace "${namespace}" is not a namespace name or host name`);
  }
  return host.includes('.') ? host : `${host}.servicebus.windows.net`;
}

export function serviceBusClientFromSettings(settings: ServiceBusSettings, options: ServiceBusClientOptions = {}): ServiceBusClient {
  if ('connectionString' in settings) {
    if (!/(^|;)\s*Endpoint\s*=/i.test(settings.connectionString)) {
      // The SDK's own message would echo the string, which holds the key.
      throw new RoutingError('ConfigInvalid', 'Service Bus connection string has no Endpoint=...');
    }
    return new ServiceBusClient(settings.connectionString, options);
  }
  return new ServiceBusClient(normalizeNamespace(settings.fullyQualifiedNamespace), settings.credential, options);
}
