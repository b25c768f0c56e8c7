import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resumeTime, saveSimulatedEnd, STATE_CLOCK_FILE } from '../../src/local/stateClock.js';

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('the clock a run on a state directory starts at', () => {
  it('is where the last run stopped when that is ahead of the wall clock (a sped-up run), else the wall clock', async () => {
    const state = await mkdtemp(path.join(tmpdir(), 'state-clock-'));
    made.push(state);
    const now = new Date('2026-11-22T15:00:00.000Z');
    expect(await resumeTime(state, now)).toEqual(now);
    await saveSimulatedEnd(state, new Date('2026-11-22T16:30:00.000Z'));
    expect(await resumeTime(state, now)).toEqual(new Date('2026-11-22T16:30:00.000Z'));
    await saveSimulatedEnd(state, new Date('2026-11-22T14:00:00.000Z'));
    expect(await resumeTime(state, now)).toEqual(now);
    await writeFile(path.join(state, STATE_CLOCK_FILE), '{not json');
    expect(await resumeTime(state, now)).toEqual(now);
  });
});
