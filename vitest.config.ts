import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores on CI: keep workers to the machine so Azurite and the suites do not starve each other.
    maxWorkers: 2,
    // One Azurite for the whole run (test/support/azurite.ts); each test uses its own containers.
    globalSetup: ['test/support/azuriteGlobalSetup.ts'],
    // Decoded bodies compare by their fields (a lazily parsed one keeps `value` on its prototype).
    setupFiles: ['test/support/equality.ts'],
  },
});
