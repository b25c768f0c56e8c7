import { readFile } from 'node:fs/promises';
import { parseRoutingConfig, type EndpointName, type RoutingConfig } from '../../lib/config.js';
import { configInvalid, RoutingError } from '../../lib/errors.js';
import { decodeBody } from '../../lib/message/body.js';
import { applyEnrichments, classifyEnrichmentValue } from '../../lib/routing/enrich.js';
import { bodyAvailability, type RouteMessage, type RouteTwin } from '../../lib/routing/evaluate.js';
import { parseRouteQuery } from '../../lib/routing/parser.js';
import { compileRoutes, evaluateRoutes, routeWarnings, type CompiledRoute } from '../../lib/routing/routes.js';
import { EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';

export const checkRoutesUsage = `iot-routing check-routes <messages.ndjson> [--config PATH] [--format text|ndjson]
  Evaluates the routes of routing.config.json (default ./routing.config.json) against each message, one JSON
  object per line: { "deviceId", "properties", "contentType", "contentEncoding", "body", "twin", "messageId" }
  ("body": a JSON value or a string; "bodyBase64" for other bytes; "twin": { "tags", "properties" }). Prints the
  endpoints each message goes to and why, including when $body is invisible to queries because contentType or
  contentEncoding are not set, and the enrichments each endpoint would stamp. Exit 0; 1 for usage errors, input
  that is not valid, or a route condition that does not parse (with its position).`;

/** The sections check-routes reads; the rest of routing.config.json (alerts, archive, ...) is not its business. */
const ROUTING_KEYS = ['$schema', 'iotHubName', 'routes', 'fallbackRoute', 'enrichments', 'checks', 'twinResolution'];

export interface CheckRoutesInput {
  deviceId?: string;
  moduleId?: string;
  messageId?: string;
  properties?: Record<string, string | number | boolean>;
  contentType?: string;
  contentEncoding?: string;
  body?: unknown;
  bodyBase64?: string;
  twin?: RouteTwin;
  enqueuedTime?: string;
}

interface Loaded {
  routing: RoutingConfig;
  compiled: CompiledRoute[];
}

/** Where a condition fails to parse, shown under the condition as an editor would. */
function caret(condition: string, position: number): string {
  const lineStart = condition.lastIndexOf('\n', Math.max(0, position - 1)) + 1;
  const lineEnd = condition.indexOf('\n', position);
  const line = condition.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
  return `    ${line}\n    ${' '.repeat(Math.max(0, position - lineStart))}^`;
}

async function loadRoutes(file: string, io: CliIo): Promise<Loaded | number> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error;
    io.stderr.write(`${file}: not valid JSON: ${(error as Error).message}\n`);
    return EXIT.usage;
  }
  const doc = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  // Parse errors first, each with the condition and a caret: the problem people bring to this command.
  const routes = Array.isArray(doc['routes']) ? doc['routes'] : [];
  const unparsable: string[] = [];
  routes.forEach((route, i) => {
    const condition = typeof route === 'object' && route !== null ? (route as Record<string, unknown>)['condition'] : undefined;
    if (typeof condition !== 'string') return;
    const parsed = parseRouteQuery(condition);
    if ('error' in parsed) {
      const name = (route as Record<string, unknown>)['name'];
      unparsable.push(
        `routes[${i}]${typeof name === 'string' ? ` ("${name}")` : ''}.condition does not parse: ${parsed.error.message} ` +
          `(line ${parsed.error.line}, column ${parsed.error.column})\n${caret(condition, parsed.error.position)}`,
      );
    }
  });
  if (unparsable.length > 0) {
    io.stderr.write(`${file}: IoT Hub would refuse ${unparsable.length === 1 ? 'this route' : 'these routes'}:\n${unparsable.join('\n')}\n`);
    return EXIT.usage;
  }
  const shaped = routes.map((route: unknown) => (typeof route === 'object' && route !== null ? (route as { name?: unknown; condition?: unknown }) : {}));
  for (const warning of routeWarnings(shaped)) io.stderr.write(`${file}: warning: ${warning}\n`);
  const problems: string[] = [];
  const routing = parseRoutingConfig(Object.fromEntries(Object.entries(doc).filter(([k]) => ROUTING_KEYS.includes(k))), problems);
  if (problems.length > 0) {
    throw configInvalid(`${file} is invalid`, problems);
  }
  const compiled = compileRoutes(routing.routes);
  if ('errors' in compiled) throw new RoutingError('ConfigInvalid', `${file}: ${compiled.errors.join('; ')}`);
  return { routing, compiled: compiled.compiled };
}

const UTF16 = /^utf-?16(le)?$/i;
const UTF32 = /^utf-?32(le)?$/i;

/** The bytes a device would send for `body`, in the declared encoding (UTF-8 when none is declared). */
function bodyBytes(input: CheckRoutesInput, line: number): Uint8Array {
  if (input.bodyBase64 !== undefined) {
    if (typeof input.bodyBase64 !== 'string') throw new UsageError(`line ${line}: "bodyBase64" must be a string`);
    return Buffer.from(input.bodyBase64, 'base64');
  }
  if (input.body === undefined) return new Uint8Array(0);
  const text = typeof input.body === 'string' ? input.body : JSON.stringify(input.body);
  const encoding = input.contentEncoding?.trim() ?? '';
  if (UTF16.test(encoding)) return Buffer.from(text, 'utf16le');
  if (UTF32.test(encoding)) {
    const codePoints = Array.from(text, (c) => c.codePointAt(0)!);
    const out = Buffer.alloc(codePoints.length * 4);
    codePoints.forEach((cp, i) => out.writeUInt32LE(cp, i * 4));
    return out;
  }
  return Buffer.from(text, 'utf8');
}

function parseInput(text: string, line: number): CheckRoutesInput {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`line ${line}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`line ${line}: expected a JSON object`);
  const input = value as CheckRoutesInput & Record<string, unknown>;
  for (const key of ['deviceId', 'moduleId', 'messageId', 'contentType', 'contentEncoding', 'enqueuedTime'] as const) {
    if (input[key] !== undefined && typeof input[key] !== 'string') throw new UsageError(`line ${line}: "${key}" must be a string`);
  }
  if (input.properties !== undefined && (typeof input.properties !== 'object' || input.properties === null || Array.isArray(input.properties))) {
    throw new UsageError(`line ${line}: "properties" must be an object of application properties`);
  }
  if (input.twin !== undefined && (typeof input.twin !== 'object' || input.twin === null)) {
    throw new UsageError(`line ${line}: "twin" must be an object with "tags" and/or "properties"`);
  }
  return input;
}

function routeMessage(input: CheckRoutesInput, line: number): RouteMessage {
  const body = bodyBytes(input, line);
  // Application properties travel as strings (IoT Hub's transports have no other type), as the hub evaluates them.
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.properties ?? {})) properties[key] = String(value);
  const deviceId = input.deviceId ?? 'device';
  const enqueuedTime = input.enqueuedTime === undefined ? new Date() : new Date(input.enqueuedTime);
  if (Number.isNaN(enqueuedTime.getTime())) throw new UsageError(`line ${line}: "enqueuedTime" is not a time`);
  const systemProperties: Record<string, string> = {
    'iothub-connection-device-id': deviceId,
    ...(input.moduleId !== undefined ? { 'iothub-connection-module-id': input.moduleId } : {}),
    'iothub-enqueuedtime': enqueuedTime.toISOString(),
    'iothub-message-source': 'Telemetry',
    ...(input.messageId !== undefined ? { 'message-id': input.messageId } : {}),
    ...(input.contentType !== undefined ? { 'content-type': input.contentType } : {}),
    ...(input.contentEncoding !== undefined ? { 'content-encoding': input.contentEncoding } : {}),
  };
  return {
    properties,
    systemProperties,
    decoded: decodeBody(body, { contentType: input.contentType, contentEncoding: input.contentEncoding }),
    contentType: input.contentType,
    contentEncoding: input.contentEncoding,
    deviceId,
    moduleId: input.moduleId,
    messageId: input.messageId,
    enqueuedTime,
  };
}

interface Verdict {
  line: number;
  deviceId: string;
  endpoints: EndpointName[];
  matched: Array<{ route: string; endpoint: EndpointName }>;
  fallback: boolean;
  explanations: string[];
  body: { visible: true } | { visible: false; reason: string };
  enrichments: Partial<Record<EndpointName, Record<string, string>>>;
  unresolved: Partial<Record<EndpointName, string[]>>;
}

function judge(loaded: Loaded, input: CheckRoutesInput, line: number): Verdict {
  const message = routeMessage(input, line);
  const twin = input.twin;
  const evaluation = evaluateRoutes(loaded.compiled, loaded.routing.fallbackRoute, { message, twin });
  const availability = bodyAvailability(message);
  const enrichments: Verdict['enrichments'] = {};
  const unresolved: Verdict['unresolved'] = {};
  for (const endpoint of evaluation.endpoints) {
    const stamped = applyEnrichments(loaded.routing.enrichments, endpoint, { iotHubName: loaded.routing.iotHubName, twin });
    enrichments[endpoint] = stamped;
    const literal = loaded.routing.enrichments
      .filter((e) => e.endpoints.includes(endpoint) && classifyEnrichmentValue(e.value).kind === 'twin' && stamped[e.key] === e.value)
      .map((e) => e.key);
    if (literal.length > 0) unresolved[endpoint] = literal;
  }
  return {
    line,
    deviceId: message.deviceId ?? 'device',
    endpoints: evaluation.endpoints,
    matched: evaluation.matched,
    fallback: evaluation.fallback,
    explanations: evaluation.explanations,
    body: availability.available ? { visible: true } : { visible: false, reason: availability.reason },
    enrichments,
    unresolved,
  };
}

function describe(verdict: Verdict): string[] {
  const where = verdict.endpoints.length === 0 ? 'dropped (no route matched and no fallback)' : verdict.endpoints.join(', ');
  const lines = [`line ${verdict.line}: ${verdict.deviceId} → ${where}`];
  for (const explanation of verdict.explanations) lines.push(`  ${explanation}`);
  if (!verdict.body.visible) {
    // Said for every message, not only when a route names $body: it is why a $body route added later never fires.
    lines.push(`  $body is not visible to routing queries: ${verdict.body.reason}`);
  }
  for (const [endpoint, stamped] of Object.entries(verdict.enrichments)) {
    const pairs = Object.entries(stamped).map(([k, v]) => `${k}=${v}`);
    if (pairs.length === 0) continue;
    const literal = verdict.unresolved[endpoint as EndpointName] ?? [];
    lines.push(
      `  enrichments on ${endpoint}: ${pairs.join(', ')}${literal.length > 0 ? ` (unresolved, stamped as the literal text: ${literal.join(', ')})` : ''}`,
    );
  }
  return lines;
}

export async function checkRoutesCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'routing.config.json' },
      format: { type: 'string', default: 'text' },
    },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError('check-routes takes exactly one NDJSON file of messages');
  if (values.format !== 'text' && values.format !== 'ndjson') throw new UsageError('--format must be text or ndjson');
  const loaded = await loadRoutes(values.config, io);
  if (typeof loaded === 'number') return loaded;

  const text = await readFile(file, 'utf8');
  const tally = new Map<string, number>();
  let count = 0;
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    if (raw.trim() === '') continue;
    let verdict: Verdict;
    try {
      verdict = judge(loaded, parseInput(raw, index + 1), index + 1);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      io.stderr.write(`${file}: ${error.message}\n`);
      return EXIT.usage;
    }
    count++;
    const key = verdict.endpoints.length === 0 ? '(dropped)' : verdict.endpoints.join('+');
    tally.set(key, (tally.get(key) ?? 0) + 1);
    if (values.format === 'ndjson') await writeLine(io.stdout, JSON.stringify(verdict));
    else for (const line of describe(verdict)) await writeLine(io.stdout, line);
  }
  const summary = `${file}: ${count} message${count === 1 ? '' : 's'} against ${loaded.compiled.length} route${loaded.compiled.length === 1 ? '' : 's'} of ${values.config}: ${[...tally].map(([k, n]) => `${k} ${n}`).join(', ') || 'nothing to route'}`;
  (values.format === 'ndjson' ? io.stderr : io.stdout).write(`${summary}\n`);
  return EXIT.ok;
}
