/**
 * The Microsoft Entra credential of an identity-based connection, chosen from the connection's app settings the way
 * the Functions host chooses it for its own triggers and bindings ("Common properties for identity-based
 * connections" in the Functions docs; Microsoft.Extensions.Azure's credential factory does the choosing). The SDK
 * clients this app builds itself (blob storage, IoT Hub registry and service client, Service Bus, ACS e-mail) take
 * their credential from here, so a user-assigned identity named once per connection serves both the host and us;
 * `DefaultAzureCredential` alone ignores these settings and, on an app with only a user-assigned identity, finds none.
 *
 * | `<CONNECTION>__...` settings                                   | credential                                    |
 * |----------------------------------------------------------------|-----------------------------------------------|
 * | `credential=managedidentity`, `clientId`                       | user-assigned managed identity, by client id  |
 * | `credential=managedidentity`, `managedIdentityResourceId`      | user-assigned managed identity, by resource id |
 * | `credential=managedidentity` alone                             | system-assigned managed identity              |
 * | `tenantId`, `clientId`, `clientSecret` (no `credential`)       | service principal (local development only)    |
 * | `clientId`, `managedIdentityResourceId` or `tenantId` alone    | `DefaultAzureCredential` with them            |
 * | none of them                                                   | `DefaultAzureCredential` (`az login` locally) |
 *
 * `:` is accepted in place of `__` (local.settings.json style). Problems name settings, never their values: a
 * client secret is one of them. The Functions docs call a resource ID unsupported for the host's own connections
 * ("configuring a user-assigned identity with a resource ID is not supported"): our clients accept it, the host's
 * triggers may not, so docs/deployment.md recommends `clientId`.
 */

import {
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import type { Connection } from './config.js';
import { configInvalid } from './errors.js';

type Settings = Readonly<Record<string, string | undefined>>;

/**
 * The trimmed, non-empty value of `<connection>` (no `property`) or of `<connection>__<property>` /
 * `<connection>:<property>`; undefined when unset or blank. A property's name is matched without regard to case, as
 * the host's configuration matches it (`__clientID`, the Functions docs' spelling, is `__clientId`): reading it
 * case-sensitively would sign our clients in as another identity than the host's triggers. The exact spelling wins.
 */
export function connectionSetting(settings: Settings, connection: string, property?: string): string | undefined {
  const keys = property === undefined ? [connection] : [`${connection}__${property}`, `${connection}:${property}`];
  for (const key of keys) {
    const value = settings[key]?.trim();
    if (value) return value;
  }
  if (property === undefined) return undefined;
  const wanted = new Set(keys.map((key) => key.toLowerCase()));
  for (const [key, raw] of Object.entries(settings)) {
    const value = raw?.trim();
    if (value && wanted.has(key.toLowerCase())) return value;
  }
  return undefined;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const IDENTITY_RESOURCE_ID =
  /^\/subscriptions\/[0-9a-f-]{36}\/resourcegroups\/[^/]+\/providers\/microsoft\.managedidentity\/userassignedidentities\/[^/]+$/i;

/**
 * What is wrong with `<connection>`'s identity settings, one line per problem, each naming the setting and how to
 * fix it. Empty when the credential can be built.
 */
export function connectionCredentialProblems(settings: Settings, connection: string): string[] {
  const problems: string[] = [];
  const credential = connectionSetting(settings, connection, 'credential');
  const clientId = connectionSetting(settings, connection, 'clientId');
  const resourceId = connectionSetting(settings, connection, 'managedIdentityResourceId');
  if (credential !== undefined && credential.toLowerCase() !== 'managedidentity') {
    problems.push(
      `${connection}__credential: expected managedidentity (the managed identity named by __clientId or ` +
        `__managedIdentityResourceId, else the system-assigned one); leave it unset to sign in with DefaultAzureCredential`,
    );
  }
  if (clientId !== undefined && !GUID.test(clientId)) {
    problems.push(
      `${connection}__clientId: not a client ID (a GUID such as 00000000-0000-0000-0000-000000000000): give the ` +
        'client ID of the user-assigned identity (az identity show -g <group> -n <identity> --query clientId)' +
        (clientId.startsWith('/') ? `; a resource ID goes in ${connection}__managedIdentityResourceId` : ', not its name'),
    );
  }
  if (resourceId !== undefined && !IDENTITY_RESOURCE_ID.test(resourceId)) {
    problems.push(
      `${connection}__managedIdentityResourceId: expected /subscriptions/<id>/resourceGroups/<group>/providers/` +
        'Microsoft.ManagedIdentity/userAssignedIdentities/<identity> (az identity show -g <group> -n <identity> --query id)',
    );
  }
  if (clientId !== undefined && resourceId !== undefined) {
    problems.push(
      `${connection}__clientId and ${connection}__managedIdentityResourceId are both set: name the user-assigned ` +
        'identity one way, keep one (the Functions host refuses both)',
    );
  }
  return problems;
}

/**
 * The credential the Functions host would use for `connection` (see the table above). Throws ConfigInvalid, listing
 * every problem of {@link connectionCredentialProblems}, rather than signing in as an identity nobody asked for.
 */
export function connectionCredential(settings: Settings, connection: string): TokenCredential {
  const problems = connectionCredentialProblems(settings, connection);
  if (problems.length > 0) {
    throw configInvalid(`The identity settings of ${connection} are invalid`, problems);
  }
  const clientId = connectionSetting(settings, connection, 'clientId');
  const resourceId = connectionSetting(settings, connection, 'managedIdentityResourceId');
  if (connectionSetting(settings, connection, 'credential') !== undefined) {
    // Only managedidentity passes the check above.
    if (clientId !== undefined) return new ManagedIdentityCredential({ clientId });
    if (resourceId !== undefined) return new ManagedIdentityCredential({ resourceId });
    return new ManagedIdentityCredential();
  }
  const tenantId = connectionSetting(settings, connection, 'tenantId');
  const clientSecret = connectionSetting(settings, connection, 'clientSecret');
  if (tenantId !== undefined && clientId !== undefined && clientSecret !== undefined) {
    return new ClientSecretCredential(tenantId, clientId, clientSecret);
  }
  return new DefaultAzureCredential({
    ...(tenantId === undefined ? {} : { tenantId }),
    ...(clientId === undefined ? {} : { managedIdentityClientId: clientId }),
    ...(resourceId === undefined ? {} : { managedIdentityResourceId: resourceId }),
  });
}

/**
 * An IoT Hub service connection as the azure-iothub clients (twin reader, device notifier) take it: a shared access
 * policy's connection string (`HostName=<hub>.azure-devices.net;SharedAccessKeyName=...;SharedAccessKey=...`), or
 * the hub's host name (`<hub>.azure-devices.net`) with a Microsoft Entra credential.
 */
export type IotHubServiceConnection = { connectionString: string } | { hostName: string; credential: TokenCredential };

/**
 * IOTHUB_SERVICE_CONNECTION as parseSettings read it (`connection`), in the form the clients take: an identity-based
 * one signs in as the host would ({@link connectionCredential}). Every client of the hub this app builds gets its
 * connection here, so they cannot choose the form or the identity differently.
 */
export function iotHubServiceConnection(settings: Settings, connection: Connection): IotHubServiceConnection {
  return connection.kind === 'connectionString'
    ? { connectionString: connection.value }
    : { hostName: connection.properties['hostName'] ?? '', credential: connectionCredential(settings, 'IOTHUB_SERVICE_CONNECTION') };
}
