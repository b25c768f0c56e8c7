/**
 * Archive reader throughput: `readAvro` (records decoded all the way to RoutedMessage, JSON bodies parsed) against
 * avsc's BlockDecoder plus JSON.parse of each body, on the same IoT Hub Avro bytes fed in the same 64 KiB chunks.
 *
 * Both sides are timed the same way, wall clock per full read. The machine is shared, so single reads of either
 * side vary by a third or more; each round times one read of each, back to back, and the reported ratio is the
 * median of the rounds' ratios, so that a slow spell hits both sides of a round alike. Two warm-up rounds first let
 * both reach optimised code (avsc compiles its readers, ours compiles map factories).
 */
import avro from 'avsc';
import { Readable } from 'node:stream';
import { readAvro } from '../src/lib/message/avro/readAvro.js';
import { iotHubAvroParts } from '../test/support/avroFiles.js';
import type { BenchOptions, BenchResult } from './types.js';

const CHUNK_BYTES = 64 * 1024;
const WARM_UP_ROUNDS = 2;
const ROUNDS = 7;

export async function benchAvroReader(options: BenchOptions): Promise<BenchResult[]> {
  const records = options.quick ? 20_000 : 100_000;
  const results: BenchResult[] = [];
  for (const codec of ['null', 'deflate'] as const) {
    const { header, blocks } = await iotHubAvroParts({ records, codec });
    const file = Buffer.concat([header, ...blocks.map((b) => b.bytes)]);
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < file.length; offset += CHUNK_BYTES) {
      chunks.push(file.subarray(offset, offset + CHUNK_BYTES));
    }
    for (let round = 0; round < WARM_UP_ROUNDS; round++) {
      await timed(() => readWithOurs(chunks), records);
      await timed(() => readWithAvsc(chunks), records);
    }
    const ours: number[] = [];
    const baseline: number[] = [];
    const ratios: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(await timed(() => readWithOurs(chunks), records));
      baseline.push(await timed(() => readWithAvsc(chunks), records));
      ratios.push(ours[round]! / baseline[round]!);
    }
    results.push({
      name: `avro reader, IoT Hub, codec ${codec}`,
      unit: 'records/s',
      ours: median(ours),
      baseline: median(baseline),
      ratio: median(ratios),
      notes: {
        records,
        blocks: blocks.length,
        'file MB': file.length / 1e6,
        'round ratios': ratios.map((r) => r.toFixed(2)).join('/'),
      },
    });
  }
  return results;
}

/** Records per second of one full read; the count is checked so that a reader that stops early cannot win. */
async function timed(read: () => Promise<number>, expected: number): Promise<number> {
  const started = process.hrtime.bigint();
  const count = await read();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (count !== expected) throw new Error(`read ${count} records, expected ${expected}`);
  return count / seconds;
}

async function readWithOurs(chunks: readonly Buffer[]): Promise<number> {
  let count = 0;
  for await (const event of readAvro(fromChunks(chunks), { name: 'bench.avro' })) {
    if (event.type === 'records') {
      for (const message of event.messages) if (message.decoded.kind === 'json') count++;
    } else if (event.summary.damage !== null) {
      throw new Error(`bench file reported damage: ${event.summary.damage.detail}`);
    }
  }
  return count;
}

async function readWithAvsc(chunks: readonly Buffer[]): Promise<number> {
  const decoder = Readable.from(chunks, { objectMode: false }).pipe(new avro.streams.BlockDecoder());
  let count = 0;
  for await (const record of decoder as AsyncIterable<{ Body: Buffer | null }>) {
    if (record.Body !== null && JSON.parse(record.Body.toString('utf8')) !== undefined) count++;
  }
  return count;
}

async function* fromChunks(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  yield* chunks;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
