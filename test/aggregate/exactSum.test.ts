/**
 * Exact sums (src/lib/aggregate/exactSum.ts) against an independent BigInt oracle: every finite double is an integer
 * multiple of 2^-1074, so scaling by 2^SCALE (SCALE >= 1074) makes values exact integers; sums and products are then
 * exact in BigInt, and a careful round-half-even brings the exact value back to a double for comparison.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addExpansionTo,
  addSquareTo,
  addTo,
  populationVariance,
  quotient,
  roundExpansion,
  squareExpansion,
  valueExpansion,
  type Expansion,
} from '../../src/lib/aggregate/exactSum.js';

// ---------------------------------------------------------------------------------------------------------------
// Oracle

/** Values are scaled by 2^SCALE; squares and products by 2^(2*SCALE). */
const SCALE = 1100;

const view = new DataView(new ArrayBuffer(8));

/** The exact value of finite `x` times 2^SCALE, as an integer. */
function big(x: number): bigint {
  if (!Number.isFinite(x)) throw new Error(`not finite: ${x}`);
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  // Normal: (2^52 + f) * 2^(biased - 1075); subnormal: f * 2^-1074.
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const shift = BigInt(Math.max(biased, 1) - 1075 + SCALE);
  const magnitude = mantissa << shift;
  return negative ? -magnitude : magnitude;
}

/** 2^q as a double, built from its bits (no Math.pow), for -1074 <= q <= 1023. */
function pow2(q: number): number {
  if (q < -1074 || q > 1023) throw new Error(`2^${q} is not a finite double`);
  view.setBigUint64(0, q >= -1022 ? BigInt(q + 1023) << 52n : 1n << BigInt(q + 1074));
  return view.getFloat64(0);
}

/** The double nearest to num * 2^-scale, ties to even (IEEE 754 roundTiesToEven, gradual underflow included). */
function toDouble(num: bigint, scale: number): number {
  if (num === 0n) return 0;
  const negative = num < 0n;
  const a = negative ? -num : num;
  const bitLength = a.toString(2).length;
  // a * 2^-scale lies in [2^exponent, 2^(exponent+1)).
  const exponent = bitLength - 1 - scale;
  if (exponent > 1023) return negative ? -Infinity : Infinity;
  // The quantum of the result: 53 significant bits, or 2^-1074 for subnormals.
  const quantum = Math.max(exponent - 52, -1074);
  const drop = scale + quantum; // bits of `a` below the quantum
  let m: bigint;
  if (drop <= 0) {
    m = a << BigInt(-drop);
  } else {
    const d = BigInt(drop);
    m = a >> d;
    const rest = a & ((1n << d) - 1n);
    const half = 1n << (d - 1n);
    if (rest > half || (rest === half && (m & 1n) === 1n)) m += 1n;
  }
  // m <= 2^53 is exact as a Number; scaling by a power of two is exact unless it overflows (then Infinity is right).
  const magnitude = Number(m) * pow2(quantum);
  return negative ? -magnitude : magnitude;
}

const sumBig = (xs: readonly number[]): bigint => xs.reduce((s, x) => s + big(x), 0n);
const sumSquaresBig = (xs: readonly number[]): bigint => xs.reduce((s, x) => s + big(x) * big(x), 0n);
const oracleSum = (xs: readonly number[]): number => toDouble(sumBig(xs), SCALE);

/** Bits kept below the quotient's own: with a sticky bit, enough for toDouble to round the quotient only once. */
const EXTRA = 128;

/** The double nearest to (num * 2^-scale) / d, d a positive integer, ties to even. */
function divideToDouble(num: bigint, scale: number, d: bigint): number {
  const negative = num < 0n;
  const a = negative ? -num : num;
  const q = (a << BigInt(EXTRA)) / d;
  // The sticky bit: a remainder makes the quotient strictly above q, which must not read as a tie.
  const sticky = (q << 1n) | ((a << BigInt(EXTRA)) % d === 0n ? 0n : 1n);
  const magnitude = toDouble(sticky, scale + EXTRA + 1);
  return negative ? -magnitude : magnitude;
}

/** exact(n*S2 - S1^2) / n^2 rounded once, the documented definition, from the raw values. */
function oracleVariance(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const n = BigInt(xs.length);
  const s1 = sumBig(xs);
  const d = n * sumSquaresBig(xs) - s1 * s1;
  return divideToDouble(d, 2 * SCALE, n * n);
}

/** Lowest set bit of |x| (times 2^SCALE). */
function lowestBit(x: number): bigint {
  const v = big(Math.abs(x));
  return v & -v;
}

/** The Expansion invariant: non-zero, finite, strictly increasing magnitude, non-overlapping (Shewchuk). */
function checkInvariant(e: readonly number[]): void {
  for (let i = 0; i < e.length; i++) {
    const c = e[i]!;
    expect(Number.isFinite(c)).toBe(true);
    expect(c).not.toBe(0);
    if (i > 0) {
      const below = e[i - 1]!;
      expect(Math.abs(below)).toBeLessThan(Math.abs(c));
      // Every bit of the smaller component is below the lowest set bit of the larger one.
      expect(big(Math.abs(below)) < lowestBit(c)).toBe(true);
    }
  }
}

function expansionOf(xs: readonly number[]): Expansion {
  const e: Expansion = [];
  for (const x of xs) addTo(e, x);
  return e;
}

function squaresOf(xs: readonly number[]): Expansion {
  const e: Expansion = [];
  for (const x of xs) addSquareTo(e, x);
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// Oracle self-checks (so a wrong oracle cannot make wrong code pass)

describe('BigInt oracle', () => {
  it('round-trips doubles and rounds exactly like the hardware for single operations', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ noNaN: true, noDefaultInfinity: true }), (a, b) => {
        expect(Object.is(toDouble(big(a), SCALE), a === 0 ? 0 : a)).toBe(true);
        // An exact zero is +0; a non-zero result that underflows keeps its sign, as in IEEE 754.
        const sum = big(a) + big(b);
        expect(toDouble(sum, SCALE)).toBe(sum === 0n ? 0 : a + b);
        const product = big(a) * big(b);
        expect(toDouble(product, 2 * SCALE)).toBe(product === 0n ? 0 : a * b);
      }),
      { numRuns: 2000 },
    );
  });

  it('divides exactly like the hardware for a single division by an integer', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }), fc.integer({ min: 1, max: 2 ** 40 }), (a, d) => {
        const expected = a / d;
        // Beyond the subnormal range a single division is correctly rounded, which is what the oracle must be.
        fc.pre(a === 0 || Math.abs(expected) >= 2 ** -1022);
        expect(divideToDouble(big(a), SCALE, BigInt(d))).toBe(expected === 0 ? 0 : expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('handles ties, subnormals and overflow', () => {
    const one = big(1);
    expect(toDouble(one + big(pow2(-53)), SCALE)).toBe(1);
    expect(toDouble(big(1 + pow2(-52)) + big(pow2(-53)), SCALE)).toBe(1 + pow2(-51));
    expect(toDouble(1n, 1074)).toBe(Number.MIN_VALUE);
    expect(toDouble(1n, 1075)).toBe(0); // half of MIN_VALUE, tie to even (0)
    expect(toDouble(3n, 1075)).toBe(2 * Number.MIN_VALUE); // 1.5 * MIN_VALUE, tie to even (2)
    expect(toDouble(big(Number.MAX_VALUE) * 2n, SCALE)).toBe(Infinity);
    expect(pow2(-1074)).toBe(Number.MIN_VALUE);
    expect(pow2(1023)).toBe(2 ** 1023);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: the callers' range, 0 or 1e-100 <= |x| <= 1e100

const SPECIALS = [0, 1, -1, 1e100, -1e100, 1e-100, -1e-100, 0.1, -0.1, 1e16, 1e-16, 2 ** -53, 1 + 2 ** -52, 1e9 + 1, 3];

const inRange = fc
  .tuple(fc.double({ min: 1e-100, max: 1e100, noNaN: true }), fc.boolean())
  .map(([m, negative]) => (negative ? -m : m));
/** Typical telemetry: one decimal, like 20.5 or 1013.2. */
const telemetryValue = fc.integer({ min: -100_000, max: 100_000 }).map((i) => i / 10);
/** Same magnitude band, varied: mantissas near 1 with exponents -40..40 (dense carries and ties). */
const nearby = fc
  .tuple(fc.integer({ min: 1, max: 2 ** 20 }), fc.integer({ min: -40, max: 40 }), fc.boolean())
  .map(([m, k, negative]) => (negative ? -1 : 1) * m * pow2(k));

const value = fc.oneof(
  { arbitrary: inRange, weight: 3 },
  { arbitrary: telemetryValue, weight: 3 },
  { arbitrary: nearby, weight: 2 },
  { arbitrary: fc.constantFrom(...SPECIALS), weight: 2 },
);

/** Arrays with exact cancellations and repeated values mixed in. */
const values = fc.oneof(
  fc.array(value, { maxLength: 60 }),
  // values that cancel exactly: xs, then -xs, plus a few extras
  fc
    .tuple(fc.array(value, { maxLength: 30 }), fc.array(value, { maxLength: 3 }))
    .map(([xs, extra]) => [...xs, ...xs.map((x) => -x), ...extra]),
  // many equal values, plus a few others
  fc
    .tuple(value, fc.integer({ min: 1, max: 200 }), fc.array(value, { maxLength: 3 }))
    .map(([x, count, extra]) => [...Array.from({ length: count }, () => x), ...extra]),
);

/** A permutation of xs: a fast-check shuffle, or the reversal. */
const withPermutation = values.chain((xs) =>
  fc.tuple(
    fc.constant(xs),
    fc.oneof(
      fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length }),
      fc.constant([...xs].reverse()),
    ),
  ),
);

// ---------------------------------------------------------------------------------------------------------------

describe('addTo / roundExpansion', () => {
  it('known values', () => {
    expect(roundExpansion([])).toBe(0);
    expect(Object.is(roundExpansion(expansionOf([0, -0])), 0)).toBe(true);
    expect(roundExpansion(expansionOf(Array.from({ length: 10 }, () => 0.1)))).toBe(1); // math.fsum([.1]*10)
    expect(roundExpansion(expansionOf([1e16, 1, 1e-16]))).toBe(10000000000000002); // fsum's half-way example
    expect(roundExpansion(expansionOf([1e100, 1, -1e100]))).toBe(1);
    expect(roundExpansion(expansionOf([1e100, 1e-100, -1e100]))).toBe(1e-100);
    const e = expansionOf([1e100, 1, 1e-100]);
    expect(e).toEqual([1e-100, 1, 1e100]);
    expect(roundExpansion(expansionOf([0.1, 0.2, -0.3]))).toBe(oracleSum([0.1, 0.2, -0.3]));
  });

  it('the exact sum is kept, correctly rounded, and the invariant holds after every addTo', () => {
    fc.assert(
      fc.property(values, (xs) => {
        const e: Expansion = [];
        let exact = 0n;
        for (const x of xs) {
          addTo(e, x);
          exact += big(x);
          checkInvariant(e);
          expect(sumBig(e)).toBe(exact);
        }
        expect(Object.is(roundExpansion(e), oracleSum(xs))).toBe(true);
      }),
    );
  });

  it('is identical (Object.is) under any permutation', () => {
    fc.assert(
      fc.property(withPermutation, ([xs, permuted]) => {
        const a = roundExpansion(expansionOf(xs));
        const b = roundExpansion(expansionOf(permuted));
        expect(Object.is(a, b)).toBe(true);
        expect(Object.is(a, oracleSum(xs))).toBe(true);
      }),
    );
  });

  it('is identical for any split into two expansions merged with addExpansionTo', () => {
    fc.assert(
      fc.property(values, fc.nat(), fc.boolean(), (xs, at, mergeIntoSecond) => {
        const k = xs.length === 0 ? 0 : at % (xs.length + 1);
        const left = expansionOf(xs.slice(0, k));
        const right = expansionOf(xs.slice(k));
        const rightBefore = [...right];
        if (mergeIntoSecond) {
          addExpansionTo(right, left);
          checkInvariant(right);
          expect(sumBig(right)).toBe(sumBig(xs));
          expect(Object.is(roundExpansion(right), roundExpansion(expansionOf(xs)))).toBe(true);
        } else {
          addExpansionTo(left, right);
          expect(right).toEqual(rightBefore); // the source is not modified
          checkInvariant(left);
          expect(sumBig(left)).toBe(sumBig(xs));
          expect(Object.is(roundExpansion(left), roundExpansion(expansionOf(xs)))).toBe(true);
        }
      }),
    );
  });

  it('addExpansionTo an expansion to itself doubles it', () => {
    fc.assert(
      fc.property(values, (xs) => {
        const e = expansionOf(xs);
        addExpansionTo(e, e);
        checkInvariant(e);
        expect(sumBig(e)).toBe(2n * sumBig(xs));
      }),
    );
  });

  it('roundExpansion is a function of the exact value for any representation, and does not modify its input', () => {
    // Arbitrary arrays (overlapping, unsorted, zeros) are valid inputs: only their exact sum matters.
    fc.assert(
      fc.property(values, (xs) => {
        const copy = [...xs];
        expect(Object.is(roundExpansion(xs), oracleSum(xs))).toBe(true);
        expect(xs).toEqual(copy);
        expect(Object.is(roundExpansion(xs), roundExpansion(expansionOf(xs)))).toBe(true);
      }),
    );
  });
});

describe('roundExpansion half-way cases', () => {
  it('known ties', () => {
    const u = pow2(-52); // ulp(1)
    const cases: [number[], number][] = [
      [[1, u / 2], 1], // tie, 1 is even
      [[1, u / 2, u * u], 1 + u], // just above the tie
      [[1, u / 2, -u * u], 1], // just below the tie
      [[1 + u, u / 2], 1 + 2 * u], // tie, 1+u is odd: to even 1+2u
      [[1 + u, u / 2, -u * u], 1 + u], // just below the tie
      [[1, -u / 4], 1], // tie below a power of two (gap below 1 is u/2), 1 is even
      [[1, -u / 4, -u * u], 1 - u / 2], // just past it
      [[1e16, 1, 1e-16], 10000000000000002],
      [[-1, -u / 2, -u * u], -(1 + u)], // symmetric for negatives
    ];
    for (const [xs, expected] of cases) {
      expect(Object.is(oracleSum(xs), expected)).toBe(true);
      expect(Object.is(roundExpansion(xs), expected)).toBe(true);
      expect(Object.is(roundExpansion(expansionOf(xs)), expected)).toBe(true);
      expect(Object.is(roundExpansion(expansionOf([...xs].reverse())), expected)).toBe(true);
    }
  });

  it('constructed ties with a tail on either side, against the oracle', () => {
    const base = fc
      .tuple(fc.double({ min: 1e-50, max: 1e50, noNaN: true }), fc.boolean())
      .map(([m, negative]) => (negative ? -m : m));
    fc.assert(
      fc.property(
        base,
        fc.constantFrom(1, -1),
        fc.constantFrom(2, 4), // half an ulp, or a quarter (the tie below a power of two)
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 })), // tail 2^-k ulp, or none
        fc.constantFrom(1, -1),
        fc.nat(),
        (b, side, divisor, k, tailSide, rotation) => {
          const ulp = ulpOf(b);
          const xs = [b, (side * ulp) / divisor];
          if (k > 0) xs.push(tailSide * ulp * pow2(-k));
          const rotated = xs.map((_, i) => xs[(i + rotation) % xs.length]!);
          const expected = oracleSum(xs);
          expect(Object.is(roundExpansion(xs), expected)).toBe(true);
          expect(Object.is(roundExpansion(expansionOf(rotated)), expected)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

/** ulp of a normal double: 2^(exponent - 52). */
function ulpOf(x: number): number {
  view.setFloat64(0, Math.abs(x));
  const biased = Number(view.getBigUint64(0) >> 52n);
  return pow2(biased - 1023 - 52);
}

describe('addSquareTo', () => {
  it('keeps the exact sum of squares, with the invariant', () => {
    fc.assert(
      fc.property(values, (xs) => {
        const e: Expansion = [];
        let exact = 0n;
        for (const x of xs) {
          addSquareTo(e, x);
          exact += big(x) * big(x);
          checkInvariant(e);
          // components are scaled by 2^SCALE, squares by 2^(2*SCALE)
          expect(sumBig(e) << BigInt(SCALE)).toBe(exact);
        }
      }),
    );
  });

  it('is exact at the ends of the range', () => {
    for (const x of [1e100, -1e100, 1e-100, -1e-100, 0.1, 1 + 2 ** -52, Math.PI * 1e99, Math.PI * 1e-100]) {
      const e: Expansion = [];
      addSquareTo(e, x);
      checkInvariant(e);
      expect(sumBig(e) << BigInt(SCALE)).toBe(big(x) * big(x));
    }
    const zero: Expansion = [];
    addSquareTo(zero, 0);
    expect(zero).toEqual([]);
  });

  it('squareExpansion and valueExpansion start the expansions addSquareTo and addTo would build from empty', () => {
    fc.assert(
      fc.property(values, (xs) => {
        for (const x of xs) {
          const square: Expansion = [];
          addSquareTo(square, x);
          expect(squareExpansion(x)).toEqual(square);
          const single: Expansion = [];
          addTo(single, x);
          expect(valueExpansion(x)).toEqual(single);
        }
      }),
    );
  });
});

describe('quotient', () => {
  it('rounds the exact value once: the mean of 0.1, 0.2 and 0.3 is 0.2', () => {
    expect(quotient(expansionOf([0.1, 0.2, 0.3]), 3)).toBe(0.2);
    expect(roundExpansion(expansionOf([0.1, 0.2, 0.3])) / 3).toBe(0.19999999999999998);
    expect(quotient(expansionOf([1e100, 1, -1e100]), 3)).toBe(1 / 3);
    expect(quotient([], 7)).toBe(0);
    expect(quotient(expansionOf([5]), 1)).toBe(5);
    // On a half-way point (to even), and next to it either way (found by the property below).
    const readings = [...Array.from({ length: 87 }, () => 5218.9), 2048, -9249.5];
    for (const xs of [readings, [...readings, 1e-100], [...readings, -1e-100]]) {
      expect(quotient(expansionOf(xs), 21)).toBe(divideToDouble(sumBig(xs), SCALE, 21n));
    }
  });

  it('equals the correctly rounded exact quotient, for any divisor and any components of the same sum', () => {
    fc.assert(
      fc.property(withPermutation, fc.integer({ min: 1, max: 2 ** 40 }), ([xs, permuted], d) => {
        const expected = divideToDouble(sumBig(xs), SCALE, BigInt(d));
        expect(Object.is(quotient(expansionOf(xs), d), expected)).toBe(true);
        expect(Object.is(quotient([...permuted], d), expected)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('populationVariance', () => {
  const variance = (xs: readonly number[]): number => populationVariance(xs.length, expansionOf(xs), squaresOf(xs));

  it('known values', () => {
    expect(variance([1, 2, 3, 4])).toBe(1.25);
    expect(variance([1e9 + 1, 1e9 + 2, 1e9 + 3])).toBe(2 / 3);
    expect(variance(Array.from({ length: 1000 }, () => 0.1))).toBe(0);
    expect(variance(Array.from({ length: 1000 }, () => 1e100))).toBe(0);
    expect(variance(Array.from({ length: 7 }, () => -1e-100))).toBe(0);
    expect(variance([42])).toBe(0);
    expect(variance([1e100, -1e100])).toBe(oracleVariance([1e100, -1e100]));
    expect(variance([1e-100, -1e-100])).toBe(oracleVariance([1e-100, -1e-100]));
  });

  it('0 for no data', () => {
    expect(populationVariance(0, [], [])).toBe(0);
    expect(populationVariance(-3, [1], [1])).toBe(0);
    expect(populationVariance(Number.NaN, [1], [1])).toBe(0);
    expect(populationVariance(5, [], [])).toBe(0);
  });

  it('equals exact(n*S2 - S1^2) / n^2 rounded once, is never negative, and is identical under permutations', () => {
    fc.assert(
      fc.property(withPermutation, ([xs, permuted]) => {
        const got = variance(xs);
        expect(Object.is(got, oracleVariance(xs))).toBe(true);
        expect(got).toBeGreaterThanOrEqual(0);
        expect(Object.is(variance(permuted), got)).toBe(true);
      }),
    );
  });

  it('depends on the exact sums only, not on their components', () => {
    fc.assert(
      fc.property(values, fc.nat(), (xs, at) => {
        const k = xs.length === 0 ? 0 : at % (xs.length + 1);
        // merged halves give other components for the same exact S1 and S2
        const s1 = expansionOf(xs.slice(0, k));
        addExpansionTo(s1, expansionOf(xs.slice(k)));
        const s2 = squaresOf(xs.slice(k));
        addExpansionTo(s2, squaresOf(xs.slice(0, k)));
        expect(Object.is(populationVariance(xs.length, s1, s2), variance(xs))).toBe(true);
        // and raw, unnormalized component lists for the same values too
        expect(Object.is(populationVariance(xs.length, [...xs], squaresOf(xs)), variance(xs))).toBe(true);
      }),
    );
  });
});

