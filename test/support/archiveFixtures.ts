/**
 * Archives as IoT Hub (and Event Hubs Capture) write them, for the archive tests and the bench: every encoding
 * (Avro null/deflate, Capture Avro, JSON lines, zero-byte and header-only empty batches), named by any file name
 * format. Messages are derived from their position, so every archive is reproducible; each written blob carries the
 * messages it holds, which the tests use as the expected answer.
 *
 * `independentDecode` reads the bytes back with avsc and JSON.parse only — none of the product's decoders — so a
 * query's answer can be compared with a decode that shares no code with it.
 */
import avro from 'avsc';
import type { BlobStore } from '../../src/lib/ports.js';
import { iotHubAvroFile, type IotHubRecord } from './avroFiles.js';

export type FixtureEncoding = 'avro' | 'avro-deflate' | 'capture' | 'json' | 'empty' | 'avro-empty';

export interface FixtureMessage {
  deviceId: string;
  messageId: string;
  enqueuedTime: Date;
  /** Absent on every tenth message: the level filter must not match it. */
  level: string | undefined;
  properties: Record<string, string>;
  body: Record<string, unknown>;
}

export interface BlobSpec {
  partition: string;
  /** The minute in the blob's name. */
  minute: Date | number;
  records: number;
  encoding: FixtureEncoding;
  /** Messages routed late: the first record is enqueued this many seconds before the name's minute. */
  lateSeconds?: number;
}

export interface WrittenBlob {
  name: string;
  spec: BlobSpec;
  bytes: Buffer;
  messages: FixtureMessage[];
}

export const FIXTURE_HUB = 'contoso-hub';
const LEVELS = ['storage', 'critical', 'normal'] as const;

/** Message `i` of `n` in the blob for (`partition`, `minuteMs`). */
export function fixtureMessage(partition: string, minuteMs: number, i: number, n: number, lateSeconds = 0): FixtureMessage {
  const p = Number(partition);
  const serial = Math.round(minuteMs / 60_000) * 1000 + i;
  const offsetMs = i === 0 && lateSeconds > 0 ? -lateSeconds * 1000 : Math.floor((i * 59_000) / Math.max(1, n)) + (i % 7);
  const level = i % 10 === 9 ? undefined : LEVELS[(i + p) % LEVELS.length];
  const deviceId = `device-${String((i * 7 + p * 3) % 12).padStart(2, '0')}`;
  return {
    deviceId,
    messageId: `m-${p}-${serial}`,
    enqueuedTime: new Date(minuteMs + offsetMs),
    level,
    properties: {
      ...(level === undefined ? {} : { level }),
      iothubname: FIXTURE_HUB,
      DeviceLocation: i % 2 === 0 ? 'Seattle' : 'Lyon',
    },
    body: {
      deviceId,
      temperature: Math.round(((serial * 7919) % 6000) - 1500) / 100,
      humidity: Math.round((serial * 104729) % 10000) / 100,
      status: { code: i % 5 === 0 ? 500 : 200, text: i % 5 === 0 ? 'overheat' : 'ok' },
      ...(i % 4 === 0 ? { tags: ['a', 'b'] } : {}),
    },
  };
}

/** IoT Hub's storage time: ISO with seven fractional digits. */
function iotHubTime(date: Date): string {
  return `${date.toISOString().slice(0, 23)}0000Z`;
}

/** Event Hubs Capture's US format in UTC: `5/1/2024 12:00:00 PM`. */
function captureTime(date: Date): string {
  const h = date.getUTCHours();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getUTCMonth() + 1}/${date.getUTCDate()}/${date.getUTCFullYear()} ${h % 12 === 0 ? 12 : h % 12}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${String(date.getUTCMilliseconds()).padStart(3, '0')} ${h < 12 ? 'AM' : 'PM'}`;
}

function systemProperties(m: FixtureMessage): Record<string, string> {
  return {
    connectionDeviceId: m.deviceId,
    connectionAuthMethod: '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
    connectionDeviceGenerationId: '638501234567890123',
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    enqueuedTime: iotHubTime(m.enqueuedTime),
    messageId: m.messageId,
  };
}

export function iotHubRecordOf(m: FixtureMessage): IotHubRecord {
  return {
    EnqueuedTimeUtc: iotHubTime(m.enqueuedTime),
    Properties: m.properties,
    SystemProperties: systemProperties(m),
    Body: Buffer.from(JSON.stringify(m.body)),
  };
}

/**
 * Event Hubs Capture's record schema. Capture writes the property map's value union in varying orders, and the body
 * as `bytes` or `["null", "bytes"]`; the defaults are what the fixtures use.
 */
export function captureSchema(
  propertiesValues: readonly unknown[] = ['long', 'double', 'string', 'bytes', 'null'],
  body: unknown = ['null', 'bytes'],
) {
  return {
    type: 'record',
    name: 'EventData',
    namespace: 'Microsoft.ServiceBus.Messaging',
    fields: [
      { name: 'SequenceNumber', type: 'long' },
      { name: 'Offset', type: 'string' },
      { name: 'EnqueuedTimeUtc', type: 'string' },
      { name: 'SystemProperties', type: { type: 'map', values: ['long', 'double', 'string', 'bytes'] } },
      { name: 'Properties', type: { type: 'map', values: [...propertiesValues] } },
      { name: 'Body', type: body },
    ],
  };
}

async function captureFile(messages: readonly FixtureMessage[]): Promise<Buffer> {
  const type = avro.Type.forSchema(captureSchema() as avro.Schema, { wrapUnions: true });
  const encoder = new avro.streams.BlockEncoder(type, { codec: 'null' });
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    encoder.on('data', (c: Buffer) => chunks.push(c));
    encoder.on('end', resolve);
    encoder.on('error', reject);
  });
  messages.forEach((m, i) => {
    const wrap = (map: Record<string, string>) => Object.fromEntries(Object.entries(map).map(([k, v]) => [k, { string: v }]));
    encoder.write({
      SequenceNumber: 1000 + i,
      Offset: String(4096 * i),
      EnqueuedTimeUtc: captureTime(m.enqueuedTime),
      SystemProperties: {
        ...wrap({ 'iothub-connection-device-id': m.deviceId, 'iothub-message-source': 'Telemetry', 'message-id': m.messageId }),
        'iothub-enqueuedtime': { string: m.enqueuedTime.toISOString() },
      },
      Properties: wrap(m.properties),
      Body: { bytes: Buffer.from(JSON.stringify(m.body)) },
    });
  });
  encoder.end();
  await done;
  return Buffer.concat(chunks);
}

function jsonLinesFile(messages: readonly FixtureMessage[]): Buffer {
  // IoT Hub writes a declared UTF-8 JSON body as the JSON value itself.
  const lines = messages.map((m) =>
    JSON.stringify({
      EnqueuedTimeUtc: iotHubTime(m.enqueuedTime),
      Properties: m.properties,
      SystemProperties: systemProperties(m),
      Body: m.body,
    }),
  );
  return Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
}

export async function encodeBlob(spec: BlobSpec): Promise<{ bytes: Buffer; messages: FixtureMessage[] }> {
  const minuteMs = new Date(spec.minute).getTime();
  const count = spec.encoding === 'empty' || spec.encoding === 'avro-empty' ? 0 : spec.records;
  const messages = Array.from({ length: count }, (_, i) => fixtureMessage(spec.partition, minuteMs, i, count, spec.lateSeconds));
  switch (spec.encoding) {
    case 'empty':
      return { bytes: Buffer.alloc(0), messages };
    case 'avro-empty':
      return { bytes: await iotHubAvroFile({ records: 0 }), messages };
    case 'avro':
    case 'avro-deflate':
      return {
        bytes: await iotHubAvroFile({
          records: count,
          codec: spec.encoding === 'avro' ? 'null' : 'deflate',
          // Small blocks so that every blob spans several blocks (and truncation lands inside the file).
          blockSize: 4096,
          record: (i) => iotHubRecordOf(messages[i]!),
        }),
        messages,
      };
    case 'capture':
      return { bytes: await captureFile(messages), messages };
    case 'json':
      return { bytes: jsonLinesFile(messages), messages };
  }
}

/** Writes blobs as IoT Hub would (an unconditional put: the stand-in for an external writer), named by `format`. */
export async function writeArchive(
  store: BlobStore,
  container: string,
  format: string,
  specs: readonly BlobSpec[],
): Promise<WrittenBlob[]> {
  await store.ensureContainer(container);
  const written: WrittenBlob[] = [];
  for (const spec of specs) {
    const { bytes, messages } = await encodeBlob(spec);
    const name = blobNameFor(format, { iothub: FIXTURE_HUB, partition: spec.partition, minute: spec.minute });
    await store.put(container, name, bytes);
    written.push({ name, spec, bytes, messages });
  }
  return written.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** IoT Hub's naming, written independently of the product's parser: each token replaced by its value. */
export function blobNameFor(format: string, values: { iothub: string; partition: string; minute: Date | number }): string {
  const at = new Date(values.minute);
  const pad = (n: number) => String(n).padStart(2, '0');
  return format
    .replace('{iothub}', values.iothub)
    .replace('{partition}', values.partition)
    .replace('{YYYY}', String(at.getUTCFullYear()))
    .replace('{MM}', pad(at.getUTCMonth() + 1))
    .replace('{DD}', pad(at.getUTCDate()))
    .replace('{HH}', pad(at.getUTCHours()))
    .replace('{mm}', pad(at.getUTCMinutes()));
}

// ---- independent decode ----------------------------------------------------------------------------------

/** One record as avsc / JSON.parse see it, reduced to what the query tests compare. */
export interface IndependentRecord {
  deviceId: string | null;
  messageId: string | null;
  /** Milliseconds precision, ISO. */
  enqueuedTime: string | null;
  level: string | null;
  properties: Record<string, string>;
  body: unknown;
}

const AVRO_MAGIC = Buffer.from('Obj\x01', 'latin1');

export async function independentDecode(bytes: Buffer): Promise<IndependentRecord[]> {
  if (bytes.length === 0) return [];
  if (bytes.subarray(0, 4).equals(AVRO_MAGIC)) return decodeAvroIndependently(bytes);
  return bytes
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const r = JSON.parse(line) as { Properties: Record<string, string>; SystemProperties: Record<string, string>; Body: unknown };
      const sys = r.SystemProperties;
      const declared = sys['contentType'] === 'application/json' && sys['contentEncoding']?.toLowerCase() === 'utf-8';
      const body = declared ? r.Body : parseMaybe(Buffer.from(String(r.Body), 'base64'));
      return reduce(sys['connectionDeviceId'], sys['messageId'], sys['enqueuedTime'], r.Properties, body);
    });
}

async function decodeAvroIndependently(bytes: Buffer): Promise<IndependentRecord[]> {
  const decoder = new avro.streams.BlockDecoder({
    parseHook: (schema: avro.Schema) => avro.Type.forSchema(schema, { wrapUnions: true }),
  });
  const records: IndependentRecord[] = [];
  const done = new Promise<void>((resolve, reject) => {
    decoder.on('data', (record: Record<string, unknown>) => {
      const sys = unwrapMap(record['SystemProperties']);
      const props = unwrapMap(record['Properties']);
      const body = unwrapValue(record['Body']);
      if ('SequenceNumber' in record) {
        records.push(reduce(sys['iothub-connection-device-id'], sys['message-id'], sys['iothub-enqueuedtime'], props, parseMaybe(body)));
      } else {
        records.push(reduce(sys['connectionDeviceId'], sys['messageId'], sys['enqueuedTime'], props, parseMaybe(body)));
      }
    });
    decoder.on('end', resolve);
    decoder.on('error', reject);
  });
  decoder.end(bytes);
  await done;
  return records;
}

function unwrapValue(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1) return (value as Record<string, unknown>)[keys[0]!];
  }
  return value;
}

function unwrapMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) {
    const inner = unwrapValue(v);
    out[k] = Buffer.isBuffer(inner) ? inner.toString('utf8') : String(inner);
  }
  return out;
}

function parseMaybe(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return body ?? null;
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function reduce(
  deviceId: string | undefined,
  messageId: string | undefined,
  enqueued: string | undefined,
  properties: Record<string, string>,
  body: unknown,
): IndependentRecord {
  // Seven fractional digits are cut to milliseconds, the precision a JavaScript Date keeps.
  const iso = enqueued === undefined ? null : new Date(enqueued.replace(/(\.\d{3})\d+/, '$1')).toISOString();
  const levelKey = Object.keys(properties).find((k) => k.toLowerCase() === 'level');
  return {
    deviceId: deviceId ?? null,
    messageId: messageId ?? null,
    enqueuedTime: iso,
    level: levelKey === undefined ? null : (properties[levelKey] ?? null),
    properties,
    body,
  };
}

/** Key used to compare a query's answer with an independent decode: identity, time, level and body. */
export function recordKey(r: { deviceId: string | null; messageId?: string | null; enqueuedTime: string | null; level: string | null; body: unknown }): string {
  return JSON.stringify([r.deviceId, r.messageId ?? null, r.enqueuedTime, r.level, r.body]);
}
