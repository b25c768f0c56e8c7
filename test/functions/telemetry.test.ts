import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { HttpRequest, HttpResponse, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { hostQuery } from '../../src/local/httpServer.js';
import { FIXTURE_HUB, independentDecode, recordKey, writeArchive, type WrittenBlob } from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const azurite = useAzurite();
const archiveContainer = uniqueContainerName('archive');
const START = Date.UTC(2024, 4, 1, 12, 0);
const MINUTE = 60_000;
let telemetry: Registration;
let setupCalls: unknown[];
let blobs: WrittenBlob[];

beforeAll(async () => {
  const dir = await tempDir('telemetry-');
  const config = path.join(dir, 'routing.config.json');
  await writeFile(
    config,
    JSON.stringify({
      iotHubName: FIXTURE_HUB,
      enrichments: [{ key: 'iothubname', value: '$iothubname', endpoints: ['archive'] }],
    }),
  );
  vi.stubEnv('AzureWebJobsStorage', azurite().connectionString);
  vi.stubEnv('ROUTING_CONFIG_PATH', config);
  vi.stubEnv('QUARANTINE_CONTAINER', uniqueContainerName('quarantine'));
  vi.stubEnv('ARCHIVE_CONTAINER', archiveContainer);
  vi.stubEnv('ARCHIVE_INDEX_CONTAINER', uniqueContainerName('index'));
  const captured = await captureRegistrations();
  telemetry = registration(captured.registrations, 'telemetry');
  setupCalls = captured.setup;
  const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
  blobs = await writeArchive(store, archiveContainer, DEFAULT_ARCHIVE_CONFIG.fileNameFormat, [
    { partition: '0', minute: START, records: 30, encoding: 'avro' },
    { partition: '1', minute: START, records: 30, encoding: 'avro-deflate' },
    { partition: '0', minute: START + MINUTE, records: 30, encoding: 'avro' },
    { partition: '1', minute: START + 2 * MINUTE, records: 30, encoding: 'avro' },
  ]);
});
afterAll(() => {
  vi.unstubAllEnvs();
});

async function get(query: string): Promise<{ status: number; headers: Headers; text: string }> {
  const url = new URL(`http://localhost:7071/api/telemetry?${query}`);
  // `query` as the Functions host fills it (one value per name), which the handler must not rely on.
  const request = new HttpRequest({ method: 'GET', url: url.toString(), query: hostQuery(url.searchParams) });
  const init = (await telemetry.options.handler(request, new InvocationContext({ functionName: 'telemetry', logHandler: () => undefined }))) as HttpResponseInit;
  // The library turns the handler's result into a fetch Response the same way.
  const response = new HttpResponse(init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const RANGE = `from=${new Date(START).toISOString()}&to=${new Date(START + 3 * MINUTE).toISOString()}`;

async function expectedKeys(test: (r: Awaited<ReturnType<typeof independentDecode>>[number]) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const blob of blobs) for (const r of await independentDecode(blob.bytes)) if (test(r)) out.push(recordKey(r));
  return out;
}

interface JsonRecord {
  deviceId: string | null;
  messageId?: string;
  enqueuedTime: string | null;
  properties: Record<string, string>;
  body: { value: unknown };
}

const keyOfRecord = (r: JsonRecord) =>
  recordKey({ deviceId: r.deviceId, messageId: r.messageId ?? null, enqueuedTime: r.enqueuedTime, level: r.properties['level'] ?? null, body: r.body.value });

describe('GET /api/telemetry', () => {
  it('is a GET with a function key, and turns on HTTP streaming', () => {
    expect(telemetry.kind).toBe('http');
    expect(telemetry.options).toMatchObject({ methods: ['GET'], authLevel: 'function', route: 'telemetry' });
    expect(setupCalls).toContainEqual({ enableHttpStream: true });
  });

  it('answers 400 listing every invalid parameter', async () => {
    const response = await get('from=2024-05-01T12:00&format=xml&limit=100000&colour=red');
    expect(response.status).toBe(400);
    const body = JSON.parse(response.text) as { error: string; problems: string[] };
    expect(body.error).toBe('InvalidQuery');
    expect(body.problems).toHaveLength(5);
    expect(body.problems.join('\n')).toMatch(/colour: unknown parameter[\s\S]*from:[\s\S]*to: required[\s\S]*format:[\s\S]*limit:/);
  });

  it('streams NDJSON equal to an independent decode, ending with a summary line', async () => {
    const response = await get(`${RANGE}&deviceId=device-03&deviceId=device-07&format=ndjson`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = response.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.pop() as { '@summary': { continuation: string | null; records: number } };
    expect(summary['@summary']).toMatchObject({ continuation: null, records: lines.length });
    const want = await expectedKeys((r) => r.deviceId === 'device-03' || r.deviceId === 'device-07');
    expect(want.length).toBeGreaterThan(0);
    expect((lines as unknown as JsonRecord[]).map(keyOfRecord)).toEqual(want);
  });

  it('streams CSV with a header and one row per record', async () => {
    const response = await get(`${RANGE}&level=critical&format=csv`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/);
    const rows = response.text.split('\r\n').filter((l) => l !== '');
    expect(rows[0]).toMatch(/^deviceId,enqueuedTime,messageId,moduleId,level,/);
    expect(rows.slice(1)).toHaveLength((await expectedKeys((r) => r.level === 'critical')).length);
    expect(rows.slice(1).every((row) => row.split(',')[4] === 'critical')).toBe(true);
  });

  it('pages JSON with continuation tokens, and rejects a token with another query', async () => {
    const all = await expectedKeys((r) => r.enqueuedTime !== null && Date.parse(r.enqueuedTime) < START + 3 * MINUTE);
    const seen: string[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const response = await get(`${RANGE}&limit=40&format=json${token === null ? '' : `&continuation=${token}`}`);
      expect(response.status).toBe(200);
      const page = JSON.parse(response.text) as { records: JsonRecord[]; continuation: string | null };
      expect(page.records.length).toBeLessThanOrEqual(40);
      seen.push(...page.records.map(keyOfRecord));
      token = page.continuation;
      pages++;
    } while (token !== null && pages < 10);
    expect(seen).toEqual(all);
    expect(pages).toBe(3);

    const first = JSON.parse((await get(`${RANGE}&limit=5`)).text) as { continuation: string };
    const other = await get(`${RANGE}&limit=5&level=normal&continuation=${first.continuation}`);
    expect(other.status).toBe(400);
    expect(other.text).toMatch(/different query/);
    // Edited by hand, fingerprint kept: a position that is no blob of this query's window is a 400 too.
    const issued = JSON.parse(Buffer.from(first.continuation, 'base64url').toString('utf8')) as Record<string, unknown>;
    const edited = Buffer.from(JSON.stringify({ ...issued, b: '../../other/x' })).toString('base64url');
    const tampered = await get(`${RANGE}&limit=5&continuation=${edited}`);
    expect(tampered.status).toBe(400);
    expect(tampered.text).toMatch(/not a token this API issued/);
  });
});
