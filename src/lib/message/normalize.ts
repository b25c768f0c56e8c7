import { decodeBody } from './body.js';
import type { MessageSource, PropertyValue, RoutedMessage } from './RoutedMessage.js';

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
  if (typeof value === 'number') return Number.isFinite(value) ? new Date(value) : null;
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
  const time = Date.UTC(y, mo - 1, d, h, mi, s, ms) - offsetMinutes * 60_000;
  const date = new Date(time);
  // Reject rolled-over dates such as 2/31.
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null;
  return Number.isNaN(date.getTime()) ? null : date;
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
    decoded: decodeBody(raw.body, { contentType, contentEncoding, storedAsBase64: raw.storedAsBase64 ?? false }),
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
