/**
 * Seeded randomness for the simulation. Every random choice in src/local comes from here, so a run with the same
 * seed sends the same messages whatever the speed-up or the machine; only the interleaving of handler work varies.
 */

export type Random = () => number;

/** mulberry32: 32-bit state, uniform in [0, 1), good enough for simulated sensors and fault injection. */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * An independent stream per purpose (`device-003`, `resend`), so adding a device or a fault does not shift the
 * values every other stream draws.
 */
export function streamFor(seed: number, purpose: string): Random {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < purpose.length; i++) {
    h ^= purpose.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mulberry32(h >>> 0);
}
