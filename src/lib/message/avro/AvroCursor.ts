/** Bytes that do not decode as the writer schema says they should. Caught by the reader and turned into damage. */
export class AvroDataError extends Error {
  override readonly name = 'AvroDataError';
}

export function isAvroDataError(error: unknown): error is AvroDataError {
  return error instanceof Error && error.name === 'AvroDataError';
}

/** A zigzag varint never needs more than 10 bytes for a 64-bit long. */
export const MAX_VARINT_BYTES = 10;

/** Longer strings are rarely repeated verbatim and cost more to compare than the cache saves. */
const MAX_CACHED_LENGTH = 96;

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
 * The string last decoded at each position of a map (key or value). IoT Hub and Capture records repeat the same
 * keys in the same order and many of the same values (device id, content type, auth method), so comparing bytes
 * against the previous string is cheaper than decoding a new one, and reusing the same key string keeps object
 * property stores on V8's fast path.
 */
export type StringCache = Array<string | undefined>;

/**
 * Reads Avro binary encoding from one buffer. Reads past the end are detected after the fact (a typed array yields
 * `undefined` beyond its length, which decodes as zero bits), so the hot path pays one comparison per value.
 */
export class AvroCursor {
  pos: number;
  readonly end: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
  ) {
    this.pos = pos;
    this.end = buf.length;
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
      if (b & 0x80) throw new AvroDataError(`varint at ${this.pos} is longer than ${MAX_VARINT_BYTES} bytes`);
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
    const start = this.#lengthPrefixed();
    const end = this.pos;
    const length = end - start;
    const cached = cache[slot];
    // Only strings whose UTF-16 length equals their UTF-8 length are cached: those are ASCII (or hold U+FFFD,
    // which equals no byte), so equal char codes and bytes prove the bytes decode to this very string. Compared
    // from the end, where counters and timestamps differ.
    if (cached !== undefined && cached.length === length) {
      const buf = this.buf;
      let i = length - 1;
      while (i >= 0 && buf[start + i] === cached.charCodeAt(i)) i--;
      if (i < 0) return cached;
    }
    const text = utf8Slice.call(this.buf, start, end);
    if (length <= MAX_CACHED_LENGTH && text.length === length) cache[slot] = text;
    return text;
  }

  /** A view into the block, valid only while the block is; copy what outlives it. */
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
      throw new AvroDataError(`map of ${count} entries cannot fit in the ${this.end - this.pos} bytes left`);
    }
    return count;
  }

  /** A map of strings without the generic value dispatch: IoT Hub's two maps, read for every record. */
  readStringMap(keys: StringCache, values: StringCache): Record<string, string> {
    const map: Record<string, string> = {};
    let slot = 0;
    for (let count = this.readBlockCount(); count !== 0; count = this.readBlockCount()) {
      for (let i = 0; i < count; i++, slot++) {
        const key = this.readCachedString(keys, slot);
        setEntry(map, key, this.readCachedString(values, slot));
      }
    }
    return map;
  }

  #lengthPrefixed(): number {
    const length = this.readLong();
    const start = this.pos;
    if (length < 0 || length > this.end - start) {
      throw new AvroDataError(`length ${length} at ${start} runs past the ${this.end - start} bytes left`);
    }
    this.pos = start + length;
    return start;
  }

  #advance(pos: number): void {
    if (pos > this.end) throw new AvroDataError(`value at ${this.pos} runs past the end of the block`);
    this.pos = pos;
  }
}

/** Property names are device-chosen: `__proto__` must become an own property, not a prototype change. */
export function setEntry<T>(map: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    map[key] = value;
  }
}
