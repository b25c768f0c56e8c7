/**
 * `GET /api/reports` and `iot-routing reports`: the query parameters, validated with every problem reported at
 * once, and the response. Host-independent: the HTTP function and the CLI hand over plain name/value pairs.
 *
 * Parameters: `deviceId` (optional; IoT Hub's device id rules), `from` / `to` (ISO 8601 with a zone, or a date;
 * windows *starting* in [from, to); default the 24 hours up to now, or after `from`; at most 31 days), `window` (a configured size;
 * default the smallest), `format` (`json` default, or `csv`). `code` is the function key and is ignored here.
 */
import { readFailure } from '../errors.js';
import type { Clock } from '../ports.js';
import type { Services } from '../runtime.js';
import { aggregationConfigOf, parseWindowSize, type AggregationConfig } from './aggregationConfig.js';
import { readReports, reportsToCsv, type ReportQuery, type WindowReport } from './reports.js';
import { blobWindowStore, type WindowStore } from './windowStore.js';

export type ReportFormat = 'json' | 'csv';

export interface ParsedReportsQuery {
  query: ReportQuery & { range: { fromMs: number; toMs: number } };
  format: ReportFormat;
}

export const MAX_RANGE_DAYS = 31;
const DAY_MS = 86_400_000;
const PARAMETERS = ['deviceId', 'from', 'to', 'window', 'format'] as const;
/** The Functions host reads the function key from `code`; it is not ours to reject. */
const HOST_PARAMETERS = ['code'];
/** IoT Hub device ids: up to 128 ASCII letters, digits and `- . + % _ # * ? ! ( ) , : = @ $ '`. */
const DEVICE_ID = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/;

/** ISO 8601 with an explicit zone (`Z` or `+02:00`), or a date meaning UTC midnight; null otherwise. */
/**
 * A `from`/`to` query parameter: absent is undefined; a value that is not an instant adds the one message every
 * HTTP route gives for it and is undefined too.
 */
export function instantParameter(name: string, text: string | undefined, errors: string[]): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseInstant(text);
  if (ms === null) {
    errors.push(`${name}: ${JSON.stringify(text)} is not an ISO 8601 time with a zone (2024-03-01T10:00:00Z) or a date (2024-03-01)`);
    return undefined;
  }
  return ms;
}

export function parseInstant(text: string): number | null {
  const date = DATE_ONLY.exec(text);
  const stamp = date === null ? TIMESTAMP.exec(text) : null;
  const parts = date ?? stamp;
  if (parts === null) return null;
  const [y, mo, d] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const [h, mi, s] = stamp === null ? [0, 0, 0] : [Number(stamp[4]), Number(stamp[5]), Number(stamp[6] ?? 0)];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const day = Date.UTC(y, mo - 1, d);
  if (new Date(day).getUTCDate() !== d || y < 1970) return null;
  let ms = day + ((h * 60 + mi) * 60 + s) * 1000 + (stamp?.[7] === undefined ? 0 : Math.floor(Number(`0.${stamp[7]}`) * 1000));
  const zone = stamp?.[8];
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const offsetMinutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
    if (offsetMinutes > 18 * 60) return null;
    ms -= sign * offsetMinutes * 60_000;
  }
  return ms;
}

export function parseReportsQuery(
  params: Iterable<readonly [string, string]>,
  config: AggregationConfig,
  now: Date,
): { value: ParsedReportsQuery } | { errors: string[] } {
  const errors: string[] = [];
  const values = new Map<string, string>();
  for (const [name, value] of params) {
    if (HOST_PARAMETERS.includes(name)) continue;
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      errors.push(`${name}: unknown parameter (allowed: ${PARAMETERS.join(', ')})`);
    } else if (values.has(name)) {
      errors.push(`${name}: given more than once`);
    } else {
      values.set(name, value);
    }
  }

  const deviceId = values.get('deviceId');
  if (deviceId !== undefined && !DEVICE_ID.test(deviceId)) {
    errors.push(
      `deviceId: not an IoT Hub device id (1-128 characters: letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ')`,
    );
  }

  const instant = (name: 'from' | 'to'): number | undefined => instantParameter(name, values.get(name), errors);
  const fromGiven = instant('from');
  const toGiven = instant('to');
  const toMs = toGiven ?? (fromGiven === undefined ? now.getTime() : fromGiven + DAY_MS);
  const fromMs = fromGiven ?? toMs - DAY_MS;
  if (toMs <= fromMs) errors.push(`to: must be after from (${new Date(fromMs).toISOString()})`);
  if (toMs - fromMs > MAX_RANGE_DAYS * DAY_MS) {
    errors.push(`from/to: at most ${MAX_RANGE_DAYS} days apart, got ${((toMs - fromMs) / DAY_MS).toFixed(1)}`);
  }

  const configured = config.windows.map((w) => w.label).join(', ');
  const windowText = values.get('window');
  let window = config.windows[0];
  if (windowText !== undefined) {
    const size = parseWindowSize(windowText);
    window = size === null ? undefined : config.windows.find((w) => w.ms === size.ms);
    if (window === undefined) errors.push(`window: ${JSON.stringify(windowText)} is not a configured window (${configured})`);
  }

  const formatText = values.get('format') ?? 'json';
  if (formatText !== 'json' && formatText !== 'csv') errors.push(`format: expected json or csv, got ${JSON.stringify(formatText)}`);

  if (errors.length > 0 || window === undefined) return { errors };
  return {
    value: {
      query: { window, range: { fromMs, toMs }, ...(deviceId === undefined ? {} : { deviceId }) },
      format: formatText as ReportFormat,
    },
  };
}

export interface ReportsResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface ReportsEndpointDeps {
  windows: WindowStore;
  config: AggregationConfig;
  clock: Clock;
}

export type ReportsEndpoint = (params: Iterable<readonly [string, string]>) => Promise<ReportsResponse>;

/** Renders the reports of a parsed query; JSON keeps the query next to the reports so a saved file says what it is. */
export function renderReports(parsed: ParsedReportsQuery, reports: readonly WindowReport[]): ReportsResponse {
  const { query, format } = parsed;
  if (format === 'csv') {
    return { status: 200, headers: { 'content-type': 'text/csv; charset=utf-8' }, body: reportsToCsv(reports) };
  }
  const body = {
    window: query.window.label,
    from: new Date(query.range.fromMs).toISOString(),
    to: new Date(query.range.toMs).toISOString(),
    ...(query.deviceId === undefined ? {} : { deviceId: query.deviceId }),
    count: reports.length,
    reports,
  };
  return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: `${JSON.stringify(body)}\n` };
}

function problem(status: number, error: string, problems: readonly string[], headers: Record<string, string> = {}): ReportsResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: `${JSON.stringify({ error, problems })}\n`,
  };
}

export function createReportsEndpoint(deps: ReportsEndpointDeps): ReportsEndpoint {
  return async (params) => {
    const parsed = parseReportsQuery(params, deps.config, deps.clock.now());
    if ('errors' in parsed) return problem(400, 'BadRequest', parsed.errors);
    try {
      return renderReports(parsed.value, await readReports(deps.windows, deps.config, parsed.value.query));
    } catch (error) {
      const failure = readFailure(error);
      if (failure === undefined) throw error;
      return problem(failure.status, failure.error, failure.problems, failure.headers);
    }
  };
}

export function reportsEndpointFromServices(services: Services): ReportsEndpoint {
  return createReportsEndpoint({
    windows: blobWindowStore(services.store, services.config.settings.reportsContainer),
    config: aggregationConfigOf(services.config.routing),
    clock: services.clock,
  });
}
