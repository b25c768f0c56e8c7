import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AvroCursor, isAvroDataError, type StringCache } from '../../../src/lib/message/avro/AvroCursor.js';
import { avroLong } from '../../support/avroFiles.js';

/** Avro's long encoding, computed exactly with BigInt (avsc refuses longs near 2^53). */
function zigzag(n: number): Buffer {
  let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
  const bytes: number[] = [];
  do {
    const low = Number(z & 0x7fn);
    z >>= 7n;
    bytes.push(z === 0n ? low : low | 0x80);
  } while (z !== 0n);
  return Buffer.from(bytes);
}

const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('AvroCursor', () => {
  it('reads every safe integer exactly, across the 28-bit switch to floating point', () => {
    const edges = [0, 1, -1, 63, -64, 64, -65, 2 ** 27, 2 ** 28, -(2 ** 28), 2 ** 31, -(2 ** 31), 2 ** 51, -(2 ** 51)];
    // The reference encoder agrees with avsc where avsc is exact (avsc's own zigzag rounds beyond 2^52).
    expect(edges.map((n) => zigzag(n).equals(avroLong(n)))).not.toContain(false);
    const beyond = [2 ** 52 + 1, -(2 ** 52) - 1, 2 ** 53 - 1, -(2 ** 53 - 1)];
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...edges, ...beyond), fc.maxSafeInteger(), fc.integer()), (n) => {
        const cursor = new AvroCursor(zigzag(n));
        expect(cursor.readLong()).toBe(n);
        expect(cursor.pos).toBe(cursor.end);
      }),
      { numRuns: 1000 },
    );
  });

  it('rejects varints that run past the buffer or past ten bytes', () => {
    expect(isAvroDataError(thrown(() => new AvroCursor(Buffer.from([0x80, 0x80])).readLong()))).toBe(true);
    expect(isAvroDataError(thrown(() => new AvroCursor(Buffer.alloc(12, 0xff)).readLong()))).toBe(true);
  });

  it('rejects strings and doubles that run past the buffer, and negative lengths', () => {
    expect(isAvroDataError(thrown(() => new AvroCursor(Buffer.concat([avroLong(5), Buffer.from('abc')])).readString()))).toBe(true);
    expect(isAvroDataError(thrown(() => new AvroCursor(avroLong(-2)).readBytesView()))).toBe(true);
    expect(isAvroDataError(thrown(() => new AvroCursor(Buffer.alloc(7)).readDouble()))).toBe(true);
  });

  it('a map count larger than the bytes left is rejected before any entry is read', () => {
    const error = thrown(() => new AvroCursor(Buffer.concat([avroLong(1_000_000), Buffer.alloc(10)])).readStringMap([], []));
    expect(isAvroDataError(error)).toBe(true);
  });

  it('cached string reads always equal a fresh UTF-8 decode, whatever bytes came before in the slot', () => {
    // Short byte strings over a tiny alphabet that includes multi-byte sequences and invalid bytes, so that slots
    // often meet a byte string of the same length as the cached text.
    const bytes = fc.array(fc.constantFrom(0x61, 0x62, 0xc3, 0xa9, 0xe9, 0xff, 0x80), { maxLength: 6 });
    fc.assert(
      fc.property(fc.array(fc.array(bytes, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 30 }), (records) => {
        const cache: StringCache = [];
        for (const strings of records) {
          const encoded = Buffer.concat(strings.flatMap((s) => [avroLong(s.length), Buffer.from(s)]));
          const cursor = new AvroCursor(encoded);
          strings.forEach((s, slot) => expect(cursor.readCachedString(cache, slot)).toBe(Buffer.from(s).toString('utf8')));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('reads string maps as avsc writes them, with a "__proto__" key as an own property', () => {
    const type = avro.Type.forSchema({ type: 'map', values: 'string' });
    const map = JSON.parse('{"a":"1","__proto__":"2","Zürich":"東京"}') as Record<string, string>;
    const read = new AvroCursor(type.toBuffer(map)).readStringMap([], []);
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(Object.entries(read)).toEqual(Object.entries(map));
  });
});
