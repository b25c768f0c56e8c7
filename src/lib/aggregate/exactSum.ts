/**
 * Exact sums of doubles as floating-point expansions, and rounded outputs that depend on the exact value only.
 *
 * Window statistics must be byte-identical whatever order messages arrive in, yet be updated per message.
 * Floating-point addition is not associative, so a running `sum += x` depends on arrival order. Instead a sum is
 * kept EXACTLY as an expansion (Shewchuk 1997, "Adaptive Precision Floating-Point Arithmetic and Fast Robust
 * Geometric Predicates"; the `msum` partials of Python's `math.fsum`): a short list of doubles whose exact
 * mathematical sum is the value. Adding is exact, hence associative and commutative, so the value after any set of
 * additions is the same in any order. Outputs are then rounded from the exact value (`roundExpansion`,
 * `sumSquaredDeviations`), so they are order-independent too. The component lists themselves are not canonical:
 * two orders can give different components for the same value; only the value (and everything derived) is shared.
 *
 * Magnitudes (why every operation here is exact). Callers only feed values x = 0 or 1e-100 <= |x| <= 1e100, and
 * count n <= 2^31.
 * - Underflow: 1e-100 > 2^-333, so every input is an integer multiple of 2^-385 (its ulp or more). Sums, and the
 *   TwoSum error terms of sums, are multiples of 2^-385; squares, products of components and their TwoProduct
 *   error terms (and the Veltkamp split halves they are built from) are multiples of 2^-770. All are far above
 *   the subnormal quantum 2^-1074, so no result or error term is ever rounded by gradual underflow.
 * - Overflow: |x| <= 1e100 < 2^333, so S1 (sum) <= ~2.2e109 and S2 (sum of squares) <= ~2.2e209 even counting
 *   intermediate partials, n*S2 and S1^2 <= ~1e220, and a Veltkamp split multiplies by 2^27+1 (~1.3e8), giving
 *   at most ~1e218 for the split of an S2 component. All far below 1.8e308.
 * Under those bounds TwoSum (Knuth) and TwoProduct (Dekker 1971, with Veltkamp's split) are error-free transforms.
 * Non-finite inputs are not checked on the hot path: they make the value NaN or infinite.
 */

/**
 * A value kept exactly as the sum of its components.
 *
 * Invariant (Shewchuk's non-overlapping expansion, as Python's `msum` partials): components are non-zero, in
 * strictly increasing magnitude, and non-overlapping (each component's magnitude is below the lowest set bit of the
 * next one). The exact mathematical sum of the components is the value. `[]` is 0.
 */
export type Expansion = number[];

/**
 * Adds finite `x` to `e` exactly, in place.
 *
 * Shewchuk's Grow-Expansion with zero elimination, i.e. Python `msum`'s inner loop: `x` is carried up through the
 * components with TwoSum; each rounding error (`lo`) is kept as a component in place, the final carry becomes the
 * top component. Keeps the {@link Expansion} invariant (Shewchuk 1997, theorem 10). Works in place: components
 * are written back by index and the array is truncated at the end; allocation-free except when the array has to
 * grow past its current capacity.
 */
export function addTo(e: Expansion, x: number): void {
  if (x === 0) return;
  const n = e.length;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const y = e[i]!;
    // Knuth's TwoSum: hi + lo === x + y exactly. Same result as msum's swap + Fast-TwoSum, but branch-free
    // (measured faster: the |x| < |y| branch is unpredictable).
    const hi = x + y;
    const yv = hi - x;
    const lo = x - (hi - yv) + (y - yv);
    // k <= i: writes never run ahead of the reads, so compaction in place is safe.
    if (lo !== 0) e[k++] = lo;
    x = hi;
  }
  if (x !== 0) e[k++] = x;
  // Truncate at the end. pop() rather than `e.length = k`: V8 inlines pop, while the length setter is a runtime call
  // that may also trim the backing store (so the next growth reallocates); measured ~2x faster on the hot path.
  while (e.length > k) e.pop();
}

/** Veltkamp's splitter 2^27 + 1: splits a double into two halves of at most 26 significant bits each. */
const SPLITTER = 134217729;

/**
 * Adds `x*x` exactly, in place.
 *
 * Dekker's TwoProduct for a square (Dekker 1971; Shewchuk 1997, Square): `hi = fl(x*x)` and `lo = x*x - hi`
 * computed exactly from the Veltkamp split `x = xh + xl`; both are added with {@link addTo}. Exact for `x = 0` or
 * `1e-100 <= |x| <= 1e100` (callers guarantee it): the split `SPLITTER * x` cannot overflow, and `x*x >= 1e-200`
 * with every partial product a multiple of 2^-770, so the error term is not lost to underflow (see the module
 * comment).
 */
export function addSquareTo(e: Expansion, x: number): void {
  if (x === 0) return;
  const hi = x * x;
  const c = SPLITTER * x;
  const xh = c - (c - x);
  const xl = x - xh;
  addTo(e, xl * xl - (hi - xh * xh - (xh + xh) * xl));
  addTo(e, hi);
}

/**
 * `x*x` exactly as a new expansion: what {@link addSquareTo} on an empty one gives (the same TwoProduct; `hi + lo`
 * rounds to `hi`, so adding `hi` to `[lo]` leaves both), in a list of exactly that size: one that grows from empty
 * reserves room for 17 numbers, and a window keeps two lists per field.
 */
export function squareExpansion(x: number): Expansion {
  if (x === 0) return [];
  const hi = x * x;
  const c = SPLITTER * x;
  const xh = c - (c - x);
  const xl = x - xh;
  const lo = xl * xl - (hi - xh * xh - (xh + xh) * xl);
  return lo === 0 ? [hi] : [lo, hi];
}

/** `x` as a new expansion, in a list of exactly its size. */
export function valueExpansion(x: number): Expansion {
  return x === 0 ? [] : [x];
}

/**
 * Adds every component of `other` to `e` exactly, in place (e.g. merging partial sums). `other` may be any finite
 * doubles, not only an expansion; it is not modified. Adding an expansion to itself is allowed (doubles it).
 */
export function addExpansionTo(e: Expansion, other: readonly number[]): void {
  const src = other === e ? other.slice() : other;
  for (let i = 0; i < src.length; i++) addTo(e, src[i]!);
}

/**
 * The exact value of `e` correctly rounded to the nearest double, ties to even; `[]` (or any zero value) gives +0.
 *
 * A function of the exact value only, whatever components represent it: `e` may be any finite doubles (overlapping,
 * unsorted, with zeros); they are first renormalized into a fresh non-overlapping expansion with {@link addTo}.
 * Then Python's `math.fsum` final step: sum the components from the top while that is exact; at the first inexact
 * addition `hi` is the hardware's round-half-even of the upper part and `lo` its error. The components below can
 * only matter when `lo` is exactly half-way to the neighbour of `hi` (non-overlap makes them smaller than any
 * non-tie distance): if they push the same way as `lo`, the exact value is past the half-way point and rounds
 * to `hi + 2*lo` instead (the half-way correction, which is what makes fsum order-independent).
 */
export function roundExpansion(e: readonly number[]): number {
  const p: Expansion = [];
  for (let i = 0; i < e.length; i++) addTo(p, e[i]!);
  let n = p.length;
  if (n === 0) return 0;
  let hi = p[--n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = p[--n]!;
    // Fast-TwoSum is enough: by non-overlap |y| < lowest bit of x.
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  if (n > 0) {
    const below = p[n - 1]!;
    if ((lo < 0 && below < 0) || (lo > 0 && below > 0)) {
      const twice = lo * 2;
      const away = hi + twice;
      // `away - hi === twice` exactly when lo was exactly half-way (hi + 2*lo is the neighbouring double).
      if (away - hi === twice) hi = away;
    }
  }
  return hi;
}

/** Adds `a*b` exactly to `e` (Dekker's TwoProduct with Veltkamp splits; Shewchuk 1997, Two-Product). */
function addProductTo(e: Expansion, a: number, b: number): void {
  const hi = a * b;
  if (hi === 0) return;
  const ca = SPLITTER * a;
  const ah = ca - (ca - a);
  const al = a - ah;
  const cb = SPLITTER * b;
  const bh = cb - (cb - b);
  const bl = b - bh;
  const lo = al * bl - (hi - ah * bh - al * bh - ah * bl);
  addTo(e, lo);
  addTo(e, hi);
}

/**
 * The exact value of `e` divided by `d` (a positive integer, at most 2^53), correctly rounded (half to even). The
 * rounded value divided by `d` is corrected by the exact remainder `e - q*d` (formed as an expansion); the sign of
 * the remainder against half a unit in the last place then settles the one case that correction cannot, a quotient
 * next to a half-way point (sums of repeated readings land there more often than chance would say). A function of
 * `e`'s exact value alone. `roundExpansion(e) / d` rounds twice instead: the mean of 0.1, 0.2 and 0.3 is
 * 0.19999999999999998 that way, 0.2 this way.
 */
export function quotient(e: readonly number[], d: number): number {
  let q = roundExpansion(e) / d;
  if (q === 0 || !Number.isFinite(q)) return q;
  q += roundExpansion(remainderOf(e, q, d)) / d;
  // Now q is the quotient or its neighbour towards the exact value T; r = e - q*d has the sign of T - q.
  const r = remainderOf(e, q, d);
  const side = roundExpansion(r);
  if (side === 0) return q;
  const next = neighbour(q, side > 0);
  // T against the midpoint of q and next: the sign of r - (next - q)/2 * d (half an ulp is exact).
  addProductTo(r, -(next - q) / 2, d);
  const past = roundExpansion(r);
  if (past === 0) return isEven(q) ? q : next;
  return past > 0 === side > 0 ? next : q;
}

function remainderOf(e: readonly number[], q: number, d: number): Expansion {
  const r: Expansion = [];
  for (let i = 0; i < e.length; i++) addTo(r, e[i]!);
  addProductTo(r, -q, d);
  return r;
}

const float = new Float64Array(1);
const bits = new BigInt64Array(float.buffer);

/** The next double after non-zero, finite `x`, upwards or downwards. */
function neighbour(x: number, up: boolean): number {
  float[0] = x;
  bits[0]! += x > 0 === up ? 1n : -1n;
  return float[0]!;
}

function isEven(x: number): boolean {
  float[0] = x;
  return (bits[0]! & 1n) === 0n;
}

/**
 * Population variance, `(S2 - S1^2/n) / n`, as `exact(n*S2 - S1*S1) / n^2` divided by {@link quotient}.
 *
 * `s1` is the sum (expansion of the values), `s2` the sum of squares (expansion built with {@link addSquareTo}),
 * `n` the count (a positive safe integer). `n*S2 - S1^2` is formed exactly as an expansion: TwoProduct of `n` with
 * each S2 component, minus TwoProduct of every pair of S1 components (`c_i^2`, and `2*c_i*c_j` for i < j; doubling
 * is exact). So the result is a function of `(n, exact S1, exact S2)` alone, whatever order the values came in, and
 * rounded once (but for n above 2^26.5, where n^2 is no longer an exact double and the division takes two steps).
 *
 * For consistent inputs the exact value is >= 0 (Cauchy-Schwarz: (sum x)^2 <= n * sum x^2), so the result is never
 * negative; an inconsistent (negative) value is clamped to 0. Returns 0 for `n <= 0` (or NaN) and for empty sums.
 * Unlike the naive `S2/n - (S1/n)^2`, there is no cancellation: all-equal values give exactly 0, and
 * [1e9+1, 1e9+2, 1e9+3] gives exactly 2/3.
 */
export function populationVariance(n: number, s1: readonly number[], s2: readonly number[]): number {
  if (!(n > 0)) return 0;
  const d: Expansion = [];
  for (let i = 0; i < s2.length; i++) addProductTo(d, n, s2[i]!);
  for (let i = 0; i < s1.length; i++) {
    const ci = s1[i]!;
    addProductTo(d, -ci, ci);
    for (let j = i + 1; j < s1.length; j++) addProductTo(d, -2 * ci, s1[j]!);
  }
  const squared = n * n;
  const variance = Number.isSafeInteger(squared) ? quotient(d, squared) : quotient(d, n) / n;
  return variance > 0 ? variance : 0;
}
