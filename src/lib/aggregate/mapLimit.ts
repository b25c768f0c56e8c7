/**
 * Maps with at most `limit` calls in flight, results in input order. After the first failure no new call starts;
 * the ones in flight are awaited before the error is rethrown, so nothing keeps writing once the caller has given
 * up on the batch (its retry will write again). A call may answer synchronously (an in-memory store does): its
 * result is taken as it is, without the turn of the event loop an `await` costs.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => R | Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        const result = fn(items[index]!, index);
        results[index] = result instanceof Promise ? await result : result;
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
