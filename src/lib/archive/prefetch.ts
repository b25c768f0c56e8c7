/**
 * Reads an async source ahead of its consumer into a bounded buffer, so that round trips (list pages, manifest
 * reads) overlap with the consumer's work instead of adding up on its critical path.
 *
 * Bounded: the pump stops when `highWater` items are waiting. Errors of the source reach the consumer in order,
 * after the items read before them. `return()` (a `break`, a page that is full) stops the pump and closes the
 * source, also when nothing was consumed yet.
 */
export interface Prefetched<T> extends AsyncIterableIterator<T> {
  return(): Promise<IteratorResult<T, undefined>>;
}

export function prefetch<T>(source: AsyncIterable<T>, highWater: number): Prefetched<T> {
  const iterator = source[Symbol.asyncIterator]();
  const buffer: T[] = [];
  let ended = false;
  let failure: { error: unknown } | null = null;
  let stopped = false;
  // Held in an object: the closures below assign them, which control-flow analysis does not see through.
  const wake: { consumer: (() => void) | null; pump: (() => void) | null } = { consumer: null, pump: null };

  const pump = (async () => {
    try {
      while (!stopped) {
        if (buffer.length >= highWater) {
          await new Promise<void>((resolve) => (wake.pump = resolve));
          wake.pump = null;
          continue;
        }
        const next = await iterator.next();
        if (next.done === true) break;
        buffer.push(next.value);
        wake.consumer?.();
      }
    } catch (error) {
      failure = { error };
    } finally {
      ended = true;
      wake.consumer?.();
    }
  })();

  const done: IteratorResult<T, undefined> = { done: true, value: undefined };
  const self: Prefetched<T> = {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        if (buffer.length > 0) {
          const value = buffer.shift() as T;
          wake.pump?.();
          return { done: false, value };
        }
        if (ended || stopped) {
          if (failure !== null && !stopped) {
            const { error } = failure;
            failure = null;
            throw error;
          }
          return done;
        }
        await new Promise<void>((resolve) => (wake.consumer = resolve));
        wake.consumer = null;
      }
    },
    async return() {
      if (!stopped) {
        stopped = true;
        buffer.length = 0;
        wake.pump?.();
        // Let the pump's pending read settle, then close the source (async generators queue the return).
        await pump;
        await iterator.return?.();
      }
      return done;
    },
    [Symbol.asyncIterator]() {
      return self;
    },
  };
  return self;
}
