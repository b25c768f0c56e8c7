import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ObjectShapes, setOwnProperty } from '../../src/lib/message/objectShapes.js';

/** What assigning the keys one by one gives: the reference every factory must reproduce. */
function assigned(keys: readonly string[], values: readonly unknown[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  keys.forEach((key, i) => setOwnProperty(object, key, values[i]));
  return object;
}

describe('ObjectShapes', () => {
  it('builds what assignment builds, whatever order a few key lists come in (property)', () => {
    // A small pool, so lists repeat, alternate and share their last key; frozen like the JSON scan's names.
    const key = fc.constantFrom('temperature', 'humidity', 'pressure', '__proto__', 'constructor', '0', 'a"b', '\u2028', '');
    const pool = fc.array(fc.array(key, { maxLength: 6 }).map((keys) => Object.freeze(keys)), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(pool, fc.array(fc.nat(), { minLength: 1, maxLength: 60 }), (lists, picks) => {
        const shapes = new ObjectShapes();
        for (const [n, pick] of picks.entries()) {
          const keys = lists[pick % lists.length]!;
          const values = keys.map((_, i) => n * 100 + i);
          const built = shapes.build(keys.length, keys, values);
          expect(Object.getPrototypeOf(built)).toBe(Object.prototype);
          expect(Object.entries(built)).toEqual(Object.entries(assigned(keys, values)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('reads only the first `count` entries of scratch lists that are longer', () => {
    const shapes = new ObjectShapes();
    for (let round = 0; round < 3; round++) {
      shapes.keys.splice(0, shapes.keys.length, 'a', 'b', 'stale');
      shapes.values.splice(0, shapes.values.length, round, round + 1, 'stale');
      expect(shapes.build(2)).toEqual({ a: round, b: round + 1 });
    }
  });
});
