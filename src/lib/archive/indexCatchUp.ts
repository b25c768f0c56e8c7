/**
 * Catches the archive index up with the archive, for the blobs no trigger announced: blobs IoT Hub wrote before the
 * app or its Event Grid subscription existed, blobs whose BlobCreated event Event Grid dropped after 24 hours of
 * failed delivery, blobs written while the subscription was missing or misconfigured (docs/adr/0008).
 *
 * Each listed blob is first judged from the index alone: its manifest's ETag against the listed ETag, as ingest and
 * the query engine judge it. Only the blobs that are not indexed at their listed version (`missing`: no manifest;
 * `stale`: a manifest for another version, or one no reader can use) are handed to the same ingest the trigger
 * runs, a few at a time.
 *
 * Delivery: this is one more delivery of each blob, at least once like the trigger's. Running it twice, or while the
 * trigger runs, changes nothing more: a version whose manifest matches is not ingested again, and ingest itself is
 * idempotent by (name, ETag): a version the trigger indexed between the judgement and the ingest is recognised
 * from its manifest before any download (`unchanged`), quarantine records are keyed by message identity and
 * damaged blobs by (name, ETag), and the manifest is written under storeManifest's conditional protocol, never over
 * a newer version's.
 */
import { isTransient } from '../errors.js';
import type { BlobStore, ETag } from '../ports.js';
import type { Services } from '../runtime.js';
import { ingestDepsFromServices, type ResolvedArchive } from './archiveDeps.js';
import { listArchiveBlobs, nameMinuteWindow } from './fileNameFormat.js';
import { createArchiveIngestHandler, type ArchiveIngestHandler, type IngestSummary } from './ingest.js';
import { readManifest } from './manifest.js';
import { prefetch } from './prefetch.js';

export interface IndexCatchUpDeps {
  store: BlobStore;
  archive: ResolvedArchive;
  /** The ingest the archiveIngest function runs. */
  ingest: ArchiveIngestHandler;
}

export interface IndexCatchUpOptions {
  /** The blobs a query of [from, to) would list (name minutes widened as the query widens them); all when absent. */
  fromMs?: number;
  toMs?: number;
  /** Judge only: nothing is ingested. */
  dryRun?: boolean;
  /** Blobs ingested at once. Default {@link DEFAULT_INDEX_CONCURRENCY}. */
  concurrency?: number;
  /** Once aborted, no further blob is started; the ones being ingested finish and are reported. */
  signal?: AbortSignal;
}

export const DEFAULT_INDEX_CONCURRENCY = 4;
export const MAX_INDEX_CONCURRENCY = 32;
/** Manifests read ahead of the ingests: small, and most of them say "indexed" in a catch-up after a short outage. */
const JUDGEMENT_LOOKAHEAD = 32;
/** Ingests of one blob when it is rewritten while being read (`stale`): the next attempt indexes the new version. */
const INGEST_ATTEMPTS = 2;

/** What the index says of the listed version. */
export type IndexState = 'indexed' | 'missing' | 'stale';

/** What a run did with a blob. */
export type CatchUpOutcome =
  /** Indexed now (manifest created or replaced), no damage found. */
  | 'created'
  /** Indexed before the run, or by the trigger while it ran. */
  | 'already-indexed'
  /** Indexed now, and truncated or corrupt: the blob is in the quarantine (by name and ETag), its manifest says so. */
  | 'damaged'
  /** Deleted between the listing and the ingest. */
  | 'missing-since-listing'
  /** A transient failure (storage): the blob is left as it was; the next run takes it up. */
  | 'failed';

export interface CatchUpEntry {
  name: string;
  /** The version listed. */
  etag: ETag;
  /** What the index said of that version; null when the index could not be read (see `error`). */
  state: IndexState | null;
  /** What the run did; absent in a dry run. */
  outcome?: CatchUpOutcome;
  /** Ingest's own summary, for a blob that was ingested. */
  summary?: IngestSummary;
  /** Why the index could not be read, or the blob could not be ingested. */
  error?: string;
}

export interface IndexCatchUp extends AsyncIterable<CatchUpEntry> {
  /**
   * Names outside the file name format that a range left out: they have no minute to place in it. A run without
   * --from/--to ingests them, as the trigger does.
   */
  readonly unrecognizedSkipped: number;
}

/** The catch-up's dependencies from the process's services: the ingest archiveIngest runs, on the same store. */
export function indexCatchUpDepsFromServices(services: Services): IndexCatchUpDeps {
  const ingestDeps = ingestDepsFromServices(services);
  return { store: ingestDeps.store, archive: ingestDeps.archive, ingest: createArchiveIngestHandler(ingestDeps) };
}

/**
 * Judges every listed blob and, unless it is a dry run, ingests those not indexed at their listed version with at
 * most `concurrency` at once. Yields one entry per blob as it is settled: indexed blobs in name order, ingested ones
 * as they finish. A transient failure on one blob is that blob's entry (`failed`), never the end of the run; a
 * failure of the listing itself is thrown once the ingests under way have finished and been yielded. Any other
 * error (a defect, a configuration error) is thrown the same way, and no further blob is started.
 */
export function catchUpArchiveIndex(deps: IndexCatchUpDeps, options: IndexCatchUpOptions = {}): IndexCatchUp {
  const counters = { unrecognizedSkipped: 0 };
  return {
    get unrecognizedSkipped() {
      return counters.unrecognizedSkipped;
    },
    [Symbol.asyncIterator]: () => run(deps, options, counters),
  };
}

interface Candidate {
  name: string;
  etag: ETag;
  /** Never rejects (it may be read ahead and never awaited): a failed read is `{ state: null, error }`. */
  judgement: Promise<Judgement>;
}

/** `fatal`: a failure that is not transient, thrown when the blob's turn comes. */
type Judgement = { state: IndexState; error?: undefined; fatal?: undefined } | { state: null; error: string; fatal?: unknown };

type Settled = { entry: CatchUpEntry } | { error: unknown };

async function* run(
  deps: IndexCatchUpDeps,
  options: IndexCatchUpOptions,
  counters: { unrecognizedSkipped: number },
): AsyncGenerator<CatchUpEntry> {
  const { store, archive } = deps;
  const concurrency = options.concurrency ?? DEFAULT_INDEX_CONCURRENCY;
  const window = nameMinuteWindow(options.fromMs, options.toMs, archive.config);
  const listing = listArchiveBlobs(store, archive.container, archive.format, {
    window,
    batchFrequencySeconds: archive.config.batchFrequencySeconds,
  });
  async function* candidates(): AsyncGenerator<Candidate> {
    for await (const listed of listing) {
      // The trigger ingests every blob of the container, whatever its name; a range can only place named ones.
      if (listed.kind === 'unrecognized' && window !== null) {
        counters.unrecognizedSkipped++;
        continue;
      }
      const { name, etag } = listed.item;
      yield { name, etag, judgement: judge(store, archive, name, etag) };
    }
  }
  const lookahead = prefetch(candidates(), Math.max(JUDGEMENT_LOOKAHEAD, concurrency));

  // Ingests under way report into `finished` as they settle, so that each is yielded at the next turn of the loop
  // rather than behind the judgements of the blobs listed after it.
  let inFlight = 0;
  const finished: Settled[] = [];
  let wake: (() => void) | null = null;
  let failure: { error: unknown } | undefined;
  const start = (listed: Pick<CatchUpEntry, 'name' | 'etag' | 'state'>): void => {
    inFlight++;
    void ingestOne(deps.ingest, listed)
      .then(
        (entry): Settled => ({ entry }),
        (error: unknown): Settled => ({ error }),
      )
      .then((settled) => {
        inFlight--;
        finished.push(settled);
        wake?.();
      });
  };
  const takeFinished = (): CatchUpEntry[] => {
    const entries: CatchUpEntry[] = [];
    for (const settled of finished.splice(0)) {
      if ('entry' in settled) entries.push(settled.entry);
      else failure ??= { error: settled.error };
    }
    return entries;
  };
  const someFinished = async (): Promise<void> => {
    if (finished.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
  };
  // A function, not an expression: settling ingests and the signal change what it answers between two checks.
  const stopped = (): boolean => failure !== undefined || options.signal?.aborted === true;

  try {
    try {
      while (!stopped()) {
        yield* takeFinished();
        const next = await lookahead.next();
        if (next.done === true) break;
        const { name, etag } = next.value;
        const judged = await next.value.judgement;
        if (judged.fatal !== undefined) throw judged.fatal;
        const entry: CatchUpEntry = { name, etag, state: judged.state, ...(judged.error === undefined ? {} : { error: judged.error }) };
        if (options.dryRun === true) {
          yield entry;
          continue;
        }
        if (judged.state === 'indexed') {
          yield { ...entry, outcome: 'already-indexed' };
          continue;
        }
        // Missing, stale, or not known (the index could not be read): ingest decides again from the index itself.
        // That second read of the manifest is kept on purpose, not handed the judgement: the judgement was read up
        // to JUDGEMENT_LOOKAHEAD blobs ahead and may have waited behind ingests of blobs of up to 500 MiB, while the
        // trigger (Event Grid redelivering the events of an outage) may index the blob meanwhile. A fresh read of a
        // few KB then spares that download. storeManifest reads it a third time: the conditional write's own read.
        while (inFlight >= concurrency) {
          await someFinished();
          yield* takeFinished();
        }
        if (stopped()) break;
        start({ name, etag, state: judged.state });
      }
    } catch (error) {
      failure ??= { error };
    }
    // Whatever stopped the run, the ingests under way finish and are reported before it ends.
    while (inFlight > 0 || finished.length > 0) {
      await someFinished();
      yield* takeFinished();
    }
  } finally {
    await lookahead.return();
  }
  if (failure !== undefined) throw failure.error;
}

async function judge(
  store: BlobStore,
  archive: ResolvedArchive,
  name: string,
  etag: ETag,
): Promise<Judgement> {
  try {
    const stored = await readManifest(store, archive.indexContainer, archive.container, name);
    if (stored === null) return { state: 'missing' };
    // A manifest of another version, or one no reader can use, says nothing about this one (as in query.ts).
    return { state: stored.manifest?.blob.etag === etag ? 'indexed' : 'stale' };
  } catch (error) {
    return { state: null, error: (error as Error).message, ...(isTransient(error) ? {} : { fatal: error }) };
  }
}

/** One blob through ingest; a transient failure is its outcome, anything else is thrown. */
async function ingestOne(ingest: ArchiveIngestHandler, listed: Pick<CatchUpEntry, 'name' | 'etag' | 'state'>): Promise<CatchUpEntry> {
  try {
    for (let attempt = 1; ; attempt++) {
      const summary = await ingest(listed.name);
      switch (summary.outcome) {
        case 'created':
        case 'replaced':
          return { ...listed, outcome: summary.damage === null ? 'created' : 'damaged', summary };
        case 'unchanged':
          return { ...listed, outcome: 'already-indexed', summary };
        case 'missing':
          return { ...listed, outcome: 'missing-since-listing', summary };
        case 'stale':
          // Rewritten while it was read: nothing was written, and the next attempt reads the new version.
          if (attempt < INGEST_ATTEMPTS) continue;
          return { ...listed, outcome: 'failed', summary, error: `rewritten ${attempt} times while being indexed` };
      }
    }
  } catch (error) {
    if (!isTransient(error)) throw error;
    return { ...listed, outcome: 'failed', error: (error as Error).message };
  }
}
