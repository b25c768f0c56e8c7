import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { readAvro } from '../../../src/lib/message/avro/readAvro.js';
import { chunked, iotHubAvroFile, readAll, type ReadOutcome } from '../../support/avroFiles.js';

/** The reader's contract on any input: no throw, exactly one `end`, last, agreeing with what was delivered. */
function expectWellFormed(outcome: ReadOutcome): void {
  expect(outcome.ends).toHaveLength(1);
  expect(outcome.eventAfterEnd).toBe(false);
  const summary = outcome.ends[0]!;
  expect(summary.records).toBe(outcome.messages.length);
  expect(outcome.batches.every((n) => n > 0)).toBe(true);
  expect(outcome.messages.map((m) => m.source.kind === 'blob' && m.source.index)).toEqual(
    outcome.messages.map((_, i) => i),
  );
  if (summary.damage !== null) expect(summary.damage.byteOffset).toBeLessThanOrEqual(summary.bytes);
}

const chunkSizes = fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 5 });
const read = (bytes: Uint8Array, sizes: readonly number[]) => readAll(readAvro(chunked(bytes, sizes), { name: 'p' }));

type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
);

function mutate(file: Buffer, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(file);
  for (const m of mutations) {
    const at = m.at % Math.max(1, bytes.length);
    if (m.kind === 'flip') bytes[at] = bytes[at]! ^ m.xor;
    else if (m.kind === 'cut') bytes = bytes.subarray(0, at);
    else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
    else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
  }
  return bytes;
}

describe('readAvro never throws and always ends once', () => {
  const files: Record<'null' | 'deflate', Buffer> = { null: Buffer.alloc(0), deflate: Buffer.alloc(0) };
  beforeAll(async () => {
    files.null = await iotHubAvroFile({ records: 40, blockSize: 2048, codec: 'null' });
    files.deflate = await iotHubAvroFile({ records: 40, blockSize: 2048, codec: 'deflate' });
  });

  it('on random bytes, bare or behind the Avro magic', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.boolean(), chunkSizes, async (random, magic, sizes) => {
        const bytes = magic ? Buffer.concat([Buffer.from('Obj\x01', 'latin1'), random]) : random;
        expectWellFormed(await read(bytes, sizes));
      }),
      { numRuns: 300 },
    );
  });

  it('on a valid header followed by random bytes', async () => {
    const headerLength = files.null.indexOf(Buffer.from('0123456789abcdef', 'latin1')) + 16;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), chunkSizes, async (random, sizes) => {
        const outcome = await read(Buffer.concat([files.null.subarray(0, headerLength), random]), sizes);
        expectWellFormed(outcome);
        expect(outcome.ends[0]?.format).toBe('avro-iothub');
      }),
      { numRuns: 300 },
    );
  });

  for (const codec of ['null', 'deflate'] as const) {
    it(`on random mutations of a valid ${codec}-codec file`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), chunkSizes, async (mutations, sizes) => {
          expectWellFormed(await read(mutate(files[codec], mutations), sizes));
        }),
        { numRuns: 400 },
      );
    });

    it(`reads a valid ${codec}-codec file the same however it is chunked`, async () => {
      const whole = await read(files[codec], [files[codec].length]);
      expect(whole.ends[0]).toMatchObject({ records: 40, damage: null });
      await fc.assert(
        fc.asyncProperty(chunkSizes, async (sizes) => {
          expect(await read(files[codec], sizes)).toEqual(whole);
        }),
        { numRuns: 40 },
      );
    });
  }
});
