/**
 * The archive query engine: answers "which messages did these devices send between these times" from IoT Hub's
 * archive container directly, in seconds, without a copy of the data elsewhere.
 *
 * 1. List only the blob names the time range allows (fileNameFormat.ts), partition-agnostic.
 * 2. Skip blobs whose index entry (hour summary, else manifest) proves they cannot match; blobs the index has not
 *    seen (ingest has not run yet, or the blob changed since) are read, pruned only by the window their names promise.
 * 3. Download and stream-decode up to `concurrency` blobs at once; each buffers at most a few decoded blocks, so
 *    memory stays bounded whatever the archive's size.
 * 4. Yield matching records in blob-name order, then record order; stop at `limit` with a continuation token.
 */
import { checkMessage } from '../checks/checks.js';
import type { ChecksConfig } from '../checks/expectations.js';
import { RoutingError } from '../errors.js';
import type { ArchiveDamage } from '../message/archive.js';
import { readArchive } from '../message/readArchive.js';
import type { RoutedMessage } from '../message/RoutedMessage.js';
import type { BlobStore } from '../ports.js';
import type { ArchiveConfig } from './config.js';
import { compileFilter, queryFingerprint, type ArchiveFilter, type CompiledFilter } from './filter.js';
import {
  listArchiveBlobs,
  nameMinuteWindow,
  type ListingPrefix,
  type NameMinuteWindow,
  parseFileNameFormat,
  type FileNameFormat,
  type ListedArchiveBlob,
  type WindowTiming,
} from './fileNameFormat.js';
import { HourSummaryCache } from './hourSummary.js';
import { prefetch } from './prefetch.js';
import { factsMayMatch, manifestMayMatch, readManifest } from './manifest.js';

export interface QueryOptions {
  /** Stop after this many records (default: no limit). */
  limit?: number;
  /** A token from a previous page of the same query. */
  continuation?: string | null;
  /** Blobs downloaded and decoded at once. Default 8. */
  concurrency?: number;
  /** The archive index; null or absent reads every blob the names allow. */
  indexContainer?: string | null;
  /**
   * When given, records the archive endpoint's checks would quarantine are left out (counted in
   * `recordsExcluded`), so a query never serves what ingest kept out of the archive.
   */
  checks?: { config: ChecksConfig; now: Date };
  /** Called as the query progresses (blobs listed, read, records matched); cheap to call, render it throttled. */
  onProgress?: (stats: Readonly<QueryStats>) => void;
}

export interface DamagedBlobReport {
  blob: string;
  code: ArchiveDamage['code'];
  detail: string;
  byteOffset: number;
  recordsBeforeDamage: number;
}

export interface QueryStats {
  /** Archive blobs listed within the name window. */
  blobsListed: number;
  /** Names under the listed prefixes that do not follow the file name format (not read). */
  unrecognizedNames: number;
  listingDone: boolean;
  manifestsRead: number;
  /** Hour summaries fetched (one per partition-hour the range touches). */
  summariesRead: number;
  /** Manifests that could not be fetched (their blobs were read instead). */
  manifestsUnreadable: number;
  /** Blobs whose manifest proved they cannot match. */
  blobsSkipped: number;
  /** Blobs downloaded and decoded. */
  blobsRead: number;
  bytesRead: number;
  recordsScanned: number;
  recordsReturned: number;
  /** Matching records the archive checks would quarantine. */
  recordsExcluded: number;
  /** Blobs that were truncated or corrupt: their records before the damage were still answered. */
  damaged: DamagedBlobReport[];
}

export interface ArchiveQuery extends AsyncIterable<RoutedMessage> {
  /** The same records in the batches they were decoded in: less per-record overhead for formatters. */
  batches(): AsyncIterable<readonly RoutedMessage[]>;
  readonly stats: Readonly<QueryStats>;
  /** Known once iteration has finished: the token for the next page, or null when there is none. */
  readonly continuation: string | null;
}

// ---- continuation tokens ---------------------------------------------------------------------------------

export interface QueryPosition {
  /** The blob to resume in. */
  blob: string;
  /** The record index (within that blob) of the first record of the next page. */
  index: number;
}

const TOKEN_MAX = 4096;

export function encodeContinuation(position: QueryPosition, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ v: 1, b: position.blob, i: position.index, f: fingerprint }), 'utf8').toString('base64url');
}

const CONTINUATION_NOT_ISSUED = 'continuation is not a token this API issued (copy it unchanged from the previous page)';

/** What a continuation token must belong to: the query's container, archive settings and filter. */
export interface ContinuationScope {
  container: string;
  config: Pick<ArchiveConfig, 'fileNameFormat' | 'batchFrequencySeconds' | 'pruningSlackSeconds'>;
  filter: ArchiveFilter;
}

/**
 * Strict: anything but a token this engine issued for the same query is an error, never a silent restart. Tokens
 * are not signed (there is no secret to sign them with), but every position this engine issues is a listed blob of
 * the query's name window: one that is not was made by hand, and is refused, not followed.
 */
export function decodeContinuation(token: string, scope: ContinuationScope): { value: QueryPosition } | { error: string } {
  const position = decodeToken(token, queryFingerprint(scope.container, scope.config.fileNameFormat, scope.filter));
  if ('error' in position) return position;
  const format = parseFileNameFormat(scope.config.fileNameFormat);
  const named = 'value' in format ? format.value.parse(position.value.blob) : null;
  const window = nameMinuteWindow(scope.filter.from?.getTime(), scope.filter.to?.getTime(), scope.config);
  if (named === null || (window !== null && (named.minuteMs < window.firstMinuteMs || named.minuteMs > window.lastMinuteMs))) {
    return { error: CONTINUATION_NOT_ISSUED };
  }
  return position;
}

function decodeToken(token: string, fingerprint: string): { value: QueryPosition } | { error: string } {
  const read = readToken(token);
  if ('error' in read) return read;
  if (read.value.fingerprint !== fingerprint) {
    return { error: 'continuation belongs to a different query: repeat the same devices, range and conditions, or start without it' };
  }
  return { value: { blob: read.value.blob, index: read.value.index } };
}

/**
 * Whether `token` has the form of a token this engine issues, whatever query it belongs to: what can be said of it
 * while the rest of the query is invalid, so that a 400 names a mangled token with the other problems.
 */
export function continuationFormProblem(token: string): string | null {
  const read = readToken(token);
  return 'error' in read ? read.error : null;
}

function readToken(token: string): { value: QueryPosition & { fingerprint: string } } | { error: string } {
  const invalid = { error: CONTINUATION_NOT_ISSUED };
  if (token.length === 0 || token.length > TOKEN_MAX || !/^[A-Za-z0-9_-]+$/.test(token)) return invalid;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return invalid;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return invalid;
  const t = raw as Record<string, unknown>;
  const keys = Object.keys(t).sort().join(',');
  if (keys !== 'b,f,i,v' || t['v'] !== 1) return invalid;
  const { b, i, f } = t;
  if (typeof b !== 'string' || b.length === 0 || b.length > 1024) return invalid;
  if (typeof i !== 'number' || !Number.isSafeInteger(i) || i < 0) return invalid;
  if (typeof f !== 'string' || !/^[0-9a-f]{16}$/.test(f)) return invalid;
  return { value: { blob: b, index: i, fingerprint: f } };
}

// ---- engine -------------------------------------------------------------------------------------------------

const DEFAULT_CONCURRENCY = 8;
/** Decoded batches (Avro blocks, JSON-line runs) one prefetching blob may hold before its reader waits. */
const BATCHES_BUFFERED_PER_BLOB = 8;
const DAMAGE_REPORTS_KEPT = 100;
/** Listed blobs whose manifests are fetched ahead of the readers. */
const MANIFEST_LOOKAHEAD = 32;

export function queryArchive(
  store: BlobStore,
  container: string,
  config: Pick<ArchiveConfig, 'fileNameFormat' | 'batchFrequencySeconds' | 'pruningSlackSeconds'>,
  filter: ArchiveFilter,
  options: QueryOptions = {},
): ArchiveQuery {
  const parsedFormat = parseFileNameFormat(config.fileNameFormat);
  if ('errors' in parsedFormat) {
    throw new RoutingError('ConfigInvalid', `archive.fileNameFormat: ${parsedFormat.errors.join('; ')}`);
  }
  const limit = options.limit ?? Infinity;
  if (!(limit >= 0)) throw new RoutingError('UsageInvalid', 'limit must be 0 or more');
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
  const fingerprint = queryFingerprint(container, config.fileNameFormat, filter);
  let position: QueryPosition | null = null;
  if (options.continuation !== undefined && options.continuation !== null) {
    const decoded = decodeContinuation(options.continuation, { container, config, filter });
    if ('error' in decoded) throw new RoutingError('UsageInvalid', decoded.error);
    position = decoded.value;
  }

  const stats: QueryStats = {
    blobsListed: 0,
    unrecognizedNames: 0,
    listingDone: false,
    manifestsRead: 0,
    summariesRead: 0,
    manifestsUnreadable: 0,
    blobsSkipped: 0,
    blobsRead: 0,
    bytesRead: 0,
    recordsScanned: 0,
    recordsReturned: 0,
    recordsExcluded: 0,
    damaged: [],
  };
  let continuation: string | null = null;
  let started = false;
  const start = (): AsyncGenerator<readonly RoutedMessage[]> => {
    if (started) throw new Error('an ArchiveQuery can be iterated once');
    started = true;
    return run(engine, position, limit, concurrency, (next) => {
      continuation = next === null ? null : encodeContinuation(next, fingerprint);
    });
  };

  const engine: Engine = {
    store,
    container,
    format: parsedFormat.value,
    timing: { batchFrequencySeconds: config.batchFrequencySeconds, pruningSlackSeconds: config.pruningSlackSeconds },
    filter: compileFilter(filter),
    indexContainer: options.indexContainer ?? null,
    summaries:
      options.indexContainer === undefined || options.indexContainer === null
        ? null
        : new HourSummaryCache(store, options.indexContainer, container),
    checks: options.checks ?? null,
    stats,
    progress: options.onProgress ?? (() => undefined),
  };

  return {
    stats,
    get continuation() {
      return continuation;
    },
    batches() {
      return { [Symbol.asyncIterator]: start };
    },
    async *[Symbol.asyncIterator]() {
      for await (const batch of start()) yield* batch;
    },
  };
}

interface Engine {
  store: BlobStore;
  container: string;
  format: FileNameFormat;
  timing: WindowTiming;
  filter: CompiledFilter;
  indexContainer: string | null;
  summaries: HourSummaryCache | null;
  checks: { config: ChecksConfig; now: Date } | null;
  stats: QueryStats;
  progress: (stats: Readonly<QueryStats>) => void;
}

interface Candidate {
  name: string;
  startIndex: number;
  entry: Extract<ListedArchiveBlob, { kind: 'archive' }>;
  /** Whether to read the blob, settled by its manifest; never rejects. */
  decision: Promise<boolean>;
}

async function* run(
  engine: Engine,
  start: QueryPosition | null,
  limit: number,
  concurrency: number,
  setContinuation: (position: QueryPosition | null) => void,
): AsyncGenerator<readonly RoutedMessage[]> {
  const { stats, filter } = engine;
  const window = nameMinuteWindow(filter.fromMs, filter.toMs, engine.timing);
  const summaries = engine.summaries;
  const listing = listArchiveBlobs(engine.store, engine.container, engine.format, {
    window,
    ...(start === null ? {} : { startAt: start.blob }),
    batchFrequencySeconds: engine.timing.batchFrequencySeconds,
    // Fetch a partition-hour's summary while its names are being listed, not after: one round trip less before
    // the first download of a range query.
    ...(summaries === null || !filterUsesIndex(filter)
      ? {}
      : { onPrefix: (prefix: ListingPrefix) => prefetchSummaries(summaries, prefix, window) }),
  });
  async function* candidates(): AsyncGenerator<Candidate> {
    for await (const entry of listing) {
      if (entry.kind === 'unrecognized') {
        stats.unrecognizedNames++;
        continue;
      }
      stats.blobsListed++;
      yield {
        name: entry.item.name,
        startIndex: start !== null && entry.item.name === start.blob ? start.index : 0,
        entry,
        // The index only saves work: when it cannot be read, the blob is read instead.
        decision: decide(engine, entry).catch(() => {
          stats.manifestsUnreadable++;
          return true;
        }),
      };
    }
    stats.listingDone = true;
  }
  // Manifests are small and most of them prove a blob cannot match, so they are fetched further ahead and wider
  // than downloads: the candidates after the blobs being read already know whether they need reading.
  const lookahead = prefetch(candidates(), Math.max(MANIFEST_LOOKAHEAD, concurrency));
  const readers: BlobReader[] = [];

  /** Starts readers, in name order, for the next candidates that need reading, up to `target` in flight. */
  const fillReaders = async (target: number): Promise<void> => {
    while (readers.length < target) {
      const next = await lookahead.next();
      if (next.done === true) return;
      const candidate = next.value;
      if (!(await candidate.decision)) {
        stats.blobsSkipped++;
        continue;
      }
      readers.push(new BlobReader(engine, candidate.name, candidate.startIndex));
    }
  };

  /** The position where the next page starts, once this one is full. */
  const nextPosition = async (): Promise<QueryPosition | null> => {
    const reader = readers[0];
    if (reader !== undefined) return { blob: reader.name, index: reader.startIndex };
    const next = await lookahead.next();
    if (next.done === true) return null;
    return { blob: next.value.name, index: next.value.startIndex };
  };

  let returned = 0;
  try {
    if (limit === 0) {
      setContinuation(await nextPosition());
      return;
    }
    for (;;) {
      await fillReaders(concurrency);
      const reader = readers.shift();
      if (reader === undefined) break;
      // The reader being consumed counts against the concurrency, so keep concurrency - 1 prefetching.
      await fillReaders(concurrency - 1);
      for (let batch = await reader.next(); batch !== null; batch = await reader.next()) {
        const room = limit - returned;
        if (batch.length > room) {
          // The page fills up inside this batch and batch[room] is the next match: resume exactly there.
          const next = batch[room]!;
          setContinuation({ blob: reader.name, index: next.source.kind === 'blob' ? next.source.index : 0 });
          if (room > 0) {
            returned += room;
            stats.recordsReturned += room;
            yield batch.slice(0, room);
          }
          return;
        }
        returned += batch.length;
        stats.recordsReturned += batch.length;
        yield batch;
        engine.progress(stats);
      }
      if (returned === limit) {
        // The page ended with this blob: the next page starts at the next listed blob, if there is one. It may
        // turn out empty; finding out here would mean reading the rest of the range for a page nobody asked for.
        setContinuation(await nextPosition());
        return;
      }
      engine.progress(stats);
    }
    setContinuation(null);
  } finally {
    for (const reader of readers) reader.cancel();
    await lookahead.return();
    if (summaries !== null) stats.summariesRead = summaries.fetched;
    engine.progress(stats);
  }
}

/** Whether a listed blob must be read: false only when its current manifest proves it cannot match. */
async function decide(engine: Engine, entry: Extract<ListedArchiveBlob, { kind: 'archive' }>): Promise<boolean> {
  if (engine.indexContainer === null || engine.summaries === null || !manifestCanDecide(engine, entry.parsed.minuteMs)) {
    return true;
  }
  const facts = await engine.summaries.factsFor(entry.item.name, entry.item.etag, entry.parsed);
  engine.stats.summariesRead = engine.summaries.fetched;
  if (facts !== null) return factsMayMatch(facts, engine.filter);
  const stored = await readManifest(engine.store, engine.indexContainer, engine.container, entry.item.name);
  engine.stats.manifestsRead++;
  const manifest = stored?.manifest ?? null;
  // A manifest of another version (the blob was rewritten and not yet re-indexed) says nothing about this one.
  if (manifest === null || manifest.blob.etag !== entry.item.etag) return true;
  return manifestMayMatch(manifest, engine.filter);
}

function filterUsesIndex(filter: CompiledFilter): boolean {
  return filter.fromMs !== undefined || filter.toMs !== undefined || filter.deviceIds !== null || filter.level !== undefined;
}

const HOUR_MS = 3_600_000;
const SUMMARIES_PREFETCHED_PER_PREFIX = 48;

/** The hour summaries a prefix's blobs will ask for: one per hour of the prefix's time unit within the window. */
function prefetchSummaries(summaries: HourSummaryCache, prefix: ListingPrefix, window: NameMinuteWindow | null): void {
  const { iothub, partition } = prefix.dimensions;
  if (iothub === undefined || partition === undefined || window === null) return;
  const from = Math.max(prefix.startMs, window.firstMinuteMs);
  const to = Math.min(prefix.endMs - 1, window.lastMinuteMs);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to < from) return;
  let hour = Math.floor(from / HOUR_MS) * HOUR_MS;
  for (let n = 0; hour <= to && n < SUMMARIES_PREFETCHED_PER_PREFIX; n++, hour += HOUR_MS) {
    summaries.prefetch({ iothub, partition, minuteMs: hour });
  }
}

/**
 * Whether asking the index is worth waiting for. Reading a blob is always correct (records are filtered one by one);
 * the index can only spare a download. With only a time range, a blob named for a minute inside the range holds
 * messages enqueued in it unless it is an empty batch, so it is read at once instead of waiting for its summary:
 * that takes the index off the critical path of a range query. Device and level filters always ask the index.
 */
function manifestCanDecide(engine: Engine, minuteMs: number): boolean {
  const { filter } = engine;
  if (filter.deviceIds !== null || filter.level !== undefined) return true;
  if (filter.fromMs === undefined && filter.toMs === undefined) return false;
  const namedInside = (filter.fromMs === undefined || minuteMs >= filter.fromMs) && (filter.toMs === undefined || minuteMs < filter.toMs);
  return !namedInside;
}

/**
 * Reads one blob in the background into a small bounded queue of matching records, so several blobs download and
 * decode while the consumer drains them in order. A failure is kept and rethrown to the consumer when it gets to
 * this blob, which keeps errors in order and never leaves a rejected promise unobserved.
 */
class BlobReader {
  readonly name: string;
  readonly startIndex: number;
  readonly #engine: Engine;
  readonly #queue: RoutedMessage[][] = [];
  #done = false;
  #error: unknown = undefined;
  #cancelled = false;
  #wakeConsumer: (() => void) | null = null;
  #wakeProducer: (() => void) | null = null;

  constructor(engine: Engine, name: string, startIndex: number) {
    this.#engine = engine;
    this.name = name;
    this.startIndex = startIndex;
    this.#run()
      .catch((error: unknown) => {
        this.#error = error;
      })
      .finally(() => {
        this.#done = true;
        this.#wakeConsumer?.();
      });
  }

  /** The next batch of matching records, or null at the end of the blob. */
  async next(): Promise<RoutedMessage[] | null> {
    for (;;) {
      const batch = this.#queue.shift();
      if (batch !== undefined) {
        this.#wakeProducer?.();
        return batch;
      }
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error;
        return null;
      }
      await new Promise<void>((resolve) => {
        this.#wakeConsumer = resolve;
      });
      this.#wakeConsumer = null;
    }
  }

  cancel(): void {
    this.#cancelled = true;
    this.#wakeProducer?.();
  }

  async #run(): Promise<void> {
    const engine = this.#engine;
    const { stats, filter } = engine;
    if (this.#cancelled) return;
    const blob = await engine.store.openRead(engine.container, this.name);
    if (blob === null) return; // deleted since the listing
    stats.blobsRead++;
    const checks = engine.checks;
    for await (const event of readArchive(blob.chunks, { name: this.name })) {
      // Breaking out closes the reader, which closes the download.
      if (this.#cancelled) break;
      if (event.type === 'end') {
        const { summary } = event;
        stats.bytesRead += summary.bytes;
        if (summary.damage !== null && stats.damaged.length < DAMAGE_REPORTS_KEPT) {
          stats.damaged.push({
            blob: this.name,
            code: summary.damage.code,
            detail: summary.damage.detail,
            byteOffset: summary.damage.byteOffset,
            recordsBeforeDamage: summary.records,
          });
        }
        continue;
      }
      const messages = event.messages;
      stats.recordsScanned += messages.length;
      let matches: RoutedMessage[];
      if (filter.all && this.startIndex === 0 && checks === null) {
        matches = messages;
      } else {
        matches = [];
        for (const message of messages) {
          if (message.source.kind === 'blob' && message.source.index < this.startIndex) continue;
          if (!filter.matches(message)) continue;
          if (checks !== null && checkMessage(message, 'archive', checks.config, checks.now).outcome === 'quarantine') {
            stats.recordsExcluded++;
            continue;
          }
          matches.push(message);
        }
      }
      if (matches.length === 0) continue;
      this.#queue.push(matches);
      this.#wakeConsumer?.();
      while (this.#queue.length >= BATCHES_BUFFERED_PER_BLOB && !this.#cancelled) {
        await new Promise<void>((resolve) => {
          this.#wakeProducer = resolve;
        });
        this.#wakeProducer = null;
      }
    }
  }
}
