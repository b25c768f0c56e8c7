import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildAppConfig, loadAppConfig, loadRoutingConfig, SETTINGS } from '../src/lib/config.js';
import { isRoutingError } from '../src/lib/errors.js';
import { APP_ROOT } from '../src/lib/version.js';
import { useTempDirs } from './support/tempDirs.js';

const tempDir = useTempDirs();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') return error.message;
    throw error;
  }
  throw new Error('expected ConfigInvalid');
}

describe('config', () => {
  it('accepts the routing.config.json shipped with the app and the sample settings', async () => {
    const sample = JSON.parse(await readFile(path.join(root, 'local.settings.sample.json'), 'utf8')) as {
      Values: Record<string, string>;
    };
    const config = await loadAppConfig(sample.Values, root);
    expect(config.routing.iotHubName).toBe('ContosoTestHub');
    expect(config.routing.routes.map((r) => [r.name, r.endpoint])).toEqual([
      ['CriticalRoute', 'criticalQueue'],
      ['StorageRoute', 'archive'],
    ]);
    expect(config.settings.storage).toEqual({ kind: 'connectionString', value: 'UseDevelopmentStorage=true' });
    expect(config.settings.quarantineContainer).toBe('quarantine');
  });

  it('finds routing.config.json in the app root whatever the working directory (the host does not promise it)', async () => {
    expect(APP_ROOT).toBe(root);
    const sample = JSON.parse(await readFile(path.join(root, 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
    const elsewhere = await tempDir('cwd-');
    const cwd = process.cwd();
    process.chdir(elsewhere);
    try {
      expect((await loadAppConfig(sample.Values)).routing.iotHubName).toBe('ContosoTestHub');
    } finally {
      process.chdir(cwd);
    }
  });

  it('lists every setting the app reads in local.settings.sample.json, each with a description', async () => {
    const sample = JSON.parse(await readFile(path.join(root, 'local.settings.sample.json'), 'utf8')) as {
      Values: Record<string, string>;
      Descriptions: Record<string, string>;
    };
    const names = SETTINGS.map((s) => s.name);
    expect(Object.keys(sample.Values).sort()).toEqual(['FUNCTIONS_WORKER_RUNTIME', ...names].sort());
    for (const name of Object.keys(sample.Values)) expect(sample.Descriptions[name]?.length ?? 0).toBeGreaterThan(20);
  });

  it('reports every problem in one error, each with where it is', () => {
    const message = configError(() =>
      buildAppConfig(
        { QUARANTINE_CONTAINER: 'Bad_Name' },
        {
          routes: [
            { name: 'ok', condition: 'level="critical"', endpoint: 'criticalQueue' },
            { name: 'ok', endpoint: 'nowhere' },
            { name: 'broken', condition: 'level = "critical")', endpoint: 'archive' },
          ],
          enrichments: [{ key: 'device location', value: '$twin.tags.location', endpoints: ['archive'] }],
          twinResolution: { enabled: true, readsPerSecond: -1 },
          colour: 'blue',
        },
      ),
    );
    expect(message).toContain('AzureWebJobsStorage is not set');
    expect(message).toContain('QUARANTINE_CONTAINER: "Bad_Name" is not a valid container name');
    expect(message).toContain('routes[1].name: duplicate route name "ok"');
    expect(message).toContain('routes[1].endpoint: expected one of events, criticalQueue, archive');
    expect(message).toContain('enrichments[0].key: "device location" is not accepted by IoT Hub');
    expect(message).toContain('twinResolution.readsPerSecond: expected a number above 0');
    expect(message).toContain('twinResolution.enabled is true but IOTHUB_SERVICE_CONNECTION is not set');
    expect(message).toContain('routing.config.json.colour: unknown setting');
    expect(message).toMatch(/routes\[2\]\.condition: unexpected token '\)' at \d+/);
    expect(message).toMatch(/Configuration is invalid \(\d+ problems\)/);
  });

  it('refuses secrets in routing.config.json', () => {
    const message = configError(() =>
      buildAppConfig(
        { AzureWebJobsStorage: 'UseDevelopmentStorage=true' },
        { iotHubName: 'HostName=x;SharedAccessKeyName=a;SharedAccessKey=abc' },
      ),
    );
    expect(message).toContain('secrets belong in app settings only');
    expect(message).not.toContain('SharedAccessKey=abc');
  });

  it('accepts identity-based connections in the Functions naming convention', () => {
    const config = buildAppConfig(
      {
        AzureWebJobsStorage__accountName: 'contosostorage',
        IOTHUB_SERVICE_CONNECTION__hostName: 'contoso.azure-devices.net',
      },
      { twinResolution: { enabled: true } },
    );
    expect(config.settings.storage).toEqual({ kind: 'identity', properties: { accountName: 'contosostorage' } });
    expect(config.settings.iotHubService).toEqual({ kind: 'identity', properties: { hostName: 'contoso.azure-devices.net' } });
    expect(config.routing.twinResolution).toEqual({ enabled: true, cacheTtlSeconds: 300, maxConcurrency: 4, readsPerSecond: 8 });
  });

  it('reads a connection as our clients and the host read it: ":" for "__", any case, blank values unset', () => {
    // blobServiceClientFromSettings and connectionCredential (connectionSetting) accept these; a check that refused
    // them, or passed a blank accountName, would disagree with the client it vouches for.
    const config = buildAppConfig(
      { 'AzureWebJobsStorage:accountName': 'contosostorage', IOTHUB_SERVICE_CONNECTION__HostName: ' contoso.azure-devices.net ' },
      { twinResolution: { enabled: true } },
    );
    expect(config.settings.storage).toEqual({ kind: 'identity', properties: { accountName: 'contosostorage' } });
    expect(config.settings.iotHubService).toEqual({ kind: 'identity', properties: { hostName: 'contoso.azure-devices.net' } });
    expect(configError(() => buildAppConfig({ AzureWebJobsStorage__accountName: ' ', AzureWebJobsStorage__credential: 'managedidentity' }, {}))).toContain(
      'AzureWebJobsStorage__*: an identity-based connection needs accountName',
    );
  });

  it('asks identity-based host storage for a queue endpoint too: the blob trigger uses queues through it', () => {
    const blob = 'https://contosostorage.blob.core.windows.net';
    const queue = 'https://contosostorage.queue.core.windows.net';
    for (const properties of [{ blobServiceUri: blob }, { serviceUri: blob }, { queueServiceUri: queue }, { credential: 'managedidentity' }]) {
      const env = Object.fromEntries(Object.entries(properties).map(([k, v]) => [`AzureWebJobsStorage__${k}`, v]));
      expect(configError(() => buildAppConfig(env, {})), JSON.stringify(properties)).toContain(
        'AzureWebJobsStorage__*: an identity-based connection needs accountName, or both blobServiceUri and queueServiceUri',
      );
    }
    const config = buildAppConfig({ AzureWebJobsStorage__blobServiceUri: blob, AzureWebJobsStorage__queueServiceUri: queue }, {});
    expect(config.settings.storage).toEqual({ kind: 'identity', properties: { blobServiceUri: blob, queueServiceUri: queue } });
  });

  it('checks the identity settings of every connection our own clients use: problems by name, never by value', () => {
    const clientId = '6f1c2a4e-0b7d-4c1e-9a35-2d8f0e7b9c41';
    const resourceId =
      '/subscriptions/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app';
    const notAGuid = 'contoso-functions-identity';
    const endpoints = {
      AzureWebJobsStorage__accountName: 'contosostorage',
      IOTHUB_SERVICE_CONNECTION__hostName: 'contoso.azure-devices.net',
      SERVICEBUS_CONNECTION__fullyQualifiedNamespace: 'contoso.servicebus.windows.net',
      ACS_ENDPOINT: 'https://contoso.communication.azure.com',
    };
    const message = configError(() =>
      buildAppConfig(
        {
          ...endpoints,
          AzureWebJobsStorage__credential: 'managedidentity',
          AzureWebJobsStorage__clientId: notAGuid,
          IOTHUB_SERVICE_CONNECTION__credential: 'managedidentity',
          IOTHUB_SERVICE_CONNECTION__clientId: clientId,
          IOTHUB_SERVICE_CONNECTION__managedIdentityResourceId: resourceId,
          SERVICEBUS_CONNECTION__clientId: notAGuid,
          ACS_ENDPOINT__credential: 'workloadidentity',
        },
        {},
      ),
    );
    expect(message).toContain('AzureWebJobsStorage__clientId: not a client ID (a GUID');
    expect(message).toContain('az identity show -g <group> -n <identity> --query clientId');
    expect(message).toContain(
      'IOTHUB_SERVICE_CONNECTION__clientId and IOTHUB_SERVICE_CONNECTION__managedIdentityResourceId are both set',
    );
    expect(message).toContain('SERVICEBUS_CONNECTION__clientId: not a client ID');
    expect(message).toContain('ACS_ENDPOINT__credential: expected managedidentity');
    expect(message).not.toContain(notAGuid);
    expect(message).not.toContain('workloadidentity');

    // Well-formed: a user-assigned identity per connection, by client id or by resource id.
    const fixed: Record<string, string> = { ...endpoints };
    for (const connection of ['AzureWebJobsStorage', 'IOTHUB_SERVICE_CONNECTION', 'SERVICEBUS_CONNECTION', 'ACS_ENDPOINT']) {
      fixed[`${connection}__credential`] = 'managedidentity';
      fixed[`${connection}__clientId`] = clientId;
    }
    delete fixed['IOTHUB_SERVICE_CONNECTION__clientId'];
    fixed['IOTHUB_SERVICE_CONNECTION__managedIdentityResourceId'] = resourceId;
    expect(buildAppConfig(fixed, {}).settings.storage).toEqual({
      kind: 'identity',
      properties: { accountName: 'contosostorage', credential: 'managedidentity', clientId },
    });
    // A connection given as a connection string does not read them, here or in the host.
    const withConnectionStrings = {
      ...endpoints,
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      AzureWebJobsStorage__clientId: notAGuid,
      SERVICEBUS_CONNECTION: 'Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=k',
      SERVICEBUS_CONNECTION__clientId: notAGuid,
    };
    expect(buildAppConfig(withConnectionStrings, {}).settings.storage).toEqual({ kind: 'connectionString', value: 'UseDevelopmentStorage=true' });
  });

  it('names the file when routing.config.json is not JSON', async () => {
    const dir = await tempDir('routing-config-');
    const file = path.join(dir, 'routing.config.json');
    await writeFile(file, '{ "routes": [ }');
    await expect(loadRoutingConfig(file)).rejects.toThrow(/routing\.config\.json: not valid JSON/);
  });
});

describe('enrichments become expectations', () => {
  it('derives equals for static values and $iothubname, presence for $twin paths, on the listed endpoints only', () => {
    const { routing } = buildAppConfig(
      { AzureWebJobsStorage: 'UseDevelopmentStorage=true' },
      {
        iotHubName: 'ContosoTestHub',
        enrichments: [
          { key: 'hub', value: '$iothubname', endpoints: ['criticalQueue'] },
          { key: 'DeviceLocation', value: '$twin.tags.location', endpoints: ['criticalQueue', 'archive'] },
          { key: 'customerID', value: 'c-42', endpoints: ['criticalQueue'] },
        ],
        checks: { endpoints: { criticalQueue: { enrichments: [{ key: 'CUSTOMERID', pattern: '^c-' }] } } },
      },
    );
    const rules = (endpoint: 'events' | 'criticalQueue' | 'archive') =>
      routing.checks.endpoints[endpoint].enrichments.map((e) => [e.key, e.rule.kind, 'value' in e.rule ? e.rule.value : undefined]);
    // The explicit CUSTOMERID rule wins over the derived one (keys match ignoring case, as IoT Hub's do).
    expect(rules('criticalQueue')).toEqual([
      ['CUSTOMERID', 'pattern', undefined],
      ['hub', 'equals', 'ContosoTestHub'],
      ['DeviceLocation', 'present', undefined],
    ]);
    expect(rules('archive')).toEqual([['DeviceLocation', 'present', undefined]]);
    expect(rules('events')).toEqual([]);
  });
});
