import { decodeDeclaredBody } from './body.js';
import type { DecodedBody, MessageSource, PropertyValue, RoutedMessage } from './RoutedMessage.js';

/**
 * The same fact arrives under different keys depending on the endpoint: AMQP names on the Event Hubs and Service
 * Bus paths (`iothub-connection-device-id`), camelCase names in IoT Hub's storage encodings (`connectionDeviceId`).
 * Lookups ignore case, as IoT Hub does.
 */
export const SYSTEM_FIELD_ALIASES = {
  deviceId: ['iothub-connection-device-id', 'connectionDeviceId'],
  moduleId: ['iothub-connection-module-id', 'connectionModuleId'],
  messageId: ['message-id', 'messageId'],
  enqueuedTime: ['iothub-enqueuedtime', 'enqueuedTime'],
  contentType: ['content-type', 'contentType', 'iothub-content-type'],
  contentEncoding: ['content-encoding', 'contentEncoding', 'iothub-content-encoding'],
} as const;

export type SystemField = keyof typeof SYSTEM_FIELD_ALIASES;

/** Every alias, lower-cased, to its field and its rank among that field's aliases (lower wins). */
const ALIAS_INDEX = new Map<string, { field: SystemField; rank: number }>(
  (Object.entries(SYSTEM_FIELD_ALIASES) as Array<[SystemField, readonly string[]]>).flatMap(([field, names]) =>
    names.map((name, rank) => [name.toLowerCase(), { field, rank }] as const),
  ),
);

type SystemFields = Partial<Record<SystemField, string>>;

const FIELDS = Object.keys(SYSTEM_FIELD_ALIASES) as SystemField[];

/**
 * What a key, exactly as spelled, says, as one small integer: the field it names (an index into FIELDS) times
 * RANK_RANGE plus its rank among that field's aliases, or NO_ALIAS. As in lookupProperty, any exactly spelled alias
 * outranks every case variant; then alias order decides. An integer rather than an object: the scan compares and
 * stores these for every key of every message, and small integers need no loads.
 */
const RANK_RANGE = 16;
const NO_ALIAS = -1;

function aliasOf(key: string): number {
  const alias = ALIAS_INDEX.get(key) ?? ALIAS_INDEX.get(key.toLowerCase());
  if (alias === undefined) return NO_ALIAS;
  const names = SYSTEM_FIELD_ALIASES[alias.field];
  const rank = names[alias.rank] === key ? alias.rank : names.length + alias.rank;
  return FIELDS.indexOf(alias.field) * RANK_RANGE + rank;
}

/**
 * Keys seen before, so that a key is lower-cased once and not once per message. Bounded: keys are sender-chosen on
 * some paths, and a cleared memo only costs a recomputation.
 */
const KEY_ALIAS_LIMIT = 1024;
const keyAliases = new Map<string, number>();
/**
 * The key found at each position of the previous map, and its alias. Messages of one stream carry the same keys in
 * the same order, and the Avro reader even hands over the same string instances, so this usually spares the Map.
 */
const POSITIONS_REMEMBERED = 32;
const lastKeys: Array<string | undefined> = [];
const lastAliases: number[] = [];

/** The alias of a key that is not the one remembered at its position (see scanSystemFields for the common case). */
function keyAlias(key: string, position: number): number {
  let alias = keyAliases.get(key);
  if (alias === undefined) {
    alias = aliasOf(key);
    if (keyAliases.size >= KEY_ALIAS_LIMIT) keyAliases.clear();
    keyAliases.set(key, alias);
  }
  if (position < POSITIONS_REMEMBERED) {
    lastKeys[position] = key;
    lastAliases[position] = alias;
  }
  return alias;
}

/** The result of the last `scanSystemFields`, by FIELDS index: reused so that a message allocates nothing here. */
const scanned: Array<string | undefined> = FIELDS.map(() => undefined);
const scannedRanks: number[] = FIELDS.map(() => RANK_RANGE);
const DEVICE_ID = FIELDS.indexOf('deviceId');
const MODULE_ID = FIELDS.indexOf('moduleId');
const MESSAGE_ID = FIELDS.indexOf('messageId');
const ENQUEUED_TIME = FIELDS.indexOf('enqueuedTime');
const CONTENT_TYPE = FIELDS.indexOf('contentType');
const CONTENT_ENCODING = FIELDS.indexOf('contentEncoding');

/**
 * Fills `scanned` in one pass over the keys. Read it before anything else can scan again. Returns whether the map
 * can be a message's as it is: a plain object (prototype Object.prototype or null) whose every value is a
 * `PropertyValue` as `toPropertyValue` would leave it (a map straight from a transport may hold others).
 *
 * This runs for every message on every path and touches every key (about fifteen on the Event Hubs path), so the
 * loop is written for V8: module bindings copied to locals (each read of one is otherwise a context load and a
 * dead-zone check), the remembered key at each position tried in line, and a field recorded only for keys that
 * name one.
 */
function scanSystemFields(systemProperties: Readonly<Record<string, unknown>>): boolean {
  const found = scanned;
  const ranks = scannedRanks;
  for (let f = 0; f < found.length; f++) {
    found[f] = undefined;
    ranks[f] = RANK_RANGE;
  }
  if (!enumeratesOwnKeysOnly(systemProperties)) {
    // Plain only with a plain prototype: a map of another class could show other keys to a for...in.
    const prototype = Object.getPrototypeOf(systemProperties) as unknown;
    let plain = prototype === null || prototype === Object.prototype;
    const keys = Object.keys(systemProperties);
    for (let position = 0; position < keys.length; position++) {
      const key = keys[position]!;
      const value = systemProperties[key];
      if (!isPlainPropertyValue(value)) plain = false;
      else scanSystemField(keyAlias(key, position), value);
    }
    return plain;
  }
  const keys = lastKeys;
  const aliases = lastAliases;
  let plain = true;
  let position = 0;
  // for...in reads each value through V8's enum cache, about three times cheaper than Object.keys and a keyed
  // load per key; it visits own keys only, as checked above, so no own-property test (which would cost more than
  // the rest of the scan) is needed.
  for (const key in systemProperties) {
    const value = systemProperties[key];
    if (!isPlainPropertyValue(value)) {
      // The caller converts the map and scans the copy, so what this scan found no longer matters.
      plain = false;
    } else {
      const alias = position < POSITIONS_REMEMBERED && keys[position] === key ? aliases[position]! : keyAlias(key, position);
      if (alias !== NO_ALIAS) scanSystemField(alias, value);
    }
    position++;
  }
  return plain;
}

/** Values `toPropertyValue` returns as they are. */
export function isPlainPropertyValue(value: unknown): value is PropertyValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    default:
      return value === null;
  }
}

function scanSystemField(alias: number, value: PropertyValue): void {
  if (alias === NO_ALIAS || value === null || value === '') return;
  const field = (alias / RANK_RANGE) | 0;
  const rank = alias % RANK_RANGE;
  if (scannedRanks[field]! <= rank) return;
  scannedRanks[field] = rank;
  scanned[field] = typeof value === 'string' ? value : String(value);
}

/**
 * Whether `for...in` over `record` visits exactly its own enumerable string keys: its prototype is null, or is
 * Object.prototype with no enumerable property (one polluted by some library would add its keys to every map).
 */
export function enumeratesOwnKeysOnly(record: object): boolean {
  const prototype = Object.getPrototypeOf(record) as unknown;
  if (prototype === null) return true;
  if (prototype !== Object.prototype) return false;
  for (const _ in Object.prototype) return false;
  return true;
}

/**
 * All system fields in one pass over the keys, each key's alias worked out once per distinct key: what
 * `systemField` per field would find, at a fraction of the cost, because this runs for every message every decoder
 * reads.
 */
export function systemFields(systemProperties: Readonly<Record<string, PropertyValue>>): SystemFields {
  scanSystemFields(systemProperties);
  const found: SystemFields = {};
  for (let f = 0; f < FIELDS.length; f++) {
    const value = scanned[f];
    if (value !== undefined) found[FIELDS[f]!] = value;
  }
  return found;
}

/** Lower-cased alias lists, computed once per list: lookups run per message on every path. */
const LOWERED = new WeakMap<readonly string[], readonly string[]>();

function lowered(names: readonly string[]): readonly string[] {
  let lower = LOWERED.get(names);
  if (lower === undefined) {
    lower = names.map((n) => n.toLowerCase());
    LOWERED.set(names, lower);
  }
  return lower;
}

/** Case-insensitive lookup of a property; the first alias present wins. */
export function lookupProperty(
  properties: Readonly<Record<string, PropertyValue>>,
  names: readonly string[],
): PropertyValue | undefined {
  for (const name of names) {
    if (Object.hasOwn(properties, name)) return properties[name];
  }
  // Slow path only when no alias matches exactly: compare keys of a plausible length, lower-casing each once.
  const lower = lowered(names);
  let best: PropertyValue | undefined;
  let bestRank = lower.length;
  for (const key in properties) {
    if (!Object.hasOwn(properties, key)) continue;
    let rank = -1;
    for (let i = 0; i < bestRank; i += 1) {
      if (lower[i]!.length === key.length && lower[i] === key.toLowerCase()) {
        rank = i;
        break;
      }
    }
    if (rank >= 0) {
      best = properties[key];
      bestRank = rank;
      if (rank === 0) break;
    }
  }
  return best;
}

export function systemField(
  systemProperties: Readonly<Record<string, PropertyValue>>,
  field: SystemField,
): string | undefined {
  const value = lookupProperty(systemProperties, SYSTEM_FIELD_ALIASES[field]);
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'string' ? value : String(value);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;
const US = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))? ?(AM|PM)$/i;

const ZERO = 48;

/** Two decimal digits at `at` as a number, or -1 if either is not a digit. */
function twoDigits(text: string, at: number): number {
  const tens = text.charCodeAt(at) - ZERO;
  const ones = text.charCodeAt(at + 1) - ZERO;
  // `>>> 0` turns negatives into large numbers: one comparison per digit (callers check the length first).
  return tens >>> 0 > 9 || ones >>> 0 > 9 ? -1 : tens * 10 + ones;
}

/** Days in each month, and days before each month, of a common year. */
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
const MS_PER_DAY = 86_400_000;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/**
 * The last valid minute `parseIotHubIso` worked out: its digits as one number (YYYYMMDDHHMM) and its epoch ms. It
 * is only set after every check of that minute passed, so a time with the same digits is in the same valid minute.
 */
const minute = { key: -1, ms: 0 };

/**
 * The forms IoT Hub's endpoints deliver on every message, parsed without a regular expression and without calling
 * into Date until the one instance returned: it is on the hot path of every decoder. Storage writes seven fractional
 * digits (`2018-07-05T15:11:42.6850000Z`, 28 characters); the Event Hubs and Service Bus paths hand
 * `iothub-enqueuedtime` over with three (`2024-03-01T10:15:30.118Z`, 24 characters). `undefined` means "not one of
 * these exact forms" (the general parser decides); a value of these forms that is not a real instant is null.
 */
function parseIotHubIso(text: string): Date | null | undefined {
  const length = text.length;
  if ((length !== 28 && length !== 24) || text.charCodeAt(10) !== 84 /* T */ || text.charCodeAt(length - 1) !== 90 /* Z */) {
    return undefined;
  }
  if (
    text.charCodeAt(4) !== 45 /* - */ ||
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(13) !== 58 /* : */ ||
    text.charCodeAt(16) !== 58 ||
    text.charCodeAt(19) !== 46 /* . */
  ) {
    return undefined;
  }
  const s = twoDigits(text, 17);
  const long = length === 28;
  const fraction1 = twoDigits(text, 20);
  // The 24-character form has one more digit (then the Z); the 28-character form has five more.
  const third = text.charCodeAt(22) - ZERO;
  const fraction2 = long ? twoDigits(text, 22) : third >>> 0 > 9 ? -1 : third;
  const fraction3 = long ? twoDigits(text, 24) : 0;
  const last = long ? text.charCodeAt(26) - ZERO : 0;
  if ((s | fraction1 | fraction2 | fraction3) < 0 || last >>> 0 > 9) return undefined;
  const ms = fraction1 * 10 + (long ? Math.floor(fraction2 / 10) : fraction2);
  const century = twoDigits(text, 0);
  const yy = twoDigits(text, 2);
  const mo = twoDigits(text, 5);
  const d = twoDigits(text, 8);
  const h = twoDigits(text, 11);
  const mi = twoDigits(text, 14);
  // Non-digits, and years the general parser treats specially (0001-01-01 is .NET's "unset"), go the slow way.
  if ((century | yy | mo | d | h | mi) < 0) return undefined;
  // A stream's times share their minute with the previous message's, almost always (a string comparison of the
  // prefix costs more than this arithmetic).
  const minuteKey = ((((century * 100 + yy) * 100 + mo) * 100 + d) * 100 + h) * 100 + mi;
  if (minuteKey === minute.key) return s > 59 ? null : new Date(minute.ms + s * 1000 + ms);
  const y = century * 100 + yy;
  if (y < 1970) return undefined;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const leap = isLeapYear(y);
  // Rejects rolled-over dates such as 2/31.
  if (d > (mo === 2 && leap ? 29 : MONTH_DAYS[mo - 1]!)) return null;
  // Days since 1970 (y >= 1970): whole years, their leap days, then this year's months.
  const y1 = y - 1;
  const leapDays = Math.floor(y1 / 4) - Math.floor(y1 / 100) + Math.floor(y1 / 400) - 477; // 477 leap years before 1970
  const days = (y - 1970) * 365 + leapDays + DAYS_BEFORE_MONTH[mo - 1]! + (mo > 2 && leap ? 1 : 0) + d - 1;
  const minuteMs = days * MS_PER_DAY + (h * 60 + mi) * 60_000;
  minute.key = minuteKey;
  minute.ms = minuteMs;
  return new Date(minuteMs + s * 1000 + ms);
}

/**
 * Parses every enqueued-time form the endpoints write, always as UTC:
 * ISO-8601 with up to 9 fractional digits (IoT Hub writes 7), Event Hubs Capture's US format
 * `M/d/yyyy h:mm:ss tt`, epoch milliseconds (`x-opt-enqueued-time`) and `Date`. Returns null when the value is
 * absent or not a real instant; `Date.parse` is not used because it reads the US form in local time.
 */
export function parseEnqueuedTime(value: unknown): Date | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value;
  if (typeof value === 'number') {
    // Finite numbers beyond ±8.64e15 ms still make an Invalid Date.
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  if (typeof value !== 'string') return null;
  const fast = parseIotHubIso(value);
  if (fast !== undefined) return fast;
  const text = value.trim();
  let y: number, mo: number, d: number, h: number, mi: number, s: number, frac: string | undefined;
  let offsetMinutes = 0;
  const iso = ISO.exec(text);
  if (iso) {
    [y, mo, d, h, mi, s] = iso.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    frac = iso[7];
    const zone = iso[8];
    if (zone !== undefined && zone !== 'Z') {
      const sign = zone.startsWith('-') ? -1 : 1;
      const digits = zone.slice(1).replace(':', '');
      offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
    }
  } else {
    const us = US.exec(text);
    if (!us) return null;
    [mo, d, y, h, mi, s] = us.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    frac = us[7];
    const pm = us[8]!.toUpperCase() === 'PM';
    if (h < 1 || h > 12) return null;
    h = (h % 12) + (pm ? 12 : 0);
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  // .NET's DateTime.MinValue is how an unset time gets serialised (IoT Hub has written it), not an instant.
  if (y === 1 && mo === 1 && d === 1 && h === 0 && mi === 0 && s === 0 && ms === 0) return null;
  // Date.UTC would map years 0-99 to 1900-1999; setUTCFullYear takes the year as written.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  // Reject rolled-over dates such as 2/31.
  if (day.getUTCDate() !== d) return null;
  const date = new Date(day.getTime() + ((h * 60 + mi) * 60 + s) * 1000 + ms - offsetMinutes * 60_000);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * Property values as the endpoints deliver them to JavaScript: strings, booleans and finite numbers as they are;
 * `Date` as ISO-8601 (the Functions host already hands .NET dates over as ISO strings); bytes as base64, as the host
 * serialises AMQP binary values; anything else structured as its JSON text. Nothing is dropped, so a check can still
 * see a property whose value has an unexpected type.
 */
export function toPropertyValue(value: unknown): PropertyValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    default:
      break;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * A property map from whatever the transport handed over; anything that is not a plain object gives an empty map.
 * Built with `Object.fromEntries` so that a key such as `__proto__` stays an ordinary own property.
 */
export function toPropertyMap(value: unknown): Record<string, PropertyValue> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return {};
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, toPropertyValue(v)]));
}

/**
 * Reads a Functions trigger metadata entry. The Node library lower-cases the first letter of every key the host
 * sends (`SystemPropertiesArray` arrives as `systemPropertiesArray`); the host's own spelling is accepted too, so
 * the local runtime and tests can pass binding data either way.
 */
export function metadataValue(metadata: Readonly<Record<string, unknown>>, camelCaseName: string): unknown {
  if (Object.hasOwn(metadata, camelCaseName)) return metadata[camelCaseName];
  const pascal = camelCaseName.charAt(0).toUpperCase() + camelCaseName.slice(1);
  return Object.hasOwn(metadata, pascal) ? metadata[pascal] : undefined;
}

/**
 * A count or sequence number from metadata: the host sends .NET longs as JSON numbers, and string metadata that
 * looks numeric is JSON-parsed by the Node library, so both forms occur. Anything else is null.
 */
export function toSafeInteger(value: unknown): number | null {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : null;
}

export interface RawMessage {
  /**
   * As the transport delivered it: a map holding only `PropertyValue`s becomes the message's own; one holding
   * anything else (or inherited keys a scan would see) is converted by `toPropertyMap` first.
   */
  systemProperties: Record<string, unknown>;
  properties: Record<string, PropertyValue>;
  body: Uint8Array;
  /** Candidates for the enqueued time in order of preference, after the system property ones. */
  enqueuedTimeFallbacks?: readonly unknown[];
  /** Overrides when the transport carries these outside the system property map (Service Bus). */
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  messageId?: string | undefined;
  storedAsBase64?: boolean;
  /**
   * The decoded view when the transport already parsed the body (IoT Hub's JSON encoding writes declared UTF-8 JSON
   * bodies as JSON values); `decodeBody` is skipped so the body is not parsed twice.
   */
  decoded?: DecodedBody;
  source: MessageSource;
}

/** Builds the common model from what any decoder read. Pure; never throws on the message's content. */
export function toRoutedMessage(raw: RawMessage): RoutedMessage {
  return assemble(raw.systemProperties, raw.properties, raw.body, raw.source, raw.enqueuedTimeFallbacks, undefined, raw);
}

/**
 * `toRoutedMessage({ systemProperties, properties, body, enqueuedTimeFallbacks: [enqueuedTimeUtc], source })`, for
 * the archive readers, which build one per stored record: without the RawMessage and candidate list each time.
 */
export function storedRecordMessage(
  systemProperties: Record<string, PropertyValue>,
  properties: Record<string, PropertyValue>,
  body: Uint8Array,
  enqueuedTimeUtc: unknown,
  source: MessageSource,
): RoutedMessage {
  return assemble(systemProperties, properties, body, source, undefined, enqueuedTimeUtc, undefined);
}

/** `fallback` is one more enqueued-time candidate after `fallbacks`; `raw` carries the transport's overrides. */
function assemble(
  transportSys: Record<string, unknown>,
  properties: Record<string, PropertyValue>,
  body: Uint8Array,
  source: MessageSource,
  fallbacks: readonly unknown[] | undefined,
  fallback: unknown,
  raw: RawMessage | undefined,
): RoutedMessage {
  let sys: Record<string, PropertyValue>;
  if (scanSystemFields(transportSys)) {
    sys = transportSys as Record<string, PropertyValue>;
  } else {
    // A transport's own map holding other values (the Event Hubs decoder hands the host's maps over as they are):
    // the message gets a converted copy, scanned again.
    sys = toPropertyMap(transportSys);
    scanSystemFields(sys);
  }
  const deviceId = scanned[DEVICE_ID];
  const moduleId = scanned[MODULE_ID];
  const systemTime = scanned[ENQUEUED_TIME];
  const contentType = raw?.contentType ?? scanned[CONTENT_TYPE];
  const contentEncoding = raw?.contentEncoding ?? scanned[CONTENT_ENCODING];
  const messageId = raw?.messageId ?? scanned[MESSAGE_ID];
  let enqueuedTime = parseEnqueuedTime(systemTime);
  // IoT Hub writes the same time under EnqueuedTimeUtc and SystemProperties: no need to fail on it twice.
  if (fallbacks !== undefined) {
    for (let i = 0; i < fallbacks.length && enqueuedTime === null; i++) {
      const candidate = fallbacks[i];
      if (candidate !== systemTime) enqueuedTime = parseEnqueuedTime(candidate);
    }
  }
  if (enqueuedTime === null && fallback !== undefined && fallback !== systemTime) enqueuedTime = parseEnqueuedTime(fallback);
  const message: RoutedMessage = {
    deviceId: deviceId ?? null,
    enqueuedTime,
    properties,
    systemProperties: sys,
    body,
    decoded: raw?.decoded ?? decodeDeclaredBody(body, contentType, contentEncoding, raw?.storedAsBase64 ?? false),
    source,
  };
  if (moduleId !== undefined) message.moduleId = moduleId;
  if (messageId !== undefined) message.messageId = messageId;
  if (contentType !== undefined) message.contentType = contentType;
  if (contentEncoding !== undefined) message.contentEncoding = contentEncoding;
  return message;
}
