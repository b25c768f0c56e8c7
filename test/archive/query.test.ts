import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveArchive } from '../../src/lib/archive/archiveDeps.js';
import { DEFAULT_ARCHIVE_CONFIG, type ArchiveConfig } from '../../src/lib/archive/config.js';
import { parseBodyPredicate, queryFingerprint, type ArchiveFilter } from '../../src/lib/archive/filter.js';
import { createArchiveIngestHandler } from '../../src/lib/archive/ingest.js';
import { encodeContinuation, queryArchive, type QueryOptions, type QueryStats } from '../../src/lib/archive/query.js';
import { defaultChecksConfig, parseChecksConfig } from '../../src/lib/checks/expectations.js';
import { isRoutingError } from '../../src/lib/errors.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import {
  encodeBlob,
  FIXTURE_HUB,
  independentDecode,
  recordKey,
  writeArchive,
  type BlobSpec,
  type FixtureEncoding,
  type IndependentRecord,
  type WrittenBlob,
} from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';

const azurite = useAzurite();
const MINUTE = 60_000;
const START = Date.UTC(2024, 4, 1, 12, 55);

function where(text: string) {
  const parsed = parseBodyPredicate(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed.value;
}

interface Variant {
  label: string;
  format: string;
  partitions: [string, string];
  encodings: readonly FixtureEncoding[];
}

/** Every encoding and naming IoT Hub (and Capture) produce: partitions as 0 or 00, reordered and suffixed names. */
const VARIANTS: Variant[] = [
  { label: 'default names, Avro', format: DEFAULT_ARCHIVE_CONFIG.fileNameFormat, partitions: ['0', '1'], encodings: ['avro'] },
  { label: 'partitions written 00, Avro deflate', format: DEFAULT_ARCHIVE_CONFIG.fileNameFormat, partitions: ['00', '01'], encodings: ['avro-deflate'] },
  { label: 'time first, Event Hubs Capture Avro', format: '{YYYY}/{MM}/{DD}/{HH}/{mm}/{iothub}/{partition}', partitions: ['0', '3'], encodings: ['capture'] },
  { label: 'suffixed .json, JSON lines', format: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}.json', partitions: ['0', '1'], encodings: ['json'] },
  {
    label: 'day before month, mixed encodings and empty batches',
    format: '{iothub}-{partition}/{DD}-{MM}-{YYYY}/{HH}{mm}.avro',
    partitions: ['0', '1'],
    encodings: ['avro', 'json', 'empty', 'avro-deflate', 'avro-empty', 'capture'],
  },
];

/** 2 partitions x 8 minutes across an hour boundary; one late-routed message; every other blob ingested. */
function specsFor(variant: Variant): BlobSpec[] {
  const specs: BlobSpec[] = [];
  for (let minute = 0; minute < 8; minute++) {
    for (const [p, partition] of variant.partitions.entries()) {
      const encoding = variant.encodings[(minute * 2 + p) % variant.encodings.length]!;
      specs.push({ partition, minute: START + minute * MINUTE, records: 20, encoding, ...(minute === 5 && p === 1 ? { lateSeconds: 40 } : {}) });
    }
  }
  return specs;
}

interface Archive {
  store: AzureBlobStore;
  container: string;
  index: string;
  config: ArchiveConfig;
  blobs: WrittenBlob[];
  decoded: Map<string, IndependentRecord[]>;
}

async function buildArchive(variant: Variant, ingestEvery = 2): Promise<Archive> {
  const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
  const container = uniqueContainerName('archive');
  const index = uniqueContainerName('index');
  const config: ArchiveConfig = { ...DEFAULT_ARCHIVE_CONFIG, fileNameFormat: variant.format, batchFrequencySeconds: 60, pruningSlackSeconds: 60 };
  const blobs = await writeArchive(store, container, variant.format, specsFor(variant));
  const clock = new ManualClock('2024-05-02T00:00:00Z');
  const quarantine = createQuarantine(store, uniqueContainerName('quarantine'), clock);
  const ingest = createArchiveIngestHandler({
    store,
    clock,
    quarantine,
    admitDeps: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
    archive: resolveArchive(config, { ARCHIVE_CONTAINER: container, ARCHIVE_INDEX_CONTAINER: index }),
  });
  for (const [i, blob] of blobs.entries()) if (i % ingestEvery === 0) await ingest(blob.name);
  const decoded = new Map<string, IndependentRecord[]>();
  for (const blob of blobs) decoded.set(blob.name, await independentDecode(blob.bytes));
  return { store, container, index, config, blobs, decoded };
}

function keyOf(m: RoutedMessage): string {
  const levelKey = Object.keys(m.properties).find((k) => k.toLowerCase() === 'level');
  const level = levelKey === undefined ? null : m.properties[levelKey];
  return recordKey({
    deviceId: m.deviceId,
    messageId: m.messageId ?? null,
    enqueuedTime: m.enqueuedTime?.toISOString() ?? null,
    level: level === null || level === undefined ? null : String(level),
    body: m.decoded.value,
  });
}

async function run(archive: Archive, filter: ArchiveFilter, options: QueryOptions = {}) {
  const query = queryArchive(archive.store, archive.container, archive.config, filter, { indexContainer: archive.index, concurrency: 3, ...options });
  const keys: string[] = [];
  for await (const message of query) keys.push(keyOf(message));
  return { keys, stats: query.stats as QueryStats, continuation: query.continuation };
}

/** The same filter, written independently over the independent decode, in blob-name then record order. */
function expected(archive: Archive, test: (r: IndependentRecord) => boolean): string[] {
  return archive.blobs.flatMap((blob) => archive.decoded.get(blob.name)!.filter(test).map((r) => recordKey(r)));
}

const inRange = (from: number, to: number) => (r: IndependentRecord) =>
  r.enqueuedTime !== null && Date.parse(r.enqueuedTime) >= from && Date.parse(r.enqueuedTime) < to;
const body = (r: IndependentRecord) => r.body as { temperature: number; status: { code: number } };

const FILTERS: Array<{ name: string; filter: ArchiveFilter; test: (r: IndependentRecord) => boolean }> = [
  { name: 'everything', filter: {}, test: () => true },
  {
    name: 'a time range across the hour boundary',
    filter: { from: new Date(START + 3 * MINUTE + 10_000), to: new Date(START + 5 * MINUTE + 40_000) },
    test: inRange(START + 3 * MINUTE + 10_000, START + 5 * MINUTE + 40_000),
  },
  {
    name: 'a range that only a late-routed message reaches',
    filter: { from: new Date(START + 4 * MINUTE + 15_000), to: new Date(START + 4 * MINUTE + 25_000) },
    test: inRange(START + 4 * MINUTE + 15_000, START + 4 * MINUTE + 25_000),
  },
  { name: 'device ids', filter: { deviceIds: ['device-03', 'device-10'] }, test: (r) => r.deviceId === 'device-03' || r.deviceId === 'device-10' },
  { name: 'level', filter: { level: 'critical' }, test: (r) => r.level === 'critical' },
  { name: 'an application property', filter: { properties: [{ key: 'devicelocation', value: 'Lyon' }] }, test: (r) => r.properties['DeviceLocation'] === 'Lyon' },
  { name: 'a body field above a number', filter: { where: [where('temperature>10')] }, test: (r) => body(r).temperature > 10 },
  { name: 'a nested body field', filter: { where: [where('$body.status.code=500')] }, test: (r) => body(r).status.code === 500 },
  {
    name: 'range, device, level and body together',
    filter: {
      from: new Date(START + MINUTE),
      to: new Date(START + 7 * MINUTE),
      deviceIds: ['device-00', 'device-06', 'device-09'],
      level: 'storage',
      where: [where('humidity<60')],
    },
    test: (r) =>
      inRange(START + MINUTE, START + 7 * MINUTE)(r) &&
      ['device-00', 'device-06', 'device-09'].includes(r.deviceId ?? '') &&
      r.level === 'storage' &&
      (r.body as { humidity: number }).humidity < 60,
  },
];

describe.each(VARIANTS)('archive query over $label', (variant) => {
  let archive: Archive;
  beforeAll(async () => {
    archive = await buildArchive(variant);
  });

  it.each(FILTERS)('answers $name exactly as an independent decode of the same blobs', async ({ filter, test }) => {
    const want = expected(archive, test);
    expect(want.length).toBeGreaterThan(0);
    const { keys, stats, continuation } = await run(archive, filter);
    expect(keys).toEqual(want);
    expect(continuation).toBeNull();
    expect(stats.damaged).toEqual([]);
    expect(stats.recordsReturned).toBe(want.length);
  });

  it('pages with continuation tokens to exactly the unpaged answer', async () => {
    const filter: ArchiveFilter = { from: new Date(START), to: new Date(START + 6 * MINUTE) };
    const all = (await run(archive, filter)).keys;
    const pages: string[][] = [];
    let token: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof run>> = await run(archive, filter, { limit: 17, continuation: token });
      expect(page.keys.length).toBeLessThanOrEqual(17);
      pages.push(page.keys);
      token = page.continuation;
    } while (token !== null && pages.length < 50);
    expect(pages.flat()).toEqual(all);
    expect(pages.length).toBeGreaterThan(3);
  });
});

describe('archive query pruning and robustness', () => {
  let archive: Archive;
  beforeAll(async () => {
    archive = await buildArchive(VARIANTS[0]!, 1);
  });

  it('reads only the blobs whose index entries can match a narrow range', async () => {
    const filter = { from: new Date(START + 2 * MINUTE), to: new Date(START + 3 * MINUTE) };
    const { keys, stats } = await run(archive, filter);
    expect(keys).toEqual(expected(archive, inRange(START + 2 * MINUTE, START + 3 * MINUTE)));
    expect(stats.blobsRead).toBe(2);
    expect(stats.blobsSkipped).toBe(stats.blobsListed - 2);
    expect(stats.summariesRead).toBeGreaterThan(0);
  });

  it('reads the blobs the index has not seen yet, and ignores an index entry for an older version', async () => {
    const target = archive.blobs.find((b) => b.spec.partition === '1' && b.spec.minute === START + 4 * MINUTE)!;
    // Rewrite the blob with other devices; its manifest and summary still describe the old version.
    const rewritten = await encodeBlob({ partition: '7', minute: START + 4 * MINUTE, records: 5, encoding: 'avro' });
    await archive.store.put(archive.container, target.name, rewritten.bytes);
    const newDevices = [...new Set(rewritten.messages.map((m) => m.deviceId))];
    const { keys } = await run(archive, { deviceIds: newDevices, from: new Date(START + 4 * MINUTE), to: new Date(START + 5 * MINUTE) });
    const fresh = (await independentDecode(rewritten.bytes)).filter((r) => newDevices.includes(r.deviceId ?? ''));
    expect(keys).toEqual(expect.arrayContaining(fresh.map((r) => recordKey(r))));
    await archive.store.put(archive.container, target.name, target.bytes);
  });

  it('answers the rest of the archive when blobs are truncated or corrupt, and reports them', async () => {
    const damagedArchive = await buildArchive(VARIANTS[0]!, 100);
    const [first, second] = damagedArchive.blobs;
    await damagedArchive.store.put(damagedArchive.container, first!.name, first!.bytes.subarray(0, first!.bytes.length - 50));
    const corrupt = Buffer.from(second!.bytes);
    corrupt.fill(0x55, corrupt.length - 10); // inside the last block's sync marker
    await damagedArchive.store.put(damagedArchive.container, second!.name, corrupt);
    const { keys, stats } = await run(damagedArchive, {});
    expect(stats.damaged.map((d) => [d.blob, d.code]).sort()).toEqual(
      [
        [first!.name, 'ArchiveTruncated'],
        [second!.name, 'ArchiveCorrupt'],
      ].sort(),
    );
    const rest = damagedArchive.blobs.slice(2).flatMap((b) => damagedArchive.decoded.get(b.name)!.map((r) => recordKey(r)));
    expect(keys).toEqual(expect.arrayContaining(rest));
    const before = stats.damaged.reduce((n, d) => n + d.recordsBeforeDamage, 0);
    expect(keys).toHaveLength(rest.length + before);
    expect(before).toBeGreaterThan(0);
  });

  it('counts names outside the file name format instead of reading them', async () => {
    await archive.store.put(archive.container, `${FIXTURE_HUB}/0/notes.txt`, Buffer.from('not an archive'));
    const { stats } = await run(archive, {});
    expect(stats.unrecognizedNames).toBe(1);
  });

  it('leaves out what the archive checks would quarantine when given them', async () => {
    const checks = parseChecksConfig({ endpoints: { archive: { enrichments: [{ key: 'DeviceLocation', equals: 'Seattle' }] } } });
    if ('errors' in checks) throw new Error(checks.errors.join('; '));
    const { keys, stats } = await run(archive, { from: new Date(START), to: new Date(START + MINUTE) }, { checks: { config: checks.value, now: new Date('2024-05-02T00:00:00Z') } });
    const want = expected(archive, (r) => inRange(START, START + MINUTE)(r) && r.properties['DeviceLocation'] === 'Seattle');
    expect(keys).toEqual(want);
    expect(stats.recordsExcluded).toBeGreaterThan(0);
  });

  it('rejects a continuation token from another query or tampered with', async () => {
    const page = await run(archive, { level: 'critical' }, { limit: 5 });
    expect(page.continuation).not.toBeNull();
    const attemptWith = (filter: ArchiveFilter) => (options: QueryOptions) => {
      try {
        queryArchive(archive.store, archive.container, archive.config, filter, options);
      } catch (error) {
        return isRoutingError(error) ? error.message : String(error);
      }
      return 'accepted';
    };
    const attempt = attemptWith({ level: 'normal' });
    expect(attempt({ continuation: page.continuation })).toMatch(/different query/);
    expect(attempt({ continuation: `${page.continuation}x` })).toMatch(/not a token/);
    expect(attempt({ continuation: Buffer.from('{"v":1,"b":"x","i":-1,"f":"0000000000000000"}').toString('base64url') })).toMatch(/not a token/);

    // Re-encoded by hand with the right fingerprint: a position that is no listed blob of this query is refused.
    const same = attemptWith({ level: 'critical' });
    const fingerprint = queryFingerprint(archive.container, archive.config.fileNameFormat, { level: 'critical' });
    const issued = JSON.parse(Buffer.from(page.continuation!, 'base64url').toString('utf8')) as { b: string };
    expect(same({ continuation: page.continuation })).toBe('accepted');
    expect(same({ continuation: encodeContinuation({ blob: issued.b, index: 3 }, fingerprint) })).toBe('accepted');
    for (const blob of ['../../other/x', 'ZZZZ']) expect(same({ continuation: encodeContinuation({ blob, index: 0 }, fingerprint) })).toMatch(/not a token/);
  });

  it('stops cleanly when the consumer stops early', async () => {
    const query = queryArchive(archive.store, archive.container, archive.config, {}, { indexContainer: archive.index, concurrency: 4 });
    let seen = 0;
    for await (const _ of query) if (++seen === 3) break;
    expect(seen).toBe(3);
    expect(query.stats.recordsReturned).toBeLessThanOrEqual(40);
  });
});
