/**
 * Exclusive creation of complete files (src/lib/exclusiveFile.ts), with hard links and on a file system without
 * them (simulated: `link` refused with ENOTSUP, as some network and FAT mounts do), through its two users: the
 * local outbox and `npm start`'s state lock.
 */
import type * as FsPromises from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const links = vi.hoisted(() => ({ supported: true }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  return {
    ...actual,
    link: async (existing: string, target: string) => {
      if (!links.supported) throw Object.assign(new Error('operation not supported'), { code: 'ENOTSUP' });
      return actual.link(existing, target);
    },
  };
});

const { createExclusive } = await import('../src/lib/exclusiveFile.js');
const { lockStateDirectory, StateInUseError, STATE_LOCK_FILE } = await import('../src/local/stateLock.js');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'exclusive-'));
});
afterEach(async () => {
  links.supported = true;
  await rm(dir, { recursive: true, force: true });
});

describe.each([true, false])('with hard links %s', (supported) => {
  beforeEach(() => {
    links.supported = supported;
  });

  it('creates once, leaves no temporary file, and says when the file existed', async () => {
    const file = path.join(dir, 'a.txt');
    const withoutLinks = vi.fn(async (temporary: string) => {
      const { rename } = await import('node:fs/promises');
      await rename(temporary, file);
      return true;
    });
    expect(await createExclusive(file, 'first', withoutLinks)).toBe(true);
    expect(withoutLinks).toHaveBeenCalledTimes(supported ? 0 : 1);
    expect(await createExclusive(file, 'second', async () => false)).toBe(false);
    expect(await readFile(file, 'utf8')).toBe('first');
    expect(await readdir(dir)).toEqual(['a.txt']);
  });

  it('locks a state directory for one run, which the next run is refused', async () => {
    const release = await lockStateDirectory(dir);
    expect((await readFile(path.join(dir, STATE_LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid));
    expect(await readdir(dir)).toEqual([STATE_LOCK_FILE]);
    // The same pid is alive, so a second lock on the directory is refused.
    await expect(lockStateDirectory(dir)).rejects.toBeInstanceOf(StateInUseError);
    await release();
    expect(await readdir(dir)).toEqual([]);
  });
});
