/**
 * What the dashboard page shows, gathered from storage for one query: report series per device and field, the
 * latest critical alerts from the alert ledger, messages per route and per check outcome, and the most frequent
 * quarantine reasons with their hints.
 *
 * Every source is read with a bound, and the answer says where a bound cut it short (`coverage`, `notes`), so a
 * large deployment gets a partial page that says so rather than a slow one:
 * - reports: at most {@link MAX_DEVICE_FILTER} devices per request, each at most MAX_POINTS windows (the query
 *   validation guarantees it);
 * - devices: a hierarchical listing of the reports container per UTC day, one entry per device and day;
 * - alerts: a listing of `ledger/` (no downloads), then reads newest-first until the range is passed;
 * - quarantine: listings of the UTC days the range touches (reason codes and device ids are blob metadata), and of
 *   the refused digests, of which the newest are read for what they held;
 * - archive: a listing of the blobs whose names fall in the range, then their manifests, newest first.
 * Documents are cached by ETag between requests (etagCache.ts), so a refresh reads only what changed.
 */
import type { AggregationConfig } from '../aggregate/aggregationConfig.js';
import { mapLimit } from '../aggregate/mapLimit.js';
import { readReports, type WindowReport } from '../aggregate/reports.js';
import { baseWindowCheck } from '../aggregate/baseWindow.js';
import { blobWindowStore, type WindowStore } from '../aggregate/windowStore.js';
import { windowListPrefixes } from '../aggregate/windows.js';
import { EMAIL_REJECTED_HINT } from '../alerts/criticalAlertHandler.js';
import { DIGEST_REJECTED_HINT } from '../alerts/digestRunner.js';
import { ledgerListingTimes, type LedgerState } from '../alerts/ledger.js';
import type { ResolvedArchive } from '../archive/archiveDeps.js';
import { listArchiveBlobs, nameMinuteWindow } from '../archive/fileNameFormat.js';
import { readManifest, type ArchiveManifest } from '../archive/manifest.js';
import { ENDPOINT_NAMES, isReasonCode, REASONS, type EndpointName } from '../checks/reasons.js';
import type { BlobItem, BlobStore, Clock } from '../ports.js';
import { getJson } from '../storage/jsonDocuments.js';
import { DAMAGE_HINTS, digestDayPrefix, messageDayPrefix, quarantineListing, type ArchiveDamageCode } from '../storage/quarantine.js';
import { MAX_DEVICE_FILTER, MAX_POINTS, type DashboardQuery } from './dashboardParams.js';
import type { EtagCache } from './etagCache.js';

export interface SeriesPoint {
  /** The window's start, ISO 8601. */
  t: string;
  mean: number;
  min: number;
  max: number;
  count: number;
  /** Present while the window can still change (a partition's watermark has not passed its end). */
  open?: true;
}

export interface DashboardAlert {
  /** When the alert reached the ledger (its first delivery). */
  time: string;
  deviceId: string;
  status: LedgerState;
  attempts: number;
  /** failed: the permanent reason the e-mail service gave (at most 300 characters). */
  error?: string;
  /** digested: when the digest that holds it is due. */
  dueAt?: string;
}

/** A digest e-mail the e-mail service refused for good: its alerts (shown as digested) were not delivered. */
export interface DashboardRefusedDigest {
  /** When the refusal was quarantined. */
  time: string;
  deviceId: string;
  /** The alerts the digest held and the enqueued times of the first and last; null when its record cannot be read. */
  alerts: number | null;
  firstTime: string | null;
  lastTime: string | null;
  /** As the record gives them (a code this version does not know included); detail at most 300 characters. */
  reasons: Array<{ code: string; detail: string; hint: string }>;
  /** The quarantine record, for `iot-routing quarantine show`. */
  name: string;
}

export interface QuarantineReasonCount {
  code: string;
  count: number;
  summary: string;
  hint: string;
}

export interface DashboardCoverage {
  /** Devices with reports on the UTC days of the range, as listed; `limited` when the listing was cut short. */
  devices: { listed: number; limited: boolean; charted: number };
  /** Ledger records read (newest first) and whether the read bound stopped the walk before the range's start. */
  alerts: { listed: number; read: number; limited: boolean };
  /** Quarantine entries of these UTC days (their enqueued day) scanned. */
  quarantine: { days: string[]; scanned: number; limited: boolean };
  /** Archive blobs named in the range, those with a manifest, and whether the bounds cut the listing or reads. */
  archive: { blobs: number; indexed: number; limited: boolean } | null;
}

export interface DashboardData {
  generatedAt: string;
  window: string;
  /** The configured window sizes, smallest first. */
  windows: string[];
  /** The relative range asked for (`1h`), or null for an explicit from/to. */
  range: string | null;
  from: string;
  to: string;
  /** Devices with reports in the range (sorted), for the device filter. */
  devices: string[];
  /** The devices whose series follow: the filter, or the first devices when none is given. */
  charted: string[];
  /** Field names across the series; the configured fields in their order when configured. */
  fields: string[];
  series: Record<string, Record<string, SeriesPoint[]>>;
  /** Newest first. */
  alerts: DashboardAlert[];
  /** Messages that reached each route in the range; archive is null when it cannot be counted per device. */
  routes: { events: number; criticalQueue: number; archive: number | null };
  outcomes: { accept: number; warn: number; quarantine: number };
  /**
   * The counts of `routes` and `outcomes` that are lower bounds, because a scan behind them stopped at its limit or
   * only the charted devices were counted (`notes` says which); the page shows them as "at least".
   */
  lowerBounds: CountName[];
  quarantineTop: QuarantineReasonCount[];
  /**
   * Digests refused in the range (by when they were refused), newest first. Neither messages nor failed alerts: their
   * alerts are in `alerts` as digested, and no count above includes them.
   */
  refusedDigests: { count: number; latest: DashboardRefusedDigest[] };
  coverage: DashboardCoverage;
  /** Plain sentences on what the numbers cover, for the page. */
  notes: string[];
}

export type CountName = 'events' | 'criticalQueue' | 'archive' | 'accept' | 'warn' | 'quarantine' | 'refusedDigests';

export interface DashboardLimits {
  /** Devices listed for the filter. */
  devices: number;
  /** Rows of the alerts table. */
  alerts: number;
  /** Names listed under `ledger/`. */
  ledgerListed: number;
  /** Ledger records downloaded per request (cache hits included). */
  ledgerReads: number;
  /** Quarantine entries listed. */
  quarantineScanned: number;
  /** Reasons shown. */
  quarantineTop: number;
  /** Archive blobs listed. */
  archiveListed: number;
  /** Manifests read per request (cache hits included). */
  manifestReads: number;
  /** Storage calls in flight. */
  concurrency: number;
}

export const DEFAULT_DASHBOARD_LIMITS: Readonly<DashboardLimits> = Object.freeze({
  devices: 1000,
  alerts: 20,
  ledgerListed: 20_000,
  ledgerReads: 500,
  quarantineScanned: 10_000,
  quarantineTop: 5,
  archiveListed: 20_000,
  manifestReads: 500,
  concurrency: 8,
});

export interface DashboardDeps {
  store: BlobStore;
  clock: Clock;
  aggregation: AggregationConfig;
  reportsContainer: string;
  alertsContainer: string;
  quarantineContainer: string;
  /** Null when no archive container is configured: the archive route is then not counted. */
  archive: ResolvedArchive | null;
  cache: EtagCache;
  limits?: Partial<DashboardLimits>;
}

export type DashboardDataSource = (query: DashboardQuery) => Promise<DashboardData>;

const DAY_MS = 86_400_000;
const LEDGER_STATES: readonly LedgerState[] = ['in-progress', 'sent', 'digested', 'failed'];

export function createDashboardDataSource(deps: DashboardDeps): DashboardDataSource {
  const limits: DashboardLimits = { ...DEFAULT_DASHBOARD_LIMITS, ...deps.limits };
  // Before anything is read: charts from a container written with another base window would be empty or partial
  // and look complete. ConfigInvalid, which the data endpoint answers as 503 Misconfigured, as GET /api/reports does.
  const verifyBase = baseWindowCheck(blobWindowStore(deps.store, deps.reportsContainer), deps.aggregation.windows[0]!);
  return async (query) => {
    await verifyBase();
    const filter = query.deviceIds.length > 0 ? new Set(query.deviceIds) : null;
    const [listed, alerts, quarantine, archive] = await Promise.all([
      listDevices(deps, query, limits),
      readAlerts(deps, query, filter, limits),
      scanQuarantine(deps, query, filter, limits).then(async (scan) => ({ ...scan, refused: await readRefusedDigests(deps, scan.digests, limits) })),
      filter === null && deps.archive !== null ? countArchive(deps, deps.archive, query, limits) : Promise.resolve(null),
    ]);
    const charted = filter !== null ? query.deviceIds : listed.devices.slice(0, MAX_DEVICE_FILTER);
    const reports = await readSeries(deps, query, charted, limits);
    const chartedAll = filter !== null || (!listed.limited && listed.devices.length <= charted.length);

    const fieldSet = new Set<string>();
    const events = { messages: 0, accept: 0, warn: 0 };
    const series = Object.fromEntries(
      charted.map((deviceId, i) => {
        const byField = new Map<string, SeriesPoint[]>();
        for (const report of reports[i] ?? []) {
          events.messages += report.messages;
          events.accept += report.byOutcome.accept;
          events.warn += report.byOutcome.warn;
          for (const [field, stats] of Object.entries(report.fields)) {
            fieldSet.add(field);
            let points = byField.get(field);
            if (points === undefined) byField.set(field, (points = []));
            points.push({
              t: report.windowStart,
              mean: stats.mean,
              min: stats.min,
              max: stats.max,
              count: stats.count,
              ...(report.status === 'open' ? { open: true as const } : {}),
            });
          }
        }
        // fromEntries, never assignment: device ids and field names come from devices, and `__proto__` is a valid
        // IoT Hub device id.
        return [deviceId, Object.fromEntries(byField)] as const;
      }),
    );
    const configured = deps.aggregation.fields;
    const fields = configured === null ? [...fieldSet].sort() : [...configured.filter((f) => fieldSet.has(f)), ...[...fieldSet].filter((f) => !configured.includes(f)).sort()];

    const countArchiveRoute = archive !== null && chartedAll;
    const archiveCut = countArchiveRoute && archive.limited;
    const lowerBounds: CountName[] = [];
    if (quarantine.limited || !chartedAll) lowerBounds.push('events');
    if (alerts.limited || quarantine.limited) lowerBounds.push('criticalQueue');
    if (archiveCut) lowerBounds.push('archive');
    if (archiveCut || !chartedAll) lowerBounds.push('accept', 'warn');
    if (quarantine.limited || archiveCut) lowerBounds.push('quarantine');
    if (quarantine.limited) lowerBounds.push('refusedDigests');
    const data: DashboardData = {
      generatedAt: deps.clock.now().toISOString(),
      window: query.window.label,
      windows: deps.aggregation.windows.map((w) => w.label),
      range: query.range,
      from: new Date(query.fromMs).toISOString(),
      to: new Date(query.toMs).toISOString(),
      devices: listed.devices,
      charted,
      fields,
      series,
      alerts: alerts.latest,
      routes: {
        events: events.messages + quarantine.byEndpoint.events,
        criticalQueue: alerts.count + quarantine.byEndpoint.criticalQueue,
        archive: countArchiveRoute ? archive.records : null,
      },
      outcomes: {
        accept: events.accept + (countArchiveRoute ? archive.accept : 0),
        warn: events.warn + (countArchiveRoute ? archive.warn : 0),
        quarantine: quarantine.byEndpoint.events + quarantine.byEndpoint.criticalQueue + quarantine.failedAlerts + (countArchiveRoute ? archive.quarantine : quarantine.byEndpoint.archive),
      },
      lowerBounds,
      quarantineTop: [...quarantine.reasons.entries()]
        .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, limits.quarantineTop)
        .map(([code, count]) => ({ code, count, ...describeReason(code) })),
      refusedDigests: { count: quarantine.digests.length, latest: quarantine.refused },
      coverage: {
        devices: { listed: listed.devices.length, limited: listed.limited, charted: charted.length },
        alerts: { listed: alerts.listed, read: alerts.read, limited: alerts.limited },
        quarantine: { days: quarantine.days, scanned: quarantine.scanned, limited: quarantine.limited },
        archive: archive === null ? null : { blobs: archive.blobs, indexed: archive.indexed, limited: archive.limited },
      },
      notes: [],
    };
    data.notes = notesFor(data, { archiveConfigured: deps.archive !== null, chartedAll, limits });
    return data;
  };
}

// ---- devices and series ---------------------------------------------------------------------------------------

async function listDevices(
  deps: DashboardDeps,
  query: DashboardQuery,
  limits: DashboardLimits,
): Promise<{ devices: string[]; limited: boolean }> {
  const devices = new Set<string>();
  // One entry per device and day, so the listing is bounded by the device bound times the days of the range.
  // Newest day first: a cut-short listing keeps the devices that reported most recently.
  const prefixes = windowListPrefixes(query.window, { fromMs: query.fromMs, toMs: query.toMs }, undefined).reverse();
  for (const prefix of prefixes) {
    for await (const item of deps.store.listHierarchy(deps.reportsContainer, prefix, { delimiter: '/' })) {
      if (item.kind !== 'prefix') continue;
      const deviceId = decodeSegment(item.name.slice(prefix.length, -1));
      if (deviceId === null || devices.has(deviceId)) continue;
      if (devices.size >= limits.devices) return { devices: [...devices].sort(), limited: true };
      devices.add(deviceId);
    }
  }
  return { devices: [...devices].sort(), limited: false };
}

function decodeSegment(segment: string): string | null {
  try {
    return segment === '' ? null : decodeURIComponent(segment);
  } catch {
    return null;
  }
}

async function readSeries(
  deps: DashboardDeps,
  query: DashboardQuery,
  devices: readonly string[],
  limits: DashboardLimits,
): Promise<WindowReport[][]> {
  const windows = cachedWindowStore(deps.store, deps.reportsContainer, deps.cache);
  const range = { fromMs: query.fromMs, toMs: query.toMs };
  // Two devices at a time, each with half the read concurrency: the storage calls in flight stay at the bound.
  return mapLimit(devices, 2, (deviceId) =>
    readReports(windows, deps.aggregation, { window: query.window, deviceId, range }, {
      maxReports: MAX_POINTS + 1,
      concurrency: Math.max(1, Math.floor(limits.concurrency / 2)),
    }),
  );
}

/**
 * A read-only view of the reports container for `readReports` that serves unchanged documents from the cache:
 * `readReports` lists before it reads, so every document it asks for has just been listed with its ETag. Partition
 * documents are not listed and are always read (there is one per partition).
 */
export function cachedWindowStore(store: BlobStore, container: string, cache: EtagCache): WindowStore {
  const listed = new Map<string, string>();
  return {
    update() {
      throw new Error('the dashboard reads reports and never writes them');
    },
    async get<T>(name: string, decode: (raw: unknown) => T): Promise<T | null> {
      const key = `${container}/${name}`;
      const etag = listed.get(name);
      if (etag !== undefined) {
        const hit = cache.get(key, etag);
        if (hit !== undefined) return hit as T;
      }
      // getJson, as every reader of the container: a damaged document is named (isUndecodableDocument), not a bare
      // SyntaxError.
      const document = await getJson(store, container, name, decode);
      if (document === null) return null;
      cache.set(key, document.etag, document.value);
      return document.value;
    },
    async *list(prefix: string) {
      for await (const item of store.list(container, prefix)) {
        listed.set(item.name, item.etag);
        yield item.name;
      }
    },
  };
}

// ---- alerts ---------------------------------------------------------------------------------------------------

interface LedgerView {
  kind: 'alert' | 'digest';
  deviceId: string;
  state: LedgerState;
  attempts: number;
  createdMs: number;
  updatedMs: number;
  error?: string;
  dueAt?: string;
}

/** The fields the dashboard shows; null for a document that is not a ledger record (hand-edited, other schema). */
export function decodeLedgerView(raw: unknown): LedgerView | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  if (r['schema'] !== 1 || (r['kind'] !== 'alert' && r['kind'] !== 'digest')) return null;
  if (typeof r['deviceId'] !== 'string' || !(LEDGER_STATES as readonly unknown[]).includes(r['state'])) return null;
  const createdMs = typeof r['createdAt'] === 'string' ? Date.parse(r['createdAt']) : NaN;
  const updatedMs = typeof r['updatedAt'] === 'string' ? Date.parse(r['updatedAt']) : NaN;
  if (Number.isNaN(createdMs) || Number.isNaN(updatedMs)) return null;
  return {
    kind: r['kind'],
    deviceId: r['deviceId'],
    state: r['state'] as LedgerState,
    attempts: typeof r['attempts'] === 'number' ? r['attempts'] : 1,
    createdMs,
    updatedMs,
    ...(typeof r['error'] === 'string' ? { error: r['error'] } : {}),
    ...(typeof r['dueAt'] === 'string' ? { dueAt: r['dueAt'] } : {}),
  };
}

/**
 * Where a ledger record stands against the range in a walk of records newest-written first, from its listing
 * metadata or from the record itself: `passed` once it was last written before the range (every later one was too,
 * and createdAt <= updatedAt: none of them can have been created in the range, so the walk stops), `in` for an
 * alert created in the range, else `out`.
 */
function placeInRange(times: { kind: string; createdMs: number; updatedMs: number }, query: DashboardQuery): 'passed' | 'in' | 'out' {
  if (times.updatedMs < query.fromMs) return 'passed';
  return times.kind === 'alert' && times.createdMs >= query.fromMs && times.createdMs < query.toMs ? 'in' : 'out';
}

async function readAlerts(
  deps: DashboardDeps,
  query: DashboardQuery,
  filter: ReadonlySet<string> | null,
  limits: DashboardLimits,
): Promise<{ latest: DashboardAlert[]; count: number; listed: number; read: number; limited: boolean }> {
  const items: BlobItem[] = [];
  let limited = false;
  for await (const item of deps.store.list(deps.alertsContainer, 'ledger/')) {
    if (items.length >= limits.ledgerListed) {
      limited = true;
      break;
    }
    items.push(item);
  }
  // Ledger names are alert keys (hashes), so the listing has no time order; Last-Modified gives the order of the
  // records' last writes, which is the order of their `updatedAt`.
  items.sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime() || (a.name < b.name ? -1 : 1));

  // Records whose listing metadata (every write stores it, see ledger.ts) shows them outside the range are not
  // downloaded: a range in the past, with many alerts since, used to spend every read on records created after it
  // and then count nothing. The walk stops at the first one last written before the range, as below. Records of
  // earlier builds have no such metadata and are read.
  const candidates: BlobItem[] = [];
  for (const item of items) {
    const times = ledgerListingTimes(item.metadata);
    const place = times === undefined ? 'in' : placeInRange(times, query);
    if (place === 'passed') break;
    if (place === 'in') candidates.push(item);
  }

  const inRange: LedgerView[] = [];
  let read = 0;
  let passed = false;
  for (let start = 0; start < candidates.length && !passed; start += limits.concurrency) {
    if (read >= limits.ledgerReads) {
      limited = true;
      break;
    }
    const batch = candidates.slice(start, Math.min(start + limits.concurrency, start + limits.ledgerReads - read));
    const records = await mapLimit(batch, limits.concurrency, (item) => cachedJson(deps, deps.alertsContainer, item, decodeLedgerView));
    read += batch.length;
    for (const record of records) {
      if (record === null) continue;
      const place = placeInRange(record, query);
      if (place === 'passed') {
        passed = true;
        break;
      }
      if (place === 'out') continue;
      if (filter !== null && !filter.has(record.deviceId)) continue;
      inRange.push(record);
    }
  }
  inRange.sort((a, b) => b.createdMs - a.createdMs || (a.deviceId < b.deviceId ? -1 : 1));
  return {
    latest: inRange.slice(0, limits.alerts).map((r) => ({
      time: new Date(r.createdMs).toISOString(),
      deviceId: r.deviceId,
      status: r.state,
      attempts: r.attempts,
      ...(r.state === 'failed' && r.error !== undefined ? { error: r.error.slice(0, 300) } : {}),
      ...(r.state === 'digested' && r.dueAt !== undefined ? { dueAt: r.dueAt } : {}),
    })),
    count: inRange.length,
    listed: items.length,
    read,
    limited,
  };
}

/** A listed JSON blob, decoded, from the cache when its ETag has not changed; null when absent or not decodable. */
async function cachedJson<T>(deps: DashboardDeps, container: string, item: BlobItem, decode: (raw: unknown) => T | null): Promise<T | null> {
  const key = `${container}/${item.name}`;
  const hit = deps.cache.get(key, item.etag);
  if (hit !== undefined) return hit as T | null;
  const document = await deps.store.get(container, item.name);
  if (document === null) return null;
  let value: T | null;
  try {
    value = decode(JSON.parse(document.body.toString('utf8')));
  } catch {
    value = null;
  }
  deps.cache.set(key, document.etag, value);
  return value;
}

// ---- quarantine -----------------------------------------------------------------------------------------------

interface QuarantineScan {
  /** Messages quarantined on each route (entries under `messages/{endpoint}/`), failed alerts excluded. */
  byEndpoint: Record<EndpointName, number>;
  /** Critical messages quarantined because the e-mail service refused them: their ledger record counts them. */
  failedAlerts: number;
  reasons: Map<string, number>;
  /** Refused digests of the range, by when they were refused, in listing order (`readRefusedDigests` takes the newest). */
  digests: ListedDigest[];
  days: string[];
  scanned: number;
  limited: boolean;
}

interface ListedDigest {
  item: BlobItem;
  deviceId: string | null;
  codes: string[];
  atMs: number;
}

/**
 * Reason counts from the quarantine's listing (quarantine.ts writes the codes and the device id as blob metadata),
 * over the UTC days the range touches: message entries are laid out by enqueued day, damaged archive blobs are
 * taken by the day they were quarantined. Newest day first, so a cut-short scan keeps the most recent entries.
 */
async function scanQuarantine(
  deps: DashboardDeps,
  query: DashboardQuery,
  filter: ReadonlySet<string> | null,
  limits: DashboardLimits,
): Promise<QuarantineScan> {
  const days: string[] = [];
  for (let d = Math.floor((query.toMs - 1) / DAY_MS) * DAY_MS; d >= Math.floor(query.fromMs / DAY_MS) * DAY_MS; d -= DAY_MS) {
    days.push(new Date(d).toISOString().slice(0, 10));
  }
  const scan: QuarantineScan = {
    byEndpoint: { events: 0, criticalQueue: 0, archive: 0 },
    failedAlerts: 0,
    reasons: new Map(),
    digests: [],
    days,
    scanned: 0,
    limited: false,
  };
  const count = (item: BlobItem): void => {
    const listed = quarantineListing(item);
    if (listed === null) return;
    const { endpoint, deviceId, reasons: codes } = listed;
    if (filter !== null && (deviceId === null || !filter.has(deviceId))) return;
    if (listed.kind === 'digest') {
      // Not a message, nor a failed alert: its alerts are in the ledger (digested). It is taken by when it was
      // refused: the app's clock in its metadata, else (an earlier build's record) its Last-Modified, which the
      // If-None-Match create leaves at the first write.
      const atMs = (listed.quarantinedAt ?? item.lastModified).getTime();
      if (atMs >= query.fromMs && atMs < query.toMs) scan.digests.push({ item, deviceId, codes, atMs });
      return;
    }
    for (const code of codes) scan.reasons.set(code, (scan.reasons.get(code) ?? 0) + 1);
    // A damaged archive blob is no message of its route: the archive's counts hold its records.
    if (listed.kind !== 'message' || !(ENDPOINT_NAMES as readonly string[]).includes(endpoint)) return;
    if (endpoint === 'criticalQueue' && codes.includes('EmailRejected')) scan.failedAlerts += 1;
    else scan.byEndpoint[endpoint as EndpointName] += 1;
  };
  // Refused digests are filed by their first alert's day (quarantine.ts) and counted by when they were refused, a
  // quiet period or so later: the range's days and the day before list them, as the days list the messages. One
  // held longer than that before its refusal (a long pause, a spent budget) is not seen. Earlier builds filed them
  // under messages/criticalQueue/{day refused}/, which the message listings find.
  const dayBefore = new Date(Date.parse(days[days.length - 1]!) - DAY_MS);
  const prefixes = [
    ...days.flatMap((day) => [...ENDPOINT_NAMES.map((endpoint) => messageDayPrefix(endpoint, new Date(day))), digestDayPrefix(new Date(day))]),
    digestDayPrefix(dayBefore),
  ];
  for (const prefix of prefixes) {
    for await (const item of deps.store.list(deps.quarantineContainer, prefix)) {
      if (scan.scanned >= limits.quarantineScanned) {
        scan.limited = true;
        return scan;
      }
      scan.scanned += 1;
      count(item);
    }
  }
  const daySet = new Set(days);
  for await (const item of deps.store.list(deps.quarantineContainer, 'blobs/')) {
    if (scan.scanned >= limits.quarantineScanned) {
      scan.limited = true;
      break;
    }
    scan.scanned += 1;
    if (daySet.has(item.lastModified.toISOString().slice(0, 10))) count(item);
  }
  return scan;
}

interface DigestRecordView {
  alerts: number;
  firstTime: string | null;
  lastTime: string | null;
  reasons: DashboardRefusedDigest['reasons'];
}

/** What the dashboard shows of a refused digest's record (quarantine.ts `QuarantinedDigest`); null for anything else. */
function decodeDigestRecord(raw: unknown): DigestRecordView | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const digest = r['digest'] as Record<string, unknown> | null | undefined;
  if (r['kind'] !== 'digest' || typeof digest !== 'object' || digest === null || typeof digest['alerts'] !== 'number' || !Array.isArray(r['reasons'])) return null;
  // Only a time the page can format: it formats these, and one it cannot (a hand-edited record) throws there.
  const time = (value: unknown): string | null => (typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? value : null);
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  return {
    alerts: digest['alerts'],
    firstTime: time(digest['firstTime']),
    lastTime: time(digest['lastTime']),
    reasons: (r['reasons'] as unknown[]).flatMap((reason) => {
      if (typeof reason !== 'object' || reason === null) return [];
      const { code, detail, hint } = reason as Record<string, unknown>;
      return typeof code === 'string' ? [{ code, detail: text(detail).slice(0, 300), hint: text(hint) }] : [];
    }),
  };
}

/**
 * The newest refused digests of the scan, read for the alerts they held and the service's reason (as many as alert
 * rows are shown; unchanged records come from the cache). One whose record cannot be read still shows its device
 * and codes from the listing.
 */
async function readRefusedDigests(deps: DashboardDeps, digests: readonly ListedDigest[], limits: DashboardLimits): Promise<DashboardRefusedDigest[]> {
  const newest = [...digests].sort((a, b) => b.atMs - a.atMs || (a.item.name < b.item.name ? -1 : 1)).slice(0, limits.alerts);
  const records = await mapLimit(newest, limits.concurrency, (listed) => cachedJson(deps, deps.quarantineContainer, listed.item, decodeDigestRecord));
  return newest.map((listed, i) => {
    const record = records[i] ?? null;
    return {
      time: new Date(listed.atMs).toISOString(),
      deviceId: listed.deviceId ?? '',
      alerts: record?.alerts ?? null,
      firstTime: record?.firstTime ?? null,
      lastTime: record?.lastTime ?? null,
      reasons:
        record !== null && record.reasons.length > 0
          ? record.reasons
          : listed.codes.map((code) => ({ code, detail: '', hint: code === 'EmailRejected' ? DIGEST_REJECTED_HINT : describeReason(code).hint })),
      name: listed.item.name,
    };
  });
}

const DAMAGE_SUMMARY = 'an archive blob could not be read to its end; the records before the damage were processed';

export function describeReason(code: string): { summary: string; hint: string } {
  if (isReasonCode(code)) return { summary: REASONS[code].summary, hint: REASONS[code].hint };
  if (Object.hasOwn(DAMAGE_HINTS, code)) return { summary: DAMAGE_SUMMARY, hint: DAMAGE_HINTS[code as ArchiveDamageCode] };
  if (code === 'EmailRejected') return { summary: 'the e-mail service refused the alert for good', hint: EMAIL_REJECTED_HINT };
  return {
    summary: 'a reason code this version does not know',
    hint: `Show the entries with \`iot-routing quarantine list --reason ${code}\` and \`iot-routing quarantine show <name>\`: each keeps its own hint.`,
  };
}

// ---- archive --------------------------------------------------------------------------------------------------

interface ArchiveCounts {
  records: number;
  accept: number;
  warn: number;
  quarantine: number;
  blobs: number;
  indexed: number;
  limited: boolean;
}

type ManifestCounts = Pick<ArchiveManifest, 'records' | 'outcomes'> & { etag: string };

/**
 * Records and check outcomes of the archive blobs whose names fall in the range, from their manifests (a blob
 * counts whole: IoT Hub names it for the minute it started collecting). A blob without a manifest for its current
 * version is not indexed yet and counts nothing.
 */
async function countArchive(deps: DashboardDeps, archive: ResolvedArchive, query: DashboardQuery, limits: DashboardLimits): Promise<ArchiveCounts> {
  const counts: ArchiveCounts = { records: 0, accept: 0, warn: 0, quarantine: 0, blobs: 0, indexed: 0, limited: false };
  const listed: Array<{ item: BlobItem; minuteMs: number }> = [];
  const window = nameMinuteWindow(query.fromMs, query.toMs, archive.config);
  for await (const entry of listArchiveBlobs(deps.store, archive.container, archive.format, {
    window,
    batchFrequencySeconds: archive.config.batchFrequencySeconds,
  })) {
    if (entry.kind !== 'archive') continue;
    if (listed.length >= limits.archiveListed) {
      counts.limited = true;
      break;
    }
    listed.push({ item: entry.item, minuteMs: entry.parsed.minuteMs });
  }
  listed.sort((a, b) => b.minuteMs - a.minuteMs || (a.item.name < b.item.name ? -1 : 1));
  if (listed.length > limits.manifestReads) counts.limited = true;
  const chosen = listed.slice(0, limits.manifestReads);
  counts.blobs = listed.length;
  const manifests = await mapLimit(chosen, limits.concurrency, async ({ item }): Promise<ManifestCounts | null> => {
    // Keyed by the archive blob's ETag: a manifest describes one version, and a rewritten blob gets a new one.
    const key = `manifest:${archive.container}/${item.name}`;
    const hit = deps.cache.get(key, item.etag);
    if (hit !== undefined) return hit as ManifestCounts;
    const found = await readManifest(deps.store, archive.indexContainer, archive.container, item.name);
    const manifest = found?.manifest ?? null;
    if (manifest === null || manifest.blob.etag !== item.etag) return null;
    const value: ManifestCounts = { records: manifest.records, outcomes: { ...manifest.outcomes }, etag: manifest.blob.etag };
    deps.cache.set(key, item.etag, value);
    return value;
  });
  for (const manifest of manifests) {
    if (manifest === null) continue;
    counts.indexed += 1;
    counts.records += manifest.records;
    counts.accept += manifest.outcomes.accept;
    counts.warn += manifest.outcomes.warn;
    counts.quarantine += manifest.outcomes.quarantine;
  }
  return counts;
}

// ---- notes ----------------------------------------------------------------------------------------------------

function notesFor(
  data: DashboardData,
  context: { archiveConfigured: boolean; chartedAll: boolean; limits: DashboardLimits },
): string[] {
  const notes: string[] = [];
  const { coverage } = data;
  if (!context.chartedAll) {
    notes.push(
      `Charts and event counts cover the first ${coverage.devices.charted} of ${coverage.devices.listed}${coverage.devices.limited ? '+' : ''} devices: choose up to ${MAX_DEVICE_FILTER} devices in the filter to compare others.`,
    );
  } else if (coverage.devices.limited) {
    notes.push(`The device list stops at ${coverage.devices.listed} devices.`);
  }
  if (coverage.alerts.limited) {
    notes.push(`Alerts: the newest ${coverage.alerts.read} of ${coverage.alerts.listed} ledger records were read; older alerts in the range are not counted.`);
  }
  const days = coverage.quarantine.days;
  notes.push(
    `Quarantine counts cover messages enqueued on ${days.length === 1 ? `the UTC day ${days[0]}` : `the UTC days ${days[days.length - 1]} to ${days[0]}`}${coverage.quarantine.limited ? ` (the newest ${coverage.quarantine.scanned} entries)` : ''}.`,
  );
  if (!context.archiveConfigured) {
    notes.push('Archive: no archive container is configured (ARCHIVE_CONTAINER), so the archive route is not counted.');
  } else if (data.routes.archive === null) {
    notes.push('Archive: counted per blob, not per device, so it is not shown for a device filter or a partial device list.');
  } else if (coverage.archive !== null) {
    const pending = coverage.archive.blobs - coverage.archive.indexed;
    if (coverage.archive.limited) {
      notes.push(`Archive: the newest ${context.limits.manifestReads} of ${coverage.archive.blobs} blobs named in the range are counted.`);
    }
    if (pending > 0) notes.push(`Archive: ${pending} blob${pending === 1 ? ' is' : 's are'} not indexed yet.`);
  }
  notes.push('Critical alerts count as messages on their route but not as accept or warn: the alert ledger does not record check outcomes.');
  return notes;
}
