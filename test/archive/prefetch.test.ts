import { describe, expect, it } from 'vitest';
import { prefetch } from '../../src/lib/archive/prefetch.js';

describe('prefetch', () => {
  it('reads ahead no further than its high-water mark and delivers everything in order', async () => {
    let produced = 0;
    async function* source() {
      for (let i = 0; i < 10; i++) {
        produced++;
        yield i;
      }
    }
    const ahead = prefetch(source(), 3);
    await new Promise((r) => setTimeout(r, 10));
    expect(produced).toBeLessThanOrEqual(4);
    const seen: number[] = [];
    for await (const item of ahead) seen.push(item);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('delivers the items read before a failure, then the failure', async () => {
    async function* source() {
      yield 1;
      yield 2;
      throw new Error('list failed');
    }
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const item of prefetch(source(), 8)) seen.push(item);
      })(),
    ).rejects.toThrow('list failed');
    expect(seen).toEqual([1, 2]);
  });

  it('closes the source when the consumer stops, also before it consumed anything', async () => {
    let closed = 0;
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed++;
      }
    }
    const early = prefetch(source(), 2);
    await early.return();
    const partial = prefetch(source(), 2);
    for await (const item of partial) if (item === 1) break;
    expect(closed).toBe(2);
  });
});
