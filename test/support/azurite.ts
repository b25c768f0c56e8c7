import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import { startAzurite, type AzuriteConnection, type RunningAzurite } from '../../src/local/azurite.js';

// The launcher is product code (src/local/azurite.ts) since `npm start` runs Azurite too; tests keep importing it here.
export {
  AZURITE_ACCOUNT_KEY,
  AZURITE_ACCOUNT_NAME,
  azuriteConnectionString,
  startAzurite,
  type AzuriteConnection,
  type RunningAzurite,
  type StartAzuriteOptions,
} from '../../src/local/azurite.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by test/support/azuriteGlobalSetup.ts when vitest.config.ts lists it; absent otherwise. */
    azurite?: AzuriteConnection;
  }
}

/**
 * For a test file: the run's shared Azurite when the globalSetup provides one, otherwise a private instance
 * started before the file's tests and stopped after them. Call at the top level of the file; call the returned
 * function inside hooks and tests.
 */
export function useAzurite(): () => AzuriteConnection {
  let connection: AzuriteConnection | undefined;
  let own: RunningAzurite | undefined;
  beforeAll(async () => {
    const shared = inject('azurite');
    if (shared !== undefined) {
      connection = shared;
      return;
    }
    own = await startAzurite();
    connection = own;
  });
  afterAll(async () => {
    await own?.stop();
  });
  return () => {
    if (connection === undefined) throw new Error('useAzurite(): Azurite is not running yet (call it inside a test)');
    return connection;
  };
}

/** Containers are never shared between tests, so suites may run in parallel against one Azurite. */
export function uniqueContainerName(label = 'test'): string {
  const safe = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'test';
  return `${safe}-${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}
