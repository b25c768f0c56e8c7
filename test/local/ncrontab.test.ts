import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../src/local/ncrontab.js';

function next(schedule: string, after: string, count = 1): string[] {
  const parsed = parseSchedule(schedule);
  if ('error' in parsed) throw new Error(parsed.error);
  const out: string[] = [];
  let t = Date.parse(after);
  for (let i = 0; i < count; i++) {
    t = parsed.value.next(t);
    out.push(new Date(t).toISOString());
  }
  return out;
}

describe('NCRONTAB schedules', () => {
  it('fires every minute at second 0 for "0 * * * * *" (the digest and finalize timers)', () => {
    expect(next('0 * * * * *', '2026-05-01T12:00:00.000Z', 3)).toEqual(['2026-05-01T12:01:00.000Z', '2026-05-01T12:02:00.000Z', '2026-05-01T12:03:00.000Z']);
    expect(next('0 * * * * *', '2026-05-01T12:00:59.999Z')).toEqual(['2026-05-01T12:01:00.000Z']);
  });

  it('reads steps, ranges, lists and names', () => {
    expect(next('*/15 * * * * *', '2026-05-01T12:00:01Z', 3)).toEqual(['2026-05-01T12:00:15.000Z', '2026-05-01T12:00:30.000Z', '2026-05-01T12:00:45.000Z']);
    expect(next('0 0 9-10 * * *', '2026-05-01T09:30:00Z', 2)).toEqual(['2026-05-01T10:00:00.000Z', '2026-05-02T09:00:00.000Z']);
    expect(next('0 30 9 * * Mon-Fri', '2026-05-01T10:00:00Z', 2)).toEqual(['2026-05-04T09:30:00.000Z', '2026-05-05T09:30:00.000Z']); // 2026-05-01 is a Friday
    expect(next('0 0 0 1 Jan,Jul *', '2026-05-01T00:00:00Z')).toEqual(['2026-07-01T00:00:00.000Z']);
    expect(next('5/20 * * * * *', '2026-05-01T12:00:06Z', 3)).toEqual(['2026-05-01T12:00:25.000Z', '2026-05-01T12:00:45.000Z', '2026-05-01T12:01:05.000Z']);
    expect(next('0 0 0 * * 7', '2026-05-01T00:00:00Z')).toEqual(['2026-05-03T00:00:00.000Z']);
  });

  it('takes a TimeSpan as an interval', () => {
    expect(next('00:05:00', '2026-05-01T12:03:00Z', 2)).toEqual(['2026-05-01T12:05:00.000Z', '2026-05-01T12:10:00.000Z']);
  });

  it('says what is wrong with a schedule it cannot read', () => {
    for (const [text, problem] of [
      ['0 * * * *', 'expected six fields'],
      ['61 * * * * *', 'second field'],
      ['0 * * * * Funday', 'day of week field'],
      ['0 5-1 * * * *', 'runs backwards'],
      ['*/0 * * * * *', 'step'],
      ['00:00:00', 'longer than zero'],
    ] as const) {
      const parsed = parseSchedule(text);
      expect('error' in parsed ? parsed.error : '').toContain(problem);
    }
  });

  it('never fires for a date that does not exist', () => {
    const parsed = parseSchedule('0 0 0 31 Feb *');
    expect('value' in parsed && parsed.value.next(Date.parse('2026-01-01T00:00:00Z'))).toBe(Number.POSITIVE_INFINITY);
  });
});
