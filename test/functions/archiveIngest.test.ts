import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { archiveEventGridHandler, type ArchiveEventOutcome } from '../../src/functions/archiveIngest.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import type { IngestSummary } from '../../src/lib/archive/ingest.js';
import { readManifest } from '../../src/lib/archive/manifest.js';
import type { BlobStore } from '../../src/lib/ports.js';
import { createServices } from '../../src/lib/runtime.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { FIXTURE_HUB, writeArchive, type WrittenBlob } from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { faultyStore } from '../support/faultyStore.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const azurite = useAzurite();
const archiveContainer = uniqueContainerName('archive');
const indexContainer = uniqueContainerName('index');
const quarantineContainer = uniqueContainerName('quarantine');
let ingest: Registration;
let eventGridIngest: Registration;
let store: AzureBlobStore;
let configPath: string;

beforeAll(async () => {
  const dir = await tempDir('archive-ingest-');
  const config = path.join(dir, 'routing.config.json');
  configPath = config;
  await writeFile(
    config,
    JSON.stringify({
      iotHubName: FIXTURE_HUB,
      routes: [{ name: 'StorageRoute', condition: 'level="storage"', endpoint: 'archive' }],
      enrichments: [{ key: 'iothubname', value: '$iothubname', endpoints: ['archive'] }],
    }),
  );
  vi.stubEnv('AzureWebJobsStorage', azurite().connectionString);
  vi.stubEnv('ROUTING_CONFIG_PATH', config);
  vi.stubEnv('QUARANTINE_CONTAINER', quarantineContainer);
  vi.stubEnv('ARCHIVE_CONTAINER', archiveContainer);
  vi.stubEnv('ARCHIVE_INDEX_CONTAINER', indexContainer);
  vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', '');
  // This file imports the module for its handler factory; capture its registration from a fresh load.
  vi.resetModules();
  ingest = registration((await captureRegistrations()).registrations, 'archiveIngest');
  // The source is read when the module loads: load it again, as the host would in the production setting.
  vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', 'EventGrid');
  vi.resetModules();
  eventGridIngest = registration((await captureRegistrations()).registrations, 'archiveIngest');
  vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', '');
  store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
});
afterAll(() => {
  vi.unstubAllEnvs();
});

function context(metadata: Record<string, unknown>): InvocationContext {
  return new InvocationContext({ functionName: 'archiveIngest', triggerMetadata: metadata, logHandler: () => undefined });
}

describe('archiveIngest function', () => {
  it('is a blob trigger on the archive container setting, through the app storage connection, polling by default', () => {
    expect(ingest.kind).toBe('storageBlob');
    expect(ingest.options).toMatchObject({
      path: '%ARCHIVE_CONTAINER%/{name}',
      connection: 'AzureWebJobsStorage',
      source: 'LogsAndContainerScan',
    });
  });

  it('registers no Event Grid trigger when polling: exactly one registration ingests', async () => {
    vi.resetModules();
    const { registrations } = await captureRegistrations();
    expect(registrations.filter((r) => r.name === 'archiveIngest').map((r) => r.kind)).toEqual(['storageBlob']);
    expect(registrations.filter((r) => r.kind === 'eventGrid')).toEqual([]);
  });

  it('is an Event Grid trigger, and no blob trigger, when ARCHIVE_TRIGGER_SOURCE=EventGrid: the host never downloads the blob', async () => {
    vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', ' EventGrid ');
    vi.resetModules();
    const { registrations } = await captureRegistrations();
    vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', '');
    expect(registrations.filter((r) => r.name === 'archiveIngest').map((r) => r.kind)).toEqual(['eventGrid']);
    expect(registrations.filter((r) => r.kind === 'storageBlob')).toEqual([]);
    const { handler: _handler, ...options } = eventGridIngest.options;
    expect(eventGridIngest.kind).toBe('eventGrid');
    expect(options).toEqual({});
  });

  it('indexes the blob named by the trigger, re-reading it as a stream rather than using the host buffer', async () => {
    const [blob] = await writeArchive(store, archiveContainer, DEFAULT_ARCHIVE_CONFIG.fileNameFormat, [
      { partition: '0', minute: Date.UTC(2024, 4, 1, 12, 0), records: 25, encoding: 'avro' },
    ]);
    // What the host would hand over is irrelevant: a different buffer changes nothing.
    const summary = (await ingest.options.handler(Buffer.from('not the blob'), context({ name: blob!.name, blobTrigger: `${archiveContainer}/${blob!.name}` }))) as IngestSummary;
    expect(summary).toMatchObject({ outcome: 'created', records: 25, quarantined: 0, format: 'avro-iothub' });
    const manifest = await readManifest(store, indexContainer, archiveContainer, blob!.name);
    expect(manifest?.manifest?.records).toBe(25);

    const replay = (await ingest.options.handler(Buffer.alloc(0), context({ blobTrigger: `${archiveContainer}/${blob!.name}` }))) as IngestSummary;
    expect(replay.outcome).toBe('unchanged');
  });

  it('fails the invocation (so the trigger retries) when the trigger names no blob', async () => {
    await expect(ingest.options.handler(Buffer.alloc(0), context({}))).rejects.toThrow(/neither \{name\} nor blobTrigger/);
  });
});

/** A BlobCreated event as Event Grid delivers it for a block blob IoT Hub committed (Event Grid schema). */
function blobCreated(container: string, name: string, etag: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const account = 'contosostorage';
  return {
    topic: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/iot-routing-rg/providers/Microsoft.Storage/storageAccounts/${account}`,
    subject: `/blobServices/default/containers/${container}/blobs/${name}`,
    eventType: 'Microsoft.Storage.BlobCreated',
    eventTime: '2024-05-01T12:01:40.1234567Z',
    id: `event-${container}-${name}`,
    data: {
      api: 'PutBlockList',
      clientRequestId: 'c0ffee00-0000-0000-0000-000000000001',
      requestId: 'c0ffee00-0000-0000-0000-000000000002',
      eTag: etag,
      contentType: 'application/octet-stream',
      contentLength: 1024,
      blobType: 'BlockBlob',
      url: `https://${account}.blob.core.windows.net/${container}/${name.split('/').map(encodeURIComponent).join('/')}`,
      sequencer: '00000000000000000000000000005E9B0000000000000A1B',
      storageDiagnostics: { batchId: 'b0000000-0000-0000-0000-000000000003' },
    },
    dataVersion: '',
    metadataVersion: '1',
    ...overrides,
  };
}

interface Logged {
  level: string;
  text: string;
}

function eventContext(logs: Logged[]): InvocationContext {
  return new InvocationContext({
    functionName: 'archiveIngest',
    logHandler: (level, ...args) => logs.push({ level, text: args.map(String).join(' ') }),
  });
}

async function etagOf(container: string, name: string): Promise<string> {
  for await (const item of store.list(container, name, { pageSize: 1 })) if (item.name === name) return item.etag;
  throw new Error(`no blob ${container}/${name}`);
}

async function listing(container: string): Promise<string[]> {
  const names: string[] = [];
  for await (const item of store.list(container)) names.push(`${item.name} ${item.etag}`);
  return names;
}

async function archiveBlob(minute: number, nameSuffix = ''): Promise<WrittenBlob> {
  const [blob] = await writeArchive(store, archiveContainer, `${DEFAULT_ARCHIVE_CONFIG.fileNameFormat}${nameSuffix}`, [
    { partition: '1', minute, records: 12, encoding: 'avro' },
  ]);
  return blob!;
}

describe('archiveIngest on Event Grid (the production setting)', () => {
  const handle = (event: unknown, logs: Logged[] = []) => eventGridIngest.options.handler(event, eventContext(logs)) as Promise<ArchiveEventOutcome>;

  it("indexes the blob a BlobCreated event's subject names, and a redelivery of the same event changes nothing", async () => {
    const blob = await archiveBlob(Date.UTC(2024, 4, 1, 13, 0));
    const event = blobCreated(archiveContainer, blob.name, await etagOf(archiveContainer, blob.name));
    const first = (await handle(event)) as IngestSummary;
    expect(first).toMatchObject({ blobName: blob.name, outcome: 'created', records: 12, quarantined: 0, format: 'avro-iothub' });
    expect((await readManifest(store, indexContainer, archiveContainer, blob.name))?.manifest?.records).toBe(12);

    // Event Grid delivers at least once: the same event again (a timed-out or failed delivery) is recognised.
    const index = await listing(indexContainer);
    const quarantine = await listing(quarantineContainer).catch(() => []);
    const logs: Logged[] = [];
    const again = (await handle(event, logs)) as IngestSummary;
    expect(again.outcome).toBe('unchanged');
    expect(await listing(indexContainer)).toEqual(index);
    expect(await listing(quarantineContainer).catch(() => [])).toEqual(quarantine);
    expect(logs.map((l) => l.text)).toEqual([expect.stringContaining(`archiveIngest ${blob.name} (`)]);
  });

  it('takes the name in the subject literally: spaces stay spaces and a percent sign is never decoded', async () => {
    // IoT Hub names blobs by its file name format, whose literal text may hold any character a blob name may.
    const blob = await archiveBlob(Date.UTC(2024, 4, 1, 14, 0), ' 50%25 of A&B.avro');
    expect(blob.name).toMatch(/ 50%25 of A&B\.avro$/);
    const summary = (await handle(blobCreated(archiveContainer, blob.name, await etagOf(archiveContainer, blob.name)))) as IngestSummary;
    expect(summary).toMatchObject({ blobName: blob.name, outcome: 'created', records: 12 });
    expect((await readManifest(store, indexContainer, archiveContainer, blob.name))?.manifest?.blob.name).toBe(blob.name);
  });

  it('ignores, with a log line and without throwing, events for other containers, other event types, directories and empty names', async () => {
    const blob = await archiveBlob(Date.UTC(2024, 4, 1, 15, 0));
    const etag = await etagOf(archiveContainer, blob.name);
    const cases: Array<[Record<string, unknown>, string]> = [
      [blobCreated('other-container', blob.name, etag), 'other-container'],
      [blobCreated(archiveContainer, blob.name, etag, { eventType: 'Microsoft.Storage.BlobDeleted' }), 'other-event-type'],
      [blobCreated(archiveContainer, `${FIXTURE_HUB}/1/`, etag), 'directory'],
      [blobCreated(archiveContainer, '', etag), 'empty-name'],
    ];
    for (const [event, reason] of cases) {
      const logs: Logged[] = [];
      expect(await handle(event, logs), reason).toEqual({ outcome: 'ignored', reason });
      expect(logs, reason).toEqual([{ level: 'information', text: expect.stringContaining(`event ignored (${reason})`) }]);
    }
    // None of them indexed the blob, although it exists under that name in the archive container.
    expect(await readManifest(store, indexContainer, archiveContainer, blob.name)).toBeNull();
  });

  it('logs a malformed event with what was received, and answers it as handled so Event Grid does not retry it for a day', async () => {
    const logs: Logged[] = [];
    const noSubject = { id: 'e-1', eventType: 'Microsoft.Storage.BlobCreated', data: { url: 'https://x/y/z' } };
    expect(await handle(noSubject, logs)).toEqual({ outcome: 'malformed', reason: 'the event has no subject' });
    expect(logs).toEqual([{ level: 'error', text: expect.stringContaining(`received: ${JSON.stringify(noSubject)}`) }]);
    expect(logs[0]!.text).toContain('run `iot-routing archive index`');
    expect(await handle({ subject: '/blobServices/default/containers/x', eventType: 'Microsoft.Storage.BlobCreated' })).toMatchObject({ outcome: 'malformed' });
    expect(await handle('not an event')).toMatchObject({ outcome: 'malformed' });
  });

  it('throws a storage failure, so the host answers 500 and Event Grid redelivers; the redelivery then indexes the blob', async () => {
    const blob = await archiveBlob(Date.UTC(2024, 4, 1, 16, 0));
    const event = blobCreated(archiveContainer, blob.name, await etagOf(archiveContainer, blob.name));
    const env = {
      AzureWebJobsStorage: azurite().connectionString,
      ROUTING_CONFIG_PATH: configPath,
      QUARANTINE_CONTAINER: quarantineContainer,
      ARCHIVE_CONTAINER: archiveContainer,
      ARCHIVE_INDEX_CONTAINER: indexContainer,
    };
    let failing = true;
    const flaky: BlobStore = faultyStore(store, (operation) => failing && operation === 'openRead');
    const services = await createServices(env, { store: flaky });
    const handler = archiveEventGridHandler(async () => services);
    await expect(handler(event, eventContext([]))).rejects.toMatchObject({ name: 'RoutingError', code: 'StorageUnavailable', kind: 'transient' });
    expect(await readManifest(store, indexContainer, archiveContainer, blob.name)).toBeNull();

    failing = false;
    expect(await handler(event, eventContext([]))).toMatchObject({ blobName: blob.name, outcome: 'created', records: 12 });
  });
});
