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

      const second = await startAzurite({ location });
      try {
        const blob = BlobServiceClient.fromConnectionString(second.connectionString).getContainerClient('kept').getBlobClient('checkpoint');
        expect((await blob.downloadToBuffer()).toString('utf8')).toBe('42');
      } finally {
        await second.stop();
      }
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
});
