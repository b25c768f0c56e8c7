import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readAvro } from '../../../src/lib/message/avro/readAvro.js';
import type { RoutedMessage } from '../../../src/lib/message/RoutedMessage.js';
import { chunked, readAll, type ReadOutcome } from '../../support/avroFiles.js';
import { casePath, CASES_SKIP_REASON, HAVE_CASES } from '../../support/cases.js';

async function readCase(name: string, chunkSizes: number | readonly number[] = 4096): Promise<ReadOutcome> {
  const bytes = readFileSync(casePath(`avro/${name}`));
  return readAll(readAvro(chunked(bytes, chunkSizes), { name }));
}

function json(message: RoutedMessage | undefined): unknown {
  expect(message?.decoded.kind).toBe('json');
  return message?.decoded.value;
}

const EXPECTED = [
  ['bluefrog-eh-archive-05.avro', 1],
  ['cosh-ehcapture-54.avro', 380],
  ['cosh-ehcapture-empty.avro', 0],
  ['metered-billing-p9-16-50-12.avro', 1],
  ['metered-billing-p9-17-10-12.avro', 20],
  ['cloudbreadpapa-event_hub_sample.avro', 300],
] as const;

describe.skipIf(!HAVE_CASES)(
  `readAvro on Event Hubs Capture files written by Azure${HAVE_CASES ? '' : ` (skipped: ${CASES_SKIP_REASON})`}`,
  () => {
    it.each(EXPECTED)('%s holds %i records, read whole, undamaged, in index order', async (name, records) => {
      const { messages, ends, eventAfterEnd } = await readCase(name);
      expect(ends).toEqual([
        { format: 'avro-capture', codec: 'null', records, bytes: readFileSync(casePath(`avro/${name}`)).length, damage: null },
      ]);
      expect(eventAfterEnd).toBe(false);
      expect(messages).toHaveLength(records);
      expect(messages.map((m) => m.source)).toEqual(
        messages.map((m, index) =>
          expect.objectContaining({ kind: 'blob', blobName: name, index, format: 'avro-capture' }),
        ),
      );
    });

    it.each(EXPECTED)('%s decodes the same in 1-byte and odd-sized chunks', async (name) => {
      const whole = await readCase(name, 1 << 20);
      expect(await readCase(name, 1)).toEqual(whole);
      expect(await readCase(name, [3, 1, 250, 17])).toEqual(whole);
    });

    it('bluefrog (2016 archive schema): US-format time as UTC, x-opt-publisher, JSON body', async () => {
      const [message] = (await readCase('bluefrog-eh-archive-05.avro')).messages;
      expect(message?.enqueuedTime?.toISOString()).toBe('2016-11-16T16:44:11.000Z');
      expect(message?.systemProperties).toEqual({
        'x-opt-publisher': 'buddy1234',
        'x-opt-sequence-number': 0,
        'x-opt-offset': '0',
      });
      expect(message?.properties).toEqual({});
      expect(message?.source).toMatchObject({ sequenceNumber: 0, offset: '0' });
      expect(message?.deviceId).toBeNull();
      expect(json(message)).toEqual({ field1: 'value1', field2: 'value2' });
    });

    it('cosh 54: sequence numbers 8180..8559 in order, offsets and times of the first and last', async () => {
      const { messages } = await readCase('cosh-ehcapture-54.avro');
      expect(messages.map((m) => m.source.kind === 'blob' && m.source.sequenceNumber)).toEqual(
        Array.from({ length: 380 }, (_, i) => 8180 + i),
      );
      const first = messages[0];
      const last = messages.at(-1);
      expect(first?.source).toMatchObject({ sequenceNumber: 8180, offset: '2743296' });
      expect(first?.systemProperties).toEqual({ 'x-opt-sequence-number': 8180, 'x-opt-offset': '2743296' });
      expect(first?.enqueuedTime?.toISOString()).toBe('2017-10-16T18:18:55.000Z');
      expect(json(first)).toMatchObject({ ID: 122921, VALUE: 805.74489, DPID: 'PRCDPaaaaaaaaaaa127223' });
      expect(last?.source).toMatchObject({ sequenceNumber: 8559, offset: '2870616' });
      expect(last?.enqueuedTime?.toISOString()).toBe('2017-10-16T18:23:46.000Z');
      expect(json(last)).toMatchObject({ ID: 128340 });
      expect(messages.every((m) => m.decoded.kind === 'json')).toBe(true);
    });

    it('cosh empty: a header and one empty block is an empty file, not damage, and yields no batch', async () => {
      const { batches, ends } = await readCase('cosh-ehcapture-empty.avro');
      expect(batches).toEqual([]);
      expect(ends[0]).toMatchObject({ format: 'avro-capture', records: 0, damage: null });
    });

    it('metered-billing: long and string union map values unwrapped, partition key kept', async () => {
      const [single] = (await readCase('metered-billing-p9-16-50-12.avro')).messages;
      expect(single?.systemProperties).toEqual({
        'x-opt-partition-key': 'd8b14c3c-fcfa-4bf4-d034-be8c3f3ecab5',
        'x-opt-enqueued-time': 1670604685193,
        'x-opt-sequence-number': 1,
        'x-opt-offset': '1456',
      });
      // x-opt-enqueued-time, to the ms, in the second EnqueuedTimeUtc gives.
      expect(single?.enqueuedTime?.toISOString()).toBe('2022-12-09T16:51:25.193Z');
      expect(json(single)).toMatchObject({ type: 'UsageReported', value: { meterName: 'automation', quantity: 1 } });

      const { messages } = await readCase('metered-billing-p9-17-10-12.avro');
      expect(messages[0]?.source).toMatchObject({ sequenceNumber: 4, offset: '2392' });
      expect(messages[0]?.enqueuedTime?.toISOString()).toBe('2022-12-09T17:10:16.046Z');
      expect(messages.at(-1)?.source).toMatchObject({ sequenceNumber: 23, offset: '8320' });
      expect(messages.at(-1)?.enqueuedTime?.toISOString()).toBe('2022-12-09T17:12:26.388Z');
      expect(json(messages.at(-1))).toMatchObject({ value: { quantity: 100 } });
    });

    it('cloudbreadpapa: 300 records, sequence 10220..10519, times to the ms', async () => {
      const { messages } = await readCase('cloudbreadpapa-event_hub_sample.avro');
      expect(messages[0]?.source).toMatchObject({ sequenceNumber: 10220, offset: '2615296' });
      expect(messages[0]?.systemProperties['x-opt-enqueued-time']).toBe(1635390938453);
      expect(messages[0]?.enqueuedTime?.toISOString()).toBe('2021-10-28T03:15:38.453Z');
      expect(json(messages[0])).toMatchObject({ product_num: 5, product_price: 5273 });
      expect(messages.at(-1)?.source).toMatchObject({ sequenceNumber: 10519, offset: '2691840' });
      expect(messages.at(-1)?.enqueuedTime?.toISOString()).toBe('2021-10-28T03:20:38.053Z');
    });

    it('a real file cut anywhere inside its only block reports ArchiveTruncated with no records', async () => {
      const bytes = readFileSync(casePath('avro/cosh-ehcapture-54.avro'));
      const headerEnd = bytes.indexOf(Buffer.from('"]}]}'), 0) + 5 + 1 + 16;
      for (const cut of [headerEnd + 1, headerEnd + 5, Math.floor(bytes.length / 2), bytes.length - 16, bytes.length - 1]) {
        const { messages, ends } = await readAll(readAvro(chunked(bytes.subarray(0, cut), 1000), { name: 'cut' }));
        expect(messages).toEqual([]);
        expect(ends).toEqual([
          {
            format: 'avro-capture',
            codec: 'null',
            records: 0,
            bytes: cut,
            damage: { code: 'ArchiveTruncated', byteOffset: headerEnd, detail: expect.any(String) },
          },
        ]);
      }
    });
  },
);
