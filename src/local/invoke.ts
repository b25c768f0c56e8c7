/**
 * Invoking a registered function the way the Functions host and the Node library do: a real `InvocationContext`
 * (function name, invocation id, trigger metadata, retry context, effective options) whose log methods go to the
 * local logger, and trigger metadata converted exactly as the library converts what the host sends.
 *
 * The host sends each metadata entry as typed RPC data (`string`, `json`, `collectionString`, `collectionSint64`,
 * ...). The library (`fromRpcTriggerMetadata`) turns strings that parse as JSON into values, parses `json`, and then
 * lower-cases the first letter of every key, recursively — so the host's `SystemPropertiesArray` arrives as
 * `systemPropertiesArray` and a device property `Level` as `level`. Payload builders here describe the host's side
 * with {@link rpc} and let {@link toNodeTriggerMetadata} do the library's side, so both conversions stay visible.
 */
import { randomUUID } from 'node:crypto';
import functions from '@azure/functions';
import type { Registration } from './registrations.js';

export type RpcValue =
  | { string: string }
  | { json: unknown }
  | { collectionString: string[] }
  | { collectionSint64: number[] }
  | { int: number };

/** Typed RPC data builders, named after the host's `TypedData` cases. */
export const rpc = {
  string: (value: string): RpcValue => ({ string: value }),
  json: (value: unknown): RpcValue => ({ json: value }),
  collectionString: (value: string[]): RpcValue => ({ collectionString: value }),
  collectionSint64: (value: number[]): RpcValue => ({ collectionSint64: value }),
  int: (value: number): RpcValue => ({ int: value }),
};

function tryJsonParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function fromRpc(value: RpcValue): unknown {
  if ('string' in value) return tryJsonParse(value.string);
  // The host serialises `json` data to text; a round trip drops undefined and turns Dates into strings likewise.
  if ('json' in value) return JSON.parse(JSON.stringify(value.json)) as unknown;
  if ('collectionString' in value) return value.collectionString.map(tryJsonParse);
  if ('collectionSint64' in value) return [...value.collectionSint64];
  return value.int;
}

export function toCamelCaseKey(key: string): string {
  return key.charAt(0).toLowerCase() + key.slice(1);
}

export function toCamelCaseValue(data: unknown): unknown {
  if (typeof data !== 'object' || data === null) return data;
  if (Array.isArray(data)) return data.map(toCamelCaseValue);
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) result[toCamelCaseKey(key)] = toCamelCaseValue(value);
  return result;
}

/** What a Node v4 function finds in `context.triggerMetadata` for the host's metadata `host`. */
export function toNodeTriggerMetadata(host: Readonly<Record<string, RpcValue>>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(host)) result[toCamelCaseKey(key)] = toCamelCaseValue(fromRpc(value));
  return result;
}

/**
 * A trigger payload as the library hands it to the handler for the registration's `dataType`: Buffers for
 * `binary`; text for `string`; by default text that parses as JSON arrives parsed (the host sends string data).
 */
export function payloadFor(dataType: unknown, bytes: Uint8Array): unknown {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dataType === 'binary' || dataType === 'stream') return buffer;
  const text = buffer.toString('utf8');
  return dataType === 'string' ? text : tryJsonParse(text);
}

/** .NET `DateTime` of kind Unspecified as the host serialises it: no zone designator (see the trigger fixtures). */
export function dotnetDateTime(date: Date): string {
  return date.toISOString().slice(0, 23);
}

/** .NET `DateTimeOffset` in UTC as the host serialises it. */
export function dotnetDateTimeOffset(date: Date): string {
  return `${date.toISOString().slice(0, 23)}+00:00`;
}

export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';

export interface FunctionLogger {
  log(functionName: string, invocationId: string, level: LogLevel, args: unknown[]): void;
}

export interface RetryContext {
  retryCount: number;
  maxRetryCount: number;
  exception?: { message?: string; stackTrace?: string; source?: string };
}

const TRIGGER_BUILDERS: Readonly<Record<string, string>> = {
  http: 'http',
  timer: 'timer',
  storageBlob: 'storageBlob',
  storageQueue: 'storageQueue',
  serviceBusQueue: 'serviceBusQueue',
  serviceBusTopic: 'serviceBusTopic',
  eventHub: 'eventHub',
  eventGrid: 'eventGrid',
  cosmosDB: 'cosmosDB',
  warmup: 'warmup',
};

/** The registration's effective trigger binding, built by the library's own `trigger.*` helpers. */
function effectiveOptions(registration: Registration): Record<string, unknown> {
  const { handler: _handler, return: ret, extraInputs, extraOutputs, retry: _retry, trigger, ...triggerOptions } = registration.options;
  const builders = functions.trigger as unknown as Record<string, ((o: unknown) => unknown) | undefined>;
  const builder = builders[TRIGGER_BUILDERS[registration.kind] ?? ''];
  return {
    trigger: trigger ?? builder?.(triggerOptions) ?? { type: registration.kind, name: `${registration.kind}Trigger` },
    return: ret,
    extraInputs: Array.isArray(extraInputs) ? extraInputs : [],
    extraOutputs: Array.isArray(extraOutputs) ? extraOutputs : [],
  };
}

export interface InvokeOptions {
  triggerMetadata?: Record<string, unknown>;
  retryContext?: RetryContext;
}

/** Calls the registration's handler with a real InvocationContext; returns what the handler returned (or throws). */
export async function invokeRegistration(
  registration: Registration,
  input: unknown,
  logger: FunctionLogger,
  options: InvokeOptions = {},
): Promise<unknown> {
  const invocationId = randomUUID();
  const context = new functions.InvocationContext({
    functionName: registration.name,
    invocationId,
    ...(options.triggerMetadata !== undefined ? { triggerMetadata: options.triggerMetadata } : {}),
    ...(options.retryContext !== undefined ? { retryContext: options.retryContext } : {}),
    options: effectiveOptions(registration) as never,
    logHandler: (level, ...args) => logger.log(registration.name, invocationId, level, args),
  });
  return await registration.options.handler(input, context);
}

// ---- retry policies ------------------------------------------------------------------------------------------

export interface RetryPolicy {
  /** -1: retry indefinitely. */
  maxRetryCount: number;
  /** Simulated milliseconds to wait before retry number `retry` (1-based). */
  delayMs(retry: number): number;
}

function durationMs(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value)) return Math.max(0, value);
  if (typeof value === 'object' && value !== null) {
    const d = value as { hours?: number; minutes?: number; seconds?: number; milliseconds?: number };
    return ((d.hours ?? 0) * 3600 + (d.minutes ?? 0) * 60 + (d.seconds ?? 0)) * 1000 + (d.milliseconds ?? 0);
  }
  return 0;
}

/**
 * The registration's `retry` option (only the host's timer, Event Hubs, Cosmos DB and Kafka triggers honour one).
 * Exponential back-off doubles from the minimum up to the maximum; the host's small random spread is left out, so
 * local runs are reproducible.
 */
export function retryPolicyOf(registration: Registration): RetryPolicy | null {
  const retry = registration.options['retry'] as Record<string, unknown> | undefined;
  if (retry === undefined || retry === null) return null;
  const maxRetryCount = typeof retry['maxRetryCount'] === 'number' ? retry['maxRetryCount'] : 0;
  if (retry['strategy'] === 'fixedDelay') {
    const delay = durationMs(retry['delayInterval']);
    return { maxRetryCount, delayMs: () => delay };
  }
  if (retry['strategy'] === 'exponentialBackoff') {
    const min = durationMs(retry['minimumInterval']);
    const max = Math.max(min, durationMs(retry['maximumInterval']));
    return { maxRetryCount, delayMs: (n) => Math.min(max, min * 2 ** Math.max(0, n - 1)) };
  }
  return null;
}

export function retryContextFor(policy: RetryPolicy, retryCount: number, error: unknown): RetryContext {
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    retryCount,
    maxRetryCount: policy.maxRetryCount,
    exception: { message: e.message, ...(e.stack !== undefined ? { stackTrace: e.stack } : {}), source: e.name },
  };
}

/** `%NAME%` in a binding expression, resolved from app settings as the host does. */
export function resolveSetting(value: unknown, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (typeof value !== 'string') return undefined;
  return value.replace(/%([^%]+)%/g, (_, name: string) => env[name] ?? '');
}
