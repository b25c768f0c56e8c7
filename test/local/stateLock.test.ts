import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockStateDirectory, STATE_LOCK_FILE, StateInUseError } from '../../src/local/stateLock.js';

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function stateDirectory(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-lock-'));
  made.push(dir);
  return path.join(dir, '.local');
}

describe('one npm start per state directory', () => {
  it('refuses a second run while the first holds the directory, and lets the next one in once released', async () => {
    const state = await stateDirectory();
    const release = await lockStateDirectory(state);
    expect((await readFile(path.join(state, STATE_LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
    const second = lockStateDirectory(state);
    await expect(second).rejects.toBeInstanceOf(StateInUseError);
    await expect(second).rejects.toThrow(`is in use by another npm start (pid ${process.pid}): stop it, or give this one --state DIR or --in-memory`);
    await release();
    const again = await lockStateDirectory(state);
    await again();
  });

  it('takes over the lock of a run that was killed', async () => {
    const state = await stateDirectory();
    // A pid that existed and is gone: a child that has exited.
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((resolve) => child.once('exit', resolve));
    await lockStateDirectory(state).then((release) => release());
    await writeFile(path.join(state, STATE_LOCK_FILE), `${pid}\n`);
    const release = await lockStateDirectory(state);
    expect((await readFile(path.join(state, STATE_LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
    await release();
  });
});
