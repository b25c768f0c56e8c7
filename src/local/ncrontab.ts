/**
 * Timer schedules as the Functions host reads them: six-field NCRONTAB `{second} {minute} {hour} {day} {month}
 * {day-of-week}` in UTC (WEBSITE_TIME_ZONE unset), or a TimeSpan `hh:mm:ss` meaning "every interval".
 *
 * Fields take `*`, values, ranges `a-b`, steps `*\/n` and `a-b/n`, and lists; months and days of the week also by
 * their English three-letter names; day of week 0-6 from Sunday (7 is Sunday too). Like NCrontab, a day must match
 * both the day-of-month and the day-of-week field.
 */

export interface Schedule {
  source: string;
  /** The first occurrence strictly after `afterMs` (epoch ms, UTC). */
  next(afterMs: number): number;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Offset added to a name's index (months are 1-based). */
  nameBase?: number;
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAYS, nameBase: 0 },
];

const TIMESPAN = /^(\d{1,2}):(\d{2}):(\d{2})$/;

export function parseSchedule(source: string): { value: Schedule } | { error: string } {
  const text = source.trim();
  const span = TIMESPAN.exec(text);
  if (span !== null) {
    const ms = (Number(span[1]) * 3600 + Number(span[2]) * 60 + Number(span[3])) * 1000;
    if (ms <= 0) return { error: `schedule "${source}": a TimeSpan interval must be longer than zero` };
    return { value: { source, next: (after) => (Math.floor(after / ms) + 1) * ms } };
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 6) {
    return { error: `schedule "${source}": expected six fields {second} {minute} {hour} {day} {month} {day-of-week}, got ${parts.length}` };
  }
  const sets: boolean[][] = [];
  for (let i = 0; i < 6; i++) {
    const parsed = parseField(parts[i]!, FIELDS[i]!);
    if ('error' in parsed) return { error: `schedule "${source}": ${parsed.error}` };
    sets.push(parsed.value);
  }
  const [seconds, minutes, hours, days, months, weekdays] = sets as [boolean[], boolean[], boolean[], boolean[], boolean[], boolean[]];
  if (weekdays[7] === true) weekdays[0] = true;
  return { value: { source, next: (after) => nextOccurrence(after, { seconds, minutes, hours, days, months, weekdays }) } };
}

function parseField(text: string, spec: FieldSpec): { value: boolean[] } | { error: string } {
  const set = new Array<boolean>(spec.max + 1).fill(false);
  for (const item of text.split(',')) {
    const [rangeText = '', stepText, extra] = item.split('/');
    if (extra !== undefined) return { error: `${spec.name} field "${text}": more than one "/"` };
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) return { error: `${spec.name} field "${text}": step must be a whole number from 1` };
    let from: number;
    let to: number;
    if (rangeText === '*') {
      from = spec.min;
      to = spec.name === 'day of week' ? 6 : spec.max;
    } else {
      const [a = '', b, more] = rangeText.split('-');
      if (more !== undefined) return { error: `${spec.name} field "${text}": more than one "-"` };
      const start = value(a, spec);
      if (start === undefined) return { error: `${spec.name} field "${text}": "${a}" is not a value from ${spec.min} to ${spec.max}` };
      from = start;
      if (b === undefined) {
        // `5/15` means from 5 to the end in steps of 15, as in NCrontab.
        to = stepText === undefined ? start : spec.max;
      } else {
        const end = value(b, spec);
        if (end === undefined) return { error: `${spec.name} field "${text}": "${b}" is not a value from ${spec.min} to ${spec.max}` };
        to = end;
      }
      if (to < from) return { error: `${spec.name} field "${text}": range ${from}-${to} runs backwards` };
    }
    for (let v = from; v <= to; v += step) set[v] = true;
  }
  return { value: set };
}

function value(text: string, spec: FieldSpec): number | undefined {
  const named = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  if (named >= 0) return named + (spec.nameBase ?? 0);
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= spec.min && n <= spec.max ? n : undefined;
}

interface Sets {
  seconds: boolean[];
  minutes: boolean[];
  hours: boolean[];
  days: boolean[];
  months: boolean[];
  weekdays: boolean[];
}

/** Five years: past that, a schedule such as 31 February never fires. */
const HORIZON_MS = 5 * 366 * 86_400_000;

function nextOccurrence(afterMs: number, s: Sets): number {
  let t = new Date((Math.floor(afterMs / 1000) + 1) * 1000);
  const limit = afterMs + HORIZON_MS;
  while (t.getTime() <= limit) {
    if (s.months[t.getUTCMonth() + 1] !== true) {
      t = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1));
      continue;
    }
    if (s.days[t.getUTCDate()] !== true || s.weekdays[t.getUTCDay()] !== true) {
      t = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() + 1));
      continue;
    }
    if (s.hours[t.getUTCHours()] !== true) {
      t = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate(), t.getUTCHours() + 1));
      continue;
    }
    if (s.minutes[t.getUTCMinutes()] !== true) {
      t = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate(), t.getUTCHours(), t.getUTCMinutes() + 1));
      continue;
    }
    if (s.seconds[t.getUTCSeconds()] !== true) {
      t = new Date(t.getTime() + 1000);
      continue;
    }
    return t.getTime();
  }
  return Number.POSITIVE_INFINITY;
}
