import type { ObjectShapes } from '../objectShapes.js';

/** Bytes that do not decode as the writer schema says they should. Caught by the reader and turned into damage. */
export class AvroDataError extends Error {
  override readonly name = 'AvroDataError';
  /**
   * Set when a read ran past the end of the cursor's bytes: the cursor offset the value needs bytes up to. A reader
   * decoding a window of a longer block tries such a record again with more bytes when the block has them.
   */
  readonly needs: number | undefined;

  constructor(message: string, needs?: number) {
    super(message);
    this.needs = needs;
  }
}

export function isAvroDataError(error: unknown): error is AvroDataError {
  return error instanceof Error && error.name === 'AvroDataError';
}

/** A zigzag varint never needs more than 10 bytes for a 64-bit long. */
export const MAX_VARINT_BYTES = 10;

/** Longer strings are rarely repeated verbatim and cost more to compare than the cache saves. */
const MAX_CACHED_LENGTH = 96;
/** Map positions remembered; later positions use only the table by content. */
const CACHED_SLOTS = 64;
/** Strings kept, in a table by content: a power of two. */
const TABLE_BITS = 9;
/** For `readCachedString` of a value that is not in a map: only the table by content applies. */
export const NO_SLOT = CACHED_SLOTS;

type Utf8Slice = (this: Buffer, start: number, end: number) => string;
/**
 * `toString('utf8', ...)` validates its arguments on every call, which costs as much as decoding a short string.
 * `utf8Slice` is the undocumented method it ends in (avsc calls it too); the fallback keeps us correct without it.
 */
const utf8Slice: Utf8Slice =
  (Buffer.prototype as unknown as { utf8Slice?: Utf8Slice }).utf8Slice ??
  function (this: Buffer, start: number, end: number): string {
    return this.toString('utf8', start, end);
  };

/**
 * Strings decoded before, with their bytes, so that bytes seen again give the same string without decoding and
 * allocating it again: decoding a short string costs a native call, several times a comparison. Equal bytes
 * decode to equal strings whatever they hold, so any string up to MAX_CACHED_LENGTH bytes is cached.
 *
 * The strings live in a direct-mapped table hashed from the length and four bytes, which finds a value that
 * alternates among a few (a device id, a level) and one string under two names (IoT Hub writes the enqueued time
 * as EnqueuedTimeUtc and again in SystemProperties). In front of it, each map position (slot) points at the entry
 * it found last: records repeat the same keys in the same order and many of the same values (content type, auth
 * method), so that entry is usually the answer, without hashing. An entry overwritten since simply fails the
 * comparison. Handing out the same key string also keeps object shapes and later key lookups on V8's fast paths.
 */
export class StringCache {
  readonly #strings: Array<string | undefined> = new Array<string | undefined>(1 << TABLE_BITS).fill(undefined);
  /** -1 for an empty entry, so that no length matches it. */
  readonly #lengths = new Int32Array(1 << TABLE_BITS).fill(-1);
  /** Entry `e` keeps its bytes at `e * MAX_CACHED_LENGTH`. */
  readonly #bytes = new DataView(new ArrayBuffer((1 << TABLE_BITS) * MAX_CACHED_LENGTH));
  /** The entry each slot found last. */
  readonly #slots = new Int32Array(CACHED_SLOTS);

  /**
   * The string `block[start, end)` decodes to; `slot` is its position in its map, or NO_SLOT. The usual case, the
   * entry this slot found last, is written out here so that it compiles into the caller's loop.
   */
  read(block: Buffer, bytes: DataView, start: number, end: number, slot: number): string {
    const length = end - start;
    if (slot < CACHED_SLOTS) {
      const entry = this.#slots[slot]!;
      if (this.#lengths[entry] === length) {
        const cached = this.#bytes;
        const base = entry * MAX_CACHED_LENGTH;
        // Four bytes at a time (DataView reads compile to plain loads), from the end, where counters and timestamps
        // differ; then the one to three bytes left at the start.
        let i = length - 4;
        while (i >= 0 && bytes.getInt32(start + i, true) === cached.getInt32(base + i, true)) i -= 4;
        if (i < 0) {
          i += 3;
          while (i >= 0 && block[start + i] === cached.getUint8(base + i)) i--;
          if (i < 0) return this.#strings[entry]!;
        }
      }
    }
    return this.#find(block, bytes, start, end, slot);
  }

  #find(block: Buffer, bytes: DataView, start: number, end: number, slot: number): string {
    const length = end - start;
    if (length === 0) return '';
    if (length > MAX_CACHED_LENGTH) return utf8Slice.call(block, start, end);
    // Counters and ids differ at the end (device-007, device-042), prefixes and kinds at the start.
    const mix =
      (length ^ block[end - 1]! ^ (block[end - 2]! << 8) ^ (block[start + (length >> 1)]! << 16) ^ (block[start]! << 24)) | 0;
    const entry = Math.imul(mix, 0x9e3779b1) >>> (32 - TABLE_BITS);
    if (slot < CACHED_SLOTS) this.#slots[slot] = entry;
    const base = entry * MAX_CACHED_LENGTH;
    if (this.#lengths[entry] === length && sameBytes(bytes, start, this.#bytes, base, length)) return this.#strings[entry]!;
    const text = utf8Slice.call(block, start, end);
    this.#strings[entry] = text;
    this.#lengths[entry] = length;
    copyBytes(bytes, start, this.#bytes, base, length);
    return text;
  }
}

/**
 * Four bytes at a time through DataViews, which the optimising compiler turns into plain loads: several times
 * faster than comparing char codes one by one. From the end, where counters and timestamps differ.
 */
function sameBytes(a: DataView, aStart: number, b: DataView, bStart: number, length: number): boolean {
  let i = length - 4;
  for (; i >= 0; i -= 4) if (a.getInt32(aStart + i, true) !== b.getInt32(bStart + i, true)) return false;
  for (i += 3; i >= 0; i--) if (a.getUint8(aStart + i) !== b.getUint8(bStart + i)) return false;
  return true;
}

function copyBytes(from: DataView, fromStart: number, to: DataView, toStart: number, length: number): void {
  let i = 0;
  for (; i + 4 <= length; i += 4) to.setInt32(toStart + i, from.getInt32(fromStart + i, true), true);
  for (; i < length; i++) to.setUint8(toStart + i, from.getUint8(fromStart + i));
}

/**
 * Reads Avro binary encoding from one buffer. Reads past the end are detected after the fact (a typed array yields
 * `undefined` beyond its length, which decodes as zero bits), so the hot path pays one comparison per value.
 */
export class AvroCursor {
  pos: number;
  readonly end: number;
  /** The same bytes, for word-wise comparison with cached strings. */
  readonly bytes: DataView;

  /**
   * `origin` is where `buf` starts within the block, for the offsets errors name: a reader decoding a window of a
   * block names offsets in the block, as for a block it holds whole.
   */
  constructor(
    readonly buf: Buffer,
    pos = 0,
    private readonly origin = 0,
  ) {
    this.pos = pos;
    this.end = buf.length;
    this.bytes = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Longs beyond 2^53 lose precision, as they do everywhere in JavaScript; no field we read can be that large. */
  readLong(): number {
    const buf = this.buf;
    let pos = this.pos;
    let b = buf[pos++]!;
    let n = b & 0x7f;
    let shift = 7;
    while (b & 0x80 && shift < 28) {
      b = buf[pos++]!;
      n |= (b & 0x7f) << shift;
      shift += 7;
    }
    if (b & 0x80) {
      // Past 28 bits a 32-bit shift would overflow; continue in floating point. The zigzag sign bit is taken from
      // the exact low bits first: a zigzag value above 2^53 is not exact, but its half still is.
      const negative = n & 1;
      let f = n >>> 1;
      let scale = 134217728; // 2^27: the bits read so far, less the sign bit
      do {
        b = buf[pos++]!;
        f += (b & 0x7f) * scale;
        scale *= 128;
      } while (b & 0x80 && pos - this.pos < MAX_VARINT_BYTES);
      if (b & 0x80) throw new AvroDataError(`varint at ${this.origin + this.pos} is longer than ${MAX_VARINT_BYTES} bytes`);
      this.#advance(pos);
      return negative ? -f - 1 : f;
    }
    this.#advance(pos);
    return (n >>> 1) ^ -(n & 1);
  }

  readDouble(): number {
    const pos = this.pos;
    this.#advance(pos + 8);
    return this.buf.readDoubleLE(pos);
  }

  readFloat(): number {
    const pos = this.pos;
    this.#advance(pos + 4);
    return this.buf.readFloatLE(pos);
  }

  readBoolean(): boolean {
    const pos = this.pos;
    this.#advance(pos + 1);
    return this.buf[pos] === 1;
  }

  readString(): string {
    const start = this.#lengthPrefixed();
    return utf8Slice.call(this.buf, start, this.pos);
  }

  /** `readString` that first tries the string last read at `slot` of `cache`. */
  readCachedString(cache: StringCache, slot: number): string {
    const buf = this.buf;
    const first = buf[this.pos];
    let start: number;
    if (first !== undefined && first < 0x80 && (first & 1) === 0) {
      // A one-byte length (under 64 bytes), read inline: nearly every key and value.
      start = this.pos + 1;
      this.#advance(start + (first >>> 1));
    } else {
      start = this.#lengthPrefixed();
    }
    return cache.read(buf, this.bytes, start, this.pos, slot);
  }

  /** A view into the block: it keeps the whole block alive, so only blocks the reader owns and bounds are shared. */
  readBytesView(): Buffer {
    const start = this.#lengthPrefixed();
    return this.buf.subarray(start, this.pos);
  }

  /** Bytes that outlive the block: a block can be megabytes, and one retained message must not pin all of it. */
  readBytesCopy(): Buffer {
    const start = this.#lengthPrefixed();
    return Buffer.from(this.buf.subarray(start, this.pos));
  }

  /**
   * The item count of the next map or array block. Writers may use negative counts followed by the block's byte
   * size (so readers can skip it); we read every item, so the size is dropped. Each item takes at least one byte,
   * which bounds the count by what is left and stops a forged count from looping for ever.
   */
  readBlockCount(): number {
    let count = this.readLong();
    if (count < 0) {
      this.readLong();
      count = -count;
    }
    if (count > this.end - this.pos) {
      throw new AvroDataError(`map of ${count} entries cannot fit in the ${this.end - this.pos} bytes left`, this.pos + count);
    }
    return count;
  }

  /** A map of strings without the generic value dispatch: IoT Hub's two maps, read for every record. */
  readStringMap(keys: StringCache, values: StringCache, shapes: ObjectShapes): Record<string, string> {
    const names = shapes.keys;
    const items = shapes.values;
    let n = 0;
    for (let count = this.readBlockCount(); count !== 0; count = this.readBlockCount()) {
      for (let i = 0; i < count; i++, n++) {
        names[n] = this.readCachedString(keys, n);
        items[n] = this.readCachedString(values, n);
      }
    }
    return shapes.build(n) as Record<string, string>;
  }

  #lengthPrefixed(): number {
    const length = this.readLong();
    const start = this.pos;
    if (length < 0) throw new AvroDataError(`length ${length} at ${this.origin + start} is negative`);
    if (length > this.end - start) {
      throw new AvroDataError(`length ${length} at ${this.origin + start} runs past the ${this.end - start} bytes left`, start + length);
    }
    this.pos = start + length;
    return start;
  }

  #advance(pos: number): void {
    if (pos > this.end) throw new AvroDataError(`value at ${this.origin + this.pos} runs past the end of the block`, pos);
    this.pos = pos;
  }
}

