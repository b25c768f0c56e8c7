import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AvroCursor, isAvroDataError, NO_SLOT, StringCache } from '../../../src/lib/message/avro/AvroCursor.js';
import { ObjectShapes } from '../../../src/lib/message/objectShapes.js';
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
    const error = thrown(() => new AvroCursor(Buffer.concat([avroLong(1_000_000), Buffer.alloc(10)])).readStringMap(new StringCache(), new StringCache(), new ObjectShapes()));
    expect(isAvroDataError(error)).toBe(true);
  });

  it('cached string reads always equal a fresh UTF-8 decode, whatever bytes came before in the slot', () => {
    // Byte strings over a tiny alphabet that includes multi-byte sequences and invalid bytes, so that slots often
    // meet a byte string of the same length as the cached text; short ones, and ones around the word-wise
    // comparison's 4-byte steps and the longest cached length (96).
    const alphabet = fc.constantFrom(0x61, 0x62, 0xc3, 0xa9, 0xe9, 0xff, 0x80);
    const bytes = fc.oneof(
      fc.array(alphabet, { maxLength: 6 }),
      fc.integer({ min: 0, max: 100 }).chain((n) =>
        fc.tuple(fc.array(alphabet, { maxLength: 2 }), fc.nat(n)).map(([tail, at]) => {
          const text = Array.from({ length: n }, (_, i) => 0x30 + (i % 10));
          if (tail.length > 0 && n > 0) text[at % n] = tail[0]!;
          return text;
        }),
      ),
    );
    fc.assert(
      fc.property(fc.array(fc.array(bytes, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 30 }), (records) => {
        const cache = new StringCache();
        records.forEach((strings, record) => {
          const encoded = Buffer.concat(strings.flatMap((s) => [avroLong(s.length), Buffer.from(s)]));
          const cursor = new AvroCursor(encoded);
          // Every third record reads without positions, so that only the table by content answers.
          strings.forEach((s, slot) =>
            expect(cursor.readCachedString(cache, record % 3 === 2 ? NO_SLOT : slot)).toBe(Buffer.from(s).toString('utf8')),
          );
        });
      }),
      { numRuns: 500 },
    );
  });

  it('reads string maps as avsc writes them, with a "__proto__" key as an own property', () => {
    const type = avro.Type.forSchema({ type: 'map', values: 'string' });
    const map = JSON.parse('{"a":"1","__proto__":"2","Zürich":"東京"}') as Record<string, string>;
    const read = new AvroCursor(type.toBuffer(map)).readStringMap(new StringCache(), new StringCache(), new ObjectShapes());
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(Object.entries(read)).toEqual(Object.entries(map));
  });

  it('maps built from a compiled key list equal maps built key by key, whatever the keys', () => {
    const key = fc.oneof(
      fc.constantFrom('__proto__', 'constructor', 'toString', '0', '1', '10', 'a"b', 'a\\b', '\u2028', '\ud800', '${x}', '`', '\n'),
      fc.string({ maxLength: 4 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.tuple(key, fc.string({ maxLength: 3 })), { maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 4 }),
        (keyLists, repeats) => {
          const keys = new StringCache();
          const values = new StringCache();
          const shapes = new ObjectShapes();
          // Each key list comes several times in a row (compiled from its second sighting), then the next one.
          for (const entries of keyLists) {
            for (let r = 0; r <= repeats; r++) {
              // avsc writes a JavaScript object, so build the bytes by hand to keep duplicate keys.
              const encoded = Buffer.concat([
                ...(entries.length > 0 ? [avroLong(entries.length)] : []),
                ...entries.flatMap(([k, v]) => [avroLong(Buffer.byteLength(k)), Buffer.from(k), avroLong(Buffer.byteLength(v)), Buffer.from(v)]),
                avroLong(0),
              ]);
              const expected: Record<string, string> = {};
              for (const [k, v] of entries) {
                // What the bytes decode to: a lone surrogate was written as U+FFFD.
                const value = Buffer.from(v).toString('utf8');
                Object.defineProperty(expected, Buffer.from(k).toString('utf8'), { value, enumerable: true, writable: true, configurable: true });
              }
              const read = new AvroCursor(encoded).readStringMap(keys, values, shapes);
              expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
              expect(Object.entries(read)).toEqual(Object.entries(expected));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
