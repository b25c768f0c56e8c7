/**
 * `iot-routing archive index` against Azurite: an archive some of whose blobs were indexed by the trigger, some
 * never (written before the Event Grid subscription, or their events dropped), one rewritten since its manifest.
 * The dry run counts them; the run ingests exactly the missing and stale ones through the trigger's own ingest
 * (their records checked and quarantined); a second run ingests nothing; a storage failure on one blob is that
 * blob's outcome; --from/--to limit the listing; Ctrl+C starts no further blob.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveCommand } from '../../src/cli/commands/archive.js';
import { EXIT, UsageError } from '../../src/cli/io.js';
import { ingestDepsFromServices } from '../../src/lib/archive/archiveDeps.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import { createArchiveIngestHandler } from '../../src/lib/archive/ingest.js';
import { manifestName, readManifest } from '../../src/lib/archive/manifest.js';
import type { BlobStore } from '../../src/lib/ports.js';
import { createServices, type Services } from '../../src/lib/runtime.js';
import type { QuarantineListItem } from '../../src/lib/storage/quarantine.js';
import { blobNameFor, encodeBlob, fixtureMessage, FIXTURE_HUB, iotHubRecordOf, writeArchive } from '../support/archiveFixtures.js';
import { iotHubAvroFile } from '../support/avroFiles.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { runCli, runCommand, type CliRun } from '../support/cli.js';
import { faultyStore } from '../support/faultyStore.js';
import { ObservedStore } from '../archive/observedStore.js';

const azurite = useAzurite();
const FORMAT = DEFAULT_ARCHIVE_CONFIG.fileNameFormat;
const NOON = Date.UTC(2024, 4, 1, 12, 0);
const MINUTE = 60_000;

let dir: string;
let configPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'archive-index-'));
  configPath = join(dir, 'routing.config.json');
  // The archive endpoint expects the hub's name stamped on every message: a record from another hub is quarantined.
  await writeFile(configPath, JSON.stringify({ checks: { endpoints: { archive: { enrichments: [{ key: 'iothubname', equals: FIXTURE_HUB }] } } } }));
});

afterAll(() => rm(dir, { recursive: true, force: true }));

interface Settings {
  AzureWebJobsStorage: string;
  ARCHIVE_CONTAINER: string;
  ARCHIVE_INDEX_CONTAINER: string;
  QUARANTINE_CONTAINER: string;
}

interface Archive {
  env: Settings;
  services: Services;
  /** The trigger's ingest, as archiveIngest runs it. */
  trigger(name: string): ReturnType<ReturnType<typeof createArchiveIngestHandler>>;
  /** `iot-routing archive index ...args --config <config>`, on `store` when given (a faulty one). */
  cli(args: string[], options?: { store?: BlobStore; signal?: AbortSignal; onStderr?: (text: string) => void }): Promise<CliRun>;
  /** Each blob's manifest document ETag (null: none), to see which manifests a run wrote. */
  manifestVersions(names: readonly string[]): Promise<Record<string, string | null>>;
  /** Whether every named blob has a manifest for its current ETag. */
  indexedAtCurrentVersion(name: string): Promise<boolean>;
  quarantined(): Promise<QuarantineListItem[]>;
}

async function archive(): Promise<Archive> {
  const env: Settings = {
    AzureWebJobsStorage: azurite().connectionString,
    ARCHIVE_CONTAINER: uniqueContainerName('archive'),
    ARCHIVE_INDEX_CONTAINER: uniqueContainerName('index'),
    QUARANTINE_CONTAINER: uniqueContainerName('quarantine'),
  };
  const services = await createServices({ ...env, ROUTING_CONFIG_PATH: configPath }, { root: dir });
  const ingest = createArchiveIngestHandler(ingestDepsFromServices(services));
  const { store } = services;
  const container = env.ARCHIVE_CONTAINER;
  const index = env.ARCHIVE_INDEX_CONTAINER;
  return {
    env,
    services,
    trigger: (name) => ingest(name),
    cli: async (args, options = {}) => {
      const command = (a: string[], io: Parameters<typeof archiveCommand>[1]) =>
        archiveCommand(a, options.signal === undefined ? io : { ...io, signal: options.signal }, options.store === undefined ? {} : { store: options.store });
      return runCommand(command, ['index', ...args, '--config', configPath], { ...env }, options.onStderr);
    },
    manifestVersions: async (names) => {
      const versions: Record<string, string | null> = {};
      for (const name of names) versions[name] = (await store.get(index, manifestName(container, name)))?.etag ?? null;
      return versions;
    },
    indexedAtCurrentVersion: async (name) => {
      const manifest = (await readManifest(store, index, container, name))?.manifest;
      let current: string | undefined;
      for await (const item of store.list(container, name)) if (item.name === name) current = item.etag;
      return manifest !== undefined && manifest !== null && manifest.blob.etag === current;
    },
    quarantined: async () => {
      const items: QuarantineListItem[] = [];
      for await (const item of services.quarantine.list({ endpoint: 'archive' })) items.push(item);
      return items;
    },
  };
}

/** A blob of `records` IoT Hub Avro records, record `bad` stamped by another hub (the archive check rejects it). */
async function blobWithForeignRecord(partition: string, minuteMs: number, records: number, bad: number): Promise<Buffer> {
  return iotHubAvroFile({
    records,
    record: (i) => {
      const record = iotHubRecordOf(fixtureMessage(partition, minuteMs, i, records));
      if (i === bad) record.Properties = { ...record.Properties, iothubname: 'someone-elses-hub' };
      return record;
    },
  });
}

const nameOf = (partition: string, minuteMs: number) => blobNameFor(FORMAT, { iothub: FIXTURE_HUB, partition, minute: minuteMs });

/** The lines of a run's stderr that report an ingested blob, as `outcome name`. */
function ingested(run: CliRun): string[] {
  return [...run.stderr.matchAll(/^\[\d+\] (\S+) +(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
}

describe('archive index: catching the index up', () => {
  let a: Archive;
  let indexed: string[];
  let stale: string;
  let foreign: string;
  let truncated: string;
  let neverIngested: string[];
  let all: string[];

  beforeAll(async () => {
    a = await archive();
    const { store } = a.services;
    const container = a.env.ARCHIVE_CONTAINER;
    // Indexed by the trigger: partition 0, 12:00 to 12:02.
    const written = await writeArchive(store, container, FORMAT, [
      { partition: '0', minute: NOON, records: 20, encoding: 'avro' },
      { partition: '0', minute: NOON + MINUTE, records: 8, encoding: 'json' },
      { partition: '0', minute: NOON + 2 * MINUTE, records: 5, encoding: 'avro-deflate' },
    ]);
    for (const blob of written) expect((await a.trigger(blob.name)).outcome).toBe('created');
    indexed = written.slice(0, 2).map((b) => b.name);
    // Rewritten since its manifest was written: the manifest is for another ETag.
    stale = written[2]!.name;
    await store.put(container, stale, (await encodeBlob({ partition: '0', minute: NOON + 2 * MINUTE, records: 9, encoding: 'avro' })).bytes);
    // Never ingested (no event): a clean one, one with a record from another hub, a truncated one, an empty batch.
    const clean = await writeArchive(store, container, FORMAT, [
      { partition: '1', minute: NOON, records: 12, encoding: 'capture' },
      { partition: '1', minute: NOON + 3 * MINUTE, records: 0, encoding: 'empty' },
    ]);
    foreign = nameOf('1', NOON + MINUTE);
    await store.put(container, foreign, await blobWithForeignRecord('1', NOON + MINUTE, 6, 2));
    truncated = nameOf('1', NOON + 2 * MINUTE);
    const full = (await encodeBlob({ partition: '1', minute: NOON + 2 * MINUTE, records: 60, encoding: 'avro' })).bytes;
    await store.put(container, truncated, full.subarray(0, full.length - 100));
    neverIngested = [...clean.map((b) => b.name), foreign, truncated].sort();
    all = [...indexed, stale, ...neverIngested].sort();
  });

  it('a dry run counts indexed, missing and stale blobs from the index, names them, writes nothing and exits 3', async () => {
    const before = await a.manifestVersions(all);
    const run = await a.cli(['--dry-run']);
    expect(run.code, run.stderr).toBe(EXIT.wouldQuarantine);
    expect(run.stdout).toContain('7 blobs listed: indexed 2, missing 4, stale 1');
    const shown = run.stdout.split('\n').filter((l) => /^(missing|stale) /.test(l)).map((l) => l.replace(/ +/, ' '));
    expect(shown.sort()).toEqual([...neverIngested.map((n) => `missing ${n}`), `stale ${stale}`].sort());
    expect(await a.manifestVersions(all)).toEqual(before);
    expect(await a.quarantined()).toEqual([]);
  });

  it('the run ingests exactly the missing and stale blobs: checked, quarantined where due, indexed', async () => {
    const before = await a.manifestVersions(all);
    const run = await a.cli([]);
    // A truncated blob was met: it is indexed (records before the damage) and quarantined, and the exit says so.
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(EXIT.damaged);
    expect(run.stdout).toContain('7 blobs listed (indexed 2, missing 4, stale 1): created 4, already indexed 2, damaged 1, missing since listing 0, failed 0');
    expect(ingested(run)).toEqual([...neverIngested.filter((n) => n !== truncated).map((n) => `created ${n}`), `created ${stale}`, `damaged ${truncated}`].sort());
    // The damage is said as the function's log line says it (describeIngest), quarantine included.
    const escaped = truncated.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(run.stderr).toMatch(new RegExp(`^\\[\\d+\\] damaged +${escaped}  \\d+ records, \\d+ quarantined; ArchiveTruncated at byte \\d+, quarantined$`, 'm'));
    // The manifests of the blobs indexed before were not touched; every blob is now indexed at its current version.
    const after = await a.manifestVersions(all);
    for (const name of indexed) expect(after[name], name).toBe(before[name]);
    for (const name of [...neverIngested, stale]) expect(after[name], name).not.toBe(before[name]);
    for (const name of all) expect(await a.indexedAtCurrentVersion(name), name).toBe(true);
    expect((await readManifest(a.services.store, a.env.ARCHIVE_INDEX_CONTAINER, a.env.ARCHIVE_CONTAINER, stale))?.manifest?.records).toBe(9);
    // The record from another hub and the truncated blob are in the quarantine, as the trigger would have put them.
    const quarantined = await a.quarantined();
    expect(quarantined.filter((q) => q.kind === 'message').map((q) => q.reasons)).toEqual([['EnrichmentMismatch']]);
    expect(quarantined.filter((q) => q.kind === 'archive-blob').map((q) => q.reasons)).toEqual([['ArchiveTruncated']]);
  });

  it('a second run ingests nothing and changes nothing; its dry run finds nothing missing', async () => {
    const before = await a.manifestVersions(all);
    const quarantinedBefore = (await a.quarantined()).map((q) => q.name).sort();
    const run = await a.cli(['--concurrency', '8']);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(run.stdout).toContain('7 blobs listed (indexed 7, missing 0, stale 0): created 0, already indexed 7, damaged 0');
    expect(ingested(run)).toEqual([]);
    expect(await a.manifestVersions(all)).toEqual(before);
    expect((await a.quarantined()).map((q) => q.name).sort()).toEqual(quarantinedBefore);
    const dry = await a.cli(['--dry-run']);
    expect(dry.code).toBe(EXIT.ok);
    expect(dry.stdout).toContain('7 blobs listed: indexed 7, missing 0, stale 0');
  });
});

describe('archive index when things go wrong', () => {
  it('a storage failure on one blob is that blob\'s outcome (exit 4); the others are indexed; a rerun finishes', async () => {
    const a = await archive();
    const written = await writeArchive(a.services.store, a.env.ARCHIVE_CONTAINER, FORMAT, [0, 1, 2, 3, 4].map((i) => ({ partition: '2', minute: NOON + i * MINUTE, records: 4, encoding: 'avro' as const })));
    const unlucky = written[2]!.name;
    const store = faultyStore(a.services.store, (operation, _call, name) => operation === 'openRead' && name === unlucky);
    const run = await a.cli(['--concurrency', '2'], { store });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(EXIT.transient);
    expect(store.failures).toBe(1);
    expect(run.stdout).toContain('created 4, already indexed 0, damaged 0, missing since listing 0, failed 1');
    expect(run.stderr).toMatch(new RegExp(`^\\[\\d+\\] failed +${unlucky}  injected failure of openRead`, 'm'));
    expect(run.stderr).toContain('run it again');
    for (const blob of written) expect(await a.indexedAtCurrentVersion(blob.name), blob.name).toBe(blob.name !== unlucky);

    const rerun = await a.cli([]);
    expect(rerun.code, rerun.stderr).toBe(EXIT.ok);
    expect(ingested(rerun)).toEqual([`created ${unlucky}`]);
  });

  it('--from/--to list only the blobs a query of that range would read', async () => {
    const a = await archive();
    const evening = Date.UTC(2024, 4, 1, 18, 30);
    const written = await writeArchive(a.services.store, a.env.ARCHIVE_CONTAINER, FORMAT, [
      { partition: '0', minute: NOON, records: 3, encoding: 'avro' },
      { partition: '1', minute: NOON + MINUTE, records: 3, encoding: 'avro' },
      { partition: '0', minute: evening, records: 3, encoding: 'avro' },
      { partition: '1', minute: evening + MINUTE, records: 3, encoding: 'json' },
      { partition: '0', minute: Date.UTC(2024, 4, 2, 9, 0), records: 3, encoding: 'avro' },
    ]);
    const inEvening = [nameOf('0', evening), nameOf('1', evening + MINUTE)].sort();
    const range = ['--from', '2024-05-01T18:00:00Z', '--to', '2024-05-01T19:00:00Z'];

    const dry = await a.cli([...range, '--dry-run']);
    expect(dry.code).toBe(EXIT.wouldQuarantine);
    expect(dry.stdout).toContain('2 blobs listed: indexed 0, missing 2, stale 0');
    expect(dry.stdout.split('\n').filter((l) => l.startsWith('missing')).map((l) => l.split(/ +/)[1]).sort()).toEqual(inEvening);

    const run = await a.cli(range);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(ingested(run)).toEqual(inEvening.map((n) => `created ${n}`));
    for (const blob of written) expect(await a.indexedAtCurrentVersion(blob.name), blob.name).toBe(inEvening.includes(blob.name));
    expect((await a.cli(['--dry-run'])).stdout).toContain('5 blobs listed: indexed 2, missing 3, stale 0');
    // An open end: from the second day on.
    expect((await a.cli(['--from', '2024-05-02', '--dry-run'])).stdout).toContain('1 blobs listed: indexed 0, missing 1, stale 0');
  });

  it('Ctrl+C starts no further blob: the one under way finishes, the rest stay for the next run (exit 130)', async () => {
    const a = await archive();
    const written = await writeArchive(a.services.store, a.env.ARCHIVE_CONTAINER, FORMAT, [0, 1, 2, 3].map((i) => ({ partition: '3', minute: NOON + i * MINUTE, records: 4, encoding: 'avro' as const })));
    const interrupt = new AbortController();
    const run = await a.cli(['--concurrency', '1'], {
      signal: interrupt.signal,
      onStderr: (text) => {
        if (/^\[\d+\] created/m.test(text)) interrupt.abort();
      },
    });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(EXIT.interrupted);
    expect(run.stderr).toContain('interrupted: starting no further blob');
    expect(ingested(run)).toEqual([`created ${written[0]!.name}`]);
    expect((await a.cli(['--dry-run'])).stdout).toContain('4 blobs listed: indexed 1, missing 3, stale 0');
  });

  it('running alongside the trigger on the same blobs ends as either alone would', async () => {
    const a = await archive();
    const written = await writeArchive(a.services.store, a.env.ARCHIVE_CONTAINER, FORMAT, [0, 1, 2, 3, 4, 5].map((i) => ({ partition: '4', minute: NOON + i * MINUTE, records: 4, encoding: 'avro' as const })));
    const foreign = nameOf('4', NOON + 6 * MINUTE);
    await a.services.store.put(a.env.ARCHIVE_CONTAINER, foreign, await blobWithForeignRecord('4', NOON + 6 * MINUTE, 5, 1));
    const names = [...written.map((b) => b.name), foreign];
    const [run] = await Promise.all([a.cli(['--concurrency', '3']), ...names.map((name) => a.trigger(name))]);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(run.stdout).toMatch(/7 blobs listed .*: created \d, already indexed \d, damaged 0, missing since listing 0, failed 0/);
    for (const name of names) expect(await a.indexedAtCurrentVersion(name), name).toBe(true);
    expect((await a.quarantined()).map((q) => q.reasons)).toEqual([['EnrichmentMismatch']]);
  });
});

describe('archive index: what it reads', () => {
  it('reads an indexed blob\'s manifest once; reads a missing one\'s again just before the download, which spares the download when the trigger indexed it in between', async () => {
    const a = await archive();
    const container = a.env.ARCHIVE_CONTAINER;
    const index = a.env.ARCHIVE_INDEX_CONTAINER;
    const written = await writeArchive(a.services.store, container, FORMAT, [0, 1, 2].map((i) => ({ partition: '5', minute: NOON + i * MINUTE, records: 4, encoding: 'avro' as const })));
    const [indexed, missing, overtaken] = written.map((b) => b.name) as [string, string, string];
    expect((await a.trigger(indexed)).outcome).toBe('created');
    const observed = new ObservedStore(a.services.store);
    const reads = (name: string) => observed.count(observed.reads, index, manifestName(container, name));
    // The trigger indexes `overtaken` right after the run has judged it missing (the judgement is read ahead).
    observed.afterGet = async (c, n) => {
      if (c === index && n === manifestName(container, overtaken) && reads(overtaken) === 1) expect((await a.trigger(overtaken)).outcome).toBe('created');
    };
    const run = await a.cli(['--concurrency', '1'], { store: observed.wrap() });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(EXIT.ok);
    expect(run.stdout).toContain('3 blobs listed (indexed 1, missing 2, stale 0): created 1, already indexed 2');
    const downloads = (name: string) => observed.count(observed.downloads, container, name);
    // Manifest reads: the judgement; ingest's own, just before the download; storeManifest's, the conditional write's.
    expect({
      indexed: { reads: reads(indexed), downloads: downloads(indexed) },
      missing: { reads: reads(missing), downloads: downloads(missing) },
      overtaken: { reads: reads(overtaken), downloads: downloads(overtaken) },
    }).toEqual({
      indexed: { reads: 1, downloads: 0 },
      missing: { reads: 3, downloads: 1 },
      overtaken: { reads: 2, downloads: 0 },
    });
  });
});

describe('archive index: parameters', () => {
  const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', ARCHIVE_CONTAINER: 'archive' };
  const usage = (args: string[]) => runCommand(archiveCommand, args, env);

  it.each([
    [['index', '--from', '2024-05-01T12:00:00'], /--from: "2024-05-01T12:00:00" is not an ISO 8601 time with a zone/],
    [['index', '--to', 'yesterday'], /--to: "yesterday" is not an ISO 8601 time/],
    [['index', '--from', '2024-05-02', '--to', '2024-05-01'], /--to must be after --from/],
    [['index', '--from', '2024-05-01', '--to', '2024-05-01'], /--to must be after --from/],
    [['index', '--concurrency', '0'], /--concurrency must be a whole number from 1 to 32, not "0"/],
    [['index', '--concurrency', '33'], /--concurrency must be a whole number from 1 to 32, not "33"/],
    [['index', '--concurrency', 'four'], /--concurrency must be a whole number from 1 to 32, not "four"/],
    [['index', '--concurrency', '2', '--concurrency', '3'], /--concurrency is given more than once/],
    [[], /archive takes index$/],
    [['reindex'], /archive takes index, not "reindex"/],
    [['index', 'extra'], /archive takes index, not "index extra"/],
  ])('%j is a usage error naming what is wrong', async (args, message) => {
    await expect(usage(args)).rejects.toThrow(UsageError);
    await expect(usage(args)).rejects.toThrow(message);
  });

  it('takes the storage connection in every form the app reads it (`:` for `__` here), not only two spellings', async () => {
    const absent = join(dir, 'absent.json');
    // Past the storage check, the run stops at the configuration file, before any request.
    await expect(
      runCommand(archiveCommand, ['index', '--config', absent], { 'AzureWebJobsStorage:accountName': 'account', ARCHIVE_CONTAINER: 'archive' }),
    ).rejects.toThrow(/absent\.json: .*no such file/);
  });

  it('refuses to run without storage or a routing.config.json, and exits 1 through the CLI', async () => {
    await expect(runCommand(archiveCommand, ['index', '--config', configPath], {})).rejects.toThrow(/no storage: set AzureWebJobsStorage/);
    const run = await runCli(['archive', 'index', '--concurrency', '40'], env);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toContain('iot-routing archive: --concurrency must be a whole number from 1 to 32');
    expect(run.stderr).toContain('iot-routing archive index [--from ISO]');
  });
});
