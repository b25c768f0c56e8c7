/**
 * Reading reports: the partials of each window, from every partition that saw the device, merged.
 *
 * A device can move partition (when a hub's partition count changes, or a re-send lands elsewhere), so one message
 * identity can sit in two partitions' partials. Base partials are therefore merged by identity, never by adding
 * counts: the totals of the union of their contributions are computed exactly as one partition's would be. Roll-ups
 * add their base windows' totals (exactly, so in any order), except where two partitions hold the same base window;
 * there the base partials are read and merged by identity first.
 */
import { csvCell } from '../csv.js';
import { RoutingError } from '../errors.js';
import type { AggregationConfig, WindowSize } from './aggregationConfig.js';
import { mapLimit } from './mapLimit.js';
import { watermarkOf } from './windowAggregator.js';
import {
  contributionKey,
  emptyTotals,
  lateCount,
  mergeTotalsInto,
  sameContribution,
  summarize,
  totalsOf,
  type Contribution,
  type FieldStats,
  type WindowCounts,
  type WindowSummary,
} from './windowSummary.js';
import {
  decodeBaseWindowDoc,
  decodePartitionDoc,
  decodeRollupWindowDoc,
  type BaseWindowDoc,
  type RollupEntry,
  type WindowStore,
} from './windowStore.js';
import { isoSeconds, parseWindowDocName, partitionDocName, windowDocName, windowListPrefixes } from './windows.js';

export interface ReportQuery {
  window: WindowSize;
  deviceId?: string;
  /** Windows starting in [fromMs, toMs); both or neither. Without them, every window of the size. */
  range?: { fromMs: number; toMs: number };
}

/** A field's {@link FieldStats} as reported: the times of first and last as ISO 8601. */
export interface FieldReport extends Omit<FieldStats, 'firstTime' | 'lastTime'> {
  firstTime: string;
  lastTime: string;
}

export interface WindowReport extends WindowCounts {
  deviceId: string;
  window: string;
  windowStart: string;
  windowEnd: string;
  /** `final` once every partition holding a partial has its watermark at or past the window's end. */
  status: 'open' | 'final';
  /** 1, plus one for each message counted after the window had closed. */
  revision: number;
  late: number;
  fields: Record<string, FieldReport>;
}

export interface ReadReportsOptions {
  /** More windows than this is a `UsageInvalid` error asking for a narrower query. Default 50,000. */
  maxReports?: number;
  /** Report every window as final (a backfill has seen all its input). */
  assumeFinal?: boolean;
  /** Document reads in flight. Default 16. */
  concurrency?: number;
}

export const DEFAULT_MAX_REPORTS = 50_000;

interface WindowGroup {
  deviceId: string;
  startMs: number;
  /** The group's documents: one per partition, or per page of a partition for roll-ups split into pages. */
  docs: Array<{ partition: string; page?: number }>;
}

export async function readReports(
  windows: WindowStore,
  config: AggregationConfig,
  query: ReportQuery,
  options: ReadReportsOptions = {},
): Promise<WindowReport[]> {
  const size = config.windows.find((w) => w.ms === query.window.ms);
  const base = config.windows[0];
  if (size === undefined || base === undefined) {
    throw new RoutingError(
      'UsageInvalid',
      `window ${query.window.label} is not configured (configured: ${config.windows.map((w) => w.label).join(', ')})`,
    );
  }
  const maxReports = options.maxReports ?? DEFAULT_MAX_REPORTS;
  const groups = new Map<string, WindowGroup>();
  for (const prefix of windowListPrefixes(size, query.range, query.deviceId)) {
    for await (const name of windows.list(prefix)) {
      const address = parseWindowDocName(name);
      if (address === null || address.sizeLabel !== size.label) continue;
      if (query.deviceId !== undefined && address.deviceId !== query.deviceId) continue;
      if (query.range !== undefined && (address.startMs < query.range.fromMs || address.startMs >= query.range.toMs)) continue;
      const key = `${address.deviceId}\u0000${address.startMs}`;
      let group = groups.get(key);
      if (group === undefined) {
        if (groups.size === maxReports) {
          throw new RoutingError(
            'UsageInvalid',
            `more than ${maxReports} windows match; narrow the time range, give a device id or choose a larger window`,
          );
        }
        group = { deviceId: address.deviceId, startMs: address.startMs, docs: [] };
        groups.set(key, group);
      }
      group.docs.push(address.page === undefined ? { partition: address.partition } : { partition: address.partition, page: address.page });
    }
  }

  const concurrency = options.concurrency ?? 16;
  const watermarks = new Map<string, number>();
  if (options.assumeFinal !== true) {
    const partitions = [...new Set([...groups.values()].flatMap((g) => g.docs.map((d) => d.partition)))];
    const docs = await mapLimit(partitions, concurrency, (p) => windows.get(partitionDocName(p), decodePartitionDoc));
    partitions.forEach((p, i) => watermarks.set(p, watermarkOf(docs[i] ?? null, config.allowedLatenessMs)));
  }

  const ordered = [...groups.values()].sort(
    (a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : a.startMs - b.startMs),
  );
  const reports = await mapLimit(ordered, concurrency, async (group) => {
    const endMs = group.startMs + size.ms;
    const summary =
      size.ms === base.ms
        ? await baseSummary(windows, base, group.deviceId, group.startMs, group.docs.map((d) => d.partition), endMs)
        : await rollupSummary(windows, base, size, group, endMs);
    if (summary === null) return null;
    const final =
      options.assumeFinal === true || group.docs.every((d) => endMs <= (watermarks.get(d.partition) ?? -Infinity));
    return toReport(group.deviceId, size, group.startMs, final, summary);
  });
  return reports.filter((r): r is WindowReport => r !== null);
}

async function baseSummary(
  windows: WindowStore,
  base: WindowSize,
  deviceId: string,
  startMs: number,
  partitions: readonly string[],
  endMs: number,
): Promise<WindowSummary | null> {
  const docs = await Promise.all(
    partitions.map((p) => windows.get(windowDocName(base, deviceId, startMs, p), decodeBaseWindowDoc)),
  );
  const present = docs.filter((d): d is BaseWindowDoc => d !== null);
  const only = present[0];
  if (only === undefined) return null;
  if (present.length === 1) return summarize(only.totals, lateCount(only.late, endMs));
  const merged = mergeBaseDocs(present);
  return summarize(totalsOf(merged), lateCount(merged.late, endMs, merged.counted));
}

async function rollupSummary(
  windows: WindowStore,
  base: WindowSize,
  size: WindowSize,
  group: WindowGroup,
  endMs: number,
): Promise<WindowSummary | null> {
  const docs = await Promise.all(
    group.docs.map((d) => windows.get(windowDocName(size, group.deviceId, group.startMs, d.partition, d.page), decodeRollupWindowDoc)),
  );
  // Pages of one partition hold disjoint base windows, so they merge as partitions do. A base window in two
  // documents of one partition (an unpaged document of an earlier build and a page of this one) is read from its
  // base partial, like one in two partitions.
  const bySub = new Map<string, Array<{ partition: string; entry: RollupEntry }>>();
  docs.forEach((doc, i) => {
    if (doc === null) return;
    for (const [sub, entry] of Object.entries(doc.subs)) {
      const list = bySub.get(sub) ?? [];
      list.push({ partition: group.docs[i]!.partition, entry });
      bySub.set(sub, list);
    }
  });
  if (bySub.size === 0) return null;
  const totals = emptyTotals();
  let late = 0;
  for (const sub of [...bySub.keys()].sort()) {
    const held = bySub.get(sub)!;
    const one = held[0]!.entry;
    if (held.length === 1 && one.totals !== undefined) {
      mergeTotalsInto(totals, one.totals);
      late += one.late;
      continue;
    }
    // The same base window in several partitions: its identities may overlap, so merge them, never add counts.
    // (Also where an entry predates totals in roll-ups: the base partials hold them.)
    const partitions = [...new Set(held.map((h) => h.partition))];
    const docs = await Promise.all(
      partitions.map((p) => windows.get(windowDocName(base, group.deviceId, Date.parse(sub), p), decodeBaseWindowDoc)),
    );
    const present = docs.filter((d): d is BaseWindowDoc => d !== null);
    if (present.length === 0) continue;
    if (present.length === 1) {
      mergeTotalsInto(totals, present[0]!.totals);
      late += lateCount(present[0]!.late, endMs);
      continue;
    }
    const merged = mergeBaseDocs(present);
    mergeTotalsInto(totals, totalsOf(merged));
    late += lateCount(merged.late, endMs, merged.counted);
  }
  return summarize(totals, late);
}

/**
 * The union of base partials by identity. Conflicting copies of one identity keep the smaller serialisation (as
 * within one partial); an identity is late only if every partial that counted it counted it late.
 */
export function mergeBaseDocs(docs: readonly BaseWindowDoc[]): { ids: string[]; contributions: Contribution[]; counted: Set<string>; late: Record<string, number> } {
  const messages = new Map<string, Contribution>();
  const late = new Map<string, number>();
  const onTime = new Set<string>();
  for (const doc of docs) {
    doc.ids.forEach((identity, i) => {
      const contribution = doc.contributions[i]!;
      const existing = messages.get(identity);
      if (
        existing === undefined ||
        (!sameContribution(contribution, existing) && contributionKey(contribution) < contributionKey(existing))
      ) {
        messages.set(identity, contribution);
      }
      const watermark = Object.hasOwn(doc.late, identity) ? doc.late[identity] : undefined;
      if (watermark === undefined) onTime.add(identity);
      else late.set(identity, Math.min(watermark, late.get(identity) ?? Infinity));
    });
  }
  for (const identity of onTime) late.delete(identity);
  return { ids: [...messages.keys()], contributions: [...messages.values()], counted: new Set(messages.keys()), late: Object.fromEntries(late) };
}

function toReport(deviceId: string, size: WindowSize, startMs: number, final: boolean, summary: WindowSummary): WindowReport {
  const fields: Array<[string, FieldReport]> = Object.entries(summary.fields).map(([field, s]) => [
    field,
    {
      count: s.count,
      min: s.min,
      max: s.max,
      sum: s.sum,
      mean: s.mean,
      variance: s.variance,
      first: s.first,
      firstTime: new Date(s.firstTime).toISOString(),
      last: s.last,
      lastTime: new Date(s.lastTime).toISOString(),
    },
  ]);
  return {
    deviceId,
    window: size.label,
    windowStart: isoSeconds(startMs),
    windowEnd: isoSeconds(startMs + size.ms),
    status: final ? 'final' : 'open',
    revision: 1 + summary.late,
    messages: summary.messages,
    late: summary.late,
    byLevel: summary.byLevel,
    byOutcome: summary.byOutcome,
    byReason: summary.byReason,
    fieldsOmitted: summary.fieldsOmitted,
    fields: Object.fromEntries(fields),
  };
}

export const CSV_COLUMNS = [
  'deviceId',
  'windowStart',
  'windowEnd',
  'field',
  'count',
  'min',
  'max',
  'mean',
  'variance',
  'sum',
  'first',
  'firstTime',
  'last',
  'lastTime',
  'window',
  'messages',
  'late',
  'revision',
  'status',
  'accept',
  'warn',
  'fieldsOmitted',
] as const;

/**
 * One row per window and field; a window without numeric fields (only other levels, or text bodies) still gets a
 * row, with an empty field. Device ids and field names are written by `csvCell` (RFC 4180 quoting; a text a
 * spreadsheet would run as a formula is prefixed with `'`, reversibly).
 */
export function reportsToCsv(reports: readonly WindowReport[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const report of reports) {
    // What the field columns leave out: messages of other levels are in `messages` only, and `fieldsOmitted` counts
    // numbers not aggregated (beyond 32 fields, or beyond ±1e100), so that a CSV reader sees they exist.
    const tail = [report.window, report.messages, report.late, report.revision, report.status, report.byOutcome.accept, report.byOutcome.warn, report.fieldsOmitted];
    const fields = Object.entries(report.fields);
    if (fields.length === 0) {
      lines.push([csvCell(report.deviceId), report.windowStart, report.windowEnd, '', 0, '', '', '', '', '', '', '', '', '', ...tail].join(','));
    }
    for (const [field, s] of fields) {
      lines.push(
        [
          csvCell(report.deviceId),
          report.windowStart,
          report.windowEnd,
          csvCell(field),
          s.count,
          s.min,
          s.max,
          s.mean,
          s.variance,
          s.sum,
          s.first,
          s.firstTime,
          s.last,
          s.lastTime,
          ...tail,
        ].join(','),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
