/**
 * Ctrl+C in a terminal sends SIGINT to the whole foreground process group, not only to `npm start`. The runtime
 * must still drain what is in flight against a storage that is running, account for every message, exit 0 and
 * leave no Azurite behind. Runs the built runtime (`npm test` builds first) as a process group of its own and
 * signals the group, as a terminal does.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const main = path.join(root, 'dist/src/local/main.js');

/** Whether something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe.skipIf(process.platform === 'win32' || !existsSync(main))('npm start and Ctrl+C', () => {
  it('drains and accounts for every message when the whole process group gets SIGINT', { timeout: 90_000 }, async () => {
    const state = await mkdtemp(path.join(tmpdir(), 'interrupt-'));
    let group: number | undefined;
    try {
      const child = spawn(
        process.execPath,
        [main, '--in-memory', '--port', '0', '--state', state, '--devices', '2', '--speedup', '20', '--seed', '7'],
        { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      group = child.pid;
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
      const code = await exited;

      expect(output).not.toContain('ECONNREFUSED');
      expect(output).toContain('every message is accounted for exactly once per endpoint');
      expect(code).toBe(0);
      expect(await listening(port)).toBe(false);
    } finally {
      // A runtime that failed to stop must not outlive the test.
      try {
        if (group !== undefined) process.kill(-group, 'SIGKILL');
      } catch {
        // The group has exited, as it should have.
      }
      await rm(state, { recursive: true, force: true });
    }
  });
});
