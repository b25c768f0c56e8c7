/**
 * The `aggregation` section of routing.config.json and the REPORTS_CONTAINER app setting, validated once with every
 * problem reported together (STYLE.md 3).
 *
 * ```json
 * "aggregation": {
 *   "windows": ["1m", "1h"],
 *   "fields": ["temperature", "humidity"],
 *   "allowedLatenessSeconds": 600,
 *   "levels": { "aggregate": ["normal"] },
 *   "idlePartitionSeconds": 60
 * }
 * ```
 *
 * Window sizes: the smallest configured size is the *base* window, whose documents hold every counted message's
 * identity and contribution (that is what makes dedupe exact). Larger sizes are roll-ups of base windows, so each
 * must be a whole multiple of the base, and every size must divide a day so that windows align to UTC midnight.
 * The base is at most 15 minutes (it bounds the identity set one document holds) and a roll-up spans at most 1440
 * base windows (it bounds a roll-up's pages: 24 documents of 60 base windows, see `rollupPageOf` in windows.ts).
 */
import { RoutingError } from '../errors.js';

export interface WindowSize {
  /** Canonical spelling, used in blob names and reports: `30s`, `1m`, `15m`, `1h`, `1d`. */
  label: string;
  ms: number;
}

export interface AggregationConfig {
  /** Ascending; `windows[0]` is the base window. */
  windows: readonly WindowSize[];
  /** Body fields to aggregate; `null` means every numeric top-level field (at most {@link MAX_FIELDS_PER_MESSAGE}). */
  fields: readonly string[] | null;
  /** How long after a window's end (in event time) it still accepts messages as on time. */
  allowedLatenessMs: number;
  /** `level` values whose messages are aggregated; a message without a level counts as {@link LEVEL_WHEN_ABSENT}. */
  aggregateLevels: readonly string[];
  /** A partition with no batch for this long is idle: the finalize timer advances its watermark by the clock. */
  idlePartitionMs: number;
}

export type AggregationConfigResult = { value: AggregationConfig } | { errors: string[] };

/** A body with more numeric fields than this has the rest counted in `fieldsOmitted`, never aggregated silently. */
export const MAX_FIELDS_PER_MESSAGE = 32;

const SECOND = 1000;
const DAY_MS = 86_400_000;
const MAX_BASE_MS = 15 * 60 * SECOND;
const MAX_SUB_WINDOWS = 1440;
const MAX_LATENESS_SECONDS = 7 * 86_400;
const UNITS: ReadonlyArray<[string, number]> = [
  ['d', DAY_MS],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', SECOND],
];

/**
 * The level a message without one is aggregated under: on the built-in endpoint it is normal telemetry (the fallback
 * route's traffic). The one spelling of that rule, for the aggregator and for whatever names levels back to the user.
 */
export const LEVEL_WHEN_ABSENT = 'normal';

export const DEFAULT_AGGREGATION_CONFIG: AggregationConfig = Object.freeze({
  windows: Object.freeze([{ label: '1m', ms: 60_000 }]),
  fields: null,
  allowedLatenessMs: 600 * SECOND,
  aggregateLevels: Object.freeze([LEVEL_WHEN_ABSENT]),
  idlePartitionMs: 60 * SECOND,
});

/** `90s`, `1m`, `60m`, `1h`, `1d` → milliseconds and the canonical label (`60m` → `1h`); null when not a size. */
export function parseWindowSize(text: string): WindowSize | null {
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text.trim());
  if (match === null) return null;
  const unitMs = UNITS.find(([unit]) => unit === match[2])?.[1] ?? SECOND;
  const ms = Number(match[1]) * unitMs;
  return ms > 0 ? windowSizeOf(ms) : null;
}

/** The size with its canonical label: the largest unit that divides it. */
export function windowSizeOf(ms: number): WindowSize {
  for (const [unit, unitMs] of UNITS) {
    if (ms % unitMs === 0) return { label: `${ms / unitMs}${unit}`, ms };
  }
  return { label: `${ms}ms`, ms };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function stringList(raw: unknown, at: string, errors: string[], limit: number): string[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0) {
    errors.push(`${at}: expected a non-empty array of strings, got ${describe(raw)}`);
    return undefined;
  }
  if (raw.length > limit) errors.push(`${at}: at most ${limit} entries, got ${raw.length}`);
  const seen = new Set<string>();
  const out: string[] = [];
  raw.forEach((item, i) => {
    if (typeof item !== 'string' || item.trim() === '') {
      errors.push(`${at}[${i}]: expected a non-empty string, got ${describe(item)}`);
    } else if (seen.has(item)) {
      errors.push(`${at}[${i}]: ${JSON.stringify(item)} is listed twice`);
    } else {
      seen.add(item);
      out.push(item);
    }
  });
  return out;
}

/** A whole number of seconds from the config, in milliseconds; `fallbackMs` when absent or invalid. */
function seconds(raw: unknown, at: string, errors: string[], fallbackMs: number, min: number, max: number): number {
  if (raw === undefined) return fallbackMs;
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= min && raw <= max) return raw * SECOND;
  errors.push(`${at}: expected a whole number of seconds from ${min} to ${max}, got ${describe(raw)}`);
  return fallbackMs;
}

/**
 * Validates the `aggregation` section (`undefined` means all defaults). Every problem is reported with its path,
 * e.g. `aggregation.windows[1]: "7m" does not divide a day`.
 */
export function parseAggregationConfig(raw: unknown, path = 'aggregation'): AggregationConfigResult {
  if (raw === undefined) return { value: DEFAULT_AGGREGATION_CONFIG };
  if (!isObject(raw)) return { errors: [`${path}: expected an object, got ${describe(raw)}`] };
  const errors: string[] = [];
  const allowed = ['windows', 'fields', 'allowedLatenessSeconds', 'levels', 'idlePartitionSeconds'];
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) errors.push(`${path}.${key}: unknown setting (allowed: ${allowed.join(', ')})`);
  }

  let windows: WindowSize[] = [...DEFAULT_AGGREGATION_CONFIG.windows];
  if (raw['windows'] !== undefined) {
    const labels = stringList(raw['windows'], `${path}.windows`, errors, 8) ?? [];
    const parsed: WindowSize[] = [];
    labels.forEach((label, i) => {
      const size = parseWindowSize(label);
      const at = `${path}.windows[${i}]`;
      if (size === null) {
        errors.push(`${at}: ${JSON.stringify(label)} is not a window size (a number and s, m, h or d: "1m", "1h")`);
      } else if (DAY_MS % size.ms !== 0) {
        errors.push(`${at}: ${JSON.stringify(label)} does not divide a day, so its windows would not align to UTC midnight`);
      } else if (parsed.some((p) => p.ms === size.ms)) {
        errors.push(`${at}: ${JSON.stringify(label)} is the same size as another entry`);
      } else {
        parsed.push(size);
      }
    });
    parsed.sort((a, b) => a.ms - b.ms);
    if (parsed.length > 0) {
      errors.push(...windowProblems(parsed, `${path}.windows`));
      windows = parsed;
    }
  }

  let fields: string[] | null = null;
  if (raw['fields'] !== undefined) {
    fields = stringList(raw['fields'], `${path}.fields`, errors, MAX_FIELDS_PER_MESSAGE) ?? null;
    fields?.sort();
  }

  const allowedLatenessMs = seconds(
    raw['allowedLatenessSeconds'],
    `${path}.allowedLatenessSeconds`,
    errors,
    DEFAULT_AGGREGATION_CONFIG.allowedLatenessMs,
    0,
    MAX_LATENESS_SECONDS,
  );
  const idlePartitionMs = seconds(
    raw['idlePartitionSeconds'],
    `${path}.idlePartitionSeconds`,
    errors,
    DEFAULT_AGGREGATION_CONFIG.idlePartitionMs,
    1,
    86_400,
  );

  let aggregateLevels: readonly string[] = DEFAULT_AGGREGATION_CONFIG.aggregateLevels;
  const levels = raw['levels'];
  if (levels !== undefined) {
    if (!isObject(levels)) {
      errors.push(`${path}.levels: expected an object like { "aggregate": ["normal"] }, got ${describe(levels)}`);
    } else {
      for (const key of Object.keys(levels)) {
        if (key !== 'aggregate') errors.push(`${path}.levels.${key}: unknown setting (allowed: aggregate)`);
      }
      if (levels['aggregate'] !== undefined) {
        aggregateLevels = stringList(levels['aggregate'], `${path}.levels.aggregate`, errors, 16) ?? aggregateLevels;
      }
    }
  }

  if (errors.length > 0) return { errors };
  return { value: { windows, fields, allowedLatenessMs, aggregateLevels, idlePartitionMs } };
}

/** What is wrong with a set of window sizes (ascending, unique, each dividing a day) as base plus roll-ups. */
function windowProblems(sizes: readonly WindowSize[], at: string): string[] {
  const [base, ...larger] = sizes;
  if (base === undefined) return [`${at}: at least one window size is needed`];
  const problems: string[] = [];
  if (base.ms > MAX_BASE_MS) {
    problems.push(`${at}: the smallest window (${base.label}) holds every counted message id and must be at most 15m`);
  }
  for (const size of larger) {
    if (size.ms % base.ms !== 0) {
      problems.push(`${at}: ${size.label} is not a whole multiple of the smallest window ${base.label}`);
    } else if (size.ms / base.ms > MAX_SUB_WINDOWS) {
      problems.push(
        `${at}: ${size.label} spans ${size.ms / base.ms} windows of ${base.label}; at most ${MAX_SUB_WINDOWS} (add a larger smallest window)`,
      );
    }
  }
  return problems;
}

/**
 * The config with one more window size (the CLI's `--window`), validated like the configured ones; the base stays
 * the configured one whenever the new size allows it, so roll-ups are computed as the stream computes them.
 */
export function withWindow(config: AggregationConfig, label: string): AggregationConfigResult {
  const size = parseWindowSize(label);
  if (size === null) return { errors: [`${JSON.stringify(label)} is not a window size (a number and s, m, h or d: "1m", "1h")`] };
  if (DAY_MS % size.ms !== 0) return { errors: [`${size.label} does not divide a day`] };
  if (config.windows.some((w) => w.ms === size.ms)) return { value: config };
  const windows = [...config.windows, size].sort((a, b) => a.ms - b.ms);
  const problems = windowProblems(windows, 'windows');
  return problems.length > 0 ? { errors: problems } : { value: { ...config, windows } };
}

/**
 * The aggregation config of a loaded routing config. routing.config.json's `aggregation` section is parsed by
 * {@link parseAggregationConfig} into `routing.aggregation`; a routing config without one gets the defaults.
 */
export function aggregationConfigOf(routing: object): AggregationConfig {
  const value = (routing as { aggregation?: unknown }).aggregation;
  return isAggregationConfig(value) ? value : DEFAULT_AGGREGATION_CONFIG;
}

function isAggregationConfig(value: unknown): value is AggregationConfig {
  return (
    isObject(value) &&
    Array.isArray(value['windows']) &&
    value['windows'].length > 0 &&
    typeof value['allowedLatenessMs'] === 'number' &&
    Array.isArray(value['aggregateLevels'])
  );
}

const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;

/** REPORTS_CONTAINER: where window partials and partition watermarks live. Default `reports`. */
export function parseReportsContainer(env: Readonly<Record<string, string | undefined>>): { value: string } | { errors: string[] } {
  const value = env['REPORTS_CONTAINER']?.trim() || 'reports';
  if (!CONTAINER_NAME.test(value)) {
    return {
      errors: [
        `REPORTS_CONTAINER: "${value}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`,
      ],
    };
  }
  return { value };
}

/** REPORTS_CONTAINER for callers without the app's services (the CLI); a bad value is ConfigInvalid. */
export function reportsContainerOf(env: Readonly<Record<string, string | undefined>>): string {
  const container = parseReportsContainer(env);
  if ('errors' in container) throw new RoutingError('ConfigInvalid', container.errors.join('; '));
  return container.value;
}
