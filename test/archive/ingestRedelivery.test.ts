/**
 * Event Grid redelivers a BlobCreated event its 30-second webhook timeout gave up on while the first invocation
 * still reads the blob, on the same instance. Against Azurite, through the Event Grid trigger's own handler: the
 * redeliveries share the first invocation's download and its outcome (its failure too), and an event for a newer
 * version of the blob is never answered by the run on the older one.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { InvocationContext } from '@azure/functions';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { archiveEventGridHandler, type ArchiveEventOutcome } from '../../src/functions/archiveIngest.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import type { IngestSummary } from '../../src/lib/archive/ingest.js';
import { manifestName, readManifest } from '../../src/lib/archive/manifest.js';
import { RoutingError } from '../../src/lib/errors.js';
import type { BlobReadStream, BlobStore, ETag } from '../../src/lib/ports.js';
import { createServices } from '../../src/lib/runtime.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { encodeBlob, FIXTURE_HUB, writeArchive } from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { useTempDirs } from '../support/tempDirs.js';
import { ObservedStore } from './observedStore.js';

const azurite = useAzurite();
const tempDir = useTempDirs();
const FORMAT = DEFAULT_ARCHIVE_CONFIG.fileNameFormat;
const MINUTE = Date.UTC(2024, 4, 1, 12, 0);
/** Deliveries of one event while its first invocation runs. */
const DELIVERIES = 4;

let configPath: string;
let root: string;

beforeAll(async () => {
  root = await tempDir('archive-redelivery-');
  configPath = join(root, 'routing.config.json');
  await writeFile(configPath, JSON.stringify({ checks: { endpoints: { archive: { enrichments: [{ key: 'iothubname', equals: FIXTURE_HUB }] } } } }));
});

interface Setup {
  store: AzureBlobStore;
  observed: ObservedStore;
  container: string;
  index: string;
  /** One delivery of a BlobCreated event for `name` to the Event Grid trigger's handler. */
  deliver(name: string): Promise<IngestSummary>;
}

/** The trigger's handler on one instance (one process's services), its store observed; `wrap` injects a fault. */
async function setup(wrap: (store: BlobStore) => BlobStore = (store) => store): Promise<Setup> {
  const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
  const observed = new ObservedStore(store);
  const container = uniqueContainerName('archive');
  const index = uniqueContainerName('index');
  await store.ensureContainer(container);
  const env = {
    AzureWebJobsStorage: azurite().connectionString,
    ROUTING_CONFIG_PATH: configPath,
    ARCHIVE_CONTAINER: container,
    ARCHIVE_INDEX_CONTAINER: index,
    QUARANTINE_CONTAINER: uniqueContainerName('quarantine'),
  };
  const services = await createServices(env, { root, store: wrap(observed.wrap()) });
  const handler = archiveEventGridHandler(async () => services);
  const deliver = async (name: string): Promise<IngestSummary> => {
    const event = {
      id: `event-${name}`,
      subject: `/blobServices/default/containers/${container}/blobs/${name}`,
      eventType: 'Microsoft.Storage.BlobCreated',
      eventTime: '2024-05-01T12:01:40Z',
      data: { api: 'PutBlockList', blobType: 'BlockBlob' },
      dataVersion: '',
      metadataVersion: '1',
    };
    const context = new InvocationContext({ functionName: 'archiveIngest', logHandler: () => undefined });
    const outcome: ArchiveEventOutcome = await handler(event, context);
    if (!('blobName' in outcome)) throw new Error(`event not ingested: ${JSON.stringify(outcome)}`);
    return outcome;
  };
  return { store, observed, container, index, deliver };
}

async function etagOf(store: BlobStore, container: string, name: string): Promise<ETag> {
  for await (const item of store.list(container, name, { pageSize: 1 })) if (item.name === name) return item.etag;
  throw new Error(`no blob ${container}/${name}`);
}

/** Until every delivery has read the manifest (and so reached the download), while the first download is held. */
async function allArrived(s: Setup, name: string, deliveries: number): Promise<void> {
  await vi.waitFor(() => expect(s.observed.count(s.observed.reads, s.index, manifestName(s.container, name))).toBeGreaterThanOrEqual(deliveries));
  await new Promise((resolve) => setImmediate(resolve));
}

describe('archive ingest under Event Grid redelivery, on one instance', () => {
  it('redeliveries while the first invocation reads the blob share its one download and report its outcome', async () => {
    const s = await setup();
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '0', minute: MINUTE, records: 300, encoding: 'avro' }]);
    const etag = await etagOf(s.store, s.container, blob!.name);
    const release = s.observed.holdNextDownload();
    const deliveries = Array.from({ length: DELIVERIES }, () => s.deliver(blob!.name));
    await allArrived(s, blob!.name, DELIVERIES);
    release();
    const outcomes = await Promise.all(deliveries);

    expect(s.observed.count(s.observed.downloads, s.container, blob!.name)).toBe(1);
    expect(outcomes[0]).toMatchObject({ blobName: blob!.name, etag, outcome: 'created', records: 300, quarantined: 0 });
    for (const outcome of outcomes) expect(outcome).toEqual(outcomes[0]);
    expect((await readManifest(s.store, s.index, s.container, blob!.name))?.manifest?.blob.etag).toBe(etag);
    // Settled, the run answers no later delivery: that one is judged from the manifest, again without a download.
    expect(await s.deliver(blob!.name)).toMatchObject({ outcome: 'unchanged', etag });
    expect(s.observed.opened).toBe(1);
  });

  it('a settled run is forgotten: a later delivery that gets past the manifest reads the blob again', async () => {
    const s = await setup();
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '3', minute: MINUTE, records: 12, encoding: 'avro' }]);
    expect(await s.deliver(blob!.name)).toMatchObject({ outcome: 'created', records: 12 });
    // The manifest is deleted (an index rebuilt from scratch): the blob's same version is delivered again. The single
    // flight must not answer from the run that settled (no manifest would be written); it keeps no entry after one.
    await s.store.delete(s.index, manifestName(s.container, blob!.name));
    expect(await s.deliver(blob!.name)).toMatchObject({ outcome: 'created', records: 12 });
    expect(s.observed.count(s.observed.downloads, s.container, blob!.name)).toBe(2);
    expect((await readManifest(s.store, s.index, s.container, blob!.name))?.manifest?.records).toBe(12);
  });

  it("the shared run's storage failure is thrown to every delivery, and the next delivery downloads afresh", async () => {
    let failNext = true;
    let release: (() => void) | undefined;
    // The first download fails once every delivery has arrived, as a storage outage would fail it.
    const failing = (store: BlobStore): BlobStore =>
      new Proxy(store, {
        get: (target, key, receiver) => {
          if (key !== 'openRead') return Reflect.get(target, key, receiver) as unknown;
          return async (container: string, name: string): Promise<BlobReadStream | null> => {
            if (!failNext) return target.openRead(container, name);
            failNext = false;
            await new Promise<void>((resolve) => (release = resolve));
            throw new RoutingError('StorageUnavailable', `injected failure of openRead ${name}`);
          };
        },
      });
    const s = await setup(failing);
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '1', minute: MINUTE, records: 20, encoding: 'avro' }]);
    const deliveries = Array.from({ length: DELIVERIES }, () => s.deliver(blob!.name));
    await allArrived(s, blob!.name, DELIVERIES);
    release!();
    const settled = await Promise.allSettled(deliveries);

    expect(settled.map((d) => d.status)).toEqual(Array.from({ length: DELIVERIES }, () => 'rejected'));
    for (const d of settled) expect(d).toMatchObject({ reason: { name: 'RoutingError', code: 'StorageUnavailable', kind: 'transient' } });
    expect(s.observed.opened).toBe(0);
    expect(await readManifest(s.store, s.index, s.container, blob!.name)).toBeNull();
    // Event Grid retries: the failed run is gone, so the retry reads the blob itself and indexes it.
    expect(await s.deliver(blob!.name)).toMatchObject({ outcome: 'created', records: 20 });
    expect(s.observed.opened).toBe(1);
  });

  it('an event for a newer version is not answered by the run still reading the older one', async () => {
    const s = await setup();
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '2', minute: MINUTE, records: 30, encoding: 'avro' }]);
    const name = blob!.name;
    const older = await etagOf(s.store, s.container, name);
    const release = s.observed.holdNextDownload();
    const first = s.deliver(name);
    await vi.waitFor(() => expect(s.observed.opened).toBe(1));
    // IoT Hub rewrites the blob while the first invocation reads the older version; its event arrives.
    await s.store.put(s.container, name, (await encodeBlob({ partition: '2', minute: MINUTE, records: 7, encoding: 'avro' })).bytes);
    const newer = await etagOf(s.store, s.container, name);
    const second = s.deliver(name);
    try {
      // The newer version's delivery downloads it while the older run is still held.
      await vi.waitFor(() => expect(s.observed.opened).toBe(2));
    } finally {
      release();
    }

    expect(await second).toMatchObject({ outcome: 'created', etag: newer, records: 7 });
    expect(await first).toMatchObject({ outcome: 'stale', etag: older, records: 30 });
    expect((await readManifest(s.store, s.index, s.container, name))?.manifest).toMatchObject({ records: 7, blob: { etag: newer } });
  });
});
