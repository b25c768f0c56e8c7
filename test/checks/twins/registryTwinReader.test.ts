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

    const result = await resolver.resolveProperties('sensor-1', {
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
    await resolver.resolve('sensor-1', '$twin.tags.location');
    await resolver.resolve('sensor-1', '$twin.properties.desired.telemetryInterval');
    expect(api.twinReads('sensor-1')).toBe(1);
  });

  it('maps 404 DeviceNotFound to null, and the resolver to DeviceNotFound', async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin('ghost')).resolves.toBeNull();
    await expect(resolverOver(reader).resolve('ghost', '$twin.tags.location')).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    expect(api.requests.map((r) => r.status)).toEqual([404, 404]);
  });

  it('turns 503 into a transient TwinUnavailable that is not cached', async () => {
    await start();
    const resolver = resolverOver(registryTwinReaderFromConnectionString(api.connectionString()));
    api.failNext({ status: 503 });

    const error = await rejection(resolver.resolve('sensor-1', '$twin.tags.location'));
    expect(isRoutingError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).message).toMatch(/HTTP 503 ServiceUnavailableError/);
    expect((error as Error).cause).toMatchObject({ name: 'ServiceUnavailableError' });

    await expect(resolver.resolve('sensor-1', '$twin.tags.location')).resolves.toEqual({ resolved: true, value: 'Oslo' });
    expect(api.requests.map((r) => r.status)).toEqual([503, 200]);
  });

  it("carries a 429's Retry-After as retryAfterSeconds", async () => {
    await start();
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    api.failNext({ status: 429, retryAfterSeconds: 7 });

    const error = await rejection(reader.getTwin('sensor-1'));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient', retryAfterSeconds: 7 });
    expect((error as Error).cause).toMatchObject({ name: 'ThrottlingError' });
  });

  it('is refused when signed with the wrong key, and the stand-in says why', async () => {
    await start();
    const wrongKey = Buffer.alloc(32, 7).toString('base64');
    const reader = registryTwinReaderFromConnectionString(api.connectionString({ key: wrongKey }));

    const error = await rejection(reader.getTwin('sensor-1'));
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).cause).toMatchObject({ name: 'UnauthorizedError' });
    expect(api.requests).toMatchObject([{ authentication: 'sas', rejection: 'signature mismatch', status: 401 }]);
    expect(api.twinReads()).toBe(0);
  });

  it('is refused for a policy the hub does not have', async () => {
    await start();
    const key = Buffer.alloc(32, 1).toString('base64');
    const connectionString = `HostName=${api.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${key}`;
    await expect(registryTwinReaderFromConnectionString(connectionString).getTwin('sensor-1')).rejects.toMatchObject({
      code: 'TwinUnavailable',
    });
    expect(api.requests).toMatchObject([{ rejection: "no policy named 'iothubowner'", status: 401 }]);
  });

  it('sends device ids URL-encoded', async () => {
    await start();
    api.setTwin('bay 4/#2', { tags: { location: 'Dock' } });
    const reader = registryTwinReaderFromConnectionString(api.connectionString());
    await expect(reader.getTwin('bay 4/#2')).resolves.toMatchObject({ tags: { location: 'Dock' } });
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

    await expect(reader.getTwin('sensor-1')).resolves.toMatchObject({ tags: { location: 'Oslo' } });
    expect(scopes).toEqual(['https://iothubs.azure.net/.default']);
    expect(api.requests).toMatchObject([{ authentication: 'bearer', rejection: undefined, status: 200 }]);
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
