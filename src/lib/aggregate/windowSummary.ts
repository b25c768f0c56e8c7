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

/**
 * Sets `key` as an own data property. Plain assignment would do, except for `__proto__`, which assignment treats as
 * the prototype; `Object.fromEntries` and `JSON.parse` make it an ordinary key, and so does this.
 */
export function setOwnProperty<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/** Keys in code-unit order (what `<` on strings and the default sort both use). */
function sortedRecord(map: ReadonlyMap<string, number>): Record<string, number> {
  const record: Record<string, number> = {};
  if (map.size === 1) {
    for (const [key, n] of map) setOwnProperty(record, key, n);
    return record;
  }
  for (const key of sortText([...map.keys()])) setOwnProperty(record, key, map.get(key)!);
  return record;
}

function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

/**
 * Per-field accumulators of one summary, slots in the order fields were first seen. One instance is reused by
 * every call (a summary is synchronous), and nothing is truncated between calls, only `size` reset, so that a
 * summary allocates its result and little else.
 */
class FieldAccumulators {
  size = 0;
  readonly names: string[] = [];
  /** Built only when a field is not at the position it had in the previous contribution. */
  private index: Map<string, number> | null = null;
  readonly count: number[] = [];
  readonly sum: number[] = [];
  readonly min: number[] = [];
  readonly max: number[] = [];
  readonly first: number[] = [];
  readonly firstTime: number[] = [];
  readonly last: number[] = [];
  readonly lastTime: number[] = [];
  /** Each field's values in the order visited (the first `count` of them), for the second pass. */
  readonly samples: number[][] = [];
  /** Slots by field name (the first `size` of them), reused by `slotsByName`. */
  private readonly order: number[] = [];

  reset(): void {
    this.size = 0;
    this.index = null;
  }

  /**
   * The slot of `field`, the `position`-th field of its contribution. Messages of one device carry the same fields
   * in the same order, so the field is usually in that slot already. `aligned` says that every earlier field of
   * this contribution was in the slot of its position: then the slots so far hold exactly those fields, and a field
   * at the next free position is new without looking it up.
   */
  slot(field: string, position: number, aligned: boolean): number {
    if (aligned) {
      if (position < this.size && this.names[position] === field) return position;
      if (position === this.size) return this.add(field);
    }
    if (this.index === null) {
      this.index = new Map();
      for (let i = 0; i < this.size; i++) this.index.set(this.names[i]!, i);
    }
    return this.index.get(field) ?? this.add(field);
  }

  /** The slots in the code-unit order of their fields' names: only the first `size` entries count. */
  slotsByName(): readonly number[] {
    const { names, size } = this;
    if (size > 16) return Array.from({ length: size }, (_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : 1));
    const order = this.order;
    for (let i = 0; i < size; i++) {
      const name = names[i]!;
      let j = i - 1;
      while (j >= 0 && names[order[j]!]! > name) {
        order[j + 1] = order[j]!;
        j--;
      }
      order[j + 1] = i;
    }
    return order;
  }

  private add(field: string): number {
    const slot = this.size++;
    this.index?.set(field, slot);
    this.names[slot] = field;
    this.count[slot] = 0;
    this.sum[slot] = 0;
    this.min[slot] = Infinity;
    this.max[slot] = -Infinity;
    if (slot === this.samples.length) this.samples.push([]);
    return slot;
  }

  /** Visits are in identity order: ties on time go to the smaller identity for `first`, the larger for `last`. */
  visit(slot: number, value: number, time: number): void {
    const n = this.count[slot]!;
    if (n === 0) {
      this.first[slot] = value;
      this.firstTime[slot] = time;
      this.last[slot] = value;
      this.lastTime[slot] = time;
    } else {
      if (time < this.firstTime[slot]!) {
        this.first[slot] = value;
        this.firstTime[slot] = time;
      }
      if (time >= this.lastTime[slot]!) {
        this.last[slot] = value;
        this.lastTime[slot] = time;
      }
    }
    this.samples[slot]![n] = value;
    this.count[slot] = n + 1;
    this.sum[slot] = this.sum[slot]! + value;
    if (value < this.min[slot]!) this.min[slot] = value;
    if (value > this.max[slot]!) this.max[slot] = value;
  }

  /** The statistics of a slot; the squared deviations are summed in a second pass over the values, in order. */
  stats(slot: number): FieldStats {
    const count = this.count[slot]!;
    const sum = this.sum[slot]!;
    const mean = sum / count;
    const samples = this.samples[slot]!;
    let m2 = 0;
    for (let i = 0; i < count; i++) m2 += (samples[i]! - mean) * (samples[i]! - mean);
    return {
      count,
      min: this.min[slot]!,
      max: this.max[slot]!,
      sum,
      m2,
      first: this.first[slot]!,
      firstTime: this.firstTime[slot]!,
      last: this.last[slot]!,
      lastTime: this.lastTime[slot]!,
    };
  }
}

const accumulators = new FieldAccumulators();

/**
 * The summary of a set of contributions. `late` maps identities counted after their base window closed to the
 * watermark at that moment; one counts as late for the window being summarised when that watermark had reached
 * the window's end (a roll-up ends later than its base windows, so fewer of them are late for it).
 *
 * Runs once for every base window a batch touches (its roll-ups need the new summary), so it works in reused
 * accumulators rather than building maps and arrays per field. The arithmetic is the definition's, operation for
 * operation: per field, in identity order, the sum, min and max, then a second pass for the squared deviations
 * from the mean; `first` is the earliest time, the smaller identity on a tie, and `last` the latest, the larger
 * identity on a tie.
 */
export function summarizeContributions(
  messages: Readonly<Record<string, Contribution>>,
  late: Readonly<Record<string, number>>,
  windowEndMs: number,
): WindowSummary {
  const identities = sortText(Object.keys(messages));

  let lateCount = 0;
  for (const identity in late) {
    if (Object.hasOwn(late, identity) && late[identity]! >= windowEndMs && Object.hasOwn(messages, identity)) lateCount += 1;
  }

  // Levels: one level (usually none) until a second one shows up.
  let level: string | undefined;
  let levelCount = 0;
  let levels: Map<string, number> | undefined;
  let reasons: Map<string, number> | undefined;
  const byOutcome: Record<CountedOutcome, number> = { accept: 0, warn: 0 };
  let fieldsOmitted = 0;
  const fieldsSeen = accumulators;
  fieldsSeen.reset();

  for (const identity of identities) {
    const contribution = messages[identity]!;
    const name = contribution.level ?? NO_LEVEL;
    if (levels !== undefined) bump(levels, name);
    else if (level === undefined || level === name) {
      level = name;
      levelCount += 1;
    } else {
      levels = new Map([[level, levelCount]]);
      bump(levels, name);
    }
    const outcome = contribution.outcome;
    if (outcome === 'accept') byOutcome.accept += 1;
    else if (outcome === 'warn') byOutcome.warn += 1;
    else {
      // Not an outcome this code writes (a hand-edited document): counted as the generic `+= 1` always did.
      const other = byOutcome as Record<string, number>;
      other[outcome as string] = (other[outcome as string] as number) + 1;
    }
    const codes = contribution.reasons;
    if (codes !== undefined) for (const code of codes) bump((reasons ??= new Map()), code);
    fieldsOmitted += contribution.omitted ?? 0;
    const values = contribution.values;
    if (values === undefined) continue;
    const t = contribution.t;
    let position = 0;
    let aligned = true;
    for (const field in values) {
      const slot = fieldsSeen.slot(field, position, aligned);
      aligned &&= slot === position;
      position += 1;
      fieldsSeen.visit(slot, values[field]!, t);
    }
  }

  const fields: Record<string, FieldStats> = {};
  const byName = fieldsSeen.slotsByName();
  for (let i = 0; i < fieldsSeen.size; i++) {
    const slot = byName[i]!;
    setOwnProperty(fields, fieldsSeen.names[slot]!, fieldsSeen.stats(slot));
  }

  let byLevel: Record<string, number>;
  if (levels !== undefined) byLevel = sortedRecord(levels);
  else {
    byLevel = {};
    if (level !== undefined) setOwnProperty(byLevel, level, levelCount);
  }
  return {
    messages: identities.length,
    late: lateCount,
    byLevel,
    byOutcome,
    byReason: reasons === undefined ? {} : sortedRecord(reasons),
    fieldsOmitted,
    fields,
  };
}

/**
 * Sorts distinct strings in code-unit order, in place, as `Array.prototype.sort()` does. Summaries sort a handful
 * of identities and field names each, where an insertion sort takes a fraction of the builtin's fixed cost.
 */
function sortText(items: string[]): string[] {
  if (items.length > 16) return items.sort();
  for (let i = 1; i < items.length; i++) {
    const item = items[i]!;
    let j = i - 1;
    while (j >= 0 && items[j]! > item) {
      items[j + 1] = items[j]!;
      j--;
    }
    items[j + 1] = item;
  }
  return items;
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
