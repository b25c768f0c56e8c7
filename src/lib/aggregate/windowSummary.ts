/**
 * What one message contributes to a window, the window's running totals, and the numbers reported from them.
 *
 * Reports must be byte-identical whatever order messages arrived in, how batches were split and how partials are
 * spread over partitions, and a batch must cost work in proportion to its own messages, not to the windows' sizes.
 * Floating-point addition is not associative, so the totals are kept exactly (docs/adr/0007):
 * - counts are integers; min, max, first and last are chosen by value and by (time, identity), never by arrival;
 * - Σx and Σx² are exact expansions (`exactSum.ts`): adding a message is exact, so the totals after any sequence of
 *   additions and merges are the same real numbers, and every reported number is derived from those exact values
 *   (rounded once), never from the order they were added in.
 * A window's totals can therefore be updated one message at a time, merged across roll-ups in any order, and
 * recomputed from its contributions when needed, and all three give the same report.
 */
import { setOwnProperty } from '../message/objectShapes.js';
import { addExpansionTo, addSquareTo, addTo, populationVariance, quotient, roundExpansion, squareExpansion, valueExpansion } from './exactSum.js';

export type CountedOutcome = 'accept' | 'warn';

export interface Contribution {
  /** Enqueued time, epoch ms. */
  t: number;
  /** The `level` application property as sent; null when absent (counted as normal). */
  level: string | null;
  outcome: CountedOutcome;
  /** Reason codes of the message's findings (warnings), sorted and unique; absent when there are none. */
  reasons?: string[];
  /**
   * The numeric body fields aggregated from this message; absent for levels not aggregated. Every value is 0 or
   * between 1e-100 and 1e100 in magnitude (the range in which Σx² stays exact; see `isAggregatedValue`).
   */
  values?: Record<string, number>;
  /** Numeric fields not aggregated: beyond the per-message limit, or outside the exact range. */
  omitted?: number;
}

/** Running totals of one numeric field in one window. */
export interface FieldTotals {
  count: number;
  min: number;
  max: number;
  /** Σx, exactly (an expansion: its components add up to the sum). */
  sum: number[];
  /** Σx², exactly. */
  squares: number[];
  /** The value with the earliest (time, identity), and that time and identity. */
  first: number;
  firstTime: number;
  firstId: string;
  /** The value with the latest (time, identity). */
  last: number;
  lastTime: number;
  lastId: string;
}

/** The counts of one window, carried alike by its totals, its summary and its report. */
export interface WindowCounts {
  messages: number;
  /** By `level`; `(none)` for messages without one. Keys sorted in summaries and reports. */
  byLevel: Record<string, number>;
  byOutcome: Record<CountedOutcome, number>;
  /** Warning reason codes. Keys sorted in summaries and reports. */
  byReason: Record<string, number>;
  fieldsOmitted: number;
}

/** Running totals of one window: what its base partial or a roll-up entry stores. Keys in first-seen order. */
export interface WindowTotals extends WindowCounts {
  fields: Record<string, FieldTotals>;
}

/** A field's reported numbers: each one the exact value rounded once. */
export interface FieldStats {
  count: number;
  min: number;
  max: number;
  sum: number;
  /** The exact sum divided by count, rounded once (not `sum / count`, which rounds twice). */
  mean: number;
  /** Population variance (divided by count), from the exact sums, rounded once. */
  variance: number;
  first: number;
  firstTime: number;
  last: number;
  lastTime: number;
}

export interface WindowSummary extends WindowCounts {
  /** Messages counted after the window had closed (see windowAggregator.ts). */
  late: number;
  /** Keys sorted. */
  fields: Record<string, FieldStats>;
}

export const NO_LEVEL = '(none)';

/** Largest magnitude aggregated: Σx² of up to 2^31 such values stays far below the double range. */
export const MAX_ABS_VALUE = 1e100;
/** Smallest non-zero magnitude aggregated: below it, x² and the products behind the variance would underflow. */
export const MIN_ABS_VALUE = 1e-100;

/** A number the window statistics take: finite, and 0 or within [1e-100, 1e100] in magnitude. */
export function isAggregatedValue(value: number): boolean {
  const abs = Math.abs(value);
  return abs === 0 || (abs >= MIN_ABS_VALUE && abs <= MAX_ABS_VALUE);
}

/** The order that makes conflicting copies of one identity converge: the smaller serialisation wins. */
export function contributionKey(contribution: Contribution): string {
  return JSON.stringify(contribution);
}

/**
 * Whether two contributions certainly serialise alike, without serialising them: the common case of a duplicate is
 * a replayed copy. False means "compare their keys" (it is conservative for -0, which serialises as 0).
 */
export function sameContribution(a: Contribution, b: Contribution): boolean {
  if (a === b) return true;
  if (a.t !== b.t || a.level !== b.level || a.outcome !== b.outcome || a.omitted !== b.omitted) return false;
  if (!sameList(a.reasons, b.reasons)) return false;
  const av = a.values;
  const bv = b.values;
  if (av === undefined || bv === undefined) return av === bv;
  const keys = Object.keys(av);
  const otherKeys = Object.keys(bv);
  if (!sameList(keys, otherKeys)) return false;
  for (const key of keys) if (!Object.is(av[key], bv[key])) return false;
  return true;
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function bump(record: Record<string, number>, key: string, by: number): void {
  const current = own(record, key);
  if (current === undefined) setOwnProperty(record, key, by);
  else record[key] = current + by;
}

export function emptyTotals(): WindowTotals {
  return { messages: 0, byLevel: {}, byOutcome: { accept: 0, warn: 0 }, byReason: {}, fieldsOmitted: 0, fields: {} };
}

/**
 * The order of min and max, Math.min's: -0 is below +0. With `<` alone the zero seen first would stay, so a window
 * holding both would report a min that depends on arrival order.
 */
function below(a: number, b: number): boolean {
  return a < b || (a === 0 && b === 0 && 1 / a < 1 / b);
}

/** (time, identity) order, the tie-breaker for first and last. */
function before(time: number, id: string, otherTime: number, otherId: string): boolean {
  return time < otherTime || (time === otherTime && id < otherId);
}

/**
 * Adds one message, in place. Invariant: the caller adds each identity at most once to a given totals object (the
 * partial's `messages` map is the record of what was added), so the totals are always those of that map's
 * contributions, whatever order they were added in.
 */
export function addContribution(totals: WindowTotals, identity: string, contribution: Contribution): void {
  // Stores below are written out at each site (not through one helper) so that each keeps its own inline cache:
  // this runs for every message and field. `__proto__` is the one key assignment would not store as data.
  totals.messages += 1;
  const level = contribution.level ?? NO_LEVEL;
  const byLevel = totals.byLevel;
  if (Object.hasOwn(byLevel, level)) byLevel[level] = byLevel[level]! + 1;
  else if (level === '__proto__') setOwnProperty(byLevel, level, 1);
  else byLevel[level] = 1;
  if (contribution.outcome === 'warn') totals.byOutcome.warn += 1;
  else totals.byOutcome.accept += 1;
  const reasons = contribution.reasons;
  if (reasons !== undefined) for (const code of reasons) bump(totals.byReason, code, 1);
  if (contribution.omitted !== undefined) totals.fieldsOmitted += contribution.omitted;
  const values = contribution.values;
  if (values === undefined) return;
  const fields = totals.fields;
  const t = contribution.t;
  for (const name in values) {
    const x = values[name]!;
    const field = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (field === undefined) {
      const created: FieldTotals = {
        count: 1,
        min: x,
        max: x,
        sum: valueExpansion(x),
        squares: squareExpansion(x),
        first: x,
        firstTime: t,
        firstId: identity,
        last: x,
        lastTime: t,
        lastId: identity,
      };
      if (name === '__proto__') setOwnProperty(fields, name, created);
      else fields[name] = created;
      continue;
    }
    field.count += 1;
    if (below(x, field.min)) field.min = x;
    if (below(field.max, x)) field.max = x;
    addTo(field.sum, x);
    addSquareTo(field.squares, x);
    if (before(t, identity, field.firstTime, field.firstId)) {
      field.first = x;
      field.firstTime = t;
      field.firstId = identity;
    }
    if (before(field.lastTime, field.lastId, t, identity)) {
      field.last = x;
      field.lastTime = t;
      field.lastId = identity;
    }
  }
}

/** The totals of a set of contributions (a recomputation, for conflicting copies and for partials merged on read). */
export function totalsOf(messages: { readonly ids: readonly string[]; readonly contributions: readonly Contribution[] }): WindowTotals {
  const totals = emptyTotals();
  const { ids, contributions } = messages;
  for (let i = 0; i < ids.length; i++) addContribution(totals, ids[i]!, contributions[i]!);
  return totals;
}

function copyField(field: FieldTotals): FieldTotals {
  return { ...field, sum: field.sum.slice(), squares: field.squares.slice() };
}

/**
 * Adds the totals of a disjoint set of messages (another base window of a roll-up), in place. Exact, so the result
 * does not depend on the order windows are merged in.
 */
export function mergeTotalsInto(target: WindowTotals, source: WindowTotals): void {
  target.messages += source.messages;
  for (const level in source.byLevel) bump(target.byLevel, level, source.byLevel[level]!);
  target.byOutcome.accept += source.byOutcome.accept;
  target.byOutcome.warn += source.byOutcome.warn;
  for (const code in source.byReason) bump(target.byReason, code, source.byReason[code]!);
  target.fieldsOmitted += source.fieldsOmitted;
  for (const name in source.fields) {
    const from = source.fields[name]!;
    const into = own(target.fields, name);
    if (into === undefined) {
      setOwnProperty(target.fields, name, copyField(from));
      continue;
    }
    into.count += from.count;
    if (below(from.min, into.min)) into.min = from.min;
    if (below(into.max, from.max)) into.max = from.max;
    addExpansionTo(into.sum, from.sum);
    addExpansionTo(into.squares, from.squares);
    if (before(from.firstTime, from.firstId, into.firstTime, into.firstId)) {
      into.first = from.first;
      into.firstTime = from.firstTime;
      into.firstId = from.firstId;
    }
    if (before(into.lastTime, into.lastId, from.lastTime, from.lastId)) {
      into.last = from.last;
      into.lastTime = from.lastTime;
      into.lastId = from.lastId;
    }
  }
}

function sortedRecord<T>(record: Readonly<Record<string, T>>, map: (value: T) => T = (v) => v): Record<string, T> {
  const out: Record<string, T> = {};
  for (const key of Object.keys(record).sort()) setOwnProperty(out, key, map(record[key]!));
  return out;
}

/**
 * The reported numbers of a window's totals, keys in code-unit order. `late` is given by the caller: it depends on
 * the window size the totals are reported for (a roll-up closes later than its base windows).
 */
export function summarize(totals: WindowTotals, late: number): WindowSummary {
  const fields: Record<string, FieldStats> = {};
  for (const name of Object.keys(totals.fields).sort()) {
    const f = totals.fields[name]!;
    setOwnProperty(fields, name, {
      count: f.count,
      min: f.min,
      max: f.max,
      sum: roundExpansion(f.sum),
      mean: quotient(f.sum, f.count),
      variance: populationVariance(f.count, f.sum, f.squares),
      first: f.first,
      firstTime: f.firstTime,
      last: f.last,
      lastTime: f.lastTime,
    });
  }
  return {
    messages: totals.messages,
    late,
    byLevel: sortedRecord(totals.byLevel),
    byOutcome: { accept: totals.byOutcome.accept, warn: totals.byOutcome.warn },
    byReason: sortedRecord(totals.byReason),
    fieldsOmitted: totals.fieldsOmitted,
    fields,
  };
}

/**
 * Identities of `late` (identity → the partition's watermark when it was counted) that were late for a window
 * ending at `windowEndMs` and, when `counted` is given, are still counted.
 */
export function lateCount(late: Readonly<Record<string, number>>, windowEndMs: number, counted?: ReadonlySet<string>): number {
  let count = 0;
  for (const identity in late) {
    if (!Object.hasOwn(late, identity) || late[identity]! < windowEndMs) continue;
    if (counted === undefined || counted.has(identity)) count += 1;
  }
  return count;
}
