import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { readAvro } from '../../../src/lib/message/avro/readAvro.js';
import { avroLong, DEFAULT_SYNC, iotHubAvroParts, iotHubRecord } from '../../support/avroFiles.js';

const INPUT_BYTES = 300 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** Far below the input: a reader that kept the input, or every message, would blow through it many times over. */
const RETAINED_LIMIT = 24 * 1024 * 1024;
const RSS_LIMIT = 100 * 1024 * 1024;

// Forced collections make "retained" mean live memory, not garbage the collector has not reached yet.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const live = (): number => {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
};

/** A byte stream made of segments, each repeated, cut into fresh chunks of `chunkBytes` across segment boundaries. */
async function* freshChunks(segments: ReadonlyArray<{ bytes: Buffer; times: number }>, chunkBytes: number): AsyncGenerator<Uint8Array> {
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let filled = 0;
  for (const { bytes, times } of segments) {
    for (let t = 0; t < times; t++) {
      for (let at = 0; at < bytes.length; ) {
        const copied = bytes.copy(chunk, filled, at);
        at += copied;
        filled += copied;
        if (filled === chunkBytes) {
          yield chunk;
          chunk = Buffer.allocUnsafe(chunkBytes);
          filled = 0;
        }
      }
    }
  }
  if (filled > 0) yield chunk.subarray(0, filled);
}

/** A block's record bytes, without its count, size and sync marker. */
function recordBytes(block: Buffer, records: number): Buffer {
  const afterCount = avroLong(records).length;
  const rest = block.length - afterCount - DEFAULT_SYNC.length;
  for (let sizeLength = 1; sizeLength <= 10; sizeLength++) {
    if (avroLong(rest - sizeLength).length === sizeLength) return block.subarray(afterCount + sizeLength, block.length - DEFAULT_SYNC.length);
  }
  throw new Error('no size varint fits');
}

describe('readAvro memory', () => {
  it.each([
    ['1 MiB blocks in 64 KiB views of one block (any growth is the reader\'s)', 'blocks', false, CHUNK_BYTES],
    ['1 MiB blocks in fresh 1 MB chunks across block boundaries, as a file stream yields them (consumed chunks must not stay referenced)', 'blocks', true, 1_000_000],
    ['one 300 MB block, as Event Hubs Capture writes a file, in fresh 1 MB chunks', 'one block', true, 1_000_000],
  ] as const)('reads a 300 MB IoT Hub stream holding about one block or window at a time: %s', async (_label, layout, fresh, chunkBytes) => {
    // 16 KiB bodies keep the record count (and so the test's time) down while the byte count stays large.
    const padding = 'x'.repeat(16 * 1024);
    const { header, blocks } = await iotHubAvroParts({
      records: 200,
      blockSize: 1024 * 1024,
      record: (i) => ({ ...iotHubRecord(i), Body: Buffer.from(JSON.stringify({ i, padding })) }),
    });
    const block = blocks[0]!;
    const repeats = Math.ceil(INPUT_BYTES / block.bytes.length);

    // Views: the source allocates nothing per chunk. Fresh: every chunk is new memory, cut without regard to block
    // boundaries (so one chunk is always partly read), which only the reader's references keep alive.
    async function* source(): AsyncGenerator<Uint8Array> {
      yield header;
      if (layout === 'one block') {
        const data = recordBytes(block.bytes, block.records);
        const head = Buffer.concat([avroLong(repeats * block.records), avroLong(repeats * data.length)]);
        yield* freshChunks([{ bytes: head, times: 1 }, { bytes: data, times: repeats }, { bytes: DEFAULT_SYNC, times: 1 }], chunkBytes);
      } else if (fresh) {
        yield* freshChunks([{ bytes: block.bytes, times: repeats }], chunkBytes);
      } else {
        for (let r = 0; r < repeats; r++) {
          for (let at = 0; at < block.bytes.length; at += chunkBytes) yield block.bytes.subarray(at, at + chunkBytes);
        }
      }
    }

    gc();
    const liveBefore = live();
    const rssBefore = process.memoryUsage().rss;
    let maxRetained = 0;
    let maxRss = 0;
    let batches = 0;
    let records = 0;
    let summary;
    for await (const event of readAvro(source(), { name: 'big' })) {
      if (event.type === 'end') {
        summary = event.summary;
        continue;
      }
      records += event.messages.length;
      maxRss = Math.max(maxRss, process.memoryUsage().rss - rssBefore);
      if (++batches % 25 === 0) {
        // Twice: array buffers freed by the first collection are only returned (and uncounted) after it.
        gc();
        gc();
        maxRetained = Math.max(maxRetained, live() - liveBefore);
      }
    }
    expect(summary).toMatchObject({ records: repeats * block.records, damage: null });
    expect(summary?.bytes).toBeGreaterThanOrEqual(INPUT_BYTES);
    expect(records).toBe(repeats * block.records);
    expect(maxRetained, `retained ${(maxRetained / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(RETAINED_LIMIT);
    expect(maxRss, `rss grew ${(maxRss / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(RSS_LIMIT);
    console.info(
      `read ${(summary!.bytes / 2 ** 20).toFixed(0)} MiB, ${records} records; live memory grew at most ` +
        `${(maxRetained / 2 ** 20).toFixed(1)} MiB, rss ${(maxRss / 2 ** 20).toFixed(1)} MiB`,
    );
  }, 60_000);
});
