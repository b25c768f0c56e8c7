import { HttpRequest, InvocationContext } from '@azure/functions';
import { tmpdir } from 'node:os';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BlobServiceClient } from '@azure/storage-blob';
import { verifyStoredConfiguration } from '../../src/lib/aggregate/telemetryStream.js';
import { healthReport } from '../../src/lib/health.js';
import { createServices } from '../../src/lib/runtime.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';

let health: Registration;
beforeAll(async () => {
  health = registration((await captureRegistrations()).registrations, 'health');
});
afterEach(() => {
  vi.unstubAllEnvs();
});

/** The app settings of one test: the ones named, and the two others health reads left empty unless named. */
function settings(values: Record<string, string>): void {
  for (const [name, value] of Object.entries({ QUARANTINE_CONTAINER: '', IOTHUB_SERVICE_CONNECTION: '', ...values })) vi.stubEnv(name, value);
}

async function call(): Promise<{ status?: number; jsonBody?: unknown }> {
  const request = new HttpRequest({ method: 'GET', url: 'http://localhost:7071/api/health' });
  return (await health.options.handler(request, new InvocationContext({ functionName: 'health' }))) as {
    status?: number;
    jsonBody?: unknown;
  };
}

describe('GET /api/health', () => {
  const azurite = useAzurite();

  it('is a GET with a function key', () => {
    expect(health.kind).toBe('http');
    expect(health.options).toMatchObject({ methods: ['GET'], authLevel: 'function', route: 'health' });
  });

  it('reports every configuration problem at once, naming settings and never their values', async () => {
    settings({ AzureWebJobsStorage: '', QUARANTINE_CONTAINER: 'Not_Valid', IOTHUB_SERVICE_CONNECTION: 'SharedAccessKey=supersecret' });
    const response = await call();
    expect(response.status).toBe(503);
    const body = response.jsonBody as { status: string; problems: string[] };
    expect(body.status).toBe('misconfigured');
    expect(body.problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('AzureWebJobsStorage is not set'),
        expect.stringContaining('QUARANTINE_CONTAINER'),
        expect.stringContaining('IOTHUB_SERVICE_CONNECTION: not an IoT Hub connection string'),
      ]),
    );
    expect(JSON.stringify(body)).not.toContain('supersecret');
  });

  it('names the problem of a connection string it cannot read', async () => {
    settings({ AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=x' });
    const response = await call();
    expect(response.status).toBe(503);
    expect(response.jsonBody).toMatchObject({
      status: 'misconfigured',
      problems: [expect.stringMatching(/^AzureWebJobsStorage is not a valid storage connection string/)],
    });
  });

  it('reports what only the alert path meets: e-mail through ACS without an ACS setting', async () => {
    // routing.config.json says alerts.sender "acs"; neither ACS_ENDPOINT nor ACS_CONNECTION_STRING is set.
    settings({ AzureWebJobsStorage: azurite().connectionString, ALERT_SENDER: '', ACS_ENDPOINT: '', ACS_CONNECTION_STRING: '' });
    const response = await call();
    expect(response.status).toBe(503);
    expect(response.jsonBody).toMatchObject({ status: 'misconfigured', problems: [expect.stringMatching(/neither ACS_CONNECTION_STRING nor ACS_ENDPOINT is set/)] });
  });

  it('reports a base window other than the one the reports container was written with', async () => {
    // healthReport as the function wires it, over services of its own (the function's are built once per process).
    const container = uniqueContainerName('reports');
    const services = () => createServices({ AzureWebJobsStorage: azurite().connectionString, REPORTS_CONTAINER: container });
    const check = () => healthReport(services, async () => undefined, verifyStoredConfiguration, 'test');
    expect(await check()).toMatchObject({ status: 200, body: { status: 'ok' } });
    // What a deployment with windows ["5m", ...] left there.
    const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
    await store.ensureContainer(container);
    await store.put(container, 'config/base-window.json', Buffer.from(JSON.stringify({ schema: 1, kind: 'baseWindow', base: '5m', since: '2024-03-01T00:00:00.000Z' })));
    expect(await check()).toMatchObject({
      status: 503,
      body: { status: 'misconfigured', problems: [expect.stringMatching(/holds windows built on a 5m base window, and this configuration's smallest window is 1m/)] },
    });
    // A record that does not decode is named as what it is, not taken for storage being down.
    await store.put(container, 'config/base-window.json', Buffer.from('{"kind":"something else"}'));
    expect(await check()).toMatchObject({ status: 503, body: { status: 'misconfigured', problems: [expect.stringContaining('config/base-window.json')] } });
  });

  it('names each problem once, whatever its text: a problem holding a line that looks like a list item stays one', async () => {
    // The path is in the problem twice (the file and the error opening it); file names may hold newlines.
    const missing = 'routing\n- not a problem.json';
    const services = () => createServices({ AzureWebJobsStorage: azurite().connectionString, ROUTING_CONFIG_PATH: missing }, { root: tmpdir() });
    const report = await healthReport(services, async () => undefined, verifyStoredConfiguration, 'test');
    expect(report).toEqual({
      status: 503,
      body: { status: 'misconfigured', version: 'test', problems: [expect.stringMatching(/^\/\S+\/routing\n- not a problem\.json: ENOENT/)] },
    });
  });

  it('answers ok when the configuration is valid and storage answers', async () => {
    settings({ AzureWebJobsStorage: azurite().connectionString, ALERT_SENDER: 'outbox' });
    const response = await call();
    expect(response).toMatchObject({ status: 200, jsonBody: { status: 'ok', storage: 'reachable' } });
  });
});
