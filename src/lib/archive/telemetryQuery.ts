/**
 * GET /api/telemetry, host-independent: parameter validation (every problem reported in one 400), the query, and a
 * streamed body. src/functions/telemetry.ts only adapts it to the Functions HTTP types.
 *
 * Parameters (all validated; unknown ones are rejected so a typo never silently widens a query):
 *   from, to        required, ISO 8601 with a zone (`2024-05-01T12:00:00Z`) or a date (UTC midnight), as every
 *                   route reads them (instant.ts); [from, to) at most maxQueryRangeHours
 *   deviceId        repeatable; any of these device ids (the same name /api/reports and /api/dashboard use)
 *   level           the `level` application property
 *   property        repeatable `key=value` on application properties (enrichments included)
 *   where           repeatable body predicate `path<op>value`, op one of = != < <= > >=; a number compares
 *                   numerically, 'quoted' text as text (< <= > >= need one or the other)
 *   format          json (default) | ndjson | csv
 *   limit           1..maxPageSize (default min(1000, maxPageSize))
 *   continuation    the token from the previous page of the same query
 *   code            the function key (the host checks it; accepted and ignored here)
 */
import type { ChecksConfig } from '../checks/expectations.js';
import { instantParameter } from '../instant.js';
import { isRoutingError, isTransient } from '../errors.js';
import type { BlobStore, Clock } from '../ports.js';
import type { ResolvedArchive } from './archiveDeps.js';
import {
  parseBodyPredicate,
  parsePropertyEquals,
  type ArchiveFilter,
  type BodyPredicate,
  type PropertyEquals,
} from './filter.js';
import { CONTENT_TYPES, createFormatter, formatAnswer, OUTPUT_FORMATS, type OutputFormat } from './formats.js';
import { continuationFormProblem, decodeContinuation, queryArchive } from './query.js';

export interface TelemetryQuery {
  filter: ArchiveFilter & { from: Date; to: Date };
  format: OutputFormat;
  limit: number;
  continuation: string | null;
}

export interface TelemetryLimits {
  maxQueryRangeHours: number;
  maxPageSize: number;
}

const PARAMETERS = ['from', 'to', 'deviceId', 'level', 'property', 'where', 'format', 'limit', 'continuation', 'code'] as const;
const REPEATABLE = new Set(['deviceId', 'property', 'where']);
const MAX_DEVICES = 100;
const MAX_CONDITIONS = 10;
const MAX_VALUE_LENGTH = 1024;
const DEFAULT_PAGE_SIZE = 1000;

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function parseTelemetryQuery(params: URLSearchParams, limits: TelemetryLimits): { value: TelemetryQuery } | { errors: string[] } {
  const errors: string[] = [];
  const seen = new Map<string, string[]>();
  for (const [key, value] of params) {
    if (!(PARAMETERS as readonly string[]).includes(key)) {
      errors.push(`${clip(key)}: unknown parameter (allowed: ${PARAMETERS.filter((p) => p !== 'code').join(', ')})`);
      continue;
    }
    if (value.length > MAX_VALUE_LENGTH) {
      errors.push(`${key}: longer than ${MAX_VALUE_LENGTH} characters`);
      continue;
    }
    seen.set(key, [...(seen.get(key) ?? []), value]);
  }
  for (const [key, values] of seen) {
    if (!REPEATABLE.has(key) && values.length > 1) errors.push(`${key}: given ${values.length} times; give it once`);
  }
  const single = (key: string): string | undefined => seen.get(key)?.[0];

  let from: Date | undefined;
  let to: Date | undefined;
  for (const key of ['from', 'to'] as const) {
    const text = single(key);
    if (text === undefined) {
      errors.push(`${key}: required (ISO 8601 with a zone, or a date); a query without a range would scan the whole archive`);
      continue;
    }
    const ms = instantParameter(key, text, errors, 'url');
    if (ms === undefined) continue;
    if (key === 'from') from = new Date(ms);
    else to = new Date(ms);
  }
  if (from !== undefined && to !== undefined) {
    if (from.getTime() >= to.getTime()) errors.push('to: must be after from (the range is [from, to))');
    else if (to.getTime() - from.getTime() > limits.maxQueryRangeHours * 3_600_000) {
      errors.push(`to: the range is longer than the maximum of ${limits.maxQueryRangeHours} hours; split the query`);
    }
  }

  const deviceIds = seen.get('deviceId') ?? [];
  if (deviceIds.length > MAX_DEVICES) errors.push(`deviceId: at most ${MAX_DEVICES} device ids per query`);
  for (const id of deviceIds) if (id === '') errors.push('deviceId: empty device id');

  const level = single('level');
  if (level === '') errors.push('level: empty');

  const properties: PropertyEquals[] = [];
  const propertyTexts = seen.get('property') ?? [];
  if (propertyTexts.length > MAX_CONDITIONS) errors.push(`property: at most ${MAX_CONDITIONS} conditions`);
  for (const text of propertyTexts) {
    const parsed = parsePropertyEquals(text);
    if ('error' in parsed) errors.push(`property: ${parsed.error}`);
    else properties.push(parsed.value);
  }

  const where: BodyPredicate[] = [];
  const whereTexts = seen.get('where') ?? [];
  if (whereTexts.length > MAX_CONDITIONS) errors.push(`where: at most ${MAX_CONDITIONS} conditions`);
  for (const text of whereTexts) {
    const parsed = parseBodyPredicate(text);
    if ('error' in parsed) errors.push(`where: ${parsed.error}`);
    else where.push(parsed.value);
  }

  const formatText = single('format') ?? 'json';
  const format = (OUTPUT_FORMATS as readonly string[]).includes(formatText) ? (formatText as OutputFormat) : undefined;
  if (format === undefined) errors.push(`format: expected one of ${OUTPUT_FORMATS.join(', ')}, got "${clip(formatText)}"`);

  let limit = Math.min(DEFAULT_PAGE_SIZE, limits.maxPageSize);
  const limitText = single('limit');
  if (limitText !== undefined) {
    const n = /^\d{1,9}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(n >= 1 && n <= limits.maxPageSize)) errors.push(`limit: expected a whole number from 1 to ${limits.maxPageSize}, got "${clip(limitText)}"`);
    else limit = n;
  }

  const continuation = single('continuation') ?? null;
  if (continuation === '') errors.push('continuation: empty');
  else if (continuation !== null) {
    // Only its form here; whether it belongs to this query is settled once the query itself is valid.
    const problem = continuationFormProblem(continuation);
    if (problem !== null) errors.push(`continuation: ${problem}`);
  }

  if (errors.length > 0 || from === undefined || to === undefined || format === undefined) return { errors };
  return {
    value: {
      filter: {
        from,
        to,
        ...(deviceIds.length > 0 ? { deviceIds } : {}),
        ...(level !== undefined ? { level } : {}),
        ...(properties.length > 0 ? { properties } : {}),
        ...(where.length > 0 ? { where } : {}),
      },
      format,
      limit,
      continuation,
    },
  };
}

// ---- handler ------------------------------------------------------------------------------------------------

export interface TelemetryQueryDeps {
  store: BlobStore;
  archive: ResolvedArchive;
  clock: Clock;
  /** The archive endpoint's checks: records they would quarantine are never served. */
  checks?: ChecksConfig;
  concurrency?: number;
}

export interface TelemetryResponse {
  status: number;
  headers: Record<string, string>;
  /** A string for errors; the streamed answer otherwise (fail mid-stream = the connection is cut). */
  body: string | AsyncIterable<string>;
}

/** Text is handed to the host in chunks of about this many characters rather than one per record. */
const CHUNK_CHARS = 32 * 1024;

export type TelemetryQueryHandler = (params: URLSearchParams) => Promise<TelemetryResponse>;

export function createTelemetryQueryHandler(deps: TelemetryQueryDeps): TelemetryQueryHandler {
  const { archive } = deps;
  const badRequest = (problems: string[]): TelemetryResponse => ({
    status: 400,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    body: JSON.stringify({ error: 'InvalidQuery', problems }),
  });

  return async (params) => {
    const parsed = parseTelemetryQuery(params, archive.config);
    if ('errors' in parsed) return badRequest(parsed.errors);
    const { filter, format, limit, continuation } = parsed.value;
    if (continuation !== null) {
      const position = decodeContinuation(continuation, { container: archive.container, config: archive.config, filter });
      if ('error' in position) return badRequest([`continuation: ${position.error}`]);
    }

    const query = queryArchive(deps.store, archive.container, archive.config, filter, {
      limit,
      continuation,
      indexContainer: archive.indexContainer,
      ...(deps.concurrency === undefined ? {} : { concurrency: deps.concurrency }),
      ...(deps.checks === undefined ? {} : { checks: { config: deps.checks, now: deps.clock.now() } }),
    });
    const chunks = formatAnswer(query, createFormatter(format, { inBandTrailer: true }), CHUNK_CHARS);
    // Wait for the first chunk (the first records, or the whole answer when it is small) before answering, so that
    // storage failures at the start become a 503 the client can retry rather than a 200 with a cut body.
    let first: IteratorResult<string>;
    try {
      first = await chunks.next();
    } catch (error) {
      if (!isTransient(error)) throw error;
      const retryAfter = isRoutingError(error) ? error.retryAfterSeconds : undefined;
      return {
        status: 503,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'no-store',
          'retry-after': String(Math.max(1, Math.ceil(retryAfter ?? 5))),
        },
        body: JSON.stringify({ error: 'StorageUnavailable', message: (error as Error).message }),
      };
    }
    async function* body(): AsyncGenerator<string> {
      try {
        for (let next = first; next.done !== true; next = await chunks.next()) yield next.value;
      } finally {
        await chunks.return(undefined);
      }
    }
    return {
      status: 200,
      headers: {
        'content-type': CONTENT_TYPES[format],
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...(format === 'csv' ? { 'content-disposition': 'inline; filename="telemetry.csv"' } : {}),
      },
      body: body(),
    };
  };
}
