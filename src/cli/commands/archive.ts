import {
  catchUpArchiveIndex,
  DEFAULT_INDEX_CONCURRENCY,
  indexCatchUpDepsFromServices,
  MAX_INDEX_CONCURRENCY,
  type CatchUpEntry,
  type CatchUpOutcome,
  type IndexState,
} from '../../lib/archive/indexCatchUp.js';
import { describeIngest } from '../../lib/archive/ingest.js';
import { connectionFrom } from '../../lib/config.js';
import { isTransient } from '../../lib/errors.js';
import type { ServiceOverrides } from '../../lib/runtime.js';
import { appServices, EXIT, interruptSignal, parseCommandArgs, timeRangeOptions, UsageError, wholeNumber, writeLine, type CliIo } from '../io.js';

export const archiveUsage = `iot-routing archive index [--from ISO] [--to ISO] [--dry-run] [--concurrency N] [--config routing.config.json]
  Catches the archive index up with the archive, for the blobs no trigger announced: written before the app or its
  Event Grid subscription was deployed, or while it was missing, or whose event Event Grid dropped (after 24 hours
  of failed delivery). Lists the archive blobs (all, or those a query of [--from, --to) would list) and judges
  each from the index alone: indexed (a manifest for the listed ETag), missing (none) or stale (a manifest for
  another version). --dry-run prints the counts and a few names. Otherwise the missing and stale blobs go through
  the archiveIngest function's own ingest, --concurrency at once (default ${DEFAULT_INDEX_CONCURRENCY}, at most ${MAX_INDEX_CONCURRENCY}): their records are checked
  (quarantined as the function would), and they are indexed. Progress goes to stderr, the summary to stdout.
  Running it twice, or while the trigger runs, changes nothing more. Ctrl+C starts no further blob; the ones under
  way finish. Uses the app settings in the environment (AzureWebJobsStorage, ARCHIVE_CONTAINER,
  ARCHIVE_INDEX_CONTAINER, QUARANTINE_CONTAINER) and --config, else ./routing.config.json (the checks, the archive
  section). Exit: --dry-run 0 when nothing is missing or stale, 3 otherwise; a run 0, 2 when damaged blobs were
  indexed (and quarantined); 4 when some failed for a transient reason (run it again); 130 when interrupted; 1 for
  usage and configuration errors.`;

/** Names shown per state by a dry run. */
const NAMES_SHOWN = 10;

/** `overrides`: what the tests substitute (a store that fails on chosen calls); the CLI passes none. */
export async function archiveCommand(args: string[], io: CliIo, overrides: ServiceOverrides = {}): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      concurrency: { type: 'string' },
      config: { type: 'string' },
    },
  });
  if (positionals.length !== 1 || positionals[0] !== 'index') {
    throw new UsageError(`archive takes index${positionals.length === 0 ? '' : `, not "${positionals.join(' ')}"`}`);
  }
  const range = timeRangeOptions(values);
  const concurrency =
    values.concurrency === undefined ? DEFAULT_INDEX_CONCURRENCY : wholeNumber(values.concurrency, '--concurrency', 1, MAX_INDEX_CONCURRENCY);
  const dryRun = values['dry-run'];
  if (connectionFrom(io.env, 'AzureWebJobsStorage') === null) {
    throw new UsageError('no storage: set AzureWebJobsStorage (or AzureWebJobsStorage__accountName) as the app has it');
  }
  // Ingest checks records with the configuration it is given: it must be the app's, so it is not guessed.
  const services = await appServices(io.env, values.config, 'index checks records with routing.config.json', overrides);
  const deps = indexCatchUpDepsFromServices(services);

  const scope = `container ${deps.archive.container}${describeRange(range)}`;
  const interrupt = interruptSignal(io, () => {
    io.stderr.write('interrupted: starting no further blob; the ones under way finish (Ctrl+C again to stop at once)\n');
  });
  const catchUp = catchUpArchiveIndex(deps, { ...range, dryRun, concurrency, signal: interrupt.signal });
  // Counts per state, and the first names of those that need work (a dry run shows them).
  const states: Record<IndexState | 'unreadable', number> = { indexed: 0, missing: 0, stale: 0, unreadable: 0 };
  const names: Record<'missing' | 'stale' | 'unreadable', string[]> = { missing: [], stale: [], unreadable: [] };
  const outcomes: Record<CatchUpOutcome, number> = { created: 0, 'already-indexed': 0, damaged: 0, 'missing-since-listing': 0, failed: 0 };
  let listed = 0;
  let listingFailure: string | undefined;
  try {
    for await (const entry of catchUp) {
      listed++;
      const state = entry.state ?? 'unreadable';
      states[state]++;
      if (state !== 'indexed' && names[state].length < NAMES_SHOWN) names[state].push(entry.name);
      if (entry.outcome !== undefined) {
        outcomes[entry.outcome]++;
        if (entry.outcome !== 'already-indexed') io.stderr.write(`${progressLine(entry, outcomes)}\n`);
      }
    }
  } catch (error) {
    // The listing failed: what was settled before is reported, and the run is to be repeated like a failed blob.
    if (!isTransient(error)) throw error;
    listingFailure = (error as Error).message;
  } finally {
    interrupt.dispose();
  }

  const interrupted = interrupt.signal.aborted;
  const counts =
    `indexed ${states.indexed}, missing ${states.missing}, stale ${states.stale}` +
    (states.unreadable > 0 ? `, index unreadable ${states.unreadable}` : '');
  if (dryRun) {
    await writeLine(io.stdout, `dry run, ${scope}: ${listed} blobs listed: ${counts}`);
    for (const state of ['missing', 'stale', 'unreadable'] as const) {
      for (const name of names[state]) await writeLine(io.stdout, `${state.padEnd(10)} ${name}`);
      const more = states[state] - names[state].length;
      if (more > 0) await writeLine(io.stdout, `${''.padEnd(10)} ... and ${more} more ${state}`);
    }
  } else {
    await writeLine(
      io.stdout,
      `${scope}: ${listed} blobs listed (${counts}): created ${outcomes.created}, already indexed ${outcomes['already-indexed']}, ` +
        `damaged ${outcomes.damaged}, missing since listing ${outcomes['missing-since-listing']}, failed ${outcomes.failed}`,
    );
  }
  if (catchUp.unrecognizedSkipped > 0) {
    io.stderr.write(`${catchUp.unrecognizedSkipped} names outside archive.fileNameFormat were left out: a run without --from/--to indexes them\n`);
  }
  if (listed === 0 && listingFailure === undefined) {
    io.stderr.write(`no blobs listed in ${scope}: check ARCHIVE_CONTAINER (or archive.container) and the range\n`);
  }
  if (listingFailure !== undefined) io.stderr.write(`listing the archive failed: ${listingFailure}; run it again\n`);
  if (outcomes.failed > 0 || states.unreadable > 0) io.stderr.write('some blobs failed for a transient reason (storage): run it again\n');
  if (interrupted) io.stderr.write('interrupted before every blob was settled: run it again to finish (indexed blobs are only judged again)\n');

  if (interrupted) return EXIT.interrupted;
  if (listingFailure !== undefined || outcomes.failed > 0 || states.unreadable > 0) return EXIT.transient;
  if (dryRun) return states.missing + states.stale > 0 ? EXIT.wouldQuarantine : EXIT.ok;
  return outcomes.damaged > 0 ? EXIT.damaged : EXIT.ok;
}

function describeRange(range: { fromMs?: number; toMs?: number }): string {
  if (range.fromMs === undefined && range.toMs === undefined) return '';
  const from = range.fromMs === undefined ? '' : new Date(range.fromMs).toISOString();
  const to = range.toMs === undefined ? '' : new Date(range.toMs).toISOString();
  return `, range [${from}, ${to})`;
}

function progressLine(entry: CatchUpEntry, outcomes: Record<CatchUpOutcome, number>): string {
  const settled = Object.values(outcomes).reduce((a, b) => a + b, 0) - outcomes['already-indexed'];
  const summary = entry.summary;
  const detail =
    entry.outcome === 'failed'
      ? (entry.error ?? '')
      : summary === undefined || entry.outcome === 'missing-since-listing'
        ? ''
        : describeIngest(summary);
  return `[${settled}] ${(entry.outcome ?? '').padEnd(21)} ${entry.name}${detail === '' ? '' : `  ${detail}`}`;
}
