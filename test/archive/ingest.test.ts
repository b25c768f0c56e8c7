import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveArchive } from '../../src/lib/archive/archiveDeps.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import { HourSummaryCache } from '../../src/lib/archive/hourSummary.js';
import { createArchiveIngestHandler, type ArchiveIngestHandler } from '../../src/lib/archive/ingest.js';
import { readManifest } from '../../src/lib/archive/manifest.js';
import { parseChecksConfig } from '../../src/lib/checks/expectations.js';
import { ManualClock } from '../../src/lib/ports.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { createQuarantine, type QuarantineListItem } from '../../src/lib/storage/quarantine.js';
import { encodeBlob, fixtureMessage, FIXTURE_HUB, iotHubRecordOf, writeArchive } from '../support/archiveFixtures.js';
import { iotHubAvroFile } from '../support/avroFiles.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { ObservedStore } from './observedStore.js';

const azurite = useAzurite();
const FORMAT = DEFAULT_ARCHIVE_CONFIG.fileNameFormat;
const MINUTE = Date.UTC(2024, 4, 1, 12, 0);

interface Setup {
  store: AzureBlobStore;
  observed: ObservedStore;
  container: string;
  index: string;
  quarantineContainer: string;
  ingest: ArchiveIngestHandler;
  quarantined(): Promise<QuarantineListItem[]>;
}

async function setup(): Promise<Setup> {
  const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
  const observed = new ObservedStore(store);
  const container = uniqueContainerName('archive');
  const index = uniqueContainerName('index');
  const quarantineContainer = uniqueContainerName('quarantine');
  const clock = new ManualClock('2024-05-02T00:00:00Z');
  const quarantine = createQuarantine(store, quarantineContainer, clock);
  const checks = parseChecksConfig({ endpoints: { archive: { enrichments: [{ key: 'iothubname', equals: FIXTURE_HUB }] } } });
  if ('errors' in checks) throw new Error(checks.errors.join('; '));
  await store.ensureContainer(container);
  const ingest = createArchiveIngestHandler({
    store: observed.wrap(),
    clock,
    quarantine,
    admitDeps: { checks: checks.value, quarantine, now: () => clock.now() },
    archive: resolveArchive(DEFAULT_ARCHIVE_CONFIG, { ARCHIVE_CONTAINER: container, ARCHIVE_INDEX_CONTAINER: index }),
  });
  return {
    store,
    observed,
    container,
    index,
    quarantineContainer,
    ingest,
    quarantined: async () => {
      const items: QuarantineListItem[] = [];
      for await (const item of quarantine.list({ endpoint: 'archive' })) items.push(item);
      return items;
    },
  };
}

describe('archive ingest', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup();
  });

  it('indexes an IoT Hub Avro blob: devices, time range, levels, check outcomes, size and ETag', async () => {
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '0', minute: MINUTE, records: 40, encoding: 'avro' }]);
    const result = await s.ingest(blob!.name);
    expect(result).toMatchObject({ outcome: 'created', format: 'avro-iothub', records: 40, admitted: 40, quarantined: 0, damage: null });

    const stored = await readManifest(s.store, s.index, s.container, blob!.name);
    const manifest = stored?.manifest;
    const messages = blob!.messages;
    expect(manifest?.blob).toEqual({ name: blob!.name, etag: result.etag, size: blob!.bytes.length });
    expect(manifest?.devices.ids).toEqual([...new Set(messages.map((m) => m.deviceId))].sort());
    const times = messages.map((m) => m.enqueuedTime.getTime());
    expect(manifest?.enqueuedTime.min).toBe(new Date(Math.min(...times)).toISOString());
    expect(manifest?.enqueuedTime.max).toBe(new Date(Math.max(...times)).toISOString());
    const levels: Record<string, number> = {};
    for (const m of messages) if (m.level !== undefined) levels[m.level] = (levels[m.level] ?? 0) + 1;
    expect(manifest?.levels).toEqual({ counts: levels, missing: messages.filter((m) => m.level === undefined).length, complete: true });
    // Messages without a level are a warning on the archive endpoint, not a quarantine.
    expect(manifest?.outcomes).toEqual({ accept: 36, warn: 4, quarantine: 0 });
    expect(manifest?.findings).toEqual({ LevelMissing: 4 });

    const parsed = { iothub: FIXTURE_HUB, partition: '0', minuteMs: MINUTE };
    const cache = new HourSummaryCache(s.store, s.index, s.container);
    expect(await cache.factsFor(blob!.name, result.etag!, parsed)).toMatchObject({ records: 40, damaged: false });
  });

  it('is idempotent per blob version: a replay neither downloads nor writes', async () => {
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '1', minute: MINUTE, records: 5, encoding: 'json' }]);
    await s.ingest(blob!.name);
    const before = await readManifest(s.store, s.index, s.container, blob!.name);
    const opened = s.observed.opened;
    const replay = await s.ingest(blob!.name);
    expect(replay).toMatchObject({ outcome: 'unchanged', records: 5, format: 'json-lines' });
    expect(s.observed.opened).toBe(opened);
    expect((await readManifest(s.store, s.index, s.container, blob!.name))?.etag).toBe(before?.etag);
  });

  it('a replay of an indexed version lists the blob once: the version that answers is the one the hour summary checks', async () => {
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '1', minute: MINUTE + 60_000, records: 3, encoding: 'json' }]);
    await s.ingest(blob!.name);
    const before = s.observed.count(s.observed.listings, s.container, blob!.name);
    const replay = await s.ingest(blob!.name);
    expect(replay).toMatchObject({ outcome: 'unchanged', records: 3 });
    expect(s.observed.count(s.observed.listings, s.container, blob!.name) - before).toBe(1);
    // The summary the replay completes is still there, for the version listed.
    const cache = new HourSummaryCache(s.store, s.index, s.container);
    const parsed = { iothub: FIXTURE_HUB, partition: '1', minuteMs: MINUTE + 60_000 };
    expect(await cache.factsFor(blob!.name, replay.etag!, parsed)).toMatchObject({ records: 3, damaged: false });
  });

  it('replaces the manifest when the blob is rewritten', async () => {
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '2', minute: MINUTE, records: 5, encoding: 'avro' }]);
    const first = await s.ingest(blob!.name);
    const { bytes } = await encodeBlob({ partition: '2', minute: MINUTE + 60_000, records: 9, encoding: 'avro-deflate' });
    await s.store.put(s.container, blob!.name, bytes);
    const second = await s.ingest(blob!.name);
    expect(second).toMatchObject({ outcome: 'replaced', records: 9 });
    expect(second.etag).not.toBe(first.etag);
    const manifest = (await readManifest(s.store, s.index, s.container, blob!.name))?.manifest;
    expect(manifest).toMatchObject({ records: 9, codec: 'deflate', blob: { etag: second.etag } });
  });

  it('does not index a version that was replaced while it was being read', async () => {
    const [blob] = await writeArchive(s.store, s.container, FORMAT, [{ partition: '3', minute: MINUTE, records: 5, encoding: 'avro' }]);
    s.observed.afterOpen = async () => {
      await s.store.put(s.container, blob!.name, (await encodeBlob({ partition: '3', minute: MINUTE, records: 2, encoding: 'avro' })).bytes);
    };
    const raced = await s.ingest(blob!.name);
    expect(raced.outcome).toBe('stale');
    expect(await readManifest(s.store, s.index, s.container, blob!.name)).toBeNull();
    // The trigger for the new version indexes it.
    expect(await s.ingest(blob!.name)).toMatchObject({ outcome: 'created', records: 2 });
  });

  it('quarantines messages the archive checks reject and counts them', async () => {
    const name = `${FIXTURE_HUB}/4/2024/05/01/12/00`;
    const file = await iotHubAvroFile({
      records: 6,
      record: (i) => {
        const record = iotHubRecordOf(fixtureMessage('4', MINUTE, i, 6));
        if (i === 2) record.Properties = { ...record.Properties, iothubname: 'someone-elses-hub' };
        return record;
      },
    });
    await s.store.put(s.container, name, file);
    const result = await s.ingest(name);
    expect(result).toMatchObject({ records: 6, admitted: 5, quarantined: 1 });
    expect((await readManifest(s.store, s.index, s.container, name))?.manifest?.outcomes.quarantine).toBe(1);
    const items = (await s.quarantined()).filter((i) => i.kind === 'message');
    expect(items).toHaveLength(1);
    expect(items[0]?.reasons).toEqual(['EnrichmentMismatch']);
    // A replay quarantines nothing twice.
    await s.store.put(s.container, name, file);
    await s.ingest(name);
    expect((await s.quarantined()).filter((i) => i.kind === 'message')).toHaveLength(1);
  });

  it('reports and quarantines truncated and corrupt blobs, indexing the records before the damage', async () => {
    const { bytes } = await encodeBlob({ partition: '5', minute: MINUTE, records: 60, encoding: 'avro' });
    const truncatedName = `${FIXTURE_HUB}/5/2024/05/01/12/00`;
    await s.store.put(s.container, truncatedName, bytes.subarray(0, bytes.length - 100));
    const truncated = await s.ingest(truncatedName);
    expect(truncated.damage?.code).toBe('ArchiveTruncated');
    expect(truncated.records).toBeGreaterThan(0);
    expect(truncated.records).toBeLessThan(60);
    const manifest = (await readManifest(s.store, s.index, s.container, truncatedName))?.manifest;
    expect(manifest?.damage).toMatchObject({ code: 'ArchiveTruncated', recordsBeforeDamage: truncated.records });

    const json = (await encodeBlob({ partition: '5', minute: MINUTE + 60_000, records: 4, encoding: 'json' })).bytes.toString('utf8');
    const corruptName = `${FIXTURE_HUB}/5/2024/05/01/12/01`;
    const lines = json.split('\n');
    lines.splice(2, 0, '{"this is": not json}');
    await s.store.put(s.container, corruptName, Buffer.from(lines.join('\n')));
    const corrupt = await s.ingest(corruptName);
    expect(corrupt).toMatchObject({ records: 4, damage: { code: 'ArchiveCorrupt' } });

    const blobs = (await s.quarantined()).filter((i) => i.kind === 'archive-blob');
    expect(blobs.map((b) => b.reasons).sort()).toEqual([['ArchiveCorrupt'], ['ArchiveTruncated']]);
  });

  it('indexes IoT Hub empty batches, and answers a trigger for a deleted blob without failing', async () => {
    const written = await writeArchive(s.store, s.container, FORMAT, [
      { partition: '6', minute: MINUTE, records: 0, encoding: 'empty' },
      { partition: '6', minute: MINUTE + 60_000, records: 0, encoding: 'avro-empty' },
    ]);
    expect(await s.ingest(written[0]!.name)).toMatchObject({ outcome: 'created', format: 'empty', records: 0 });
    expect(await s.ingest(written[1]!.name)).toMatchObject({ outcome: 'created', format: 'avro-iothub', records: 0 });
    expect(await s.ingest(`${FIXTURE_HUB}/6/2024/05/01/13/00`)).toMatchObject({ outcome: 'missing', etag: null });
  });
});
