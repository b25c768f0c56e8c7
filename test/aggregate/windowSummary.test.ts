import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addTo, roundExpansion, populationVariance, quotient, addSquareTo } from '../../src/lib/aggregate/exactSum.js';
import {
  addContribution,
  emptyTotals,
  lateCount,
  mergeTotalsInto,
  sameContribution,
  summarize,
  totalsOf,
  type Contribution,
  type FieldStats,
  type WindowSummary,
} from '../../src/lib/aggregate/windowSummary.js';
import { mergeBaseDocs } from '../../src/lib/aggregate/reports.js';
import type { BaseWindowDoc } from '../../src/lib/aggregate/windowStore.js';

const identity = fc.stringMatching(/^[0-9a-f]{32}$/);
const value = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }).filter((x) => x === 0 || Math.abs(x) >= 1e-100);
const contribution: fc.Arbitrary<Contribution> = fc.record({
  t: fc.integer({ min: 0, max: 59_999 }),
  level: fc.constantFrom(null, 'normal'),
  outcome: fc.constantFrom('accept' as const, 'warn' as const),
  values: fc.record({ x: value }),
});
const contributions = fc.uniqueArray(fc.tuple(identity, contribution), { selector: ([id]) => id, minLength: 1, maxLength: 60 });

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The definition, written the plain way (maps of samples, sorts, fromEntries; sums of the values sorted by
 * magnitude into one exact expansion): the incremental totals must agree with it byte for byte.
 */
function definition(messages: Record<string, Contribution>, late: Record<string, number>, windowEndMs: number): WindowSummary {
  const byName = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);
  const count = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1);
  const identities = Object.keys(messages).sort();
  const levels = new Map<string, number>();
  const reasons = new Map<string, number>();
  const byOutcome = { accept: 0, warn: 0 };
  const samples = new Map<string, { values: number[]; times: number[] }>();
  let fieldsOmitted = 0;
  for (const identity of identities) {
    const c = messages[identity]!;
    count(levels, c.level ?? '(none)');
    byOutcome[c.outcome] += 1;
    for (const code of c.reasons ?? []) count(reasons, code);
    fieldsOmitted += c.omitted ?? 0;
    for (const [field, value] of Object.entries(c.values ?? {})) {
      const s = samples.get(field) ?? { values: [], times: [] };
      samples.set(field, s);
      s.values.push(value);
      s.times.push(c.t);
    }
  }
  const fields: Array<[string, FieldStats]> = [...samples].map(([field, { values, times }]) => {
    let first = 0;
    let last = 0;
    times.forEach((t, i) => {
      if (t < times[first]!) first = i;
      if (t >= times[last]!) last = i;
    });
    const sum: number[] = [];
    const squares: number[] = [];
    for (const v of [...values].sort((a, b) => Math.abs(a) - Math.abs(b))) {
      addTo(sum, v);
      addSquareTo(squares, v);
    }
    const stats: FieldStats = {
      count: values.length,
      min: values.reduce((a, v) => (v < a ? v : a), Infinity),
      max: values.reduce((a, v) => (v > a ? v : a), -Infinity),
      sum: roundExpansion(sum),
      mean: quotient(sum, values.length),
      variance: populationVariance(values.length, sum, squares),
      first: values[first]!,
      firstTime: times[first]!,
      last: values[last]!,
      lastTime: times[last]!,
    };
    return [field, stats];
  });
  return {
    messages: identities.length,
    late: Object.entries(late).filter(([id, w]) => w >= windowEndMs && Object.hasOwn(messages, id)).length,
    byLevel: Object.fromEntries([...levels].sort(byName)),
    byOutcome,
    byReason: Object.fromEntries([...reasons].sort(byName)),
    fieldsOmitted,
    fields: Object.fromEntries(fields.sort(byName)),
  };
}

const summaryOf = (messages: Record<string, Contribution>, late: Record<string, number> = {}, windowEndMs = 60_000): WindowSummary =>
  summarize(totalsOf(listed(messages)), lateCount(late, windowEndMs, new Set(Object.keys(messages))));

/** Contributions by identity as a partial lists them. */
function listed(messages: Record<string, Contribution> | ReadonlyArray<readonly [string, Contribution]>): { ids: string[]; contributions: Contribution[] } {
  const entries = Array.isArray(messages) ? messages : Object.entries(messages);
  return { ids: entries.map(([id]) => id), contributions: entries.map(([, c]) => c) };
}

/** Contributions as stored: any levels, reasons, omitted counts and field sets, in any key order. */
const fieldName = fc.oneof(
  fc.constantFrom('temperature', 'humidity', 'pressure', 'battery', '__proto__', '10', '2', 'a', 'B'),
  fc.string({ maxLength: 3 }),
);
const storedContribution: fc.Arbitrary<Contribution> = fc
  .record(
    {
      t: fc.integer({ min: 0, max: 20 }),
      level: fc.constantFrom(null, 'normal', 'critical', '__proto__', 'Normal'),
      outcome: fc.constantFrom('accept' as const, 'warn' as const),
      reasons: fc.uniqueArray(fc.constantFrom('BodyBase64', 'EnrichmentUnresolved', '__proto__', 'A'), { minLength: 1 }),
      values: fc.array(fc.tuple(fieldName, fc.oneof(value, fc.integer({ min: -3, max: 3 }))), { maxLength: 40 }).map((entries) => Object.fromEntries(entries)),
      omitted: fc.integer({ min: 1, max: 5 }),
    },
    { requiredKeys: ['t', 'level', 'outcome'] },
  );

describe('window totals', () => {
  it('agrees byte for byte with the plain definition, for any levels, reasons, fields and late entries', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(identity, storedContribution), { selector: ([id]) => id, maxLength: 30 }),
        fc.array(fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined })),
        fc.integer({ min: 0, max: 100 }),
        (entries, watermarks, windowEndMs) => {
          const messages = Object.fromEntries(entries);
          // Late entries for some of the counted identities, and one for an identity no longer there.
          const late = Object.fromEntries([
            ...entries.flatMap(([id], i) => (watermarks[i] === undefined ? [] : [[id, watermarks[i]] as const])),
            ['gone', 100] as const,
          ]);
          expect(JSON.stringify(summaryOf(messages, late, windowEndMs))).toBe(JSON.stringify(definition(messages, late, windowEndMs)));
        },
      ),
    );
  });

  it('is a function of the set: any insertion order gives the same bytes', () => {
    fc.assert(
      fc.property(contributions, fc.integer(), (entries, seed) => {
        const a = summaryOf(Object.fromEntries(entries));
        const b = summaryOf(Object.fromEntries(shuffled(entries, seed)));
        expect(JSON.stringify(b)).toBe(JSON.stringify(a));
      }),
    );
  });

  it('message by message, or merged from disjoint parts in any order, gives the same bytes as all at once', () => {
    fc.assert(
      fc.property(contributions, fc.integer(), fc.array(fc.nat(), { maxLength: 5 }), (entries, seed, cuts) => {
        const all = JSON.stringify(summaryOf(Object.fromEntries(entries)));
        const incremental = emptyTotals();
        for (const [id, c] of shuffled(entries, seed)) addContribution(incremental, id, c);
        expect(JSON.stringify(summarize(incremental, 0))).toBe(all);
        // Cut into parts (as base windows of a roll-up are), totals per part, merged in a shuffled order.
        const bounds = [...new Set([0, ...cuts.map((c) => c % (entries.length + 1)), entries.length])].sort((a, b) => a - b);
        const parts = bounds.slice(1).map((end, i) => totalsOf(listed(entries.slice(bounds[i], end))));
        const merged = emptyTotals();
        const before = JSON.stringify(parts);
        for (const part of shuffled(parts, seed + 1)) mergeTotalsInto(merged, part);
        expect(JSON.stringify(summarize(merged, 0))).toBe(all);
        // Merging never writes to its source: roll-up entries hold base partials' own totals in memory.
        expect(JSON.stringify(parts)).toBe(before);
      }),
    );
  });

  it('keeps sums and variances exact where a running sum would not', () => {
    const at = (t: number, x: number): Contribution => ({ t, level: null, outcome: 'accept', values: { x } });
    const big = summaryOf({ a: at(1, 1e9 + 1), b: at(2, 1e9 + 2), c: at(3, 1e9 + 3) }).fields['x']!;
    expect(big).toMatchObject({ sum: 3e9 + 6, mean: 1e9 + 2, variance: 2 / 3 });
    // 0.1 ten times: a running sum gives 0.9999999999999999; the exact sum rounds to 1.
    const tenths = summaryOf(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`m${i}`, at(i, 0.1)]))).fields['x']!;
    expect(tenths.sum).toBe(1);
    expect(tenths).toMatchObject({ mean: 0.1, variance: 0 });
    // The mean rounds the exact sum's quotient once: (0.1 + 0.2 + 0.3) / 3 is 0.2, where sum / count gives 0.19999999999999998.
    expect(summaryOf({ a: at(1, 0.1), b: at(2, 0.2), c: at(3, 0.3) }).fields['x']!.mean).toBe(0.2);
    // Cancellation: 1e100 + 1 - 1e100 is 1, in any order.
    expect(summaryOf({ a: at(1, 1e100), b: at(2, 1), c: at(3, -1e100) }).fields['x']!.sum).toBe(1);
  });

  it('matches a straightforward computation', () => {
    fc.assert(
      fc.property(contributions, (entries) => {
        const xs = entries.map(([, c]) => c.values!['x']!);
        const summary = summaryOf(Object.fromEntries(entries));
        const stats = summary.fields['x']!;
        const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
        expect(stats.count).toBe(xs.length);
        expect(stats.min).toBe(Math.min(...xs));
        expect(stats.max).toBe(Math.max(...xs));
        expect(stats.mean).toBeCloseTo(mean, 6);
        expect(stats.variance).toBeCloseTo(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length, 0);
        const byTime = [...entries].sort(([ia, a], [ib, b]) => a.t - b.t || (ia < ib ? -1 : 1));
        expect(stats.first).toBe(byTime[0]![1].values!['x']);
        expect(stats.last).toBe(byTime[byTime.length - 1]![1].values!['x']);
        expect(summary.byOutcome.accept + summary.byOutcome.warn).toBe(entries.length);
      }),
    );
  });

  it('orders -0 below +0 for min and max, as Math.min does, whatever order the zeros arrive or merge in', () => {
    const at = (x: number): Contribution => ({ t: 5, level: null, outcome: 'accept', values: { x } });
    for (const entries of [{ a: at(0), b: at(-0) }, { b: at(-0), a: at(0) }]) {
      const x = summaryOf(entries).fields['x']!;
      expect(Object.is(x.min, -0)).toBe(true);
      expect(Object.is(x.max, 0)).toBe(true);
    }
    for (const [first, second] of [[0, -0], [-0, 0]] as const) {
      const merged = emptyTotals();
      mergeTotalsInto(merged, totalsOf(listed([['a', at(first)]])));
      mergeTotalsInto(merged, totalsOf(listed([['b', at(second)]])));
      expect(Object.is(merged.fields['x']!.min, -0)).toBe(true);
      expect(Object.is(merged.fields['x']!.max, 0)).toBe(true);
    }
  });

  it('breaks ties in time by identity: the smaller identity is first, the larger is last', () => {
    const at = (x: number): Contribution => ({ t: 5, level: null, outcome: 'accept', values: { x } });
    const summary = summaryOf({ bb: at(2), aa: at(1), cc: at(3) });
    expect(summary.fields['x']).toMatchObject({ first: 1, last: 3 });
  });

  it('counts as late only identities whose watermark had reached this window end', () => {
    const c: Contribution = { t: 1, level: null, outcome: 'accept' };
    const summary = summaryOf({ a: c, b: c, c }, { a: 60_000, b: 3_600_000, gone: 9e12 }, 3_600_000);
    expect(summary.late).toBe(1);
  });
});

describe('sameContribution', () => {
  it('says "same" only for contributions that serialise alike, and always for a copy', () => {
    fc.assert(
      fc.property(storedContribution, storedContribution, (a, b) => {
        if (sameContribution(a, b)) expect(JSON.stringify(a)).toBe(JSON.stringify(b));
        expect(sameContribution(a, structuredClone(a))).toBe(true);
        expect(sameContribution(a, { ...a, t: a.t + 1 })).toBe(false);
      }),
    );
  });
});

describe('mergeBaseDocs', () => {
  const doc = (partition: string, messages: Record<string, Contribution>, late: Record<string, number> = {}): BaseWindowDoc => ({
    schema: 2,
    kind: 'window',
    deviceId: 'd',
    partition,
    window: '1m',
    windowStart: '2024-03-01T10:00:00Z',
    windowEnd: '2024-03-01T10:01:00Z',
    rev: 1,
    ...listed(messages),
    late,
    totals: totalsOf(listed(messages)),
  });
  const c = (x: number): Contribution => ({ t: 1, level: null, outcome: 'accept', values: { x } });

  it('unions by identity, keeps the smaller copy of a conflicting identity, and is late only where every copy was', () => {
    const merged = mergeBaseDocs([doc('0', { a: c(1), b: c(2) }, { a: 70_000 }), doc('1', { b: c(2), d: c(9), a: c(1) }, { a: 80_000, d: 90_000 })]);
    expect([...merged.ids].sort()).toEqual(['a', 'b', 'd']);
    expect(merged.late).toEqual({ a: 70_000, d: 90_000 });
    const conflicting = mergeBaseDocs([doc('0', { a: c(10) }), doc('1', { a: c(2) })]);
    expect(conflicting.contributions[conflicting.ids.indexOf('a')]).toEqual(c(10));
    const reversed = mergeBaseDocs([doc('1', { a: c(2) }), doc('0', { a: c(10) })]);
    expect(reversed.contributions[reversed.ids.indexOf('a')]).toEqual(c(10));
    const onTimeSomewhere = mergeBaseDocs([doc('0', { a: c(1) }), doc('1', { a: c(1) }, { a: 70_000 })]);
    expect(onTimeSomewhere.late).toEqual({});
  });
});
