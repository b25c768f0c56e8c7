import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../src/lib/aggregate/mapLimit.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('mapLimit', () => {
  it('keeps input order whether calls answer synchronously or not', async () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const results = await mapLimit(items, 3, (x) => (x % 3 === 0 ? tick().then(() => x * 10) : x * 10));
    expect(results).toEqual(items.map((x) => x * 10));
  });

  it('takes synchronous answers without yielding: every call is made before it returns', async () => {
    let calls = 0;
    const pending = mapLimit([1, 2, 3, 4, 5], 2, (x) => {
      calls += 1;
      return x + 1;
    });
    expect(calls).toBe(5);
    await expect(pending).resolves.toEqual([2, 3, 4, 5, 6]);
  });

  it('never has more than `limit` asynchronous calls in flight', async () => {
    let inFlight = 0;
    let most = 0;
    await mapLimit(
      Array.from({ length: 12 }, (_, i) => i),
      4,
      async (x) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await tick();
        inFlight -= 1;
        return x;
      },
    );
    expect(most).toBe(4);
  });

  it('rethrows the first failure, synchronous or not, and starts nothing after it', async () => {
    const started: number[] = [];
    const failing = mapLimit([0, 1, 2, 3, 4, 5], 1, (x) => {
      started.push(x);
      if (x === 2) throw new Error('storage down');
      return x;
    });
    await expect(failing).rejects.toThrow('storage down');
    expect(started).toEqual([0, 1, 2]);

    const asyncStarted: number[] = [];
    const asyncFailing = mapLimit([0, 1, 2, 3], 2, async (x) => {
      asyncStarted.push(x);
      await tick();
      if (x === 1) throw new Error('conflict');
      return x;
    });
    await expect(asyncFailing).rejects.toThrow('conflict');
    // 0 and 1 were in flight together; when 1 failed, 2 had started after 0 finished, and nothing after it.
    expect(asyncStarted).toEqual([0, 1, 2]);
  });
});
