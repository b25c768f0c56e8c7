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

/** Case-insensitive lookup of a property; the first alias present wins. */
export function lookupProperty(
  properties: Readonly<Record<string, PropertyValue>>,
  names: readonly string[],
): PropertyValue | undefined {
  for (const name of names) {
    if (Object.hasOwn(properties, name)) return properties[name];
  }
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  for (const [key, value] of Object.entries(properties)) {
    if (wanted.has(key.toLowerCase())) return value;
  }
  return undefined;
}

export function systemField(
  systemProperties: Readonly<Record<string, PropertyValue>>,
  field: SystemField,
): string | undefined {
  const value = lookupProperty(systemProperties, ALIASES[field]);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;
const US = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))? ?(AM|PM)$/i;

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
  let enqueuedTime = parseEnqueuedTime(systemField(sys, 'enqueuedTime'));
  for (const candidate of raw.enqueuedTimeFallbacks ?? []) {
    if (enqueuedTime !== null) break;
    enqueuedTime = parseEnqueuedTime(candidate);
  }
  const contentType = raw.contentType ?? systemField(sys, 'contentType');
  const contentEncoding = raw.contentEncoding ?? systemField(sys, 'contentEncoding');
  const message: RoutedMessage = {
    deviceId: systemField(sys, 'deviceId') ?? null,
    enqueuedTime,
    properties: raw.properties,
    systemProperties: sys,
    body: raw.body,
    decoded:
      raw.decoded ??
      decodeBody(raw.body, { contentType, contentEncoding, storedAsBase64: raw.storedAsBase64 ?? false }),
    source: raw.source,
  };
  const moduleId = systemField(sys, 'moduleId');
  if (moduleId !== undefined) message.moduleId = moduleId;
  const messageId = raw.messageId ?? systemField(sys, 'messageId');
  if (messageId !== undefined) message.messageId = messageId;
  if (contentType !== undefined) message.contentType = contentType;
  if (contentEncoding !== undefined) message.contentEncoding = contentEncoding;
  return message;
}
