import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isRoutingError, isTransient } from '../../src/lib/errors.js';
import {
  AzureBlobStore,
  blobServiceClientFromSettings,
  toStorageError,
} from '../../src/lib/storage/azureBlobStore.js';
import { getJson, updateJson } from '../../src/lib/storage/jsonDocuments.js';
import { AZURITE_ACCOUNT_KEY, azuriteConnectionString, uniqueContainerName, useAzurite } from '../support/azurite.js';
import { routingRejection } from '../support/rejections.js';

/** Azure-only behaviour: how service and network failures map to retry meanings. */

const azurite = useAzurite();
const fastFail = { retryOptions: { maxTries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 20, tryTimeoutInMs: 2_000 } };

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * A loopback proxy in front of Azurite that lets the first request matching `drop` reach Azurite and be applied,
 * then kills the connection instead of returning the response: a lost response, which the client pipeline
 * retries.
 */
async function lossyProxy(target: string, drop: (request: IncomingMessage) => boolean) {
  const upstream = new URL(target);
  let dropped = 0;
  const server = createServer((incoming, outgoing) => {
    const lose = dropped === 0 && drop(incoming);
    if (lose) dropped += 1;
    const { method, url: path, headers } = incoming;
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method, path, headers },
      (response) => {
        if (lose) {
          response.resume();
          response.on('end', () => incoming.socket.destroy());
          return;
        }
        outgoing.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(outgoing);
      },
    );
    forward.on('error', () => outgoing.destroy());
    incoming.pipe(forward);
  });
  servers.push(server);
  const port = await listen(server);
  return { blobEndpoint: `http://127.0.0.1:${port}${upstream.pathname}`, dropped: () => dropped };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map(close));
});

describe('AzureBlobStore failures', () => {
  it('maps an unreachable endpoint to a transient StorageUnavailable, quickly', async () => {
    const probe = createServer();
    const closedPort = await listen(probe);
    await close(probe);
    const store = new AzureBlobStore(
      blobServiceClientFromSettings(
        { AzureWebJobsStorage: azuriteConnectionString(`http://127.0.0.1:${closedPort}/devstoreaccount1`) },
        { pipeline: fastFail },
      ),
    );

    const started = performance.now();
    for (const operation of [
      () => store.get('alerts', 'a.json'),
      () => store.create('alerts', 'a.json', Buffer.from('{}')),
      () => store.replace('alerts', 'a.json', Buffer.from('{}'), '"0x1"'),
      async () => {
        for await (const _ of store.list('alerts')) break;
      },
    ]) {
      const error = await routingRejection(operation());
      expect(error.code).toBe('StorageUnavailable');
      expect(isTransient(error)).toBe(true);
      expect(error.message).toMatch(/ECONNREFUSED|REQUEST_SEND_ERROR/);
    }
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('maps 503 to StorageUnavailable and carries Retry-After', async () => {
    const server = createServer((_request, response) => {
      response.writeHead(503, {
        'x-ms-error-code': 'ServerBusy',
        'retry-after': '7',
        'content-type': 'application/xml',
      });
      response.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code></Error>');
    });
    servers.push(server);
    const port = await listen(server);
    const store = new AzureBlobStore(
      blobServiceClientFromSettings(
        { AzureWebJobsStorage: azuriteConnectionString(`http://127.0.0.1:${port}/devstoreaccount1`) },
        { pipeline: { retryOptions: { maxTries: 1 } } },
      ),
    );
    const error = await routingRejection(store.create('alerts', 'a.json', Buffer.from('{}')));
    expect(error.code).toBe('StorageUnavailable');
    expect(error.retryAfterSeconds).toBe(7);
    expect(error.message).toContain('503 ServerBusy');
  });

  it('maps 403 (wrong account key) to a permanent StorageRejected without echoing the key', async () => {
    const wrongKey = Buffer.alloc(64, 1).toString('base64');
    const connectionString = azuriteConnectionString(azurite().blobEndpoint).replace(AZURITE_ACCOUNT_KEY, wrongKey);
    const store = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: connectionString }));
    const error = await routingRejection(store.ensureContainer(uniqueContainerName('forbidden')));
    expect(error.code).toBe('StorageRejected');
    expect(isTransient(error)).toBe(false);
    expect(error.message).toContain('403');
    expect(error.message).not.toContain(wrongKey);
  });

  it('maps an invalid container name to StorageRejected', async () => {
    const client = blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString });
    const store = new AzureBlobStore(client);
    const error = await routingRejection(store.ensureContainer('Not_Valid'));
    expect(error.code).toBe('StorageRejected');
  });

  it('recognises its own create when the response was lost and the pipeline retried into 409', async () => {
    const proxy = await lossyProxy(
      azurite().blobEndpoint,
      (incoming) => incoming.method === 'PUT' && incoming.headers['if-none-match'] === '*',
    );
    const store = new AzureBlobStore(
      blobServiceClientFromSettings(
        { AzureWebJobsStorage: azuriteConnectionString(proxy.blobEndpoint) },
        { pipeline: { retryOptions: { maxTries: 3, retryDelayInMs: 10, maxRetryDelayInMs: 20 } } },
      ),
    );
    const container = uniqueContainerName('lost-create');
    await store.ensureContainer(container);

    const result = await store.create(container, 'alerts/key-1.json', Buffer.from('{"sent":false}'));
    expect(proxy.dropped()).toBe(1);
    expect(result.created).toBe(true);
    const stored = await store.get(container, 'alerts/key-1.json');
    expect(stored?.etag).toBe(result.etag);
    expect(stored?.metadata).toEqual({});
    expect(await store.create(container, 'alerts/key-1.json', Buffer.from('{}'))).toEqual({
      created: false,
      etag: result.etag,
    });
  });

  it('recognises its own replace when the response was lost, so updateJson applies a mutation once', async () => {
    const proxy = await lossyProxy(
      azurite().blobEndpoint,
      (incoming) => incoming.method === 'PUT' && incoming.headers['if-match'] !== undefined,
    );
    const store = new AzureBlobStore(
      blobServiceClientFromSettings(
        { AzureWebJobsStorage: azuriteConnectionString(proxy.blobEndpoint) },
        { pipeline: { retryOptions: { maxTries: 3, retryDelayInMs: 10, maxRetryDelayInMs: 20 } } },
      ),
    );
    const container = uniqueContainerName('lost-replace');
    await store.ensureContainer(container);
    const increment = (current: { n: number } | undefined) => ({ n: (current?.n ?? 0) + 1 });

    await updateJson(store, container, 'budget.json', increment);
    const second = await updateJson(store, container, 'budget.json', increment);
    expect(proxy.dropped()).toBe(1);
    expect(second).toMatchObject({ value: { n: 2 }, attempts: 1 });
    expect((await getJson(store, container, 'budget.json'))?.value).toEqual({ n: 2 });
  });

  it('does not relabel programming errors as storage failures', () => {
    const bug = new TypeError('x is not a function');
    expect(toStorageError(bug, 'get', 'alerts', 'a.json')).toBe(bug);
  });

  it('scrubs SAS signatures from network error messages', () => {
    const error = toStorageError(
      { name: 'RestError', code: 'ECONNRESET', message: 'request to https://a/b?sv=1&sig=SECRETSIG failed' },
      'get',
      'alerts',
      'a.json',
    );
    expect(isRoutingError(error) && error.code).toBe('StorageUnavailable');
    expect(error.message).not.toContain('SECRETSIG');
  });
});
