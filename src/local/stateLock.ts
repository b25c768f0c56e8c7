import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const STATE_LOCK_FILE = 'npm-start.lock';

export class StateInUseError extends Error {
  override readonly name = 'StateInUseError';
}

/**
 * One `npm start` per state directory. Two runs on one directory would each start an Azurite on its data (the
 * second on another port), and whichever saved its metadata last at exit would erase the other's writes, while
 * both said every message was accounted for. The lock is a file holding the owner's pid, created exclusively; one
 * left by a run that was killed (its pid no longer alive) is taken over. Returns the release.
 */
export async function lockStateDirectory(stateDirectory: string): Promise<() => Promise<void>> {
  await mkdir(stateDirectory, { recursive: true });
  const file = path.join(stateDirectory, STATE_LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (isAlive(owner)) {
        throw new StateInUseError(
          `${stateDirectory} is in use by another npm start (pid ${owner}): stop it, or give this one --state DIR or --in-memory`,
        );
      }
      await rm(file, { force: true });
    }
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    // Signal 0 only asks whether the process exists (EPERM: it does, as another user's).
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
