/**
 * What one message contributes to a window, and how a window's numbers are computed from its contributions.
 *
 * Reports must be byte-identical whatever order messages arrived in, how batches were split and how partials are
 * spread over partitions. Floating-point addition is not associative, so nothing here accumulates in arrival order:
 * - a base window's statistics are recomputed from its set of contributions, visited in identity order (sums,
 *   then a second pass for the squared deviations), so they are a function of the set alone;
 * - a roll-up folds its base windows' summaries in window-start order (Chan et al.'s pairwise update for the
 *   variance), so it is a function of the set of base summaries alone;
 * - first and last are chosen by (time, identity), never by arrival.
 */

export type CountedOutcome = 'accept' | 'warn';

export interface Contribution {
  /** Enqueued time, epoch ms. */
  t: number;
  /** The `level` application property as sent; null when absent (counted as normal). */
  level: string | null;
  outcome: CountedOutcome;
  /** Reason codes of the message's findings (warnings), sorted and unique; absent when there are none. */
  reasons?: string[];
  /** The numeric body fields aggregated from this message, keys sorted; absent for levels not aggregated. */
  values?: Record<string, number>;
  /** Numeric fields not aggregated: beyond the per-message limit, or beyond ±1e100. */
  omitted?: number;
}

export interface FieldStats {
  count: number;
  min: number;
  max: number;
  sum: number;
  /** Sum of squared deviations from the mean. */
  m2: number;
  first: number;
  firstTime: number;
  last: number;
  lastTime: number;
}

export interface WindowSummary {
  messages: number;
  /** Messages counted after the window had closed (see windowAggregator.ts). */
  late: number;
  /** Keys sorted; `(none)` for messages without a level. */
  byLevel: Record<string, number>;
  byOutcome: Record<CountedOutcome, number>;
  /** Warning reason codes, keys sorted. */
  byReason: Record<string, number>;
  fieldsOmitted: number;
  /** Keys sorted. */
  fields: Record<string, FieldStats>;
}

export const NO_LEVEL = '(none)';

/** The order that makes conflicting copies of one identity converge: the smaller serialisation wins. */
export function contributionKey(contribution: Contribution): string {
  return JSON.stringify(contribution);
}

function sortedRecord(map: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

interface FieldSamples {
  values: number[];
  times: number[];
}

/**
 * The summary of a set of contributions. `late` maps identities counted after their base window closed to the
 * watermark at that moment; one counts as late for the window being summarised when that watermark had reached
 * the window's end (a roll-up ends later than its base windows, so fewer of them are late for it).
 */
export function summarizeContributions(
  messages: Readonly<Record<string, Contribution>>,
  late: Readonly<Record<string, number>>,
  windowEndMs: number,
): WindowSummary {
  const identities = Object.keys(messages).sort();
  const levels = new Map<string, number>();
  const reasons = new Map<string, number>();
  const byOutcome: Record<CountedOutcome, number> = { accept: 0, warn: 0 };
  const samples = new Map<string, FieldSamples>();
  let lateCount = 0;
  for (const [identity, watermark] of Object.entries(late)) {
    if (watermark >= windowEndMs && Object.hasOwn(messages, identity)) lateCount += 1;
  }
  let fieldsOmitted = 0;
  for (const identity of identities) {
    const contribution = messages[identity]!;
    bump(levels, contribution.level ?? NO_LEVEL);
    byOutcome[contribution.outcome] += 1;
    for (const code of contribution.reasons ?? []) bump(reasons, code);
    fieldsOmitted += contribution.omitted ?? 0;
    const values = contribution.values;
    if (values === undefined) continue;
    for (const field in values) {
      const value = values[field]!;
      let sampled = samples.get(field);
      if (sampled === undefined) {
        sampled = { values: [], times: [] };
        samples.set(field, sampled);
      }
      sampled.values.push(value);
      sampled.times.push(contribution.t);
    }
  }
  const fields: Array<[string, FieldStats]> = [];
  for (const [field, { values, times }] of samples) fields.push([field, fieldStats(values, times)]);
  fields.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    messages: identities.length,
    late: lateCount,
    byLevel: sortedRecord(levels),
    byOutcome,
    byReason: sortedRecord(reasons),
    fieldsOmitted,
    fields: Object.fromEntries(fields),
  };
}

/** Values and times in identity order: ties on time go to the smaller identity for `first`, the larger for `last`. */
function fieldStats(values: readonly number[], times: readonly number[]): FieldStats {
  const count = values.length;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  let firstIndex = 0;
  let lastIndex = 0;
  for (let i = 0; i < count; i++) {
    const value = values[i]!;
    sum += value;
    if (value < min) min = value;
    if (value > max) max = value;
    if (times[i]! < times[firstIndex]!) firstIndex = i;
    if (times[i]! >= times[lastIndex]!) lastIndex = i;
  }
  const mean = sum / count;
  let m2 = 0;
  for (const value of values) m2 += (value - mean) * (value - mean);
  return {
    count,
    min,
    max,
    sum,
    m2,
    first: values[firstIndex]!,
    firstTime: times[firstIndex]!,
    last: values[lastIndex]!,
    lastTime: times[lastIndex]!,
  };
}

/** Folds summaries of disjoint windows, in the order given (callers pass window-start order). */
export function foldSummaries(summaries: readonly WindowSummary[]): WindowSummary {
  const levels = new Map<string, number>();
  const reasons = new Map<string, number>();
  const byOutcome: Record<CountedOutcome, number> = { accept: 0, warn: 0 };
  const fields = new Map<string, FieldStats>();
  let messages = 0;
  let late = 0;
  let fieldsOmitted = 0;
  for (const summary of summaries) {
    messages += summary.messages;
    late += summary.late;
    fieldsOmitted += summary.fieldsOmitted;
    byOutcome.accept += summary.byOutcome.accept;
    byOutcome.warn += summary.byOutcome.warn;
    for (const [level, n] of Object.entries(summary.byLevel)) bump(levels, level, n);
    for (const [code, n] of Object.entries(summary.byReason)) bump(reasons, code, n);
    for (const [field, stats] of Object.entries(summary.fields)) {
      const current = fields.get(field);
      fields.set(field, current === undefined ? { ...stats } : mergeStats(current, stats));
    }
  }
  const sortedFields = [...fields.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    messages,
    late,
    byLevel: sortedRecord(levels),
    byOutcome,
    byReason: sortedRecord(reasons),
    fieldsOmitted,
    fields: Object.fromEntries(sortedFields),
  };
}

/** Chan, Golub and LeVeque's pairwise update: stable, and deterministic for a fixed order of operands. */
function mergeStats(a: FieldStats, b: FieldStats): FieldStats {
  const count = a.count + b.count;
  const delta = b.sum / b.count - a.sum / a.count;
  const firstFromB = b.firstTime < a.firstTime;
  const lastFromB = b.lastTime >= a.lastTime;
  return {
    count,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    sum: a.sum + b.sum,
    m2: a.m2 + b.m2 + ((delta * delta * a.count) / count) * b.count,
    first: firstFromB ? b.first : a.first,
    firstTime: firstFromB ? b.firstTime : a.firstTime,
    last: lastFromB ? b.last : a.last,
    lastTime: lastFromB ? b.lastTime : a.lastTime,
  };
}
