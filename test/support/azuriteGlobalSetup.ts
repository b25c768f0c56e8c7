import type { TestProject } from 'vitest/node';
import { startAzurite } from './azurite.js';

/**
 * One Azurite for the whole vitest run; test files reach it through `useAzurite()` (test/support/azurite.ts),
 * which falls back to a private instance when this setup is not configured.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const azurite = await startAzurite();
  project.provide('azurite', { connectionString: azurite.connectionString, blobEndpoint: azurite.blobEndpoint });
  return () => azurite.stop();
}
