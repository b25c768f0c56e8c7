/**
 * Evaluates parsed route conditions against a message (and optionally its device or module twin) the way IoT Hub
 * does. Decisions and their sources are in docs/adr/0003-routing-query-language.md; the short names used below:
 *
 * - [routing] learn.microsoft.com/azure/iot-hub/iot-hub-devguide-routing-query-syntax
 * - [language] learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language ("Expressions and conditions")
 * - [cosmos-eq] learn.microsoft.com/azure/cosmos-db/nosql/query/equality-comparison-operators
 * - [cosmos-logic] learn.microsoft.com/azure/cosmos-db/nosql/query/logical-operators
 *
 * Values are JSON values plus `undefined` ("no value"): a missing property, a comparison of mismatched types, a
 * function given the wrong type. A condition routes only when it evaluates to exactly `true` [language: "Any
 * constant different than Boolean true is considered as false"; routing: "If the expression evaluates to a null
 * or undefined value, it's treated as a Boolean false value"].
 *
 * The evaluator walks the AST directly and allocates only for array constants, CONCAT/LOWER/UPPER/SUBSTRING results
 * and arithmetic; lookups reuse the message's own objects.
 */

import { SYSTEM_FIELD_ALIASES } from '../message/normalize.js';
import type { DecodedBody, JsonValue, PropertyValue } from '../message/RoutedMessage.js';
import type { BinaryOp, CallExpr, Expr, PathSegment, ReferenceExpr } from './parser.js';

// ---------------------------------------------------------------------------------------------------------------
// Context

/** The parts of a {@link RoutedMessage} a route condition can see. A RoutedMessage satisfies it. */
export interface RouteMessage {
  /** Application properties. */
  properties: Readonly<Record<string, PropertyValue>>;
  systemProperties: Readonly<Record<string, PropertyValue>>;
  decoded: DecodedBody;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  deviceId?: string | null | undefined;
  moduleId?: string | undefined;
  messageId?: string | undefined;
  enqueuedTime?: Date | null | undefined;
}

/**
 * The twin sections a route condition can name (`$twin.tags...`, `$twin.properties.desired|reported...`). For a
 * message from a module, pass the module twin: modules do not inherit device twin tags [routing].
 */
export interface RouteTwin {
  tags?: Readonly<Record<string, unknown>> | undefined;
  properties?:
    | {
        desired?: Readonly<Record<string, unknown>> | undefined;
        reported?: Readonly<Record<string, unknown>> | undefined;
      }
    | undefined;
}

export interface RouteContext {
  message: RouteMessage;
  /** Absent when twins are not resolved; every `$twin` reference is then undefined. */
  twin?: RouteTwin | null | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// $body availability

export type BodyUnavailableCode =
  /** contentType / contentEncoding are not `application/json` and UTF-8/16/32. */
  | 'BodyNotDeclaredJson'
  /** Declared as JSON, but the bytes do not decode or parse. */
  | 'BodyNotJson';

export type BodyAvailability =
  | { available: true; value: JsonValue }
  | { available: false; code: BodyUnavailableCode; reason: string };

const UTF_ENCODING = /^utf-(8|16|32)$/i;

/**
 * Whether IoT Hub would let a query see this message's body. [routing], "Query based on message body": the body
 * must be JSON, `contentType` must be `application/JSON` and `contentEncoding` one of UTF-8, UTF-16, UTF-32 —
 * "If these system properties aren't specified, IoT Hub won't evaluate the query expression on the message body."
 * This is the classic reason a `$body` route never fires, so the `reason` says exactly which part is wrong.
 *
 * Both values compare ignoring case and surrounding spaces (the docs write `application/JSON` and their own sample
 * sets `utf-8`). Media-type parameters (`application/json; charset=utf-8`) and encoding spellings other than the
 * three documented (`utf8`, `UTF-16LE`) are not accepted: IoT Hub documents no such forms, and a local hub that
 * accepted them would route messages the real hub drops.
 */
export function bodyAvailability(message: RouteMessage): BodyAvailability {
  const contentType = message.contentType?.trim();
  const contentEncoding = message.contentEncoding?.trim();
  const problems: string[] = [];
  if (contentType === undefined || contentType === '') problems.push('contentType is not set');
  else if (contentType.toLowerCase() !== 'application/json') problems.push(`contentType is "${contentType}"`);
  if (contentEncoding === undefined || contentEncoding === '') problems.push('contentEncoding is not set');
  else if (!UTF_ENCODING.test(contentEncoding)) {
    problems.push(`contentEncoding is "${contentEncoding}", which is not UTF-8, UTF-16 or UTF-32`);
  }
  if (problems.length > 0) {
    return {
      available: false,
      code: 'BodyNotDeclaredJson',
      reason: `the message has no contentType=application/json / contentEncoding=UTF-8 (${problems.join('; ')})`,
    };
  }
  const decoded = message.decoded;
  // A device that base64-encodes its JSON sends base64 text, which is not JSON to IoT Hub either.
  if (decoded.kind === 'json' && decoded.decodedFrom.base64 !== 'detected') return { available: true, value: decoded.value };
  const detail =
    decoded.decodedFrom.problem?.detail ??
    (decoded.decodedFrom.base64 === 'detected' ? 'the body is base64 text wrapping JSON' : `the body is ${decoded.kind}, not JSON`);
  return { available: false, code: 'BodyNotJson', reason: `the body is not valid JSON (${detail})` };
}

/**
 * A context prepared for evaluating several conditions against one message: the `$body` decision is made once.
 * Obtain one with {@link prepareContext}.
 */
export interface PreparedContext {
  readonly context: RouteContext;
  body(): BodyAvailability;
}

export function prepareContext(context: RouteContext): PreparedContext {
  let body: BodyAvailability | undefined;
  return {
    context,
    body: () => (body ??= bodyAvailability(context.message)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points

/** True when the condition routes the message: its value is exactly `true`. */
export function evaluateRoute(ast: Expr, context: RouteContext | PreparedContext): boolean {
  return evaluateExpression(ast, context) === true;
}

/**
 * The value of an expression: a JSON value, or `undefined` when IoT Hub's language has no value for it. Useful to
 * show why a condition did not route (`check-routes`).
 */
export function evaluateExpression(expr: Expr, context: RouteContext | PreparedContext): unknown {
  return evaluate(expr, isPrepared(context) ? context : prepareContext(context));
}

function isPrepared(context: RouteContext | PreparedContext): context is PreparedContext {
  return typeof (context as Partial<PreparedContext>).body === 'function';
}

// ---------------------------------------------------------------------------------------------------------------
// Values

export type ValueKind = 'undefined' | 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

export function kindOf(value: unknown): ValueKind {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return 'boolean';
    case 'number':
      // NaN and infinities are not JSON values; nothing here produces them, but a caller's twin could hold them.
      return Number.isFinite(value) ? 'number' : 'undefined';
    case 'string':
      return 'string';
    case 'object':
      return Array.isArray(value) ? 'array' : 'object';
    default:
      return 'undefined';
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  const kind = kindOf(a);
  if (kind !== kindOf(b)) return false;
  switch (kind) {
    case 'array': {
      const x = a as unknown[];
      const y = b as unknown[];
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) if (!deepEqual(x[i], y[i])) return false;
      return true;
    }
    case 'object': {
      const x = a as Record<string, unknown>;
      const y = b as Record<string, unknown>;
      const keys = Object.keys(x);
      if (keys.length !== Object.keys(y).length) return false;
      for (const key of keys) if (!Object.hasOwn(y, key) || !deepEqual(x[key], y[key])) return false;
      return true;
    }
    case 'undefined':
      return false;
    default:
      return a === b;
  }
}

/**
 * [cosmos-eq]: equality and comparison between different types, or with undefined, is undefined; so is ordering
 * objects or arrays. No conversion happens: application properties are strings [routing, "Application
 * properties"], so `temperature > 30` on a property "35" is undefined and does not route.
 */
function compare(op: BinaryOp, a: unknown, b: unknown): boolean | undefined {
  const kind = kindOf(a);
  if (kind === 'undefined' || kind !== kindOf(b)) return undefined;
  if (op === '=') return deepEqual(a, b);
  if (op === '!=' || op === '<>') return !deepEqual(a, b);
  if (kind !== 'number' && kind !== 'string' && kind !== 'boolean') return undefined;
  // Strings compare ordinally (by UTF-16 code unit), as .NET's ordinal comparison and Cosmos DB do.
  const x = a as number | string | boolean;
  const y = b as number | string | boolean;
  switch (op) {
    case '<':
      return x < y;
    case '<=':
      return x <= y;
    case '>':
      return x > y;
    case '>=':
      return x >= y;
    default:
      return undefined;
  }
}

/** Arithmetic on anything but two numbers is undefined; so is a result JSON cannot hold (x / 0). */
function arithmetic(op: BinaryOp, a: unknown, b: unknown): number | undefined {
  if (typeof a !== 'number' || typeof b !== 'number') return undefined;
  let r: number;
  switch (op) {
    case '+':
      r = a + b;
      break;
    case '-':
      r = a - b;
      break;
    case '*':
      r = a * b;
      break;
    case '/':
      r = a / b;
      break;
    case '%':
      r = a % b;
      break;
    default:
      return undefined;
  }
  return finite(r);
}

function finite(n: number): number | undefined {
  return Number.isFinite(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

function evaluate(expr: Expr, env: PreparedContext): unknown {
  switch (expr.kind) {
    case 'literal':
      return expr.value;
    case 'array':
      return expr.items.map((item) => evaluate(item, env));
    case 'reference':
      return resolveReference(expr, env);
    case 'unary': {
      const v = evaluate(expr.operand, env);
      if (expr.op === 'NOT') return v === true ? false : v === false ? true : undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
      return expr.op === '-' ? -v : v;
    }
    case 'binary': {
      const op = expr.op;
      // [cosmos-logic] truth tables: false AND x is false, true OR x is true, whatever x is (even undefined); any
      // operand that is not a Boolean counts as undefined. Evaluating the left side first also skips work.
      if (op === 'AND') {
        const l = evaluate(expr.left, env);
        if (l === false) return false;
        const r = evaluate(expr.right, env);
        if (r === false) return false;
        return l === true && r === true ? true : undefined;
      }
      if (op === 'OR') {
        const l = evaluate(expr.left, env);
        if (l === true) return true;
        const r = evaluate(expr.right, env);
        if (r === true) return true;
        return l === false && r === false ? false : undefined;
      }
      const l = evaluate(expr.left, env);
      const r = evaluate(expr.right, env);
      switch (op) {
        case '+':
        case '-':
        case '*':
        case '/':
        case '%':
          return arithmetic(op, l, r);
        default:
          return compare(op, l, r);
      }
    }
    case 'call':
      return callFunction(expr, env);
  }
}

// ---- functions ([language], "Functions": the lists for routes conditions) --------------------------------------

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function callFunction(expr: CallExpr, env: PreparedContext): unknown {
  const args = expr.args;
  const a = evaluate(args[0]!, env);
  switch (expr.name) {
    // Math: numbers in, numbers out; anything else, or a result JSON cannot hold, is undefined.
    case 'ABS': {
      const x = num(a);
      return x === undefined ? undefined : Math.abs(x);
    }
    case 'EXP': {
      const x = num(a);
      return x === undefined ? undefined : finite(Math.exp(x));
    }
    case 'POWER': {
      const x = num(a);
      const y = num(evaluate(args[1]!, env));
      return x === undefined || y === undefined ? undefined : finite(Math.pow(x, y));
    }
    case 'SQUARE': {
      const x = num(a);
      return x === undefined ? undefined : finite(x * x);
    }
    case 'CEILING': {
      const x = num(a);
      return x === undefined ? undefined : Math.ceil(x);
    }
    case 'FLOOR': {
      const x = num(a);
      return x === undefined ? undefined : Math.floor(x);
    }
    case 'SIGN': {
      const x = num(a);
      return x === undefined ? undefined : x > 0 ? 1 : x < 0 ? -1 : 0;
    }
    case 'SQRT': {
      // [language] describes SQRT as "the square" (a copy of SQUARE's text); the name and Cosmos DB's SQRT say root.
      const x = num(a);
      return x === undefined ? undefined : finite(Math.sqrt(x));
    }
    // Type checking and casting.
    case 'AS_NUMBER': {
      if (typeof a === 'number') return num(a);
      if (typeof a !== 'string') return undefined;
      const text = a.trim();
      return JSON_NUMBER.test(text) ? finite(Number(text)) : undefined;
    }
    case 'IS_ARRAY':
      return kindOf(a) === 'array';
    case 'IS_BOOL':
      return typeof a === 'boolean';
    case 'IS_DEFINED':
      return kindOf(a) !== 'undefined';
    case 'IS_NULL':
      return a === null;
    case 'IS_NUMBER':
      return kindOf(a) === 'number';
    case 'IS_OBJECT':
      return kindOf(a) === 'object';
    case 'IS_PRIMITIVE': {
      const kind = kindOf(a);
      return kind === 'null' || kind === 'boolean' || kind === 'number' || kind === 'string';
    }
    case 'IS_STRING':
      return typeof a === 'string';
    // Strings: ordinal and case-sensitive; lengths and positions in UTF-16 code units, as .NET strings count them.
    case 'CONCAT': {
      let out = str(a);
      for (let i = 1; i < args.length && out !== undefined; i++) {
        const next = str(evaluate(args[i]!, env));
        out = next === undefined ? undefined : out + next;
      }
      return out;
    }
    case 'LENGTH': {
      const s = str(a);
      return s === undefined ? undefined : s.length;
    }
    case 'LOWER': {
      const s = str(a);
      return s === undefined ? undefined : s.toLowerCase();
    }
    case 'UPPER': {
      const s = str(a);
      return s === undefined ? undefined : s.toUpperCase();
    }
    case 'SUBSTRING': {
      // [language]: "starting at the specified character zero-based position and continues to the specified
      // length, or to the end of the string" — the third argument is a length (as in Cosmos DB), not an end index.
      const s = str(a);
      const start = num(evaluate(args[1]!, env));
      const length = args.length > 2 ? num(evaluate(args[2]!, env)) : s?.length;
      if (s === undefined || start === undefined || length === undefined) return undefined;
      if (!Number.isInteger(start) || !Number.isInteger(length)) return undefined;
      const from = Math.max(0, start);
      return s.slice(from, from + Math.max(0, length));
    }
    case 'INDEX_OF': {
      const s = str(a);
      const fragment = str(evaluate(args[1]!, env));
      return s === undefined || fragment === undefined ? undefined : s.indexOf(fragment);
    }
    case 'STARTS_WITH':
    case 'ENDS_WITH':
    case 'CONTAINS': {
      const s = str(a);
      const fragment = str(evaluate(args[1]!, env));
      if (s === undefined || fragment === undefined) return undefined;
      return expr.name === 'STARTS_WITH'
        ? s.startsWith(fragment)
        : expr.name === 'ENDS_WITH'
          ? s.endsWith(fragment)
          : s.includes(fragment);
    }
  }
}

// ---- references ------------------------------------------------------------------------------------------------

/** Per-reference facts derived once from the AST (a flat name and its lower-case form), not per message. */
interface ReferenceInfo {
  /** Dotted name for application and system properties; null when the path holds an array index. */
  name: string | null;
  lower: string | null;
  /** Lower-case keys of the path segments, for the case-insensitive fallback. */
  lowerKeys: (string | null)[];
}

const infoCache = new WeakMap<ReferenceExpr, ReferenceInfo>();

function infoOf(ref: ReferenceExpr): ReferenceInfo {
  let info = infoCache.get(ref);
  if (info === undefined) {
    const keys = ref.segments.map((s) => ('key' in s ? s.key : null));
    const name = keys.includes(null) ? null : keys.join('.');
    info = { name, lower: name?.toLowerCase() ?? null, lowerKeys: keys.map((k) => k?.toLowerCase() ?? null) };
    infoCache.set(ref, info);
  }
  return info;
}

/**
 * Case-insensitive lookup, exact spelling first. [routing]: "IoT Hub device-to-cloud messaging isn't
 * case-sensitive" (property names) and, for twins, "the query isn't case-sensitive". Own properties only, so
 * `constructor` or `__proto__` never resolve.
 */
function lookup(record: unknown, key: string, lower: string): unknown {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  const object = record as Record<string, unknown>;
  if (Object.hasOwn(object, key)) return object[key];
  for (const candidate in object) {
    if (Object.hasOwn(object, candidate) && candidate.toLowerCase() === lower) return object[candidate];
  }
  return undefined;
}

function walk(start: unknown, segments: readonly PathSegment[], lowerKeys: readonly (string | null)[]): unknown {
  let current = start;
  for (let i = 0; i < segments.length && current !== undefined; i++) {
    const segment = segments[i]!;
    if ('index' in segment) {
      current = Array.isArray(current) && segment.index < current.length ? (current[segment.index] as unknown) : undefined;
    } else {
      current = lookup(current, segment.key, lowerKeys[i]!);
    }
  }
  return current;
}

/** Application properties are strings on the wire [routing]; endpoints that typed them are undone here. */
function asPropertyString(value: unknown): string | null | undefined {
  if (value === undefined || value === null || typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function applicationProperty(message: RouteMessage, name: string, lower: string): string | null | undefined {
  return asPropertyString(lookup(message.properties, name, lower));
}

/**
 * System properties by their query names. [routing] names `$contentType`, `$contentEncoding`,
 * `$connectionDeviceId`, `$connectionModuleId`, `$enqueuedTime` (older revisions: `enqueuedTime`), `$dt-dataschema`
 * and `$dt-subject`, and refers to "Create and read IoT Hub messages" for the rest; each is found under its AMQP
 * name (`iothub-connection-device-id`), its storage-encoding name (`connectionDeviceId`) or the model's field. The
 * fields the message model also has are found under the decoders' own aliases, so a route condition and the model
 * never read a different key for the same fact.
 */
const SYSTEM_KEYS: Readonly<Record<string, readonly string[]>> = {
  contenttype: SYSTEM_FIELD_ALIASES.contentType,
  contentencoding: SYSTEM_FIELD_ALIASES.contentEncoding,
  connectiondeviceid: SYSTEM_FIELD_ALIASES.deviceId,
  connectionmoduleid: SYSTEM_FIELD_ALIASES.moduleId,
  connectionauthmethod: ['iothub-connection-auth-method', 'connectionAuthMethod'],
  connectionauthgenerationid: ['iothub-connection-auth-generation-id', 'connectionDeviceGenerationId'],
  enqueuedtime: SYSTEM_FIELD_ALIASES.enqueuedTime,
  'iothub-enqueuedtime': SYSTEM_FIELD_ALIASES.enqueuedTime,
  messageid: SYSTEM_FIELD_ALIASES.messageId,
  correlationid: ['correlation-id', 'correlationId'],
  userid: ['user-id', 'userId'],
  messagesource: ['iothub-message-source'],
};

function systemLookup(system: Readonly<Record<string, PropertyValue>>, keys: readonly string[]): PropertyValue | undefined {
  for (const key of keys) {
    const value = lookup(system, key, key.toLowerCase()) as PropertyValue | undefined;
    if (value !== undefined && value !== null && value !== '') return value;
  }
  return undefined;
}

function nonEmpty(value: string | null | undefined): string | undefined {
  return value === undefined || value === null || value.trim() === '' ? undefined : value;
}

function systemProperty(message: RouteMessage, name: string, lower: string): string | undefined {
  const sys = message.systemProperties;
  switch (lower) {
    case 'contenttype':
      return nonEmpty(message.contentType) ?? asSystemString(systemLookup(sys, SYSTEM_KEYS[lower]!));
    case 'contentencoding':
      return nonEmpty(message.contentEncoding) ?? asSystemString(systemLookup(sys, SYSTEM_KEYS[lower]!));
    case 'connectiondeviceid':
      return asSystemString(systemLookup(sys, SYSTEM_KEYS[lower]!)) ?? nonEmpty(message.deviceId);
    case 'connectionmoduleid':
      return asSystemString(systemLookup(sys, SYSTEM_KEYS[lower]!)) ?? nonEmpty(message.moduleId);
    case 'messageid':
      return nonEmpty(message.messageId) ?? asSystemString(systemLookup(sys, SYSTEM_KEYS[lower]!));
    case 'enqueuedtime':
    case 'iothub-enqueuedtime': {
      const raw = systemLookup(sys, SYSTEM_KEYS[lower]!);
      if (typeof raw === 'string') return raw;
      // Event Hubs hands epoch milliseconds; IoT Hub evaluated the ISO-8601 UTC text.
      if (typeof raw === 'number' && Number.isFinite(raw)) return new Date(raw).toISOString();
      const time = message.enqueuedTime;
      return time instanceof Date && !Number.isNaN(time.getTime()) ? time.toISOString() : undefined;
    }
  }
  const keys = SYSTEM_KEYS[lower];
  return asSystemString(keys === undefined ? systemLookup(sys, [name, `iothub-${name}`]) : systemLookup(sys, keys));
}

function asSystemString(value: PropertyValue | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : String(value);
}

function resolveReference(ref: ReferenceExpr, env: PreparedContext): unknown {
  const info = infoOf(ref);
  const message = env.context.message;
  switch (ref.root) {
    case 'app':
      // Application property values are flat strings, so `a.b` can only be a property named "a.b".
      return info.name === null ? undefined : applicationProperty(message, info.name, info.lower!);
    case 'system': {
      if (info.name === null) return undefined;
      // [routing]: "If an application property name begins with $, then IoT Hub first searches for it in the
      // system properties, and if it's not found will then search for it in the application properties."
      const system = systemProperty(message, info.name, info.lower!);
      return system !== undefined ? system : applicationProperty(message, `$${info.name}`, `$${info.lower!}`);
    }
    case 'body': {
      // [routing]: queries run "only on properties in the body reference"; `$body` itself and `$body[0]` are
      // undefined.
      const first = ref.segments[0];
      if (first === undefined || 'index' in first) return undefined;
      const body = env.body();
      return body.available ? walk(body.value, ref.segments, info.lowerKeys) : undefined;
    }
    case 'twin': {
      const twin = env.context.twin;
      if (twin === undefined || twin === null || ref.segments.length === 0) return undefined;
      return walk(twin, ref.segments, info.lowerKeys);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Explaining

export interface ReferenceDescription {
  /** As written canonically, e.g. `$body.Weather.Temperature`. */
  text: string;
  value: unknown;
  /** Why the value is undefined; absent when it is defined. */
  missing?: string;
}

/** The value of one reference and, when it has none, why — for `check-routes` and the local hub's explanations. */
export function describeReference(ref: ReferenceExpr, text: string, context: RouteContext | PreparedContext): ReferenceDescription {
  const env = isPrepared(context) ? context : prepareContext(context);
  const value = resolveReference(ref, env);
  if (value !== undefined) return { text, value };
  let missing: string;
  switch (ref.root) {
    case 'app':
      missing = infoOf(ref).name === null
        ? 'is undefined: application properties are strings and have no elements'
        : 'is not an application property of the message';
      break;
    case 'system':
      missing = 'is neither a system property nor an application property of the message';
      break;
    case 'body': {
      const first = ref.segments[0];
      const body = env.body();
      missing =
        first === undefined || 'index' in first
          ? 'is undefined: queries can only name properties inside $body, not $body itself or $body[n]'
          : !body.available
            ? `is undefined because $body is: ${body.reason}`
            : 'is not in the message body';
      break;
    }
    case 'twin':
      missing =
        env.context.twin === undefined || env.context.twin === null
          ? 'is undefined: no twin is available for this message (twin resolution is off, or the device has none)'
          : 'is not in the twin';
      break;
  }
  return { text, value, missing };
}

/**
 * Comparisons and arithmetic in `expr` whose operands both have values but of different types — the reason
 * `temperature > 30` is undefined when `temperature` is the application property "35".
 */
export function typeMismatches(expr: Expr, context: RouteContext | PreparedContext): Array<{ node: Expr; left: ValueKind; right: ValueKind }> {
  const env = isPrepared(context) ? context : prepareContext(context);
  const found: Array<{ node: Expr; left: ValueKind; right: ValueKind }> = [];
  const visit = (node: Expr): void => {
    switch (node.kind) {
      case 'binary': {
        visit(node.left);
        visit(node.right);
        if (node.op === 'AND' || node.op === 'OR') return;
        const left = kindOf(evaluate(node.left, env));
        const right = kindOf(evaluate(node.right, env));
        if (left !== 'undefined' && right !== 'undefined' && left !== right) found.push({ node, left, right });
        return;
      }
      case 'unary':
        visit(node.operand);
        return;
      case 'call':
        node.args.forEach(visit);
        return;
      case 'array':
        node.items.forEach(visit);
        return;
      default:
        return;
    }
  };
  visit(expr);
  return found;
}
