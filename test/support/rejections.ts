import { isRoutingError, type RoutingError } from '../../src/lib/errors.js';

/** The error `promise` rejects with; fails the test when it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** `rejection`, which must be a RoutingError (so that its code and kind can be asserted). */
export async function routingRejection(promise: Promise<unknown>): Promise<RoutingError> {
  const error = await rejection(promise);
  if (!isRoutingError(error)) throw new Error(`expected a RoutingError, got ${String(error)}`);
  return error;
}
