import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import type { IngestSummary } from '../../src/lib/archive/ingest.js';
import { readManifest } from '../../src/lib/archive/manifest.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { FIXTURE_HUB, writeArchive } from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';

const azurite = useAzurite();
const archiveContainer = uniqueContainerName('archive');
const indexContainer = uniqueContainerName('index');
const quarantineContainer = uniqueContainerName('quarantine');
let ingest: Registration;
let store: AzureBlobStore;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'archive-ingest-'));
  const config = path.join(dir, 'routing.config.json');
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
  ingest = registration((await captureRegistrations()).registrations, 'archiveIngest');
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

  it('uses Event Grid when ARCHIVE_TRIGGER_SOURCE says so', async () => {
    vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', 'EventGrid');
    vi.resetModules();
    const again = registration((await captureRegistrations()).registrations, 'archiveIngest');
    expect(again.options['source']).toBe('EventGrid');
    vi.stubEnv('ARCHIVE_TRIGGER_SOURCE', '');
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
