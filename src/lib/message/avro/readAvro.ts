import { inflateRawSync } from 'node:zlib';
import type { ArchiveDamage, ArchiveEvent, ArchiveSourceInfo, ArchiveSummary } from '../archive.js';
import type { RoutedMessage } from '../RoutedMessage.js';
import { AvroCursor, AvroDataError, isAvroDataError, MAX_VARINT_BYTES } from './AvroCursor.js';
import { ChunkReader } from './ChunkReader.js';
import { createRecordDecoder, FORMAT_OF, type RecordDecoder } from './recordDecoders.js';
import { recogniseWriterSchema } from './writerSchema.js';

const MAGIC = [0x4f, 0x62, 0x6a, 0x01]; // "Obj\x01"
const SYNC_BYTES = 16;
/**
 * IoT Hub and Capture flush blocks of kilobytes to a few megabytes; a size beyond this is a corrupt length, and
 * believing it would make the reader buffer (or inflate) that much.
 */
const MAX_BLOCK_BYTES = 512 * 1024 * 1024;
/**
 * Message bodies are views into their (decompressed) block up to this block size, and copies beyond it. The block
 * is the reader's own copy either way (see readBlock), and bodies that share it cost one object each instead of a
 * copy and two objects: the reader is 5-9% faster on the benchmark file. The price is memory kept after a batch:
 * a kept message keeps its whole block alive, not just its body (which, copied, kept the 8 KiB pool slab Node cut
 * it from). Measured on the benchmark's 100k-record file (64 KiB blocks of 116 records): keeping one message per
 * block kept 54 MiB of buffers instead of 7 MiB; keeping every message, 141 MiB in all instead of 113 MiB. Readers
 * that keep a few messages of many blocks (query results, quarantine) pay up to this bound per kept message;
 * blocks above it, which would make that a lot, copy each body as before.
 */
const SHARED_BLOCK_BYTES = 256 * 1024;
/**
 * Uncompressed blocks above this size are decoded as they arrive, a window at a time, instead of being buffered
 * whole: Event Hubs Capture writes a file as one block, and a Capture file can hold hundreds of megabytes.
 */
const STREAMED_BLOCK_BYTES = 4 * 1024 * 1024;
/** The first window of a streamed block; it doubles while a record does not fit in it. */
const STREAM_WINDOW_BYTES = 1024 * 1024;
/** The header holds the schema and codec names; anything near this size is not a header. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

export type AvroSniff = 'avro' | 'notAvro' | 'needMoreBytes';

/** Whether bytes start an Avro object container file, from as few bytes as are at hand. */
export function sniffAvro(firstBytes: Uint8Array): AvroSniff {
  const n = Math.min(firstBytes.length, MAGIC.length);
  for (let i = 0; i < n; i++) if (firstBytes[i] !== MAGIC[i]) return 'notAvro';
  return n === MAGIC.length ? 'avro' : 'needMoreBytes';
}

/**
 * Reads an Avro object container file written by IoT Hub storage routing (`Microsoft.Azure.Devices.Message`) or
 * Event Hubs Capture (`Microsoft.ServiceBus.Messaging.EventData`), one `records` event per non-empty block, then
 * one `end` event. Memory holds the current block, or, for an uncompressed block over 4 MiB (Capture writes a file
 * as one block), a window of it: such a block is delivered in several `records` events as it decodes. Bad bytes
 * never throw: the summary reports the first damage after every record before it has been delivered (a buffered
 * block is delivered whole or not at all), and reading stops there (`summary.bytes` counts the bytes pulled from
 * `input` until then). Errors of the input itself (a failed download) propagate.
 */
export async function* readAvro(
  input: AsyncIterable<Uint8Array>,
  info: ArchiveSourceInfo,
): AsyncGenerator<ArchiveEvent> {
  const reader = new ChunkReader(input);
  const summary: ArchiveSummary = { format: 'unknown', records: 0, bytes: 0, damage: null };
  try {
    if (!(await reader.fill(1))) {
      summary.format = 'empty';
    } else {
      const { decode, deflate, sync } = await readHeader(reader, info, summary);
      for (;;) {
        const head = await readBlockHead(reader);
        if (head === null) break;
        if (!deflate && head.size > STREAMED_BLOCK_BYTES) {
          for await (const messages of streamBlock(reader, decode, head, summary.records)) {
            summary.records += messages.length;
            yield { type: 'records', messages };
          }
          await readSync(reader, sync);
          continue;
        }
        const block = await readBlock(reader, head, deflate, sync);
        if (block === null) continue;
        const messages = decodeBlock(decode, block, summary.records);
        summary.records += messages.length;
        if (messages.length > 0) yield { type: 'records', messages };
      }
    }
  } catch (error) {
    if (!isDamageError(error)) throw error;
    summary.damage = error.damage;
  } finally {
    summary.bytes = reader.received;
    await reader.close();
  }
  yield { type: 'end', summary };
}

interface BlockHead {
  /** Offset of the block's record count in the file, where its damage is reported. */
  start: number;
  count: number;
  /** Bytes of (compressed) record data that follow, before the sync marker. */
  size: number;
}

interface RawBlock extends BlockHead {
  /** The decompressed records. */
  data: Buffer;
  /** `data` is memory of its own (a copy, or inflated output) small enough for message bodies to be views into. */
  shared: boolean;
}

/** The next block's record count and size, or null at the end of the input. */
async function readBlockHead(reader: ChunkReader): Promise<BlockHead | null> {
  const start = reader.position;
  if (!(await reader.fill(1))) return null;
  const count = await readLong(reader, `the record count of the block at byte ${start}`, start);
  const size = await readLong(reader, `the size of the block at byte ${start}`, start);
  if (count < 0 || size < 0 || size > MAX_BLOCK_BYTES) {
    throw damage('ArchiveCorrupt', start, `block at byte ${start} claims ${count} records in ${size} bytes`);
  }
  return { start, count, size };
}

/** The block's records and its sync marker, buffered; null for an empty block. */
async function readBlock(reader: ChunkReader, head: BlockHead, deflate: boolean, sync: Buffer): Promise<RawBlock | null> {
  const { start, count, size } = head;
  if (!(await reader.fill(size + SYNC_BYTES))) {
    throw damage(
      'ArchiveTruncated',
      start,
      `block at byte ${start} needs ${size} data bytes and a ${SYNC_BYTES}-byte sync marker; ` +
        `the input ends after ${reader.buffered}`,
    );
  }
  // A block whose bodies will be views must not be a view into an input chunk, which may be far larger.
  const shareRaw = !deflate && size <= SHARED_BLOCK_BYTES;
  const raw = shareRaw ? reader.takeCopy(size) : reader.take(size);
  await readSync(reader, sync);
  if (count === 0 && size === 0) return null;
  const data = deflate ? inflate(raw, start) : raw;
  fitsRecords(head, data.length);
  return { ...head, data, shared: deflate ? data.length <= SHARED_BLOCK_BYTES : shareRaw };
}

/** Every record takes at least one byte: a count beyond the (decompressed) size is a corrupt count. */
function fitsRecords({ start, count }: BlockHead, bytes: number): void {
  if (count > bytes) throw damage('ArchiveCorrupt', start, `block at byte ${start}: ${count} records cannot fit in ${bytes} bytes`);
}

async function readSync(reader: ChunkReader, sync: Buffer): Promise<void> {
  const syncAt = reader.position;
  if (!(await reader.fill(SYNC_BYTES))) {
    throw damage('ArchiveTruncated', syncAt, `the input ends inside the ${SYNC_BYTES}-byte sync marker at byte ${syncAt}`);
  }
  if (!reader.take(SYNC_BYTES).equals(sync)) {
    throw damage('ArchiveCorrupt', syncAt, `sync marker at byte ${syncAt} differs from the header's`);
  }
}

/** Every record of a buffered block, or damage naming the first that does not decode. */
function decodeBlock(decode: RecordDecoder, block: RawBlock, firstIndex: number): RoutedMessage[] {
  const { start, count, data, shared } = block;
  const cursor = new AvroCursor(data);
  const messages: RoutedMessage[] = [];
  let i = 0;
  try {
    for (; i < count; i++) messages.push(decode(cursor, firstIndex + i, shared));
    if (cursor.pos !== cursor.end) {
      throw new AvroDataError(`${cursor.end - cursor.pos} bytes left over after the block's ${count} records`);
    }
  } catch (error) {
    if (!isAvroDataError(error)) throw error;
    const what = i < count ? `record ${i} of ${count}: ${error.message}` : error.message;
    throw damage('ArchiveCorrupt', start, `block at byte ${start}: ${what}`);
  }
  return messages;
}

/**
 * The records of an uncompressed block as they arrive, in batches of what one window held, without buffering the
 * block. A record is decoded from a window of the input; one that ran past the window's end (AvroDataError.needs)
 * while the block goes on is tried again in a window large enough for what it needs (at least twice as large), and
 * a need beyond the block's end, or any other error, is damage at once: a forged length costs no more than the
 * block's bytes it claims. Bodies are copies: a window may be a view into an input chunk. Offsets in damage details
 * count from the start of the block's records, as they do for a buffered block.
 */
async function* streamBlock(reader: ChunkReader, decode: RecordDecoder, head: BlockHead, firstIndex: number): AsyncGenerator<RoutedMessage[]> {
  const { start, count, size } = head;
  fitsRecords(head, size);
  const end = reader.position + size;
  let windowBytes = STREAM_WINDOW_BYTES;
  let i = 0;
  while (i < count) {
    const left = end - reader.position;
    const want = Math.min(left, windowBytes);
    if (!(await reader.fill(want))) {
      throw damage('ArchiveTruncated', start, `block at byte ${start} needs ${size} data bytes; the input ends after ${size - left + reader.buffered}`);
    }
    const origin = size - left;
    const cursor = new AvroCursor(reader.peek(want), 0, origin);
    const messages: RoutedMessage[] = [];
    let needs: number | undefined;
    while (i < count) {
      const at = cursor.pos;
      try {
        messages.push(decode(cursor, firstIndex + i, false));
      } catch (error) {
        if (!isAvroDataError(error)) throw error;
        if (error.needs !== undefined && want < left && error.needs <= left) {
          cursor.pos = at;
          needs = error.needs;
          break;
        }
        throw damage('ArchiveCorrupt', start, `block at byte ${start}: record ${i} of ${count}: ${error.message}`);
      }
      i++;
    }
    reader.skip(cursor.pos);
    if (messages.length > 0) yield messages;
    // A record that did not fit: a window from it, large enough for what it needs.
    if (needs !== undefined) windowBytes = Math.max(STREAM_WINDOW_BYTES, 2 * (needs - cursor.pos), messages.length === 0 ? 2 * windowBytes : 0);
  }
  if (reader.position !== end) {
    throw damage('ArchiveCorrupt', start, `block at byte ${start}: ${end - reader.position} bytes left over after the block's ${count} records`);
  }
}

/** Reads magic, metadata and sync marker, and settles format, codec and record decoder from them. */
async function readHeader(
  reader: ChunkReader,
  info: ArchiveSourceInfo,
  summary: ArchiveSummary,
): Promise<{ decode: RecordDecoder; deflate: boolean; sync: Buffer }> {
  await reader.fill(MAGIC.length);
  const magic = reader.peek(MAGIC.length);
  if (sniffAvro(magic) === 'notAvro') {
    throw damage('ArchiveFormatUnknown', 0, 'no "Obj\\x01" magic: not an Avro object container file');
  }
  if (magic.length < MAGIC.length) throw damage('ArchiveTruncated', 0, 'input ends inside the Avro magic');
  reader.skip(MAGIC.length);

  const metadata = new Map<string, Buffer>();
  for (;;) {
    let count = await readLong(reader, 'the header metadata count');
    if (count === 0) break;
    if (count < 0) {
      await readLong(reader, 'the header metadata block size');
      count = -count;
    }
    for (let i = 0; i < count; i++) {
      const key = (await readBytes(reader, 'a header metadata key')).toString('utf8');
      metadata.set(key, Buffer.from(await readBytes(reader, `header metadata ${JSON.stringify(key)}`)));
      if (reader.position > MAX_HEADER_BYTES) {
        throw damage('ArchiveCorrupt', 0, `header metadata runs past ${MAX_HEADER_BYTES} bytes`);
      }
    }
  }
  const syncAt = reader.position;
  if (!(await reader.fill(SYNC_BYTES))) {
    throw damage('ArchiveTruncated', syncAt, 'input ends inside the header sync marker');
  }
  const sync = Buffer.from(reader.take(SYNC_BYTES));

  const schemaText = metadata.get('avro.schema')?.toString('utf8');
  if (schemaText === undefined) throw damage('ArchiveCorrupt', 0, 'header has no avro.schema');
  let schema: unknown;
  try {
    schema = JSON.parse(schemaText);
  } catch (error) {
    throw damage('ArchiveCorrupt', 0, `avro.schema is not JSON: ${(error as Error).message}`);
  }
  const recognised = recogniseWriterSchema(schema);
  if (recognised.kind === 'unknown') throw damage('ArchiveFormatUnknown', 0, recognised.detail);
  summary.format = FORMAT_OF[recognised.kind];

  // The Avro spec makes a missing codec mean "null".
  const codec = metadata.get('avro.codec')?.toString('utf8') ?? 'null';
  if (codec !== 'null' && codec !== 'deflate') {
    throw damage('ArchiveCorrupt', 0, `avro.codec ${JSON.stringify(codec)} is not supported (IoT Hub and Capture write null or deflate)`);
  }
  summary.codec = codec;
  try {
    return { decode: createRecordDecoder(recognised, info.name), deflate: codec === 'deflate', sync };
  } catch (error) {
    throw damage('ArchiveCorrupt', 0, `avro.schema is not a valid Avro schema: ${(error as Error).message}`);
  }
}

/** `at` is the offset damage is reported at: where the structure holding the varint starts. */
async function readLong(reader: ChunkReader, what: string, at = reader.position): Promise<number> {
  const varintAt = reader.position;
  await reader.fill(MAX_VARINT_BYTES);
  const bytes = reader.peek(MAX_VARINT_BYTES);
  const cursor = new AvroCursor(bytes);
  let value: number;
  try {
    value = cursor.readLong();
  } catch (error) {
    if (!isAvroDataError(error)) throw error;
    if (bytes.length < MAX_VARINT_BYTES) throw damage('ArchiveTruncated', at, `input ends inside ${what}`);
    throw damage('ArchiveCorrupt', at, `${what} at byte ${varintAt} is not a valid varint`);
  }
  reader.skip(cursor.pos);
  return value;
}

async function readBytes(reader: ChunkReader, what: string): Promise<Buffer> {
  const at = reader.position;
  const length = await readLong(reader, `the length of ${what}`);
  if (length < 0 || length > MAX_HEADER_BYTES) {
    throw damage('ArchiveCorrupt', at, `${what} at byte ${at} claims ${length} bytes`);
  }
  if (!(await reader.fill(length))) throw damage('ArchiveTruncated', at, `input ends inside ${what}`);
  return reader.take(length);
}

/**
 * Synchronously. Inflating the next block on the thread pool while this one is decoded (as avsc's stream decoder
 * does) was measured: on the two shared cores the benchmark runs on it made the deflate reader slower (1.4x the
 * baseline instead of 1.65x), because each async call sets up a zlib stream and the main thread has no idle core to
 * hand the work to.
 */
function inflate(data: Buffer, blockStart: number): Buffer {
  try {
    return inflateRawSync(data, { maxOutputLength: MAX_BLOCK_BYTES });
  } catch (error) {
    throw damage('ArchiveCorrupt', blockStart, `deflate block at byte ${blockStart} does not inflate: ${(error as Error).message}`);
  }
}

class ArchiveDamageError extends Error {
  override readonly name = 'ArchiveDamageError';
  constructor(readonly damage: ArchiveDamage) {
    super(damage.detail);
  }
}

function isDamageError(error: unknown): error is ArchiveDamageError {
  return error instanceof Error && error.name === 'ArchiveDamageError';
}

function damage(code: ArchiveDamage['code'], byteOffset: number, detail: string): ArchiveDamageError {
  return new ArchiveDamageError({ code, byteOffset, detail });
}
