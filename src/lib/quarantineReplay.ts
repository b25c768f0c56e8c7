/**
 * Replays quarantined messages once their cause is fixed: a device corrected, routing.config.json's checks or
 * enrichment rules amended. Each record is rebuilt into the message it was written from (the original bytes) and
 * handed to the same handler its endpoint's function runs, with today's configuration:
 *
 * - `events`: the telemetry stream handler, on the message's own Event Hubs partition. Its windows have usually
 *   closed, so it counts as late: recorded, and the window's report gets a new revision (ADR 0007).
 * - `criticalQueue`: the critical alert handler, with its ledger, gate and digests (ADR 0009).
 *
 * Invariant (effectively-once): a replay is one more delivery of the message. Both handlers dedupe by message
 * identity (the window's identity list, the alert ledger), so replaying twice, or replaying a message that also
 * reached its handler another way, changes nothing. A record is deleted only after its handler took the message,
 * and only in the version the replay read (a record another replay rewrote meanwhile stays, reported `failed`);
 * a message the checks still refuse stays, its record's reasons replaced by today's (`Quarantine.forReplay`).
 * Records keep messages as delivered, `$twin` placeholders unresolved (admit.ts), so a twin fixed since is read
 * again. A crash between the handler and the deletion leaves the record
 * for the next replay, which the handler then counts as a duplicate.
 *
 * Archive records and damaged archive blobs are not replayed here: the archive is files in storage. Ingest judges
 * a blob again when it changes (`iot-routing archive index` re-ingests every blob whose manifest is missing or names
 * another ETag), and `iot-routing aggregate` computes reports from archive files. Digests the e-mail service refused are not
 * messages; their alerts are in the ledger.
 */
import { telemetryStreamFromServices, verifyStoredConfiguration, type TelemetryStreamHandler } from './aggregate/telemetryStream.js';
import { unwindowableCode } from './aggregate/windows.js';
import { alertsConfigOf, createAlertServices } from './alerts/alertServices.js';
import { ledgerVerdict, type CriticalAlertHandler } from './alerts/criticalAlertHandler.js';
import type { AlertLedger, LedgerState } from './alerts/ledger.js';
import { checkAdmission, quarantiningCodes, type AdmitDeps } from './checks/admit.js';
import { isTransient, RoutingError } from './errors.js';
import type { RoutedMessage } from './message/RoutedMessage.js';
import type { Services } from './runtime.js';
import { ARCHIVE_DAMAGE_CODES, quarantinedMessage, quarantineReasonCodes, type Quarantine, type QuarantineListItem } from './storage/quarantine.js';

export const REPLAYABLE_ENDPOINTS = ['events', 'criticalQueue'] as const;
export type ReplayableEndpoint = (typeof REPLAYABLE_ENDPOINTS)[number];

export interface ReplayFilter {
  endpoint?: ReplayableEndpoint;
  reason?: string;
  deviceId?: string;
}

export interface ReplayDeps {
  quarantine: Quarantine;
  /**
   * The handlers, built only for the endpoints being replayed (the alert path needs its e-mail settings), on the
   * quarantine they are given: `quarantine.forReplay()`, so that a message refused again has today's reasons.
   */
  handlers: (
    endpoint: ReplayableEndpoint,
    quarantine: Quarantine,
  ) => Promise<{ events?: TelemetryStreamHandler; criticalQueue?: CriticalAlertHandler }>;
  /** For a dry run: nothing is processed or deleted, and the verdict is the handler's, found without acting. */
  dryRun?: DryRun;
}

export interface DryRun {
  /** What admit judges with: the checks, the twin resolver, the clock. */
  admission: Pick<AdmitDeps, 'checks' | 'twins' | 'now'>;
  /** What the alert ledger says would settle a critical message before any send (`ledgerVerdict`), if anything. */
  alertState?: ((message: RoutedMessage) => Promise<LedgerState | undefined>) | undefined;
  /**
   * Throws what would stop the real replay of a telemetry message before it is counted (the reports container
   * written with another base window), so that a dry run does not promise what the run cannot do.
   */
  windowsReady?: (() => Promise<void>) | undefined;
}

export type ReplayResult = { name: string; endpoint: string; deviceId: string | null } & (
  /** The handler took it (what it did, e.g. `aggregated`, `late`, `sent`, `duplicate`); the record was deleted. */
  | { outcome: 'replayed'; detail: string }
  /** A dry run: the checks would let it through. */
  | { outcome: 'would-replay' }
  /** The checks still refuse it, for these reasons; the record stays. */
  | { outcome: 'quarantined'; reasons: string[] }
  | { outcome: 'skipped'; why: string }
  /**
   * A transient failure (storage, the e-mail service, the twin registry, the alert still owned by another run, the
   * record rewritten by another replay after the handler took the message): the record stays, and a later replay
   * takes it up; the next records are still replayed.
   */
  | { outcome: 'failed'; error: string }
);

function isReplayable(endpoint: string): endpoint is ReplayableEndpoint {
  return (REPLAYABLE_ENDPOINTS as readonly string[]).includes(endpoint);
}

/**
 * Replays every quarantined message matching `filter`, one at a time in listing order, yielding what became of
 * each. A transient failure on one record is that record's outcome (`failed`), so that one stuck record (an alert
 * still owned by an interrupted run, say) does not keep every record after it from being replayed; running the
 * replay again picks up what failed. Anything else (a configuration error, a defect) is thrown.
 */
export async function* replayQuarantined(deps: ReplayDeps, filter: ReplayFilter = {}): AsyncIterable<ReplayResult> {
  // Listed first: the replay deletes records as it goes, and a listing under way should not see its own deletions.
  const items: QuarantineListItem[] = [];
  for await (const item of deps.quarantine.list(filter)) items.push(item);
  const replaying = deps.quarantine.forReplay();
  for (const item of items) {
    try {
      yield await replayOne(deps, replaying, item);
    } catch (error) {
      if (!isTransient(error)) throw error;
      yield { name: item.name, endpoint: item.endpoint, deviceId: item.deviceId, outcome: 'failed', error: (error as Error).message };
    }
  }
}

/**
 * The reason codes a replay can meet: every one but the archive damage codes, which only damaged archive blobs
 * carry (judged again by `iot-routing archive index` once the blob is rewritten; `iot-routing aggregate` reads it).
 */
export function replayableReasonCodes(): string[] {
  const damage = new Set<string>(ARCHIVE_DAMAGE_CODES);
  return quarantineReasonCodes().filter((code) => !damage.has(code));
}

async function replayOne(deps: ReplayDeps, replaying: Quarantine, item: QuarantineListItem): Promise<ReplayResult> {
  const base = { name: item.name, endpoint: item.endpoint, deviceId: item.deviceId };
  if (item.kind !== 'message') {
    return { ...base, outcome: 'skipped', why: item.kind === 'digest' ? 'a refused digest, not a message' : 'a damaged archive blob: `iot-routing archive index` judges it again once it is rewritten; `iot-routing aggregate` reads its records' };
  }
  if (!isReplayable(item.endpoint)) {
    return { ...base, outcome: 'skipped', why: `${item.endpoint} records are archive records: replay the archive blob instead` };
  }
  const record = await deps.quarantine.get(item.name);
  if (record === null) return { ...base, outcome: 'skipped', why: 'gone (another replay took it)' };
  const entry = record.value;
  if (entry.kind !== 'message') return { ...base, outcome: 'skipped', why: `a ${entry.kind} record` };
  const message = quarantinedMessage(entry);
  if (deps.dryRun !== undefined) return { ...base, ...(await judge(deps.dryRun, message, item.endpoint)) };

  const handlers = await deps.handlers(item.endpoint, replaying);
  let detail: string;
  if (item.endpoint === 'events') {
    const stream = handlers.events;
    if (stream === undefined) throw new Error('replay: no telemetry stream handler');
    const partition = message.source.kind === 'eventHub' ? message.source.partitionId : null;
    const result = await stream.processBatch([message], partition === null ? {} : { partition });
    if (result.quarantined > 0) return { ...base, outcome: 'quarantined', reasons: Object.keys(result.quarantinedBy).sort() };
    detail =
      result.duplicates > 0 ? 'duplicate (already counted)' : result.aggregated > 0 ? (result.late > 0 ? 'aggregated, late' : 'aggregated') : 'counted (other level)';
  } else {
    const alerts = handlers.criticalQueue;
    if (alerts === undefined) throw new Error('replay: no critical alert handler');
    const outcome = await alerts.handle(message);
    if (outcome.outcome === 'quarantined') return { ...base, outcome: 'quarantined', reasons: [...outcome.reasons].sort() };
    // The e-mail service refused this alert before, and the ledger keeps that verdict (ADR 0009): it stays
    // quarantined until a person deletes its ledger record, after fixing the cause.
    if (outcome.outcome === 'duplicate' && outcome.state === 'failed') return { ...base, outcome: 'quarantined', reasons: ['EmailRejected'] };
    detail = outcome.outcome === 'duplicate' ? `duplicate (${outcome.state})` : outcome.outcome;
  }
  // Invariant: a replay deletes only the version of the record it read (If-Match). A record rewritten since (another
  // replay, with another configuration, refused the message again and wrote its reasons) is that replay's verdict
  // and stays; this record is then `failed` (a lost race is transient), and the next replay finds the message
  // already counted or sent and deletes the record it reads. Gone already: another replay took it, as this one did.
  const removed = await deps.quarantine.remove(item.name, record.etag);
  if (!removed.deleted && removed.reason === 'conditionNotMet') {
    throw new RoutingError('StorageConflict', `${detail}, but the record changed while it was replayed (another replay rewrote it): kept, replay it again`);
  }
  return { ...base, outcome: 'replayed', detail };
}

/**
 * What the replay would do with `message`, without doing it, in the order its handler decides: twins resolved and
 * the checks (admit.ts); then, for telemetry, whether it can be placed in a window (the aggregation quarantines a
 * message without a device or enqueued time that the checks let through as a warning); for an alert, whether the
 * e-mail service refused it for good (a `failed` ledger record, which keeps the alert quarantined until a person
 * deletes it).
 */
async function judge(dryRun: DryRun, message: RoutedMessage, endpoint: ReplayableEndpoint): Promise<{ outcome: 'would-replay' } | { outcome: 'quarantined'; reasons: string[] }> {
  const { message: resolved, check } = await checkAdmission(message, endpoint, dryRun.admission, dryRun.admission.now());
  if (check.outcome === 'quarantine') return { outcome: 'quarantined', reasons: quarantiningCodes(check) };
  if (endpoint === 'events') {
    const code = unwindowableCode(resolved);
    if (code !== undefined) return { outcome: 'quarantined', reasons: [code] };
    await dryRun.windowsReady?.();
  } else if ((await dryRun.alertState?.(resolved)) === 'failed') {
    return { outcome: 'quarantined', reasons: ['EmailRejected'] };
  }
  return { outcome: 'would-replay' };
}

/**
 * A replay's dependencies from the process's services: the handlers each endpoint's function runs, built on first
 * use on the replay's quarantine (the telemetry path writes through `admitDeps` and the handler alike), and for a
 * dry run what they would consult: the admission, the alert ledger (through the alert services, which also check
 * the alert settings the run needs, and send nothing) and the reports container's base window.
 */
export function replayDepsFromServices(services: Services, options: { dryRun?: boolean } = {}): ReplayDeps {
  const handlers: { events?: TelemetryStreamHandler; criticalQueue?: CriticalAlertHandler } = {};
  const deps: ReplayDeps = {
    quarantine: services.quarantine,
    handlers: async (endpoint, quarantine) => {
      const replaying: Services = { ...services, quarantine, admitDeps: { ...services.admitDeps, quarantine } };
      if (endpoint === 'events') handlers.events ??= telemetryStreamFromServices(replaying);
      else handlers.criticalQueue ??= createAlertServices(replaying).handler;
      return handlers;
    },
  };
  if (options.dryRun !== true) return deps;
  let ledger: AlertLedger | undefined;
  let windowsChecked: Promise<void> | undefined;
  deps.dryRun = {
    admission: services.admitDeps,
    alertState: async (message) => {
      ledger ??= createAlertServices(services).stores.ledger;
      return ledgerVerdict(ledger, alertsConfigOf(services.config), message);
    },
    windowsReady: () => (windowsChecked ??= verifyStoredConfiguration(services)),
  };
  return deps;
}
