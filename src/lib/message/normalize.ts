import { decodeBody } from './body.js';
import type { DecodedBody, MessageSource, PropertyValue, RoutedMessage } from './RoutedMessage.js';

/**
 * The same fact arrives under different keys depending on the endpoint: AMQP names on the Event Hubs and Service
 * Bus paths (`iothub-connection-device-id`), camelCase names in IoT Hub's storage encodings (`connectionDeviceId`).
 * Lookups ignore case, as IoT Hub does.
 */
const ALIASES = {
  deviceId: ['iothub-connection-device-id', 'connectionDeviceId'],
  moduleId: ['iothub-connection-module-id', 'connectionModuleId'],
  messageId: ['message-id', 'messageId'],
  enqueuedTime: ['iothub-enqueuedtime', 'enqueuedTime'],
  contentType: ['content-type', 'contentType', 'iothub-content-type'],
  contentEncoding: ['content-encoding', 'contentEncoding', 'iothub-content-encoding'],
} as const;

export type SystemField = keyof typeof ALIASES;

/** Every alias, lower-cased, to its field and its rank among that field's aliases (lower wins). */
const ALIAS_INDEX = new Map<string, { field: SystemField; rank: number }>(
  (Object.entries(ALIASES) as Array<[SystemField, readonly string[]]>).flatMap(([field, names]) =>
    names.map((name, rank) => [name.toLowerCase(), { field, rank }] as const),
  ),
);

type SystemFields = Partial<Record<SystemField, string>>;

/**
 * All system fields in one pass over the keys, lower-casing each key once: what `systemField` per field would find,
 * at a sixth of the cost, because this runs for every message every decoder reads.
 */
export function systemFields(systemProperties: Readonly<Record<string, PropertyValue>>): SystemFields {
  const found: SystemFields = {};
  const ranks: Partial<Record<SystemField, number>> = {};
  for (const key in systemProperties) {
    if (!Object.hasOwn(systemProperties, key)) continue;
    const alias = ALIAS_INDEX.get(key) ?? ALIAS_INDEX.get(key.toLowerCase());
    if (alias === undefined) continue;
    // As in lookupProperty: any exactly spelled alias outranks every case variant; then alias order decides.
    const names = ALIASES[alias.field];
    const rank = names[alias.rank] === key ? alias.rank : names.length + alias.rank;
    if ((ranks[alias.field] ?? Number.POSITIVE_INFINITY) <= rank) continue;
    const value = systemProperties[key];
    if (value === undefined || value === null || value === '') continue;
    ranks[alias.field] = rank;
    found[alias.field] = typeof value === 'string' ? value : String(value);
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
  const value = lookupProperty(systemProperties, ALIASES[field]);
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'string' ? value : String(value);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;
const US = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))? ?(AM|PM)$/i;

const ZERO = 48;

function digits(text: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i += 1) {
    const d = text.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * The form IoT Hub writes on every message (`2018-07-05T15:11:42.6850000Z`, 28 characters), parsed without a regular
 * expression: it is on the hot path of every decoder. `undefined` means "not this exact form" (the general parser
 * decides); a value of this form that is not a real instant is null.
 */
function parseIotHubIso(text: string): Date | null | undefined {
  if (text.length !== 28 || text.charCodeAt(10) !== 84 /* T */ || text.charCodeAt(27) !== 90 /* Z */) return undefined;
  if (text[4] !== '-' || text[7] !== '-' || text[13] !== ':' || text[16] !== ':' || text[19] !== '.') return undefined;
  const y = digits(text, 0, 4);
  const mo = digits(text, 5, 2);
  const d = digits(text, 8, 2);
  const h = digits(text, 11, 2);
  const mi = digits(text, 14, 2);
  const s = digits(text, 17, 2);
  const ms = digits(text, 20, 3);
  // Non-digits, and years the general parser treats specially (0001-01-01 is .NET's "unset"), go the slow way.
  if (y < 1970 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || ms < 0 || digits(text, 23, 4) < 0) return undefined;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const time = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  // Reject rolled-over dates such as 2/31.
  if (new Date(time).getUTCDate() !== d) return null;
  return new Date(time);
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
  systemProperties: Record<string, PropertyValue>;
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
  const sys = raw.systemProperties;
  const fields = systemFields(sys);
  let enqueuedTime = parseEnqueuedTime(fields.enqueuedTime);
  for (const candidate of raw.enqueuedTimeFallbacks ?? []) {
    if (enqueuedTime !== null) break;
    enqueuedTime = parseEnqueuedTime(candidate);
  }
  const contentType = raw.contentType ?? fields.contentType;
  const contentEncoding = raw.contentEncoding ?? fields.contentEncoding;
  const message: RoutedMessage = {
    deviceId: fields.deviceId ?? null,
    enqueuedTime,
    properties: raw.properties,
    systemProperties: sys,
    body: raw.body,
    decoded:
      raw.decoded ??
      decodeBody(raw.body, { contentType, contentEncoding, storedAsBase64: raw.storedAsBase64 ?? false }),
    source: raw.source,
  };
  const moduleId = fields.moduleId;
  if (moduleId !== undefined) message.moduleId = moduleId;
  const messageId = raw.messageId ?? fields.messageId;
  if (messageId !== undefined) message.messageId = messageId;
  if (contentType !== undefined) message.contentType = contentType;
  if (contentEncoding !== undefined) message.contentEncoding = contentEncoding;
  return message;
}
