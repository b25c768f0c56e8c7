import { RoutingError } from '../../src/lib/errors.js';
import type { BlobStore } from '../../src/lib/ports.js';

export type StoreOperation = 'create' | 'replace' | 'put' | 'get' | 'delete' | 'ensureContainer' | 'openRead';

/**
 * Wraps a real store and throws a transient StorageUnavailable on chosen calls, to show that a failure mid-batch
 * followed by the trigger's retry ends where a run without the failure ends.
 */
export function faultyStore(
  inner: BlobStore,
  shouldFail: (operation: StoreOperation, callIndex: number, name: string) => boolean,
): BlobStore & { calls: number; failures: number } {
  const state = { calls: 0, failures: 0 };
  const guard = (operation: StoreOperation, name: string): void => {
    const index = state.calls;
    state.calls += 1;
    if (shouldFail(operation, index, name)) {
      state.failures += 1;
      throw new RoutingError('StorageUnavailable', `injected failure of ${operation} ${name} (call ${index})`);
    }
  };
  return {
    get calls() {
      return state.calls;
    },
    get failures() {
      return state.failures;
    },
    ensureContainer: async (c) => (guard('ensureContainer', c), inner.ensureContainer(c)),
    get: async (c, n) => (guard('get', n), inner.get(c, n)),
    create: async (c, n, b, o) => (guard('create', n), inner.create(c, n, b, o)),
    replace: async (c, n, b, e, o) => (guard('replace', n), inner.replace(c, n, b, e, o)),
    put: async (c, n, b, o) => (guard('put', n), inner.put(c, n, b, o)),
    delete: async (c, n, e) => (guard('delete', n), inner.delete(c, n, e)),
    list: (c, p, o) => inner.list(c, p, o),
    listHierarchy: (c, p, o) => inner.listHierarchy(c, p, o),
    openRead: async (c, n) => (guard('openRead', n), inner.openRead(c, n)),
  };
}
