import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bloomFilterTest, buildBloomFilter } from '../../src/lib/archive/bloomFilter.js';
import { compileFilter } from '../../src/lib/archive/filter.js';
import { HourSummaryCache, hourSummaryName, recordInHourSummary } from '../../src/lib/archive/hourSummary.js';
import {
  decodeManifest,
  factsMayMatch,
  ManifestBuilder,
  MANIFEST_DEVICE_LIST_LIMIT,
  manifestMayMatch,
  manifestName,
  readManifest,
  storeManifest,
  type ArchiveManifest,
  type BlobFacts,
} from '../../src/lib/archive/manifest.js';
import type { ArchiveSummary } from '../../src/lib/message/archive.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';

function message(deviceId: string | null, time: string | null, level?: string): RoutedMessage {
  return {
    deviceId,
    enqueuedTime: time === null ? null : new Date(time),
    properties: level === undefined ? {} : { level },
    systemProperties: {},
    body: new Uint8Array(0),
    decoded: { kind: 'json', value: {}, decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: true } },
    source: { kind: 'blob', blobName: 'b', index: 0, format: 'avro-iothub', sequenceNumber: null, offset: null },
  };
}

const summary = (records: number, damage: ArchiveSummary['damage'] = null): ArchiveSummary => ({
  format: 'avro-iothub',
  codec: 'null',
  records,
  bytes: 100,
  damage,
});

function manifestFor(name: string, etag: string, messages: RoutedMessage[], damage: ArchiveSummary['damage'] = null): ArchiveManifest {
  const builder = new ManifestBuilder();
  builder.addDecoded(messages);
  return builder.build({
    container: 'archive',
    blob: { name, etag, size: 100 },
    parsedName: { iothub: 'hub', partition: '0', minuteMs: Date.UTC(2024, 4, 1, 12, 0) },
    summary: summary(messages.length, damage),
    indexedAt: new Date('2024-05-02T00:00:00Z'),
  });
}

describe('ManifestBuilder', () => {
  it('records devices, the enqueued-time range, levels and counts', () => {
    const m = manifestFor('hub/0/2024/05/01/12/00', '"e1"', [
      message('b', '2024-05-01T12:00:05Z', 'storage'),
      message('a', '2024-05-01T12:00:01Z', 'critical'),
      message('b', '2024-05-01T12:00:09Z', 'storage'),
      message(null, null),
    ]);
    expect(m.records).toBe(4);
    expect(m.devices).toEqual({ count: 2, ids: ['a', 'b'], bloom: null, missing: 1 });
    expect(m.enqueuedTime).toEqual({ min: '2024-05-01T12:00:01.000Z', max: '2024-05-01T12:00:09.000Z', undated: 1 });
    expect(m.levels).toEqual({ counts: { critical: 1, storage: 2 }, missing: 1, complete: true });
    expect(m.name).toEqual({ iothub: 'hub', partition: '0', minute: '2024-05-01T12:00:00.000Z' });
    expect(decodeManifest(JSON.parse(JSON.stringify(m)))).toEqual(m);
  });

  it('keeps a Bloom filter instead of the list past the limit, and marks many level values incomplete', () => {
    const many = Array.from({ length: MANIFEST_DEVICE_LIST_LIMIT + 1 }, (_, i) => message(`d${i}`, '2024-05-01T12:00:00Z', `l${i % 70}`));
    const m = manifestFor('n', '"e"', many);
    expect(m.devices.ids).toBeNull();
    expect(m.devices.bloom).not.toBeNull();
    expect(m.levels.complete).toBe(false);
    expect(manifestMayMatch(m, compileFilter({ deviceIds: ['d17'] }))).toBe(true);
    expect(manifestMayMatch(m, compileFilter({ level: 'nowhere' }))).toBe(true);
  });

  it('rejects stored documents it cannot trust', () => {
    const m = manifestFor('n', '"e"', [message('a', '2024-05-01T12:00:00Z')]);
    expect(decodeManifest({ ...m, schema: 2 })).toBeNull();
    expect(decodeManifest({ ...m, enqueuedTime: { min: 'yesterday', max: null, undated: 0 } })).toBeNull();
    expect(decodeManifest({ ...m, devices: { count: 1, ids: null, bloom: null, missing: 0 } })).toBeNull();
  });
});

describe('Bloom filter', () => {
  it('never says no to an item it holds, and rarely yes to one it does not (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 300 }), (items) => {
        const test = bloomFilterTest(buildBloomFilter(items, items.length));
        for (const item of items) expect(test(item)).toBe(true);
      }),
    );
    const items = Array.from({ length: 2000 }, (_, i) => `device-${i}`);
    const test = bloomFilterTest(buildBloomFilter(items, items.length));
    const falsePositives = Array.from({ length: 10_000 }, (_, i) => `other-${i}`).filter(test).length;
    expect(falsePositives).toBeLessThan(300); // about 1% by construction; 3% leaves room for hash quirks
  });
});

describe('factsMayMatch', () => {
  const facts: BlobFacts = {
    records: 10,
    damaged: false,
    minMs: Date.parse('2024-05-01T12:00:00Z'),
    maxMs: Date.parse('2024-05-01T12:01:30Z'),
    deviceIds: ['a', 'b'],
    bloom: null,
    levels: ['storage'],
  };
  const may = (f: Parameters<typeof compileFilter>[0], x: BlobFacts = facts) => factsMayMatch(x, compileFilter(f));

  it('prunes by time range, device and level', () => {
    expect(may({ from: new Date('2024-05-01T12:01:30Z') })).toBe(true);
    expect(may({ from: new Date('2024-05-01T12:01:30.001Z') })).toBe(false);
    expect(may({ to: new Date('2024-05-01T12:00:00Z') })).toBe(false);
    expect(may({ to: new Date('2024-05-01T12:00:00.001Z') })).toBe(true);
    expect(may({ deviceIds: ['c'] })).toBe(false);
    expect(may({ deviceIds: ['c', 'b'] })).toBe(true);
    expect(may({ level: 'critical' })).toBe(false);
    expect(may({ level: 'critical' }, { ...facts, levels: null })).toBe(true);
    expect(may({ from: new Date(0) }, { ...facts, minMs: null, maxMs: null })).toBe(false);
  });

  it('never prunes a damaged blob (records after the damage are unknown) and always prunes an empty one', () => {
    expect(may({ deviceIds: ['c'] }, { ...facts, damaged: true })).toBe(true);
    expect(may({}, { ...facts, records: 0 })).toBe(false);
  });
});

describe('storeManifest', () => {
  const name = 'hub/0/2024/05/01/12/00';

  async function setup() {
    const store = new MemoryBlobStore();
    await store.ensureContainer('archive');
    await store.ensureContainer('index');
    const v1 = await store.put('archive', name, new Uint8Array([1]));
    return { store, v1: v1.etag };
  }
  const current = (store: MemoryBlobStore) => async () => (await store.get('archive', name))?.etag ?? null;

  it('creates, then treats a replay of the same version as unchanged', async () => {
    const { store, v1 } = await setup();
    const m = manifestFor(name, v1, [message('a', '2024-05-01T12:00:00Z')]);
    expect(await storeManifest(store, 'index', m, current(store))).toBe('created');
    expect(await storeManifest(store, 'index', { ...m, indexedAt: 'later' }, current(store))).toBe('unchanged');
    expect((await readManifest(store, 'index', 'archive', name))?.manifest?.indexedAt).toBe(m.indexedAt);
  });

  it('replaces the manifest when the blob is rewritten, and never lets the old version back', async () => {
    const { store, v1 } = await setup();
    const old = manifestFor(name, v1, [message('a', '2024-05-01T12:00:00Z')]);
    expect(await storeManifest(store, 'index', old, current(store))).toBe('created');
    const v2 = (await store.put('archive', name, new Uint8Array([2]))).etag;
    const fresh = manifestFor(name, v2, [message('b', '2024-05-01T12:00:00Z')]);
    expect(await storeManifest(store, 'index', fresh, current(store))).toBe('replaced');
    // A late trigger for the first version finds it is no longer current.
    expect(await storeManifest(store, 'index', old, current(store))).toBe('stale');
    expect((await readManifest(store, 'index', 'archive', name))?.manifest?.devices.ids).toEqual(['b']);
  });

  it('an old-version writer that passed its currency check before a rewrite never ends up indexed (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), fc.nat({ max: 3 }), async (oldIndexedBefore, freshFirst, ticks) => {
        const { store, v1 } = await setup();
        const old = manifestFor(name, v1, [message('a', '2024-05-01T12:00:00Z')]);
        if (oldIndexedBefore) await storeManifest(store, 'index', old, current(store));
        // The late writer reads "v1 is current", then stalls (a slow instance) while the blob is rewritten.
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let checks = 0;
        const late = storeManifest(store, 'index', old, async () => {
          const etag = await current(store)();
          if (checks++ === 0) await gate;
          return etag;
        });
        await new Promise((r) => setImmediate(r));
        const v2 = (await store.put('archive', name, new Uint8Array([2]))).etag;
        const fresh = manifestFor(name, v2, [message('b', '2024-05-01T12:00:00Z')]);
        if (freshFirst) {
          await storeManifest(store, 'index', fresh, current(store));
          release();
          await late;
        } else {
          release();
          for (let i = 0; i < ticks; i++) await new Promise((r) => setImmediate(r));
          await Promise.all([late, storeManifest(store, 'index', fresh, current(store))]);
        }
        expect((await readManifest(store, 'index', 'archive', name))?.manifest?.blob.etag).toBe(v2);
      }),
      { numRuns: 40 },
    );
  });

  it('a manifest whose name would pass 1024 characters is stored under a hash', () => {
    expect(manifestName('archive', 'x'.repeat(1020))).toMatch(/^archive\/~long-names\/[0-9a-f]{64}\.manifest\.json$/);
  });
});

describe('hour summaries', () => {
  const parsed = { iothub: 'hub', partition: '0', minuteMs: Date.UTC(2024, 4, 1, 12, 7) };

  it('serve facts only for the exact version listed, and keep the newest version of each blob', async () => {
    const store = new MemoryBlobStore();
    await store.ensureContainer('index');
    const older = manifestFor('hub/0/2024/05/01/12/07', '"v1"', [message('a', '2024-05-01T12:07:00Z')]);
    const newer = manifestFor('hub/0/2024/05/01/12/07', '"v2"', [message('b', '2024-05-01T12:07:00Z')]);
    await recordInHourSummary(store, 'index', newer, parsed, new Date('2024-05-01T12:09:00Z'));
    await recordInHourSummary(store, 'index', older, parsed, new Date('2024-05-01T12:08:00Z'));
    expect(hourSummaryName('archive', parsed)).toBe('archive/~hours/hub/0/2024-05-01T12.json');

    const cache = new HourSummaryCache(store, 'index', 'archive');
    expect(await cache.factsFor(newer.blob.name, '"v2"', parsed)).toMatchObject({ records: 1, deviceIds: ['b'] });
    expect(await cache.factsFor(newer.blob.name, '"v1"', parsed)).toBeNull();
    expect(await cache.factsFor('hub/0/2024/05/01/12/08', '"v2"', parsed)).toBeNull();
    expect(cache.fetched).toBe(1);
  });
});
