import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { lockStateDirectory, STATE_LOCK_FILE, StateInUseError } from '../../src/local/stateLock.js';

/** The built module (`npm test` builds first): separate processes stand for separate runs. */
const built = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/src/local/stateLock.js');

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

  it('creates the lock with its pid in one step, so no other run can read it empty and take it for a dead run\'s', async () => {
    const state = await stateDirectory();
    const release = await lockStateDirectory(state);
    // No moment where the file exists without the pid: it is linked into place whole (no leftovers beside it).
    expect((await readFile(path.join(state, STATE_LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
    expect((await readdir(state)).filter((name) => name.startsWith(STATE_LOCK_FILE))).toEqual([STATE_LOCK_FILE]);
    await release();
  });

  it('answers a taker that lost the race for a stale lock with StateInUseError, never a raw EEXIST', async () => {
    for (let trial = 0; trial < 20; trial++) {
      const state = await stateDirectory();
      await mkdir(state, { recursive: true });
      await writeFile(path.join(state, STATE_LOCK_FILE), `${await deadPid()}\n`);
      // Two takers in one process (one pid, so both may end up holding it: the test below uses processes).
      const outcomes = await Promise.allSettled([lockStateDirectory(state, 5), lockStateDirectory(state, 5)]);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') expect(outcome.reason).toBeInstanceOf(StateInUseError);
        else await outcome.value();
      }
    }
  });

  it.skipIf(!existsSync(built))('lets exactly one of several runs that take over the same stale lock at once have it; the others are told why', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const state = await stateDirectory();
      await mkdir(state, { recursive: true });
      await writeFile(path.join(state, STATE_LOCK_FILE), `${await deadPid()}\n`);
      // Four runs at once, each holding what it got for a second, as npm start would.
      const script = `const { lockStateDirectory } = await import(${JSON.stringify(pathToFileURL(built).href)});
        try { const release = await lockStateDirectory(${JSON.stringify(state)}); console.log('locked'); await new Promise((r) => setTimeout(r, 1000)); await release(); }
        catch (error) { console.log(error.name); }`;
      const outputs = await Promise.all(
        [0, 1, 2, 3].map(
          () =>
            new Promise<string>((resolve) => {
              const child = spawn(process.execPath, ['--input-type=module', '-e', script]);
              let out = '';
              child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
              child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
              child.once('exit', () => resolve(out.trim()));
            }),
        ),
      );
      expect(outputs.sort()).toEqual(['StateInUseError', 'StateInUseError', 'StateInUseError', 'locked']);
    }
  }, 30_000);
});

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  await new Promise((resolve) => child.once('exit', resolve));
  return pid;
}
