/**
 * `GET /api/reports` and `iot-routing reports`: the query parameters, validated with every problem reported at
 * once, and the response. Host-independent: the HTTP function and the CLI hand over plain name/value pairs, and say
 * whether they came from a URL (only there does a "+" arrive as a space).
 *
 * Parameters: `deviceId` (optional; IoT Hub's device id rules), `from` / `to` (ISO 8601 with a zone, or a date;
 * windows *starting* in [from, to); default the 24 hours up to now, or after `from`; at most 31 days), `window` (a configured size;
 * default the smallest), `format` (`json` default, or `csv`). `code` is the function key and is ignored here.
 */
import { readFailure } from '../errors.js';
import { instantParameter, type ParameterSource } from '../instant.js';
import type { Clock } from '../ports.js';
import type { Services } from '../runtime.js';
import { aggregationConfigOf, parseWindowSize, type AggregationConfig } from './aggregationConfig.js';
import { baseWindowCheck } from './baseWindow.js';
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
/**
 * IoT Hub device ids: up to 128 ASCII letters, digits and `- . + % _ # * ? ! ( ) , : = @ $ '`. The one rule for every
 * `deviceId` parameter (this endpoint and the dashboard's data), refused with {@link deviceIdProblem}.
 */
export const DEVICE_ID = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

export function parseReportsQuery(
  params: Iterable<readonly [string, string]>,
  config: AggregationConfig,
  now: Date,
  source: ParameterSource = 'url',
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
  if (deviceId !== undefined && !DEVICE_ID.test(deviceId)) errors.push(deviceIdProblem(deviceId, source));

  const instant = (name: 'from' | 'to'): number | undefined => instantParameter(name, values.get(name), errors, source);
  const fromGiven = instant('from');
  const toGiven = instant('to');
  const toMs = toGiven ?? (fromGiven === undefined ? now.getTime() : fromGiven + DAY_MS);
  const fromMs = fromGiven ?? toMs - DAY_MS;
  if (toMs <= fromMs) errors.push(`to: must be after from (${new Date(fromMs).toISOString()})`);
  if (toMs - fromMs > MAX_RANGE_DAYS * DAY_MS) {
    errors.push(`from/to: at most ${MAX_RANGE_DAYS} days apart, got ${formatDays(toMs - fromMs)}; split the query`);
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

/**
 * What is wrong with a `deviceId` that is not an IoT Hub device id, showing what arrived: a device id may hold "+",
 * which an unencoded query string delivers as a space, so the refusal of an id the user believes valid says why.
 * Only for a URL: a command line decodes nothing, and "%" is allowed in device ids, so `%2B` there would be taken
 * as is and name another device.
 */
export function deviceIdProblem(value: string, source: ParameterSource): string {
  const problem = `deviceId: ${JSON.stringify(value.slice(0, 140))} is not an IoT Hub device id (1-128 characters: letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ')`;
  return source === 'url' && value.includes(' ') ? `${problem}; a "+" in a URL reads as a space: write it as %2B` : problem;
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
  const verifyBase = baseWindowCheck(deps.windows, deps.config.windows[0]!);
  return async (params) => {
    const parsed = parseReportsQuery(params, deps.config, deps.clock.now());
    if ('errors' in parsed) return problem(400, 'BadRequest', parsed.errors);
    try {
      await verifyBase();
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

/** A span just over a whole number of days must not read as that number (31 days and 1 ms is not "31.0"). */
export function formatDays(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  const rest = ms - days * DAY_MS;
  if (rest === 0) return `${days} days`;
  const hours = rest / 3_600_000;
  return `${days} days and ${hours >= 1 ? `${Number(hours.toFixed(2))} hours` : `${Math.ceil(rest / 1000)} s`}`;
}
