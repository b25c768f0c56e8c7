import https from 'node:https';

import type { AccessToken, TokenCredential } from '@azure/identity';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { isRoutingError } from '../../../src/lib/errors.js';
import { systemClock } from '../../../src/lib/ports.js';
import {
  registryTwinReaderFromConnectionString,
  registryTwinReaderFromTokenCredential,
} from '../../../src/lib/checks/twins/registryTwinReader.js';
import { createTwinResolver } from '../../../src/lib/checks/twins/twinResolver.js';
import type { TwinReader } from '../../../src/lib/checks/twins/twinResolver.js';
import { createTestCertificate, hasOpenssl, startIotHubTwinApi } from '../../support/iotHubTwinApi.js';
import type { IotHubTwinApi, IotHubTwinApiOptions, TestCertificate } from '../../support/iotHubTwinApi.js';
import { rejection } from '../../support/rejections.js';

const SEEDED_TWINS: IotHubTwinApiOptions['twins'] = {
  'sensor-1': {
    tags: { location: 'Oslo', site: { building: 'B7' } },
    desired: { telemetryInterval: 30 },
    reported: { firmware: { version: '1.4.2' } },
  },
};

function resolverOver(reader: TwinReader) {
  // The real clock and timer: these tests exercise the wire, the pacing has its own fake-clock tests.
  return createTwinResolver({ reader, clock: systemClock, ratePerSecond: 1000 });
}

describe('registryTwinReaderFromConnectionString: configuration', () => {
  it('rejects a connection string without a key as ConfigInvalid, without echoing it', () => {
    const connectionString = 'HostName=hub.azure-devices.net;SharedAccessKeyName=registryRead';
    try {
      registryTwinReaderFromConnectionString(connectionString);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'ConfigInvalid', kind: 'permanent' });
      expect((error as Error).message).toContain('SharedAccessKey');
      expect((error as Error).message).not.toContain(connectionString);
    }
  });
});

describe.skipIf(!hasOpenssl())('azure-iothub Registry via the adapter against the loopback twin API (needs openssl)', () => {
  const bearerToken = 'test-entra-token';
  let certificate: TestCertificate;
  let api: IotHubTwinApi;

  beforeAll(() => {
    certificate = createTestCertificate('loopback-hub.azure-devices.test');
  });

  async function start(): Promise<IotHubTwinApi> {
    api = await startIotHubTwinApi({ certificate, twins: SEEDED_TWINS, bearerTokens: [bearerToken] });
    return api;
  }

  afterEach(async () => {
    await api.close();
  });

  it('resolves $twin.tags.location over HTTPS with a SAS token the stand-in verifies', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));

    const result = await resolver.resolveProperties({ deviceId: 'sensor-1' }, {
      level: 'critical',
      location: '$twin.tags.location',
      building: '$twin.tags.site.building',
      interval: '$twin.properties.desired.telemetryInterval',
      firmware: '$twin.properties.reported.firmware.version',
    });

    expect(result.properties).toEqual({
      level: 'critical',
      location: 'Oslo',
      building: 'B7',
      interval: '30',
      firmware: '1.4.2',
    });
    expect(result.unresolved).toEqual([]);
    expect(api.requests).toEqual([
      {
        method: 'GET',
        pathname: '/twins/sensor-1',
        host: api.hostName,
        deviceId: 'sensor-1',
        apiVersion: '2021-04-12',
        authentication: 'sas',
        rejection: undefined,
        status: 200,
      },
    ]);
  });

  it('reads once per device while the cached twin is fresh', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));
    await resolver.resolve({ deviceId: 'sensor-1' }, '$twin.tags.location');
    await resolver.resolve({ deviceId: 'sensor-1' }, '$twin.properties.desired.telemetryInterval');
    expect(api.twinReads('sensor-1')).toBe(1);
  });

  it('maps 404 DeviceNotFound to null, and the resolver to DeviceNotFound', async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin({ deviceId: 'ghost' })).resolves.toBeNull();
    await expect(resolverOver(reader).resolve({ deviceId: 'ghost' }, '$twin.tags.location')).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    expect(api.requests.map((r) => r.status)).toEqual([404, 404]);
  });

  it('turns 503 into a transient TwinUnavailable that is not cached', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));
    api.failNext({ status: 503 });

    const error = await rejection(resolver.resolve({ deviceId: 'sensor-1' }, '$twin.tags.location'));
    expect(isRoutingError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).message).toMatch(/HTTP 503 ServiceUnavailableError/);
    expect((error as Error).cause).toMatchObject({ name: 'ServiceUnavailableError' });

    await expect(resolver.resolve({ deviceId: 'sensor-1' }, '$twin.tags.location')).resolves.toEqual({ resolved: true, value: 'Oslo' });
    expect(api.requests.map((r) => r.status)).toEqual([503, 200]);
  });

  it("carries a 429's Retry-After as retryAfterSeconds", async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    api.failNext({ status: 429, retryAfterSeconds: 7 });

    const error = await rejection(reader.getTwin({ deviceId: 'sensor-1' }));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient', retryAfterSeconds: 7 });
    expect((error as Error).cause).toMatchObject({ name: 'ThrottlingError' });
  });

  it('is refused when signed with the wrong key, and the stand-in says why', async () => {
    await start();
    const wrongKey = Buffer.alloc(32, 7).toString('base64');
    const reader = registryTwinReaderFromConnectionString(api.connectionString({ key: wrongKey }));

    const error = await rejection(reader.getTwin({ deviceId: 'sensor-1' }));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).cause).toMatchObject({ name: 'UnauthorizedError' });
    expect(api.requests).toMatchObject([{ authentication: 'sas', rejection: 'signature mismatch', status: 401 }]);
    expect(api.twinReads()).toBe(0);
  });

  it('is refused for a policy the hub does not have', async () => {
    await start();
    const key = Buffer.alloc(32, 1).toString('base64');
    const connectionString = `HostName=${api.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${key}`;
    await expect(registryTwinReaderFromConnectionString(connectionString).getTwin({ deviceId: 'sensor-1' })).rejects.toMatchObject({
      code: 'TwinUnavailable',
    });
    expect(api.requests).toMatchObject([{ rejection: "no policy named 'iothubowner'", status: 401 }]);
  });

  it('sends device ids URL-encoded', async () => {
    await start();
    api.setTwin('bay 4/#2', { tags: { location: 'Dock' } });
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin({ deviceId: 'bay 4/#2' })).resolves.toMatchObject({ tags: { location: 'Dock' } });
    expect(api.requests[0]).toMatchObject({ pathname: '/twins/bay%204%2F%232', deviceId: 'bay 4/#2', status: 200 });
  });

  it('authenticates with an Entra token for the IoT Hub scope when built from a TokenCredential', async () => {
    await start();
    const scopes: unknown[] = [];
    const credential: TokenCredential = {
      getToken(requested): Promise<AccessToken> {
        scopes.push(requested);
        return Promise.resolve({ token: bearerToken, expiresOnTimestamp: Date.now() + 3_600_000 });
      },
    };
    const reader = registryTwinReaderFromTokenCredential(api.hostName, credential);

    await expect(reader.getTwin({ deviceId: 'sensor-1' })).resolves.toMatchObject({ tags: { location: 'Oslo' } });
    expect(scopes).toEqual(['https://iothubs.azure.net/.default']);
    expect(api.requests).toMatchObject([{ authentication: 'bearer', rejection: undefined, status: 200 }]);
  });
});

describe.skipIf(!hasOpenssl())("azure-iothub Registry via the adapter: an IoT Edge module's twin (needs openssl)", () => {
  let certificate: TestCertificate;
  let api: IotHubTwinApi;

  beforeAll(() => {
    certificate = createTestCertificate('loopback-hub.azure-devices.test');
  });

  async function start(options: Partial<IotHubTwinApiOptions> = {}): Promise<IotHubTwinApi> {
    api = await startIotHubTwinApi({
      certificate,
      twins: SEEDED_TWINS,
      moduleTwins: {
        'sensor-1': {
          filter: { tags: { location: 'Dock 4' }, desired: { threshold: 40 }, reported: { status: 'running' } },
        },
      },
      ...options,
    });
    return api;
  }

  afterEach(async () => {
    await api.close();
  });

  it('reads GET /twins/{device}/modules/{module} with a SAS token, not the device twin', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));

    const result = await resolver.resolveProperties({ deviceId: 'sensor-1', moduleId: 'filter' }, {
      location: '$twin.tags.location',
      threshold: '$twin.properties.desired.threshold',
      status: '$twin.properties.reported.status',
      // Set on the device twin only: modules inherit nothing from it, so it stays unresolved.
      building: '$twin.tags.site.building',
    });

    expect(result.properties).toEqual({ location: 'Dock 4', threshold: '40', status: 'running', building: '$twin.tags.site.building' });
    expect(result.reasons).toEqual({ building: 'PathMissing' });
    expect(api.requests).toEqual([
      {
        method: 'GET',
        pathname: '/twins/sensor-1/modules/filter',
        host: api.hostName,
        deviceId: 'sensor-1',
        moduleId: 'filter',
        apiVersion: '2021-04-12',
        authentication: 'sas',
        rejection: undefined,
        status: 200,
      },
    ]);
  });

  it('caches the module twin apart from the device twin: one read each', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));
    const module = { deviceId: 'sensor-1', moduleId: 'filter' };
    await expect(resolver.resolve(module, '$twin.tags.location')).resolves.toEqual({ resolved: true, value: 'Dock 4' });
    await expect(resolver.resolve({ deviceId: 'sensor-1' }, '$twin.tags.location')).resolves.toEqual({ resolved: true, value: 'Oslo' });
    await expect(resolver.resolve(module, '$twin.properties.desired.threshold')).resolves.toEqual({ resolved: true, value: '40' });
    expect(api.twinReads('sensor-1', 'filter')).toBe(1);
    expect(api.twinReads('sensor-1')).toBe(2);
  });

  it('maps 404 ModuleNotFound and a missing device to null, and the resolver to ModuleNotFound', async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin({ deviceId: 'sensor-1', moduleId: 'removed' })).resolves.toBeNull();
    await expect(reader.getTwin({ deviceId: 'ghost', moduleId: 'filter' })).resolves.toBeNull();
    await expect(resolverOver(reader).resolve({ deviceId: 'sensor-1', moduleId: 'removed' }, '$twin.tags.location')).resolves.toEqual({
      resolved: false,
      reason: 'ModuleNotFound',
    });
    expect(api.requests.map((r) => [r.pathname, r.status])).toEqual([
      ['/twins/sensor-1/modules/removed', 404],
      ['/twins/ghost/modules/filter', 404],
      ['/twins/sensor-1/modules/removed', 404],
    ]);
  });

  it("keeps any other 404 (the hub itself not found) a transient TwinUnavailable, so it never quarantines", async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    api.failNext({ status: 404 });
    const error = await rejection(reader.getTwin({ deviceId: 'sensor-1', moduleId: 'filter' }));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).cause).toMatchObject({ name: 'IotHubNotFoundError' });
  });

  it('turns a 429 on a module twin read into TwinUnavailable naming the module, with Retry-After, not cached', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));
    api.failNext({ status: 429, retryAfterSeconds: 3 });
    const module = { deviceId: 'sensor-1', moduleId: 'filter' };

    const error = await rejection(resolver.resolve(module, '$twin.tags.location'));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient', retryAfterSeconds: 3 });
    expect((error as Error).message).toContain("module 'filter' of device 'sensor-1'");
    expect((error as Error).cause).toMatchObject({ name: 'ThrottlingError' });

    await expect(resolver.resolve(module, '$twin.tags.location')).resolves.toEqual({ resolved: true, value: 'Dock 4' });
    expect(api.requests.map((r) => r.status)).toEqual([429, 200]);
  });

  it("sends IoT Edge's system module ids URL-encoded ($edgeHub)", async () => {
    await start();
    api.setModuleTwin('sensor-1', '$edgeHub', { tags: { location: 'Gateway' } });
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin({ deviceId: 'sensor-1', moduleId: '$edgeHub' })).resolves.toMatchObject({ tags: { location: 'Gateway' } });
    expect(api.requests[0]).toMatchObject({ pathname: '/twins/sensor-1/modules/%24edgeHub', moduleId: '$edgeHub', status: 200 });
  });

  it('reads a module twin with an Entra token when built from a TokenCredential', async () => {
    await start({ bearerTokens: ['module-reader-token'] });
    const credential: TokenCredential = {
      getToken: (): Promise<AccessToken> => Promise.resolve({ token: 'module-reader-token', expiresOnTimestamp: Date.now() + 3_600_000 }),
    };
    const reader = registryTwinReaderFromTokenCredential(api.hostName, credential);
    await expect(reader.getTwin({ deviceId: 'sensor-1', moduleId: 'filter' })).resolves.toMatchObject({ tags: { location: 'Dock 4' } });
    expect(api.requests).toMatchObject([{ pathname: '/twins/sensor-1/modules/filter', authentication: 'bearer', status: 200 }]);
  });
});

describe.skipIf(!hasOpenssl())('the loopback mapping (needs openssl)', () => {
  const original = https.Agent.prototype.createConnection;

  afterAll(() => {
    expect(https.Agent.prototype.createConnection).toBe(original);
  });

  it('exists only while a stand-in runs', async () => {
    const api = await startIotHubTwinApi();
    expect(https.Agent.prototype.createConnection).not.toBe(original);
    await api.close();
    expect(https.Agent.prototype.createConnection).toBe(original);
  });
});
