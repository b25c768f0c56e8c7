/**
 * Writes IoT Hub storage-routing Avro files (record `Microsoft.Azure.Devices.Message`) with avsc, an independent
 * writer, for round-trip tests and benchmarks, and feeds and drains archive readers the way tests need. Messages are
 * derived from their index, so every file is reproducible.
 */
import avro from 'avsc';
import type { ArchiveEvent, ArchiveSummary } from '../../src/lib/message/archive.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { IOTHUB_AVRO_SCHEMA as IOTHUB_SCHEMA } from '../../src/local/storageEndpoint.js';

// The record schema IoT Hub's storage endpoint writes: the local hub's writer and these files share one.
export { IOTHUB_SCHEMA };

export interface IotHubRecord {
  EnqueuedTimeUtc: string;
  Properties: Record<string, string>;
  SystemProperties: Record<string, string>;
  Body: Buffer | null;
}

export interface AvroFileOptions {
  /** `null` (default), `deflate`, or a name given in `codecs`. */
  codec?: string;
  /** avsc flushes a block once this many uncompressed bytes are buffered (avsc's default is 64 KiB). */
  blockSize?: number;
  /** A fixed marker keeps files byte-identical between runs. */
  syncMarker?: Buffer;
  /** Compressors by codec name, so that tests can write files with a codec the reader must reject. */
  codecs?: Record<string, (buf: Buffer, cb: (error: Error | null, out?: Buffer) => void) => void>;
}

export interface IotHubFileOptions extends AvroFileOptions {
  records: number;
  /** Builds record `i`; defaults to `iotHubRecord`. */
  record?: (index: number) => IotHubRecord;
}

const LONG = avro.Type.forSchema('long');
const LEVELS = ['storage', 'critical', 'normal'] as const;
const START = Date.UTC(2024, 4, 1, 12, 0, 0);
export const DEFAULT_SYNC = Buffer.from('0123456789abcdef', 'latin1');

/** IoT Hub writes seven fractional digits; the last four are derived from the index so that they are not zero. */
export function enqueuedTimeOf(index: number): string {
  const iso = new Date(START + index * 10).toISOString();
  return `${iso.slice(0, 23)}${String((index * 37) % 10000).padStart(4, '0')}Z`;
}

export function deviceIdOf(index: number): string {
  return `device-${String(index % 50).padStart(3, '0')}`;
}

/** The JSON body of message `index`, about 200 bytes. */
export function bodyOf(index: number): Record<string, unknown> {
  return {
    deviceId: deviceIdOf(index),
    messageIndex: index,
    temperature: Math.round(2000 + ((index * 7919) % 1500)) / 100,
    humidity: Math.round(3000 + ((index * 104729) % 4000)) / 100,
    level: LEVELS[index % LEVELS.length],
    pointInfo: `This is a ${LEVELS[index % LEVELS.length]} message from a simulated device.`,
    firmware: '1.4.2',
  };
}

export function iotHubRecord(index: number): IotHubRecord {
  const enqueuedTime = enqueuedTimeOf(index);
  const deviceId = deviceIdOf(index);
  return {
    EnqueuedTimeUtc: enqueuedTime,
    Properties: { level: LEVELS[index % LEVELS.length]!, iothubname: 'contoso-hub', location: 'Seattle' },
    SystemProperties: {
      connectionDeviceId: deviceId,
      connectionAuthMethod: '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
      connectionDeviceGenerationId: '638501234567890123',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      enqueuedTime,
      messageId: `msg-${index}`,
    },
    Body: Buffer.from(JSON.stringify(bodyOf(index))),
  };
}

export interface AvroFileParts {
  header: Buffer;
  blocks: Array<{ bytes: Buffer; records: number }>;
}

/** The file as avsc wrote it, split into header and whole blocks (count, size, data, sync marker). */
export async function avroParts(
  schema: object,
  records: number,
  record: (index: number) => unknown,
  options: AvroFileOptions = {},
): Promise<AvroFileParts> {
  const syncMarker = options.syncMarker ?? DEFAULT_SYNC;
  const encoder = new avro.streams.BlockEncoder(schema as avro.Schema, {
    codec: options.codec ?? 'null',
    blockSize: options.blockSize ?? 65536,
    syncMarker,
    // avsc writes the header lazily, with the first record; a file of no records still has one.
    writeHeader: 'always',
    ...(options.codecs === undefined ? {} : { codecs: options.codecs }),
  });
  const pushed: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    encoder.on('data', (chunk: Buffer) => pushed.push(chunk));
    encoder.on('end', resolve);
    encoder.on('error', reject);
  });
  for (let i = 0; i < records; i++) {
    // Respect back-pressure so that large files do not queue every record in the encoder at once.
    if (!encoder.write(record(i))) await new Promise((resolve) => encoder.once('drain', resolve));
  }
  encoder.end();
  await done;
  // avsc pushes the header, then each block as four pushes: count, size, data, sync marker.
  const [header, ...rest] = pushed;
  if (header === undefined) throw new Error('avsc wrote no header');
  const blocks: AvroFileParts['blocks'] = [];
  for (let i = 0; i < rest.length; i += 4) {
    const group = rest.slice(i, i + 4);
    if (group.length !== 4 || !group[3]!.equals(syncMarker)) throw new Error('unexpected avsc block framing');
    blocks.push({ bytes: Buffer.concat(group), records: LONG.fromBuffer(group[0]!) as number });
  }
  return { header, blocks };
}

export async function avroFile(
  schema: object,
  records: number,
  record: (index: number) => unknown,
  options: AvroFileOptions = {},
): Promise<Buffer> {
  const { header, blocks } = await avroParts(schema, records, record, options);
  return Buffer.concat([header, ...blocks.map((b) => b.bytes)]);
}

export function iotHubAvroParts(options: IotHubFileOptions): Promise<AvroFileParts> {
  return avroParts(IOTHUB_SCHEMA, options.records, options.record ?? iotHubRecord, options);
}

export function iotHubAvroFile(options: IotHubFileOptions): Promise<Buffer> {
  return avroFile(IOTHUB_SCHEMA, options.records, options.record ?? iotHubRecord, options);
}

/** Avro's zigzag varint, for tests that frame blocks by hand. */
export function avroLong(value: number): Buffer {
  return LONG.toBuffer(value);
}

/**
 * Feeds `bytes` in chunks whose sizes cycle through `sizes`, as views (the reader must not depend on chunks being
 * separate allocations).
 */
export async function* chunked(bytes: Uint8Array, sizes: number | readonly number[]): AsyncGenerator<Uint8Array> {
  const cycle = typeof sizes === 'number' ? [sizes] : sizes;
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = Math.max(1, cycle[i % cycle.length]!);
    yield bytes.subarray(offset, offset + size);
    offset += size;
  }
}

export interface ReadOutcome {
  messages: RoutedMessage[];
  /** Records per `records` event, in order. */
  batches: number[];
  /** Every `end` event's summary; a correct reader yields exactly one, last. */
  ends: ArchiveSummary[];
  /** True when an event followed the first `end`. */
  eventAfterEnd: boolean;
}

/** Drains an archive reader, keeping what the tests check. */
export async function readAll(events: AsyncIterable<ArchiveEvent>): Promise<ReadOutcome> {
  const outcome: ReadOutcome = { messages: [], batches: [], ends: [], eventAfterEnd: false };
  for await (const event of events) {
    if (outcome.ends.length > 0) outcome.eventAfterEnd = true;
    if (event.type === 'records') {
      for (const message of event.messages) outcome.messages.push(message);
      outcome.batches.push(event.messages.length);
    } else {
      outcome.ends.push(event.summary);
    }
  }
  return outcome;
}
