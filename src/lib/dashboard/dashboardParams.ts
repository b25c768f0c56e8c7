/**
 * `GET /api/dashboard/data` parameters, validated with every problem reported at once (STYLE.md 3). Host-independent:
 * the HTTP function hands over plain name/value pairs.
 *
 * - `window`: a configured window size (`1m`); default the smallest.
 * - `range`: a duration back from now (`15m`, `1h`, `6h`, `24h`, `7d`, or any `<n>s|m|h|d`); default the preset
 *   that shows about {@link TARGET_POINTS} windows. "Now" is the app's clock, not the browser's: under `npm start`
 *   the clock is simulated and may run ahead of the wall clock.
 * - `from` / `to`: an explicit range instead of `range` (ISO 8601 with a zone, or a date); `to` defaults to now.
 * - `deviceId`: repeatable, at most {@link MAX_DEVICE_FILTER}; IoT Hub's device id rules, as GET /api/reports checks
 *   them (reportsQuery.ts). Absent: every device.
 * - `code`: the function key, read by the host; ignored here.
 *
 * Bounds: at most {@link MAX_RANGE_DAYS} days, and at most {@link MAX_POINTS} windows per series, so one request
 * reads a bounded number of reports whatever the combination.
 */
import { parseWindowSize, type AggregationConfig, type WindowSize } from '../aggregate/aggregationConfig.js';
import { DEVICE_ID, deviceIdProblem, formatDays, MAX_RANGE_DAYS } from '../aggregate/reportsQuery.js';
import { instantParameter } from '../instant.js';

export { MAX_RANGE_DAYS };

/** Windows per series: a day of one-minute windows, about one per horizontal pixel of a wide chart. */
export const MAX_POINTS = 1440;
/** More lines than this on one chart cannot be told apart; the filter picks which devices to compare. */
export const MAX_DEVICE_FILTER = 12;
/** The default range is the preset closest to this many windows of the chosen size. */
export const TARGET_POINTS = 60;

export interface RangePreset {
  /** The `range` parameter value. */
  value: string;
  label: string;
  ms: number;
}

export const RANGE_PRESETS: readonly RangePreset[] = [
  { value: '15m', label: 'Last 15 minutes', ms: 15 * 60_000 },
  { value: '1h', label: 'Last hour', ms: 3_600_000 },
  { value: '6h', label: 'Last 6 hours', ms: 6 * 3_600_000 },
  { value: '24h', label: 'Last 24 hours', ms: 86_400_000 },
  { value: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
];

export interface DashboardQuery {
  window: WindowSize;
  fromMs: number;
  toMs: number;
  /** The relative range asked for (`1h`), or null when `from`/`to` were given. */
  range: string | null;
  /** Distinct, in the order given; empty means every device. */
  deviceIds: string[];
}

const PARAMETERS = ['window', 'range', 'from', 'to', 'deviceId'] as const;
const REPEATABLE = new Set<string>(['deviceId']);
/** The Functions host reads the function key from `code`; it is not ours to reject. */
const HOST_PARAMETERS = new Set(['code']);
const DAY_MS = 86_400_000;

export function pointsOf(rangeMs: number, window: WindowSize): number {
  return Math.ceil(rangeMs / window.ms);
}

/**
 * The preset whose number of windows is closest (by ratio) to {@link TARGET_POINTS} without exceeding
 * {@link MAX_POINTS}: one-minute windows get the last hour, fifteen-minute windows the last day.
 */
export function defaultRangeFor(window: WindowSize): RangePreset {
  const usable = RANGE_PRESETS.filter((p) => p.ms >= window.ms && pointsOf(p.ms, window) <= MAX_POINTS);
  const candidates = usable.length > 0 ? usable : [RANGE_PRESETS[RANGE_PRESETS.length - 1]!];
  let best = candidates[0]!;
  for (const preset of candidates) {
    const distance = Math.abs(Math.log(pointsOf(preset.ms, window) / TARGET_POINTS));
    if (distance < Math.abs(Math.log(pointsOf(best.ms, window) / TARGET_POINTS))) best = preset;
  }
  return best;
}

/** A duration like `90m`, `24h`, `7d` in milliseconds; null when not one. */
export function parseDuration(text: string): number | null {
  return parseWindowSize(text)?.ms ?? null;
}

export function parseDashboardQuery(
  params: Iterable<readonly [string, string]>,
  config: AggregationConfig,
  now: Date,
): { value: DashboardQuery } | { errors: string[] } {
  const errors: string[] = [];
  const single = new Map<string, string>();
  const deviceIds: string[] = [];
  const repeated = new Set<string>();
  for (const [name, value] of params) {
    if (HOST_PARAMETERS.has(name)) continue;
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      errors.push(`${name}: unknown parameter (allowed: ${PARAMETERS.join(', ')})`);
    } else if (REPEATABLE.has(name)) {
      // GET /api/reports' rule and words: both endpoints take and refuse the same ids, and say so alike.
      if (!DEVICE_ID.test(value)) errors.push(deviceIdProblem(value, 'url'));
      else if (!deviceIds.includes(value)) deviceIds.push(value);
    } else if (single.has(name)) {
      if (!repeated.has(name)) errors.push(`${name}: given more than once`);
      repeated.add(name);
    } else {
      single.set(name, value);
    }
  }
  if (deviceIds.length > MAX_DEVICE_FILTER) {
    errors.push(`deviceId: at most ${MAX_DEVICE_FILTER} devices at once, got ${deviceIds.length}`);
  }

  const configured = config.windows.map((w) => w.label).join(', ');
  let window = config.windows[0];
  const windowText = single.get('window');
  if (windowText !== undefined) {
    const size = parseWindowSize(windowText);
    window = size === null ? undefined : config.windows.find((w) => w.ms === size.ms);
    if (window === undefined) errors.push(`window: ${JSON.stringify(windowText)} is not a configured window (${configured})`);
  }

  const instant = (name: 'from' | 'to'): number | undefined => instantParameter(name, single.get(name), errors, 'url');
  const rangeText = single.get('range');
  const fromGiven = instant('from');
  const toGiven = instant('to');
  if (rangeText !== undefined && (single.has('from') || single.has('to'))) {
    errors.push('range: give either range (a duration back from now) or from/to, not both');
  }
  let rangeMs: number | undefined;
  if (rangeText !== undefined) {
    const ms = parseDuration(rangeText);
    if (ms === null) errors.push(`range: ${JSON.stringify(rangeText)} is not a duration (a number and s, m, h or d: "1h", "7d")`);
    else rangeMs = ms;
  }

  if (errors.length > 0 || window === undefined) return { errors };

  const explicit = single.has('from') || single.has('to');
  const defaultRange = defaultRangeFor(window);
  const toMs = toGiven ?? now.getTime();
  const fromMs = fromGiven ?? toMs - (rangeMs ?? defaultRange.ms);
  if (toMs <= fromMs) errors.push(`to: must be after from (${new Date(fromMs).toISOString()})`);
  if (toMs - fromMs > MAX_RANGE_DAYS * DAY_MS) {
    errors.push(`range: at most ${MAX_RANGE_DAYS} days, got ${formatDays(toMs - fromMs)}`);
  } else if (pointsOf(toMs - fromMs, window) > MAX_POINTS) {
    errors.push(
      `range: ${pointsOf(toMs - fromMs, window)} windows of ${window.label}; at most ${MAX_POINTS} per chart: choose a larger window or a shorter range`,
    );
  }
  if (errors.length > 0) return { errors };
  return {
    value: {
      window,
      fromMs,
      toMs,
      range: explicit ? null : (rangeText ?? defaultRange.value),
      deviceIds,
    },
  };
}
