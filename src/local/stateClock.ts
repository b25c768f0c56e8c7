import { randomUUID } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const STATE_CLOCK_FILE = 'clock.json';

/**
 * Where the simulated clock of the last run on a state directory stopped. A sped-up run writes windows, quiet
 * periods and ledger times ahead of the wall clock; a next run starting at the wall clock would meet its own
 * messages as late, its alerts inside quiet periods that have not begun for it, and the dashboard's newest records
 * from "the future". So a run on the same state starts no earlier than where the last one ended.
 */
export async function resumeTime(stateDirectory: string, now: Date): Promise<Date> {
  let ended = Number.NaN;
  try {
    const saved = JSON.parse(await readFile(path.join(stateDirectory, STATE_CLOCK_FILE), 'utf8')) as { simulatedEnd?: unknown };
    if (typeof saved.simulatedEnd === 'string') ended = Date.parse(saved.simulatedEnd);
  } catch {
    // No earlier run, or a file this version cannot read: start at the wall clock.
  }
  return Number.isFinite(ended) && ended > now.getTime() ? new Date(ended) : now;
}

/** Written aside and renamed into place: a forced exit mid-write must not leave an empty file, read as no stop. */
export async function saveSimulatedEnd(stateDirectory: string, end: Date): Promise<void> {
  const file = path.join(stateDirectory, STATE_CLOCK_FILE);
  const temporary = `${file}.${process.pid}.${randomUUID()}`;
  await writeFile(temporary, `${JSON.stringify({ simulatedEnd: end.toISOString() })}\n`);
  await rename(temporary, file);
}
