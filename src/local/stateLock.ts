import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createExclusive } from '../lib/exclusiveFile.js';
import path from 'node:path';

export const STATE_LOCK_FILE = 'npm-start.lock';

export class StateInUseError extends Error {
  override readonly name = 'StateInUseError';
}

/** How long a run that took over a stale lock waits before checking that nobody took it over at the same time. */
const TAKEOVER_SETTLE_MS = 200;
const ATTEMPTS = 3;

/**
 * One `npm start` per state directory. Two runs on one directory would each start an Azurite on its data (the
 * second on another port), and whichever saved its metadata last at exit would erase the other's writes, while
 * both said every message was accounted for. The lock is a file holding the owner's pid, created exclusively; one
 * left by a run that was killed (its pid no longer alive) is taken over. Two runs taking over the same stale lock
 * at once can both remove it and create their own, one over the other's: so a run that took over checks, after a
 * moment, that the file still names it, and gives way if it does not. Returns the release.
 */
export async function lockStateDirectory(stateDirectory: string, settleMs = TAKEOVER_SETTLE_MS): Promise<() => Promise<void>> {
  await mkdir(stateDirectory, { recursive: true });
  const file = path.join(stateDirectory, STATE_LOCK_FILE);
  const owner = async (): Promise<number> => Number((await readFile(file, 'utf8').catch(() => '')).trim());
  const inUse = (pid: number) =>
    new StateInUseError(`${stateDirectory} is in use by another npm start (pid ${pid}): stop it, or give this one --state DIR or --in-memory`);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const created = await createExclusive(file, `${process.pid}\n`, async () => {
      // No hard links here: an exclusive create, whose empty moment a racing reader could take for a dead run's.
      try {
        await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      }
    });
    if (!created) {
      const pid = await owner();
      if (isAlive(pid)) throw inUse(pid);
      await rm(file, { force: true });
      continue;
    }
    if (attempt > 0) {
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      const pid = await owner();
      if (pid !== process.pid) throw inUse(pid);
    }
    return () => rm(file, { force: true });
  }
  throw inUse(await owner());
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    // Signal 0 only asks whether the process exists (EPERM: it does, as another user's).
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
