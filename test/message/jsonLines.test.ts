import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ArchiveEvent, ArchiveSummary } from '../../src/lib/message/archive.js';
import { MAX_JSON_DEPTH } from '../../src/lib/message/body.js';
import { readJsonLines } from '../../src/lib/message/jsonLines.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { CASES_SKIP_REASON, HAVE_CASES, casePath } from '../support/cases.js';

async function* chunks(data: Uint8Array, sizes: readonly number[] = [data.length]): AsyncGenerator<Uint8Array> {
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const size = Math.max(1, sizes[i++ % sizes.length]!);
    yield data.subarray(pos, pos + size);
    pos += size;
  }
}

interface Read {
  events: ArchiveEvent[];
  messages: RoutedMessage[];
  summary: ArchiveSummary;
}

async function read(data: Uint8Array | string, sizes?: readonly number[], name = 'hub/00/2024/03/01/10/15.json'): Promise<Read> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const events: ArchiveEvent[] = [];
  for await (const event of readJsonLines(chunks(bytes, sizes), { name })) events.push(event);
  const ends = events.filter((e) => e.type === 'end');
  expect(ends).toHaveLength(1);
  expect(events.at(-1)?.type).toBe('end');
  return {
    events,
    messages: events.flatMap((e) => (e.type === 'records' ? e.messages : [])),
    summary: (ends[0] as Extract<ArchiveEvent, { type: 'end' }>).summary,
  };
}

/** Everything a message holds, as one string: cheaper to compare than deep equality over 22 KB byte arrays. */
function fingerprint(messages: readonly RoutedMessage[]): string {
  return JSON.stringify(messages.map((m) => ({ ...m, body: Buffer.from(m.body).toString('base64') })));
}

/** A line as IoT Hub's JSON encoding writes it. */
function record(options: {
  deviceId?: string;
  enqueued?: string;
  properties?: Record<string, string>;
  contentType?: string;
  contentEncoding?: string;
  body: unknown;
}): string {
  const enqueued = options.enqueued ?? '2024-03-01T10:15:30.1180000Z';
  const systemProperties: Record<string, string> = {
    connectionDeviceId: options.deviceId ?? 'thermostat-17',
    connectionAuthMethod: '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
    connectionDeviceGenerationId: '638447109012345678',
    ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
    ...(options.contentEncoding !== undefined ? { contentEncoding: options.contentEncoding } : {}),
    enqueuedTime: enqueued,
  };
  return JSON.stringify({ EnqueuedTimeUtc: enqueued, Properties: options.properties ?? {}, SystemProperties: systemProperties, Body: options.body });
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe.skipIf(!HAVE_CASES)(`readJsonLines: real IoT Hub JSON-encoded blobs${HAVE_CASES ? '' : ` (skipped: ${CASES_SKIP_REASON})`}`, () => {
  const load = (file: string): Promise<Buffer> => readFile(casePath(`json/${file}`));

  it('chgeuer: three pings from the Azure CLI, bodies stored as base64', async () => {
    const { messages, summary } = await read(await load('chgeuer-chgpiothub-00-2021-05-07-08-12.json'), undefined, 'chgpiothub/00/2021/05/07/08/12.json');
    expect(summary).toMatchObject({ format: 'json-lines', records: 3, damage: null });
    expect(messages.map((m) => m.enqueuedTime?.toISOString())).toEqual([
      '2021-05-07T08:12:19.695Z',
      '2021-05-07T08:12:19.804Z',
      '2021-05-07T08:12:19.835Z',
    ]);
    for (const [index, message] of messages.entries()) {
      expect(message).toMatchObject({
        deviceId: 'simulatedDevice',
        properties: {},
        decoded: {
          kind: 'text',
          value: 'Ping from Az CLI IoT Extension',
          decodedFrom: { base64: 'storage', charset: 'utf-8', declared: false },
        },
        source: { kind: 'blob', blobName: 'chgpiothub/00/2021/05/07/08/12.json', index, format: 'json-lines', sequenceNumber: null, offset: null },
      });
      expect(Buffer.from(message.body).toString()).toBe('Ping from Az CLI IoT Extension');
      expect(message.systemProperties['connectionDeviceGenerationId']).toBe('637559719329772931');
    }
  });

  it('leo-charles 09_56_01: four x509 records with 22 KB base64 JSON bodies and no trailing newline', async () => {
    const bytes = await load('leo-charles-brut-09_56_01.json');
    expect(bytes.at(-1)).not.toBe(0x0a);
    const { messages, summary } = await read(bytes, [4096]);
    expect(summary).toMatchObject({ format: 'json-lines', records: 4, bytes: bytes.length, damage: null });
    for (const message of messages) {
      expect(message.deviceId).toBe('2239-0657-24');
      expect(message.systemProperties['connectionAuthMethod']).toContain('x509Certificate');
      expect(message.body.byteLength).toBe(22713);
      expect(message.decoded).toMatchObject({
        kind: 'json',
        value: { box: "Armoire banc d'essai Omron", process_serial_number: 'PMXA-C999999' },
        decodedFrom: { base64: 'storage', charset: 'utf-8' },
      });
    }
    expect(messages[0]?.enqueuedTime?.toISOString()).toBe('2026-06-22T09:55:56.858Z');
    expect(messages[3]?.enqueuedTime?.toISOString()).toBe('2026-06-22T09:56:10.450Z');
  });

  it('leo-charles 10_04_01: a single record', async () => {
    const { messages, summary } = await read(await load('leo-charles-brut-10_04_01.json'), [1000]);
    expect(summary).toMatchObject({ records: 1, damage: null });
    expect(messages[0]?.enqueuedTime?.toISOString()).toBe('2026-06-22T10:03:44.021Z');
    expect(messages[0]?.decoded.kind).toBe('json');
  });

  it('reads every real file the same way whatever the chunking', async () => {
    for (const file of ['chgeuer-chgpiothub-00-2021-05-07-08-12.json', 'leo-charles-brut-09_56_01.json', 'leo-charles-brut-10_04_01.json']) {
      const bytes = await load(file);
      const whole = await read(bytes);
      const split = await read(bytes, [1, 7, 333, 2]);
      expect(split.summary).toEqual(whole.summary);
      expect(fingerprint(split.messages)).toBe(fingerprint(whole.messages));
    }
  });
});

describe('readJsonLines: generated files', () => {
  const enrichments = { level: 'storage', iotHubName: 'ContosoHub', deviceLocation: 'Building 43' };

  it('keeps a declared JSON Body value as the decoded view, and its compact bytes as the body', async () => {
    const body = { temperature: 21.5, humidity: 60, tags: ['a', 'b'] };
    const { messages } = await read(
      `${record({ contentType: 'application/json', contentEncoding: 'UTF-8', properties: enrichments, body })}\n`,
    );
    expect(messages[0]).toMatchObject({
      deviceId: 'thermostat-17',
      contentType: 'application/json',
      contentEncoding: 'UTF-8',
      properties: enrichments,
      decoded: { kind: 'json', value: body, decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: true } },
    });
    expect(Buffer.from(messages[0]!.body).toString()).toBe(JSON.stringify(body));
    expect(messages[0]?.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.118Z');
  });

  it('matches the declaration without case and ignores content-type parameters', async () => {
    const { messages } = await read(
      `${record({ contentType: 'Application/JSON; charset=utf-8', contentEncoding: 'utf-8', body: 'a JSON string' })}\n`,
    );
    expect(messages[0]?.decoded).toMatchObject({ kind: 'json', value: 'a JSON string', decodedFrom: { declared: true } });
    expect(Buffer.from(messages[0]!.body).toString()).toBe('"a JSON string"');
  });

  it('decodes base64 Bodies with any other declaration through the body decoder', async () => {
    const utf16 = Buffer.from('{"t":1}', 'utf16le').toString('base64');
    const { messages } = await read(
      [
        record({ body: b64('{"t":1}') }),
        record({ contentType: 'application/json', contentEncoding: 'utf-16le', body: utf16 }),
        record({ contentType: 'application/json', body: b64('{"t":') }),
        record({ body: '' }),
      ].join('\n'),
    );
    expect(messages.map((m) => m.decoded)).toMatchObject([
      { kind: 'json', value: { t: 1 }, decodedFrom: { base64: 'storage', declared: false } },
      { kind: 'json', value: { t: 1 }, decodedFrom: { base64: 'storage', charset: 'utf-16le', declared: true } },
      { kind: 'text', decodedFrom: { base64: 'storage', problem: { code: 'BodyNotJson' } } },
      { kind: 'text', value: '', decodedFrom: { base64: 'storage' } },
    ]);
  });

  it('keeps a Body string that is not base64 as its text', async () => {
    const { messages } = await read(record({ body: 'door open!' }));
    expect(messages[0]?.decoded).toMatchObject({ kind: 'text', value: 'door open!', decodedFrom: { base64: null } });
  });

  it('accepts \\r\\n, blank lines, a BOM and a last line without a newline; index is the line number', async () => {
    const text = `\uFEFF${record({ deviceId: 'a', body: b64('1') })}\r\n\r\n  \n${record({ deviceId: 'b', body: b64('2') })}\r\n${record({ deviceId: 'c', body: b64('3') })}`;
    const { messages, summary } = await read(text);
    expect(summary).toMatchObject({ format: 'json-lines', records: 3, damage: null, bytes: Buffer.byteLength(text) });
    expect(messages.map((m) => [m.deviceId, m.source.kind === 'blob' ? m.source.index : -1])).toEqual([
      ['a', 0],
      ['b', 3],
      ['c', 4],
    ]);
  });

  it('splits lines the same way for every chunking', async () => {
    const lines = Array.from({ length: 12 }, (_, i) =>
      record({ deviceId: `d${i}`, properties: { n: String(i), place: 'Zürich ☃' }, body: b64(`{"i":${i}}`) }),
    );
    const file = Buffer.from(`${lines.join('\r\n')}\n`);
    const whole = await read(file);
    expect(whole.messages).toHaveLength(12);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 20 }), async (sizes) => {
        const split = await read(file, sizes);
        expect(split.summary).toEqual(whole.summary);
        expect(fingerprint(split.messages)).toBe(fingerprint(whole.messages));
      }),
      { numRuns: 60 },
    );
  });

  it('yields batches of at most 500 records', async () => {
    const file = `${Array.from({ length: 1203 }, (_, i) => record({ deviceId: `d${i}`, body: b64('x') })).join('\n')}\n`;
    const { events, summary, messages } = await read(file);
    const sizes = events.flatMap((e) => (e.type === 'records' ? [e.messages.length] : []));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
    expect(summary.records).toBe(1203);
    expect(messages.map((m) => m.deviceId)).toEqual(Array.from({ length: 1203 }, (_, i) => `d${i}`));
  });

  it('reports an empty file as empty, and whitespace as JSON lines with no records', async () => {
    expect((await read('')).summary).toEqual({ format: 'empty', records: 0, bytes: 0, damage: null });
    expect((await read('\n\n')).summary).toEqual({ format: 'json-lines', records: 0, bytes: 2, damage: null });
  });
});

describe('readJsonLines: damage', () => {
  const good = (id: string): string => record({ deviceId: id, body: b64('ok') });

  it('skips bad lines, keeps every good record, and names the first bad line and the count', async () => {
    const lines = [good('a'), '{"EnqueuedTimeUtc":"x",', good('b'), '[1,2]', '{"Body":"AA=="}', good('c')];
    const text = `${lines.join('\n')}\n`;
    const { messages, summary } = await read(text);
    expect(messages.map((m) => m.deviceId)).toEqual(['a', 'b', 'c']);
    expect(summary.records).toBe(3);
    expect(summary.damage).toEqual({
      code: 'ArchiveCorrupt',
      byteOffset: Buffer.byteLength(`${lines[0]}\n`),
      detail: expect.stringMatching(/^3 lines are not IoT Hub JSON records and were skipped; the first is line 2 at byte \d+: not JSON: /) as unknown as string,
    });
  });

  it.each([
    ['"just a string"', 'not a JSON object'],
    ['{"Body":"AA=="}', 'SystemProperties is missing or not an object'],
    ['{"SystemProperties":{"connectionDeviceId":"a"}}', 'Body is missing'],
    ['{"SystemProperties":{},"Body":"","Properties":"level=x"}', 'Properties is not an object'],
  ])('says why %s is not a record', async (line, reason) => {
    const { summary } = await read(`${line}\n${good('a')}\n`);
    expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: 0 });
    expect(summary.damage?.detail).toBe(`1 line is not an IoT Hub JSON record and was skipped; the first is line 1 at byte 0: ${reason}`);
  });

  it('skips a record whose JSON Body is nested deeper than any serialisation of it can go', async () => {
    const deep = `{"SystemProperties":{},"Body":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const { messages, summary } = await read(`${deep}\n${good('a')}\n`);
    expect(messages.map((m) => m.deviceId)).toEqual(['a']);
    expect(summary.damage?.detail).toContain(`line 1 at byte 0: Body: it is nested more than ${MAX_JSON_DEPTH} levels deep`);
  });

  it('reports a last line cut mid-record as ArchiveTruncated after yielding the complete ones', async () => {
    const full = `${good('a')}\n${good('b')}\n`;
    const cut = good('c').slice(0, 40);
    const { messages, summary } = await read(`${full}${cut}`, [50]);
    expect(messages.map((m) => m.deviceId)).toEqual(['a', 'b']);
    expect(summary.damage).toMatchObject({ code: 'ArchiveTruncated', byteOffset: Buffer.byteLength(full) });
    expect(summary.damage?.detail).toMatch(/the last line \(line 3, 40 bytes, no newline\) ends inside a record/);
  });

  it('calls a cut line that still has its newline corrupt, not truncated', async () => {
    const { summary } = await read(`${good('a').slice(0, 30)}\n${good('b')}\n`);
    expect(summary.damage?.code).toBe('ArchiveCorrupt');
  });

  it('reports the earlier damage when there is both, and mentions the other', async () => {
    const text = `${good('a')}\nnot json\n${good('b')}\n${good('c').slice(0, 20)}`;
    const { messages, summary } = await read(text);
    expect(messages).toHaveLength(2);
    expect(summary.damage?.code).toBe('ArchiveCorrupt');
    expect(summary.damage?.byteOffset).toBe(Buffer.byteLength(`${good('a')}\n`));
    expect(summary.damage?.detail).toMatch(/; also ArchiveTruncated at byte \d+: the last line/);
  });

  it('skips a line too long to be an IoT Hub record without buffering it', async () => {
    const huge = Buffer.alloc(4 * 1024 * 1024 + 10, 0x61);
    const file = Buffer.concat([Buffer.from(`${good('a')}\n`), huge, Buffer.from(`\n${good('b')}\n`), huge]);
    // Once with the newline in a later chunk than the limit, once with the whole line in one chunk.
    for (const sizes of [[64 * 1024], [file.length]]) {
      const { messages, summary } = await read(file, sizes);
      expect(messages.map((m) => m.deviceId)).toEqual(['a', 'b']);
      expect(messages[1]?.source).toMatchObject({ index: 2 });
      expect(summary.damage).toMatchObject({ code: 'ArchiveCorrupt', byteOffset: Buffer.byteLength(`${good('a')}\n`) });
      expect(summary.damage?.detail).toMatch(/^2 lines are not IoT Hub JSON records.*longer than 4194304 bytes/);
    }
  });
});
