/**
 * The Azurite launcher `npm start` and the tests use (src/local/azurite.ts): Azurite runs detached, in a process
 * group of its own, so it must still save its data on `stop()` and must never outlive its parent.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobServiceClient } from '@azure/storage-blob';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startAzurite } from '../../src/local/azurite.js';
import { eventually, listening } from '../support/listening.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The built launcher (`npm test` builds first): a plain Node parent cannot import the TypeScript source. */
const builtLauncher = path.join(root, 'dist/src/local/azurite.js');


/** What an Azurite started again on `location` holds in kept/checkpoint. */
async function checkpointAfterRestart(location: string): Promise<string> {
  const next = await startAzurite({ location });
  try {
    const blob = BlobServiceClient.fromConnectionString(next.connectionString).getContainerClient('kept').getBlobClient('checkpoint');
    return (await blob.downloadToBuffer()).toString('utf8');
  } finally {
    await next.stop();
  }
}

describe('startAzurite', () => {
  it('keeps on disk what was written before stop(): the next start finds it', async () => {
    const location = await mkdtemp(path.join(tmpdir(), 'azurite-persist-'));
    try {
      const first = await startAzurite({ location });
      const container = BlobServiceClient.fromConnectionString(first.connectionString).getContainerClient('kept');
      await container.create();
      await container.getBlockBlobClient('checkpoint').upload('42', 2);
      await first.stop();
      expect(await listening(first.port)).toBe(false);

      expect(await checkpointAfterRestart(location)).toBe('42');
    } finally {
      await rm(location, { recursive: true, force: true });
    }
  });

  it.skipIf(process.platform === 'win32' || !existsSync(builtLauncher))('ends with a parent that was killed outright (SIGKILL, no exit handler ran)', async () => {
    // A parent that starts Azurite, says where, and waits to be killed.
    const parent = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { startAzurite } = await import(${JSON.stringify(builtLauncher)}); const a = await startAzurite(); console.log('port', a.port); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    onTestFinished(() => {
      parent.kill('SIGKILL');
    });
    const port = await new Promise<number>((resolve, reject) => {
      let output = '';
      parent.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /port (\d+)/.exec(output);
        if (match !== null) resolve(Number(match[1]));
      });
      parent.once('exit', (code) => reject(new Error(`parent exited (${code}) before Azurite listened: ${output}`)));
    });
    expect(await listening(port)).toBe(true);
    parent.kill('SIGKILL');
    expect(await eventually(async () => !(await listening(port)), 15_000)).toBe(true);
  });

  it.skipIf(process.platform === 'win32' || !existsSync(builtLauncher))(
    'keeps on disk what was written when its parent exits without stopping it (a second Ctrl+C)',
    async () => {
      const location = await mkdtemp(path.join(tmpdir(), 'azurite-forced-'));
      onTestFinished(() => rm(location, { recursive: true, force: true }));
      // A parent that starts Azurite on disk, writes a blob, and exits at once, as `npm start` does on a second
      // Ctrl+C (process.exit(130): only its exit handlers run, nothing is awaited).
      const parent = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { startAzurite } = await import(${JSON.stringify(builtLauncher)});
           const { BlobServiceClient } = await import('@azure/storage-blob');
           const a = await startAzurite({ location: ${JSON.stringify(location)} });
           const container = BlobServiceClient.fromConnectionString(a.connectionString).getContainerClient('kept');
           await container.create();
           await container.getBlockBlobClient('checkpoint').upload('42', 2);
           console.log('port', a.port);
           process.exit(130);`,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let output = '';
      parent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      expect(await new Promise((resolve) => parent.once('exit', resolve))).toBe(130);
      const port = Number(/port (\d+)/.exec(output)?.[1]);
      // The orphaned child saves and exits by itself; wait for it to let go of its port and its data.
      expect(await eventually(async () => !(await listening(port)), 15_000)).toBe(true);

      expect(await checkpointAfterRestart(location)).toBe('42');
    },
    60_000,
  );
});
