/**
 * `npm start` on a state whose reports were written with another smallest window: the newcomer's path of a first
 * run, then `aggregation.windows` edited in routing.config.json, then `npm start` again on the same `.local`. Its own
 * file: the function modules build their services once per process (`processServices`), as in the other e2e files.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseWindowSize } from '../../src/lib/aggregate/aggregationConfig.js';
import { BASE_WINDOW_DOC, claimBaseWindow } from '../../src/lib/aggregate/baseWindow.js';
import { blobWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { startAzurite } from '../../src/local/azurite.js';
import { runLocal } from '../../src/local/main.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

describe('npm start on a state written with another base window', () => {
  it('refuses before anything starts, naming the cause and what to do locally, and leaves the state as it was', async () => {
    const state = await tempDir('iot-routing-local-');
    // What a first run with routing.config.json's 1-minute windows leaves in the state's Azurite.
    const earlier = await startAzurite({ location: path.join(state, 'azurite') });
    const store = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: earlier.connectionString }));
    try {
      await store.ensureContainer('reports');
      await claimBaseWindow(blobWindowStore(store, 'reports'), parseWindowSize('1m')!, new Date());
    } finally {
      await earlier.stop();
    }

    // Then the windows are edited to 5 minutes.
    const routing = JSON.parse(await readFile(fileURLToPath(new URL('../../routing.config.json', import.meta.url)), 'utf8')) as {
      aggregation: { windows: string[] };
    };
    routing.aggregation.windows = ['5m'];
    const configPath = path.join(state, 'routing.config.json');
    await writeFile(configPath, JSON.stringify(routing));

    const run = runLocal({
      devices: 2,
      durationSeconds: 10,
      speedup: 10,
      sampleSettingsOnly: true,
      routingConfigPath: configPath,
      stateDirectory: state,
      azuritePort: 0,
      port: 0,
      output: null,
    });
    // Without the refusal every telemetryStream batch throws and is retried without limit: the run never ends.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('npm start did not refuse the state: it ran on, its telemetry batches failing')), 45_000);
    });
    try {
      await expect(Promise.race([run, deadline])).rejects.toMatchObject({
        code: 'ConfigInvalid',
        message: expect.stringMatching(/\(1 problem\):\n- aggregation\.windows: .*1m base window.*smallest window is 5m.*; locally: give REPORTS_CONTAINER a new container name.*--state DIR or --in-memory/s),
      });
    } finally {
      clearTimeout(timer);
    }
    // Refused after the state lock and Azurite were taken: both are given back, and the record is untouched.
    expect(existsSync(path.join(state, 'npm-start.lock'))).toBe(false);
    const again = await startAzurite({ location: path.join(state, 'azurite') });
    try {
      const reread = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: again.connectionString }));
      const record = await reread.get('reports', BASE_WINDOW_DOC);
      expect(JSON.parse(Buffer.from(record!.body).toString('utf8'))).toMatchObject({ kind: 'baseWindow', base: '1m' });
    } finally {
      await again.stop();
    }
  }, 90_000);
});
