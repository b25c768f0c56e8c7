import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { readAvro } from '../../../src/lib/message/avro/readAvro.js';
import { iotHubAvroParts, iotHubRecord } from '../../support/avroFiles.js';

const INPUT_BYTES = 300 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** Far below the input: a reader that kept the input, or every message, would blow through it many times over. */
const RETAINED_LIMIT = 48 * 1024 * 1024;
const RSS_LIMIT = 100 * 1024 * 1024;

// Forced collections make "retained" mean live memory, not garbage the collector has not reached yet.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const live = (): number => {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
};

describe('readAvro memory', () => {
  it.each([
    ['64 KiB views of one block (any growth is the reader\'s)', false, CHUNK_BYTES],
    ['fresh 1 MB chunks across block boundaries, as a file stream yields them (consumed chunks must not stay referenced)', true, 1_000_000],
  ])('reads a 300 MB IoT Hub stream holding about one block at a time: %s', async (_label, fresh, chunkBytes) => {
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
      if (!fresh) {
        for (let r = 0; r < repeats; r++) {
          for (let at = 0; at < block.bytes.length; at += chunkBytes) yield block.bytes.subarray(at, at + chunkBytes);
        }
        return;
      }
      const total = repeats * block.bytes.length;
      for (let at = 0; at < total; at += chunkBytes) {
        const chunk = Buffer.allocUnsafe(Math.min(chunkBytes, total - at));
        for (let filled = 0; filled < chunk.length; ) {
          const offset = (at + filled) % block.bytes.length;
          filled += Buffer.from(block.bytes.buffer, block.bytes.byteOffset, block.bytes.byteLength).copy(chunk, filled, offset);
        }
        yield chunk;
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
