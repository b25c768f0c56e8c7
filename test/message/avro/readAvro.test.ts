import avro from 'avsc';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readAvro, sniffAvro } from '../../../src/lib/message/avro/readAvro.js';
import type { ArchiveSummary } from '../../../src/lib/message/archive.js';
import type { RoutedMessage } from '../../../src/lib/message/RoutedMessage.js';
import { captureSchema } from '../../support/archiveFixtures.js';
import {
  avroFile,
  avroLong,
  bodyOf,
  chunked,
  DEFAULT_SYNC,
  deviceIdOf,
  enqueuedTimeOf,
  IOTHUB_SCHEMA,
  iotHubAvroFile,
  iotHubAvroParts,
  iotHubRecord,
  readAll,
  type AvroFileParts,
} from '../../support/avroFiles.js';

const read = (bytes: Uint8Array, chunks: number | readonly number[] = 4096) =>
  readAll(readAvro(chunked(bytes, chunks), { name: 'hub/00/2024/05/01/12/00' }));

const fileOf = ({ header, blocks }: AvroFileParts): Buffer => Buffer.concat([header, ...blocks.map((b) => b.bytes)]);

/** Asserts message `i` is exactly what iotHubRecord(i) wrote. */
function expectIotHubMessage(message: RoutedMessage | undefined, i: number): void {
  const record = iotHubRecord(i);
  expect(message).toEqual({
    deviceId: deviceIdOf(i),
    messageId: `msg-${i}`,
    enqueuedTime: new Date(enqueuedTimeOf(i).slice(0, 23) + 'Z'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    properties: record.Properties,
    systemProperties: record.SystemProperties,
    body: expect.anything(),
    decoded: { kind: 'json', value: bodyOf(i), decodedFrom: expect.objectContaining({ charset: 'utf-8' }) },
    source: {
      kind: 'blob',
      blobName: 'hub/00/2024/05/01/12/00',
      index: i,
      format: 'avro-iothub',
      sequenceNumber: null,
      offset: null,
    },
  });
  expect(Buffer.from(message!.body).equals(record.Body!)).toBe(true);
}

const HUB_TYPE = avro.Type.forSchema(IOTHUB_SCHEMA as avro.Schema);

describe('readAvro round trips IoT Hub routing files written by avsc', () => {
  for (const codec of ['null', 'deflate'] as const) {
    it.each([
      [1, 1],
      [10, [1, 2, 3]],
      [1000, [13, 1, 997, 65536]],
    ])(`codec ${codec}: %i records in chunks of %j`, async (records, chunks) => {
      const parts = await iotHubAvroParts({ records, codec, blockSize: 8192 });
      const { messages, batches, ends, eventAfterEnd } = await read(fileOf(parts), chunks);
      expect(ends).toEqual([
        { format: 'avro-iothub', codec, records, bytes: fileOf(parts).length, damage: null },
      ]);
      expect(eventAfterEnd).toBe(false);
      expect(batches).toEqual(parts.blocks.map((b) => b.records));
      messages.forEach(expectIotHubMessage);
      expect(messages).toHaveLength(records);
    });
  }

  it('100k records, deflate, 64 KiB and odd chunks: every record in order', async () => {
    const bytes = await iotHubAvroFile({ records: 100_000, codec: 'deflate' });
    const { messages, ends } = await read(bytes, [65536, 4093, 7]);
    expect(ends[0]).toMatchObject({ records: 100_000, damage: null });
    const wrong = messages.findIndex(
      (m, i) =>
        m.source.kind !== 'blob' ||
        m.source.index !== i ||
        m.messageId !== `msg-${i}` ||
        m.deviceId !== deviceIdOf(i) ||
        m.decoded.kind !== 'json' ||
        (m.decoded.value as { messageIndex: number }).messageIndex !== i,
    );
    expect(wrong).toBe(-1);
    expectIotHubMessage(messages[99_999], 99_999);
  }, 60_000);

  it('an empty Body (null branch) becomes empty bytes', async () => {
    const bytes = await iotHubAvroFile({ records: 1, record: (i) => ({ ...iotHubRecord(i), Body: null }) });
    const [message] = (await read(bytes)).messages;
    expect(message?.body).toHaveLength(0);
  });

  it('keeps a "__proto__" property as an own property instead of changing the prototype', async () => {
    const record = (i: number) => ({ ...iotHubRecord(i), Properties: JSON.parse('{"__proto__":"x","level":"storage"}') });
    const [message] = (await read(await iotHubAvroFile({ records: 1, record }))).messages;
    expect(Object.getPrototypeOf(message?.properties)).toBe(Object.prototype);
    expect(Object.entries(message!.properties)).toEqual([
      ['__proto__', 'x'],
      ['level', 'storage'],
    ]);
  });

  it('decodes non-ASCII keys and values and does not confuse them with cached ASCII strings', async () => {
    const values = ['Zürich', 'Zurich', 'Z\u00fcrich', '東京', 'ab', 'a\u00e9'];
    const record = (i: number) => ({ ...iotHubRecord(i), Properties: { location: values[i % values.length]!, [`clé${i % 2}`]: 'v' } });
    const { messages } = await read(await iotHubAvroFile({ records: 12, record }));
    expect(messages.map((m) => m.properties)).toEqual(Array.from({ length: 12 }, (_, i) => record(i).Properties));
  });

  it('passes the message through toRoutedMessage: system enqueuedTime wins over EnqueuedTimeUtc', async () => {
    const record = (i: number) => {
      const base = iotHubRecord(i);
      const { enqueuedTime: _, ...withoutTime } = base.SystemProperties;
      return i === 0 ? { ...base, EnqueuedTimeUtc: '2020-01-01T00:00:00.0000000Z' } : { ...base, SystemProperties: withoutTime };
    };
    const { messages } = await read(await iotHubAvroFile({ records: 2, record }));
    expect(messages[0]?.enqueuedTime).toEqual(new Date(enqueuedTimeOf(0).slice(0, 23) + 'Z'));
    expect(messages[1]?.enqueuedTime).toEqual(new Date(enqueuedTimeOf(1).slice(0, 23) + 'Z'));
  });

  it('stops pulling and releases the source when the consumer stops early', async () => {
    const bytes = await iotHubAvroFile({ records: 300, blockSize: 2048 });
    let released = false;
    async function* source() {
      try {
        yield* chunked(bytes, 1000);
      } finally {
        released = true;
      }
    }
    for await (const event of readAvro(source(), { name: 'x' })) {
      expect(event.type).toBe('records');
      break;
    }
    expect(released).toBe(true);
  });
});

describe('readAvro: what a message kept after its batch keeps alive', () => {
  for (const codec of ['null', 'deflate'] as const) {
    it(`codec ${codec}: bodies share one copy of their block, never the input chunk`, async () => {
      const parts = await iotHubAvroParts({ records: 60, blockSize: 8192, codec });
      const bytes = fileOf(parts);
      // The whole file as one chunk: a body that viewed it would keep the file alive.
      const { messages } = await read(bytes, bytes.length);
      expect(messages).toHaveLength(60);
      let at = 0;
      for (const block of parts.blocks) {
        const bodies = messages.slice(at, (at += block.records)).map((m) => m.body);
        expect(new Set(bodies.map((b) => b.buffer)).size).toBe(1);
        expect(bodies[0]!.buffer).not.toBe(bytes.buffer);
        expect(bodies[0]!.buffer.byteLength).toBeLessThan(4 * 8192);
      }
      messages.forEach(expectIotHubMessage);
    });

    it(`codec ${codec}: bodies of blocks over 256 KiB are copied out one by one`, async () => {
      const big = (i: number) => ({ ...iotHubRecord(i), Body: Buffer.from(JSON.stringify({ i, padding: 'x'.repeat(30_000) })) });
      const parts = await iotHubAvroParts({ records: 12, blockSize: 1024 * 1024, codec, record: big });
      expect(parts.blocks).toHaveLength(1);
      const { messages } = await read(fileOf(parts), 65536);
      expect(new Set(messages.map((m) => m.body.buffer)).size).toBe(12);
      for (const [i, message] of messages.entries()) {
        expect(message.body.buffer.byteLength).toBeLessThan(64 * 1024);
        expect(message.decoded).toMatchObject({ kind: 'json', value: { i } });
      }
    });
  }
});

describe('readAvro on Event Hubs Capture layouts', () => {
  const captureRecord = (i: number) => ({
    SequenceNumber: 1_000_000_000_000 + i,
    Offset: String(4096 * i),
    EnqueuedTimeUtc: i % 2 === 0 ? '12/9/2022 5:10:16 PM' : '1/2/2023 12:00:01 AM',
    SystemProperties: {
      'iothub-connection-device-id': { string: `dev-${i}` },
      'iothub-enqueuedtime': { string: '2023-01-02T00:00:01.1234567Z' },
      'x-opt-enqueued-time': { long: 1672617601123 },
      'x-opt-sequence-number': { long: 7 },
      'content-type': { bytes: Buffer.from('application/json') },
    },
    Properties: {
      level: { string: 'critical' },
      ratio: { double: 0.5 },
      blob: { bytes: Buffer.from([0xff, 0x00, 0xfe]) },
      ...(i === 1 ? { nothing: null } : {}),
    },
    Body: Buffer.from(JSON.stringify({ i })),
  });

  it('reads SequenceNumber, Offset and unwrapped union values; keeps a present x-opt-sequence-number', async () => {
    const bytes = await avroFile(captureSchema(), 2, captureRecord);
    const { messages, ends } = await read(bytes, 5);
    expect(ends[0]).toMatchObject({ format: 'avro-capture', records: 2, damage: null });
    expect(messages[1]).toMatchObject({
      deviceId: 'dev-1',
      enqueuedTime: new Date('2023-01-02T00:00:01.123Z'),
      contentType: 'application/json',
      properties: { level: 'critical', ratio: 0.5, blob: '/wD+', nothing: null },
      systemProperties: {
        'x-opt-enqueued-time': 1672617601123,
        'x-opt-sequence-number': 7,
        'x-opt-offset': '4096',
        'content-type': 'application/json',
      },
      decoded: { kind: 'json', value: { i: 1 } },
      source: { format: 'avro-capture', index: 1, sequenceNumber: 1_000_000_000_001, offset: '4096' },
    });
  });

  it('without iothub-enqueuedtime, takes x-opt-enqueued-time (ms) over EnqueuedTimeUtc (whole seconds)', async () => {
    const record = (i: number) => {
      const base = captureRecord(i);
      const { 'iothub-enqueuedtime': _, ...rest } = base.SystemProperties;
      // Record 1 carries an unusable one: EnqueuedTimeUtc decides.
      return { ...base, SystemProperties: i === 1 ? { ...rest, 'x-opt-enqueued-time': { string: 'soon' } } : rest };
    };
    const bytes = await avroFile(captureSchema(), 2, record);
    const { messages } = await read(bytes);
    expect(messages.map((m) => m.enqueuedTime?.toISOString())).toEqual(['2023-01-02T00:00:01.123Z', '2023-01-02T00:00:01.000Z']);
  });

  it('falls back to EnqueuedTimeUtc (US format, UTC) when no system property carries the time', async () => {
    const record = (i: number) => {
      const base = captureRecord(i);
      const { 'iothub-enqueuedtime': _, 'x-opt-enqueued-time': __, ...rest } = base.SystemProperties;
      return { ...base, SystemProperties: rest };
    };
    const bytes = await avroFile(captureSchema(), 2, record);
    const { messages } = await read(bytes);
    expect(messages.map((m) => m.enqueuedTime?.toISOString())).toEqual([
      '2022-12-09T17:10:16.000Z',
      '2023-01-02T00:00:01.000Z',
    ]);
  });

  it('a Capture schema with another union order or plain bytes Body decodes the same', async () => {
    const reference = await read(await avroFile(captureSchema(), 3, captureRecord));
    const variant = await read(await avroFile(captureSchema(['null', 'bytes', 'string', 'double', 'long'], 'bytes'), 3, captureRecord));
    expect(variant.messages).toEqual(reference.messages);
  });

  it('a recognisable schema laid out differently is decoded by avsc into the same messages', async () => {
    const schema = captureSchema();
    const reordered = {
      ...schema,
      fields: [...schema.fields.slice(3), { name: 'Extra', type: 'int' }, ...schema.fields.slice(0, 3)],
    };
    const reference = await read(await avroFile(schema, 3, captureRecord));
    const fallback = await read(await avroFile(reordered, 3, (i) => ({ ...captureRecord(i), Extra: i })), 2);
    expect(fallback.ends[0]).toMatchObject({ format: 'avro-capture', records: 3, damage: null });
    expect(fallback.messages).toEqual(reference.messages);

    const iotHubExtra = { ...IOTHUB_SCHEMA, fields: [{ name: 'Extra', type: 'string' }, ...IOTHUB_SCHEMA.fields] };
    const hub = await read(await avroFile(iotHubExtra, 5, (i) => ({ ...iotHubRecord(i), Extra: 'x' })));
    hub.messages.forEach(expectIotHubMessage);
  });
});

describe('readAvro reports damage instead of throwing', () => {
  const summaryOf = async (bytes: Uint8Array, chunks: number | readonly number[] = 4096): Promise<ArchiveSummary> => {
    const { ends, eventAfterEnd } = await read(bytes, chunks);
    expect(ends).toHaveLength(1);
    expect(eventAfterEnd).toBe(false);
    return ends[0]!;
  };

  it('zero bytes is an empty file, not damage', async () => {
    expect(await summaryOf(new Uint8Array(0))).toEqual({ format: 'empty', records: 0, bytes: 0, damage: null });
  });

  it('a header without blocks is an empty Avro file', async () => {
    const bytes = await iotHubAvroFile({ records: 0, codec: 'deflate' });
    expect(await summaryOf(bytes, 1)).toEqual({ format: 'avro-iothub', codec: 'deflate', records: 0, bytes: bytes.length, damage: null });
  });

  it('an empty deflate block is not damage', async () => {
    const header = (await iotHubAvroParts({ records: 0, codec: 'deflate' })).header;
    const bytes = Buffer.concat([header, avroLong(0), avroLong(0), DEFAULT_SYNC]);
    expect(await summaryOf(bytes)).toMatchObject({ records: 0, damage: null });
  });

  it('bytes that are not Avro are ArchiveFormatUnknown', async () => {
    expect(await summaryOf(Buffer.from('{"EnqueuedTimeUtc":"x"}\n'))).toMatchObject({
      format: 'unknown',
      damage: { code: 'ArchiveFormatUnknown', byteOffset: 0 },
    });
    expect(await summaryOf(Buffer.from('Ob'))).toMatchObject({ damage: { code: 'ArchiveTruncated', byteOffset: 0 } });
  });

  it('an Avro file of some other record is ArchiveFormatUnknown', async () => {
    const schema = { type: 'record', name: 'Reading', fields: [{ name: 'value', type: 'double' }] };
    const summary = await summaryOf(await avroFile(schema, 3, (i) => ({ value: i })));
    expect(summary).toMatchObject({ format: 'unknown', records: 0, damage: { code: 'ArchiveFormatUnknown' } });
    expect(summary.damage?.detail).toContain('Reading');
  });

  it('a codec other than null or deflate is ArchiveCorrupt naming the codec', async () => {
    const bytes = await iotHubAvroFile({
      records: 3,
      codec: 'snappy',
      codecs: { snappy: (buf, cb) => cb(null, buf) },
    });
    const summary = await summaryOf(bytes);
    expect(summary).toMatchObject({ format: 'avro-iothub', records: 0, damage: { code: 'ArchiveCorrupt' } });
    expect(summary.damage?.detail).toContain('"snappy"');
  });

  it('a header whose schema is not JSON, or missing, is ArchiveCorrupt', async () => {
    const header = (...entries: Array<[string, string]>): Buffer =>
      Buffer.concat([
        Buffer.from('Obj\x01', 'latin1'),
        ...(entries.length > 0 ? [avroLong(entries.length)] : []),
        ...entries.flatMap(([key, value]) => [avroLong(key.length), Buffer.from(key), avroLong(value.length), Buffer.from(value)]),
        avroLong(0),
        DEFAULT_SYNC,
      ]);
    const notJson = JSON.stringify(IOTHUB_SCHEMA).slice(0, -1) + ',}';
    expect(await summaryOf(header(['avro.schema', notJson]))).toMatchObject({
      damage: { code: 'ArchiveCorrupt', byteOffset: 0, detail: expect.stringContaining('not JSON') },
    });
    expect(await summaryOf(header())).toMatchObject({ damage: { code: 'ArchiveCorrupt', detail: 'header has no avro.schema' } });
    // The same header, well formed, is an empty IoT Hub file: the failures above are the schema's alone.
    expect(await summaryOf(header(['avro.schema', JSON.stringify(IOTHUB_SCHEMA)]))).toMatchObject({
      format: 'avro-iothub',
      codec: 'null',
      damage: null,
    });
  });

  describe('damage after good blocks keeps the good blocks', () => {
    const damaged = async (mutate: (parts: AvroFileParts) => Buffer, codec: 'null' | 'deflate' = 'null') => {
      const parts = await iotHubAvroParts({ records: 40, blockSize: 2048, codec });
      const { messages, ends } = await read(mutate(parts), [999, 1]);
      expect(ends).toHaveLength(1);
      return { parts, messages, summary: ends[0]!, secondBlockAt: parts.header.length + parts.blocks[0]!.bytes.length };
    };
    const firstBlockRecords = async () => (await iotHubAvroParts({ records: 40, blockSize: 2048 })).blocks[0]!.records;

    it('a wrong sync marker is ArchiveCorrupt at the marker', async () => {
      const { messages, summary, parts, secondBlockAt } = await damaged((p) => {
        const second = Buffer.from(p.blocks[1]!.bytes);
        second[second.length - 1]! ^= 0xff;
        return Buffer.concat([p.header, p.blocks[0]!.bytes, second, ...p.blocks.slice(2).map((b) => b.bytes)]);
      });
      expect(messages).toHaveLength(parts.blocks[0]!.records);
      expect(summary.records).toBe(parts.blocks[0]!.records);
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: secondBlockAt + parts.blocks[1]!.bytes.length - 16 });
    });

    it.each([
      ['a negative record count', -3, 100],
      ['a negative block size', 3, -100],
      ['a block size beyond 512 MiB', 3, 600 * 1024 * 1024],
    ])('%s is ArchiveCorrupt', async (_, count, size) => {
      const { messages, summary, secondBlockAt } = await damaged((p) =>
        Buffer.concat([p.header, p.blocks[0]!.bytes, avroLong(count), avroLong(size), Buffer.alloc(64)]),
      );
      expect(messages).toHaveLength(await firstBlockRecords());
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: secondBlockAt });
    });

    it('a deflate block that does not inflate is ArchiveCorrupt', async () => {
      const { messages, summary, secondBlockAt } = await damaged((p) => {
        const data = Buffer.from([0xff, 0xff, 0xff, 0xff]);
        return Buffer.concat([p.header, p.blocks[0]!.bytes, avroLong(2), avroLong(data.length), data, DEFAULT_SYNC]);
      }, 'deflate');
      expect(messages.length).toBeGreaterThan(0);
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: secondBlockAt, detail: expect.stringContaining('inflate') });
    });

    const blockOf = (records: readonly Buffer[], count: number, deflate = false): Buffer => {
      const raw = Buffer.concat(records);
      const data = deflate ? deflateRawSync(raw) : raw;
      return Buffer.concat([avroLong(count), avroLong(data.length), data, DEFAULT_SYNC]);
    };
    const encoded = (i: number): Buffer => HUB_TYPE.toBuffer(iotHubRecord(i));

    it('a record that runs past its block is ArchiveCorrupt naming the record', async () => {
      const { summary } = await damaged((p) => Buffer.concat([p.header, p.blocks[0]!.bytes, blockOf([encoded(0)], 2)]));
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', detail: expect.stringContaining('record 1 of 2') });
    });

    it('bytes left over after the counted records are ArchiveCorrupt', async () => {
      const { summary } = await damaged((p) =>
        Buffer.concat([p.header, p.blocks[0]!.bytes, blockOf([encoded(0), encoded(1)], 1, true)]),
      'deflate');
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', detail: expect.stringContaining('left over') });
    });

    it('an invalid union branch is ArchiveCorrupt', async () => {
      const record = encoded(0);
      const body = iotHubRecord(0).Body!;
      record[record.length - body.length - avroLong(body.length).length - 1] = 0x08; // Body union branch 4
      const { summary } = await damaged((p) => Buffer.concat([p.header, p.blocks[0]!.bytes, blockOf([record], 1)]));
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', detail: expect.stringContaining('branch 4') });
    });

    it('maps written in negative-count blocks (with byte sizes) are read', async () => {
      const entry = Buffer.concat([avroLong(5), Buffer.from('level'), avroLong(7), Buffer.from('storage')]);
      const record = Buffer.concat([
        avroLong(4),
        Buffer.from('time'),
        avroLong(-1),
        avroLong(entry.length),
        entry,
        avroLong(0),
        avroLong(0),
        avroLong(0),
      ]);
      const { messages, summary } = await damaged((p) => Buffer.concat([p.header, blockOf([record, record], 2)]));
      expect(summary.damage).toBeNull();
      expect(messages.map((m) => m.properties)).toEqual([{ level: 'storage' }, { level: 'storage' }]);
    });
  });

  describe('truncation at any offset returns exactly the complete blocks before the cut', () => {
    for (const codec of ['null', 'deflate'] as const) {
      it(`codec ${codec}`, async () => {
        const parts = await iotHubAvroParts({ records: 60, blockSize: 4096, codec });
        const bytes = fileOf(parts);
        const blockEnds: number[] = [];
        let end = parts.header.length;
        for (const block of parts.blocks) blockEnds.push((end += block.bytes.length));
        const blockStarts = [parts.header.length, ...blockEnds.slice(0, -1)];
        expect(parts.blocks.length).toBeGreaterThan(3);
        // Every offset in the header and the first block's count and size, around every block boundary and in the
        // last block's sync marker, and a stride through the rest.
        const cuts = new Set<number>();
        for (let cut = 1; cut < bytes.length; cut++) {
          if (cut <= parts.header.length + 4 || cut >= bytes.length - 20 || cut % 53 === 0) cuts.add(cut);
        }
        for (const boundary of blockEnds) for (let d = -3; d <= 3; d++) cuts.add(boundary + d);
        for (const cut of [...cuts].filter((c) => c > 0 && c < bytes.length)) {
          const { messages, ends } = await read(bytes.subarray(0, cut), [cut % 7 === 0 ? 1 : 512, 3]);
          const complete = blockEnds.filter((e) => e <= cut).length;
          const records = parts.blocks.slice(0, complete).reduce((n, b) => n + b.records, 0);
          expect(messages.length, `cut at ${cut}`).toBe(records);
          expect(ends, `cut at ${cut}`).toHaveLength(1);
          const summary = ends[0]!;
          expect(summary.records).toBe(records);
          if (cut === parts.header.length || blockEnds.includes(cut)) {
            // Avro has no end marker: a file cut exactly after a sync marker is a shorter valid file.
            expect(summary.damage, `cut at ${cut}`).toBeNull();
          } else {
            const at = cut < parts.header.length ? undefined : blockStarts[complete];
            expect(summary.damage, `cut at ${cut}`).toMatchObject({ code: 'ArchiveTruncated' });
            if (at !== undefined) expect(summary.damage?.byteOffset, `cut at ${cut}`).toBe(at);
            else expect(summary.damage!.byteOffset).toBeLessThanOrEqual(cut);
          }
        }
      }, 60_000);
    }
  });
});

describe('readAvro on a block over 4 MiB (Capture writes a file as one block): decoded as it arrives', () => {
  // About 6 MiB of records in one block, and the same records in 64 KiB blocks, which are read whole.
  const RECORDS = 5000;
  const padded = (i: number) => ({ ...iotHubRecord(i), Body: Buffer.from(JSON.stringify({ ...bodyOf(i), padding: 'p'.repeat(1000 + (i % 97)) })) });
  const oneBlock = iotHubAvroParts({ records: RECORDS, blockSize: 64 * 1024 * 1024, record: padded });
  const smallBlocks = iotHubAvroFile({ records: RECORDS, blockSize: 64 * 1024, record: padded });
  const plain = (m: RoutedMessage) => JSON.stringify({ ...m, body: Buffer.from(m.body).toString('base64') });

  it('gives the same messages, in several batches, whatever the chunking', async () => {
    const parts = await oneBlock;
    expect(parts.blocks).toHaveLength(1);
    expect(parts.blocks[0]!.bytes.length).toBeGreaterThan(5 * 1024 * 1024);
    const expected = (await read(await smallBlocks, 65_536)).messages.map(plain);
    for (const chunks of [1_000_000, [7, 65_536, 333_333], 16 * 1024 * 1024]) {
      const outcome = await read(fileOf(parts), chunks);
      expect(outcome.ends[0]).toMatchObject({ records: RECORDS, damage: null });
      expect(outcome.batches.length).toBeGreaterThan(3);
      expect(outcome.messages.map(plain)).toEqual(expected);
    }
  });

  it('grows its window for a record larger than the window', async () => {
    const huge = (i: number) => (i === 2 ? { ...iotHubRecord(i), Body: Buffer.alloc(3 * 1024 * 1024, 0x61) } : padded(i));
    const parts = await iotHubAvroParts({ records: 3000, blockSize: 64 * 1024 * 1024, record: huge });
    const { messages, ends } = await read(fileOf(parts), 65_536);
    expect(ends[0]).toMatchObject({ records: 3000, damage: null });
    expect(messages[2]!.body.length).toBe(3 * 1024 * 1024);
    expect(messages.map((m) => m.source.kind === 'blob' && m.source.index)).toEqual(messages.map((_, i) => i));
  });

  it('delivers the records before damage inside the block, then reports it at the block', async () => {
    const parts = await oneBlock;
    const bytes = Buffer.from(fileOf(parts));
    const blockStart = parts.header.length;
    // A body length varint far past the block's end, about 5 MiB in: a forged length, not a short read.
    const recordBytes = HUB_TYPE.toBuffer(padded(4000));
    const at = bytes.indexOf(recordBytes, blockStart + 4 * 1024 * 1024);
    expect(at).toBeGreaterThan(0);
    const bodyLengthAt = at + recordBytes.length - padded(4000).Body.length - avroLong(padded(4000).Body.length).length;
    avroLong(1_000_000_000).copy(bytes, bodyLengthAt);
    const { messages, ends } = await read(bytes, 65_536);
    expect(ends[0]!.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: blockStart, detail: expect.stringContaining('record 4000 of 5000') });
    expect(ends[0]!.records).toBe(messages.length);
    // A length past the block's end is damage at once: the rest of the block is not pulled in to find out.
    expect(ends[0]!.bytes).toBeLessThan(bodyLengthAt + 2 * 1024 * 1024);
    // A negative length too; and the offset named is the record's in the block, not in the window it was read from.
    const negative = Buffer.from(fileOf(parts));
    avroLong(-5).copy(negative, bodyLengthAt);
    const cut2 = await read(negative, 65_536);
    // The block: record count, size, records, sync marker; the records start after the two varints.
    const blockBytes = parts.blocks[0]!.bytes.length;
    const countLength = avroLong(5000).length;
    const sizeLength = [1, 2, 3, 4, 5].find((n) => avroLong(blockBytes - countLength - n - DEFAULT_SYNC.length).length === n)!;
    const recordsStart = blockStart + countLength + sizeLength;
    expect(cut2.ends[0]!.damage).toMatchObject({ code: 'ArchiveCorrupt', detail: expect.stringMatching(/record 4000 of 5000: length -5 at \d+ is negative/) });
    const namedAt = Number(/length -5 at (\d+)/.exec(cut2.ends[0]!.damage!.detail)![1]);
    // (The cursor names where the bytes would start: just after the length.)
    expect(namedAt).toBe(bodyLengthAt + avroLong(-5).length - recordsStart);
    expect(cut2.ends[0]!.bytes).toBeLessThan(bodyLengthAt + 2 * 1024 * 1024);
    expect(messages.length).toBeGreaterThan(3000);
    expect(messages.length).toBeLessThanOrEqual(4000);
    expect(messages.every((m, i) => m.deviceId === deviceIdOf(i) && Buffer.from(m.body).equals(padded(i).Body))).toBe(true);

    const cut = await read(fileOf(parts).subarray(0, blockStart + 5 * 1024 * 1024), 65_536);
    expect(cut.ends[0]!.damage).toMatchObject({ code: 'ArchiveTruncated', byteOffset: blockStart });
    expect(cut.ends[0]!.records).toBe(cut.messages.length);
    expect(cut.messages.length).toBeGreaterThan(3000);
  });

  it('checks the sync marker after the block and the bytes the records leave over', async () => {
    const parts = await oneBlock;
    const bytes = Buffer.from(fileOf(parts));
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    const { messages, ends } = await read(bytes, 65_536);
    expect(messages).toHaveLength(RECORDS);
    expect(ends[0]!.damage).toMatchObject({ code: 'ArchiveCorrupt', detail: expect.stringContaining('sync marker') });
  });
});

describe('sniffAvro', () => {
  it('answers from as few bytes as it has', () => {
    expect(sniffAvro(Buffer.from('Obj\x01rest', 'latin1'))).toBe('avro');
    expect(sniffAvro(Buffer.from('Ob'))).toBe('needMoreBytes');
    expect(sniffAvro(new Uint8Array(0))).toBe('needMoreBytes');
    expect(sniffAvro(Buffer.from('Obj\x02', 'latin1'))).toBe('notAvro');
    expect(sniffAvro(Buffer.from('{'))).toBe('notAvro');
  });
});
