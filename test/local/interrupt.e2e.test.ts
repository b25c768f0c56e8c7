/**
 * Ctrl+C in a terminal sends SIGINT to the whole foreground process group, not only to `npm start`. The runtime
 * must still drain what is in flight against a storage that is running, account for every message, exit 0 and
 * leave no Azurite behind. Runs the built runtime (`npm test` builds first) as a process group of its own and
 * signals the group, as a terminal does.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { listening } from '../support/listening.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'dist/src/local/main.js');

describe.skipIf(process.platform === 'win32' || !existsSync(main))('npm start and Ctrl+C', () => {
  it('drains and accounts for every message when the whole process group gets SIGINT', { timeout: 90_000 }, async () => {
    const state = await mkdtemp(path.join(tmpdir(), 'interrupt-'));
    const child = spawn(
      process.execPath,
      [main, '--in-memory', '--port', '0', '--state', state, '--devices', '2', '--speedup', '20', '--seed', '7'],
      { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Whatever happens below (a failed expectation, the test's timeout), the runtime must not outlive the test.
    onTestFinished(async () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // The group has exited, as it should have.
      }
      await rm(state, { recursive: true, force: true });
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const traffic = new Promise<void>((resolve) => {
      const read = (chunk: Buffer): void => {
        output += chunk.toString('utf8');
        // A status line with routed messages: devices are sending and handlers have work in flight.
        if (/sent [1-9]\d* /.test(output)) resolve();
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
    });
    await Promise.race([traffic, exited]);
    const port = Number(/Azurite\s+http:\/\/127\.0\.0\.1:(\d+)\//.exec(output)?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(await listening(port)).toBe(true);

    process.kill(-child.pid!, 'SIGINT');
    // A drain takes a few seconds; one that hangs (as it did when Azurite shared the group) fails here, not by
    // the test's timeout.
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 45_000))]);

    expect(output).not.toContain('ECONNREFUSED');
    expect(output).toContain('every message is accounted for exactly once per endpoint');
    expect(code).toBe(0);
    expect(await listening(port)).toBe(false);
  });
});
