import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';
import { describe, expect, it, vi } from 'vitest';
import { bodyBytesOf, decodeBody, MAX_JSON_DEPTH, plainBody } from '../../src/lib/message/body.js';
import type { TopLevelNumbers } from '../../src/lib/message/jsonScan.js';
import type { Charset, DecodedBody, RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { toMessageRecord } from '../../src/lib/message/serialize.js';
import { topLevelNumbersOracle, type Numbers } from '../support/jsonNumbers.js';

const BOMS: Record<Charset, number[]> = {
  'utf-8': [0xef, 0xbb, 0xbf],
  'utf-16le': [0xff, 0xfe],
  'utf-16be': [0xfe, 0xff],
  'utf-32le': [0xff, 0xfe, 0, 0],
  'utf-32be': [0, 0, 0xfe, 0xff],
};

/** Writes text the way a device in each charset would, with or without the byte-order mark. */
function encode(text: string, charset: Charset, bom = false): Uint8Array {
  let body: Buffer;
  switch (charset) {
    case 'utf-8':
      body = Buffer.from(text, 'utf8');
      break;
    case 'utf-16le':
      body = Buffer.from(text, 'utf16le');
      break;
    case 'utf-16be':
      body = Buffer.from(text, 'utf16le').swap16();
      break;
    case 'utf-32le':
    case 'utf-32be': {
      const points = [...text].map((c) => c.codePointAt(0)!);
      body = Buffer.alloc(points.length * 4);
      points.forEach((cp, i) => (charset === 'utf-32le' ? body.writeUInt32LE(cp, i * 4) : body.writeUInt32BE(cp, i * 4)));
      break;
    }
  }
  return bom ? Buffer.concat([Buffer.from(BOMS[charset]), body]) : body;
}

const json = (value: unknown): string => JSON.stringify(value);
const reading = { temperature: 21.5, humidity: 60, level: 'critical', site: 'Zürich' };
const DECLARED_JSON = { contentType: 'application/json', contentEncoding: 'UTF-8' };

function expectJson(decoded: DecodedBody, value: unknown): void {
  expect(decoded.kind).toBe('json');
  expect(decoded.value).toEqual(value);
  expect(decoded.decodedFrom.problem).toBeUndefined();
}

describe('decodeBody: declared bodies', () => {
  it('decodes declared UTF-8 JSON (the IoT Hub routing declaration)', () => {
    const decoded = decodeBody(encode(json(reading), 'utf-8'), DECLARED_JSON);
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toEqual({ base64: null, charset: 'utf-8', bom: false, declared: true });
  });

  it.each([
    ['application/json; charset=utf-8', 'utf-8'],
    ['Application/JSON', 'utf8'],
    ['application/vnd.contoso.telemetry+json', 'Utf-8'],
    ['APPLICATION/JSON ; Charset="UTF-8"', undefined],
  ])('accepts content type %j with encoding %j', (contentType, contentEncoding) => {
    const decoded = decodeBody(encode(json(reading), 'utf-8'), { contentType, contentEncoding });
    expectJson(decoded, reading);
    expect(decoded.decodedFrom.declared).toBe(true);
  });

  it('removes a UTF-8 byte-order mark and says so', () => {
    const decoded = decodeBody(encode(json(reading), 'utf-8', true), DECLARED_JSON);
    expectJson(decoded, reading);
    expect(decoded.decodedFrom.bom).toBe(true);
  });

  describe.each([
    ['utf-16le', 'UTF-16LE'],
    ['utf-16be', 'utf-16be'],
    ['utf-32le', 'UTF-32LE'],
    ['utf-32be', 'utf-32BE'],
  ] as const)('%s declared as %j', (charset, contentEncoding) => {
    it.each([false, true])('with byte-order mark: %s', (bom) => {
      const decoded = decodeBody(encode(json(reading), charset, bom), { contentType: 'application/json', contentEncoding });
      expectJson(decoded, reading);
      expect(decoded.decodedFrom).toEqual({ base64: null, charset, bom, declared: true });
    });
  });

  it.each([
    ['utf-16', 'utf-16be', true],
    ['UTF-16', 'utf-16le', true],
    ['utf-16', 'utf-16be', false],
    ['utf-16', 'utf-16le', false],
    ['utf-32', 'utf-32be', true],
    ['UTF-32', 'utf-32le', false],
    ['utf-32', 'utf-32be', false],
  ] as const)('%s without endianness reads %s bodies (BOM %s)', (contentEncoding, charset, bom) => {
    const decoded = decodeBody(encode(json(reading), charset, bom), { contentType: 'application/json', contentEncoding });
    expectJson(decoded, reading);
    expect(decoded.decodedFrom.charset).toBe(charset);
    expect(decoded.decodedFrom.bom).toBe(bom);
  });

  it('reads the byte order of declared utf-16 from the side most zero bytes are on', () => {
    // 一 (U+4E00) puts a zero on the other side, so the strict undeclared pattern would not decide.
    const text = 'Température 21 °C, niveau 一';
    expect(decodeBody(encode(text, 'utf-16be')).decodedFrom.charset).not.toBe('utf-16be');
    const decoded = decodeBody(encode(text, 'utf-16be'), { contentType: 'text/plain', contentEncoding: 'utf-16' });
    expect(decoded).toMatchObject({ kind: 'text', value: text, decodedFrom: { charset: 'utf-16be' } });
  });

  it('falls back to little-endian for utf-16 text whose zero bytes say nothing', () => {
    // CJK text has no zero bytes in either order, so neither mark nor pattern decides.
    const decoded = decodeBody(encode('温度过高', 'utf-16le'), { contentType: 'text/plain', contentEncoding: 'utf-16' });
    expect(decoded).toMatchObject({ kind: 'text', value: '温度过高', decodedFrom: { charset: 'utf-16le' } });
  });

  it('takes the charset from the content type when contentEncoding is absent', () => {
    const decoded = decodeBody(encode('door open', 'utf-16le'), { contentType: 'text/plain; charset=UTF-16LE' });
    expect(decoded).toMatchObject({ kind: 'text', value: 'door open', decodedFrom: { charset: 'utf-16le', declared: true } });
  });

  it('sniffs the charset of a JSON content type declared without one', () => {
    const decoded = decodeBody(encode(json(reading), 'utf-32le'), { contentType: 'application/json' });
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toMatchObject({ charset: 'utf-32le', declared: true });
  });

  it('keeps declared text/* as text even when it looks like JSON', () => {
    const decoded = decodeBody(encode('{"a":1}', 'utf-8'), { contentType: 'text/plain', contentEncoding: 'utf-8' });
    expect(decoded).toMatchObject({ kind: 'text', value: '{"a":1}', decodedFrom: { declared: true } });
  });

  it('recognises JSON when only a charset is declared', () => {
    expectJson(decodeBody(encode('[1,2,3]', 'utf-8'), { contentEncoding: 'utf-8' }), [1, 2, 3]);
    expect(decodeBody(encode('door open', 'utf-8'), { contentEncoding: 'utf-8' })).toMatchObject({
      kind: 'text',
      value: 'door open',
      decodedFrom: { declared: true },
    });
  });

  it('reports declared JSON that does not parse as BodyNotJson with the position', () => {
    const decoded = decodeBody(encode('{"temperature":21.5,}', 'utf-8'), DECLARED_JSON);
    expect(decoded.kind).toBe('text');
    expect(decoded.value).toBe('{"temperature":21.5,}');
    expect(decoded.decodedFrom.problem?.code).toBe('BodyNotJson');
    expect(decoded.decodedFrom.problem?.detail).toMatch(/position 20/);
  });

  it('gives the end position for declared JSON that stops early', () => {
    const decoded = decodeBody(encode('{"temperature":', 'utf-8'), DECLARED_JSON);
    expect(decoded.decodedFrom.problem).toEqual({
      code: 'BodyNotJson',
      detail: expect.stringMatching(/Unexpected end of JSON input at position 15/) as unknown as string,
    });
  });

  it('reports the C-string trailing NUL some devices send as BodyNotJson, not as binary', () => {
    const decoded = decodeBody(Buffer.from('{"a":1}\0'), DECLARED_JSON);
    expect(decoded.kind).toBe('text');
    expect(decoded.decodedFrom.problem?.code).toBe('BodyNotJson');
  });

  it.each(['us-ascii', 'ASCII', 'System.Text.UTF8Encoding'])('reads contentEncoding %j as the UTF-8 it is', (contentEncoding) => {
    const decoded = decodeBody(encode(json(reading), 'utf-8'), { contentType: 'application/json', contentEncoding });
    expect(decoded).toMatchObject({ kind: 'json', value: reading, decodedFrom: { charset: 'utf-8', declared: true } });
    expect(decoded.decodedFrom.problem).toBeUndefined();
  });

  it.each([
    ['gzip', /contentEncoding "gzip" is not a character set/],
    ['latin9', /contentEncoding "latin9" is not a character set/],
    ['iso-8859-1', /"iso-8859-1"/],
    ['constructor', /"constructor"/],
    ['__proto__', /"__proto__"/],
  ])('refuses contentEncoding %j as BodyEncodingUnsupported', (contentEncoding, detail) => {
    const bytes = encode(json(reading), 'utf-8');
    const decoded = decodeBody(bytes, { contentType: 'application/json', contentEncoding });
    expect(decoded.kind).toBe('binary');
    expect(decoded.value).toBe(Buffer.from(bytes).toString('base64'));
    expect(decoded.decodedFrom).toMatchObject({ charset: null, declared: false, problem: { code: 'BodyEncodingUnsupported' } });
    expect(decoded.decodedFrom.problem?.detail).toMatch(detail);
  });

  it.each([
    [[0x7b, 0x22, 0x61, 0xff, 0x22, 0x7d], /byte 0xff at offset 3 is not valid UTF-8/],
    [[0x7b, 0xc3, 0x28, 0x7d], /byte 0x28 at offset 2 is not a valid UTF-8 continuation of the sequence at offset 1/],
    [[0x7b, 0xe2, 0x82], /ends inside the 3-byte UTF-8 sequence at offset 1/],
    [[0x7b, 0xe0, 0x80, 0x80, 0x7d], /offset 1 encodes an overlong form/],
    [[0x7b, 0xed, 0xa0, 0x80, 0x7d], /offset 1 encodes invalid code point U\+D800/],
  ])('names the first bad byte of invalid declared UTF-8 %j', (bytes, detail) => {
    const decoded = decodeBody(Uint8Array.from(bytes), DECLARED_JSON);
    expect(decoded.kind).toBe('binary');
    expect(decoded.decodedFrom.problem?.code).toBe('BodyEncodingUnsupported');
    expect(decoded.decodedFrom.problem?.detail).toMatch(detail);
  });

  it('says which byte-order mark contradicts the declared charset', () => {
    const decoded = decodeBody(encode(json(reading), 'utf-16le', true), DECLARED_JSON);
    expect(decoded.decodedFrom.problem).toEqual({
      code: 'BodyEncodingUnsupported',
      detail: 'contentEncoding "UTF-8": the bytes start with a UTF-16LE byte-order mark',
    });
  });

  it('rejects malformed UTF-16 and UTF-32 precisely', () => {
    expect(decodeBody(Uint8Array.from([0x7b, 0, 0x7d]), { contentEncoding: 'utf-16le' }).decodedFrom.problem?.detail).toMatch(
      /odd length \(3 bytes\)/,
    );
    expect(
      decodeBody(Uint8Array.from([0x41, 0, 0x00, 0xd8, 0x42, 0]), { contentEncoding: 'utf-16le' }).decodedFrom.problem?.detail,
    ).toMatch(/unpaired UTF-16 high surrogate at offset 2/);
    expect(
      decodeBody(Uint8Array.from([0x41, 0, 0, 0, 0, 0, 0x11, 0]), { contentEncoding: 'utf-32le' }).decodedFrom.problem?.detail,
    ).toMatch(/0x110000 at offset 4 is not a Unicode scalar value/);
    expect(decodeBody(Uint8Array.from([0x41, 0, 0]), { contentEncoding: 'utf-32le' }).decodedFrom.problem?.detail).toMatch(
      /not a multiple of 4/,
    );
  });
});

describe('decodeBody: undeclared bodies', () => {
  it('decodes the tutorial device: BOM-less UTF-32LE JSON with no declaration', () => {
    const payload = { deviceId: 'Contoso-Test-Device', temperature: 30.1, humidity: 77.2, pointInfo: 'This is a critical message.' };
    const decoded = decodeBody(encode(json(payload), 'utf-32le'));
    expectJson(decoded, payload);
    expect(decoded.decodedFrom).toEqual({ base64: null, charset: 'utf-32le', bom: false, declared: false });
  });

  it.each(['utf-32be', 'utf-16le', 'utf-16be', 'utf-8'] as const)('detects BOM-less %s JSON', (charset) => {
    const decoded = decodeBody(encode(json(reading), charset));
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toEqual({ base64: null, charset, bom: false, declared: false });
  });

  it.each(['utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be'] as const)('recognises the %s byte-order mark', (charset) => {
    const decoded = decodeBody(encode(json(reading), charset, true));
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toEqual({ base64: null, charset, bom: true, declared: false });
  });

  it('reads FF FE 00 00 as the UTF-32LE mark, not UTF-16LE followed by NUL', () => {
    const decoded = decodeBody(encode('ok', 'utf-32le', true));
    expect(decoded).toMatchObject({ kind: 'text', value: 'ok', decodedFrom: { charset: 'utf-32le', bom: true } });
  });

  it('decodes plain text and keeps it as text', () => {
    expect(decodeBody(encode('Ping from Az CLI IoT Extension', 'utf-8'))).toEqual({
      kind: 'text',
      value: 'Ping from Az CLI IoT Extension',
      decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: false },
    });
  });

  it('parses bare JSON scalars but not sentences that start like one', () => {
    expectJson(decodeBody(encode('42', 'utf-8')), 42);
    expectJson(decodeBody(encode(' null ', 'utf-8')), null);
    expect(decodeBody(encode('23 degrees', 'utf-8'))).toMatchObject({ kind: 'text', value: '23 degrees' });
    expect(decodeBody(encode('23 degrees', 'utf-8')).decodedFrom.problem).toBeUndefined();
    expect(decodeBody(encode('true story', 'utf-8'))).toMatchObject({ kind: 'text', value: 'true story' });
  });

  it('flags undeclared text that opens like JSON but does not parse', () => {
    const decoded = decodeBody(encode('{"temperature": 21.5', 'utf-8'));
    expect(decoded.kind).toBe('text');
    expect(decoded.decodedFrom.problem?.code).toBe('BodyNotJson');
  });

  it('calls non-text bytes binary, with the bytes as base64 and no problem', () => {
    const bytes = Uint8Array.from([0x08, 0x96, 0x01, 0x12, 0x04, 0x74, 0x65, 0x6d, 0x70]);
    expect(decodeBody(bytes)).toEqual({
      kind: 'binary',
      value: Buffer.from(bytes).toString('base64'),
      decodedFrom: { base64: null, charset: null, bom: false, declared: false },
    });
  });

  it('calls valid UTF-8 full of control characters binary', () => {
    expect(decodeBody(Uint8Array.from([0x01, 0x02, 0x03, 0x41, 0x00])).kind).toBe('binary');
    expect(decodeBody(new Uint8Array(16)).kind).toBe('binary');
  });

  it('decodes an empty body as empty text', () => {
    expect(decodeBody(new Uint8Array(0))).toEqual({
      kind: 'text',
      value: '',
      decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: false },
    });
  });

  it('reads a view into a larger buffer without looking outside it', () => {
    const backing = Buffer.from(`xxxx${json(reading)}yyyy`);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 4, backing.length - 8);
    expectJson(decodeBody(view, DECLARED_JSON), reading);
    expectJson(decodeBody(view), reading);
  });
});

describe('decodeBody: base64', () => {
  const b64 = (text: string): Uint8Array => Buffer.from(Buffer.from(text, 'utf8').toString('base64'));

  it('unwraps base64-wrapped JSON', () => {
    const decoded = decodeBody(b64(json(reading)));
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toEqual({ base64: 'detected', charset: 'utf-8', bom: false, declared: false });
  });

  it('unwraps base64 around UTF-32LE JSON and reports the inner charset', () => {
    const decoded = decodeBody(Buffer.from(Buffer.from(encode(json(reading), 'utf-32le')).toString('base64')));
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toMatchObject({ base64: 'detected', charset: 'utf-32le' });
  });

  it('unwraps base64 text that decodes to readable text (the Azure CLI ping)', () => {
    expect(decodeBody(Buffer.from('UGluZyBmcm9tIEF6IENMSSBJb1QgRXh0ZW5zaW9u\n'))).toEqual({
      kind: 'text',
      value: 'Ping from Az CLI IoT Extension',
      decodedFrom: { base64: 'detected', charset: 'utf-8', bom: false, declared: false },
    });
  });

  it.each(['deadbeef', 'PASSWORD', 'abcdefgh', 'Temperature', '0123abcd', 'Overheat', 'ABCDabcd', 'DOOR+OPEN/12'])(
    'leaves the plain word %j alone',
    (word) => {
      expect(decodeBody(Buffer.from(word))).toEqual({
        kind: 'text',
        value: word,
        decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: false },
      });
    },
  );

  it('unwraps even a short word once it passes the rule: base64 text is indistinguishable from it', () => {
    expect(decodeBody(Buffer.from('c2VjcmV0'))).toMatchObject({ kind: 'text', value: 'secret', decodedFrom: { base64: 'detected' } });
  });

  it('leaves base64 of binary data as text', () => {
    const wrapped = Buffer.from(Buffer.from([0x00, 0xff, 0x10, 0x80, 0x01, 0x02]).toString('base64'));
    expect(decodeBody(wrapped)).toMatchObject({ kind: 'text', decodedFrom: { base64: null } });
  });

  it('records the storage layer the caller removed', () => {
    const decoded = decodeBody(encode(json(reading), 'utf-8'), { storedAsBase64: true });
    expectJson(decoded, reading);
    expect(decoded.decodedFrom).toEqual({ base64: 'storage', charset: 'utf-8', bom: false, declared: false });
    const declared = decodeBody(encode(json(reading), 'utf-16le'), {
      contentType: 'application/json',
      contentEncoding: 'utf-16le',
      storedAsBase64: true,
    });
    expectJson(declared, reading);
    expect(declared.decodedFrom).toEqual({ base64: 'storage', charset: 'utf-16le', bom: false, declared: true });
    expect(decodeBody(Uint8Array.from([0xff, 0x00, 0x81]), { storedAsBase64: true }).decodedFrom.base64).toBe('storage');
  });

  it("prefers 'detected' when the stored bytes are themselves the device's base64", () => {
    const decoded = decodeBody(b64(json(reading)), { storedAsBase64: true });
    expectJson(decoded, reading);
    expect(decoded.decodedFrom.base64).toBe('detected');
  });

  it('does not unwrap declared bodies', () => {
    const decoded = decodeBody(b64('door open'), { contentType: 'text/plain', contentEncoding: 'utf-8' });
    expect(decoded).toMatchObject({ kind: 'text', decodedFrom: { base64: null, declared: true } });
  });
});

describe('decodeBody: properties', () => {
  const declarations = fc.record(
    {
      contentType: fc.oneof(
        fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'application/x+json; charset=utf-16', ''),
        fc.string(),
      ),
      contentEncoding: fc.oneof(fc.constantFrom('utf-8', 'UTF-16', 'utf-16be', 'utf-32', 'UTF-32LE', 'gzip', 'toString', ''), fc.string()),
      storedAsBase64: fc.boolean(),
    },
    { requiredKeys: [] },
  );

  it('never throws on any bytes and any declaration, and keeps binary bodies byte for byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), declarations, (bytes, declaration) => {
        const decoded = decodeBody(bytes, declaration);
        expect(['json', 'text', 'binary']).toContain(decoded.kind);
        if (decoded.kind === 'binary') {
          expect(Buffer.from(decoded.value, 'base64').equals(Buffer.from(bytes))).toBe(true);
          expect(decoded.decodedFrom.charset).toBeNull();
        } else {
          expect(decoded.decodedFrom.charset).not.toBeNull();
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes text it did not unwrap back to exactly the bytes it was given', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
        const decoded = decodeBody(bytes);
        if (decoded.kind !== 'text' || decoded.decodedFrom.base64 !== null) return;
        const charset = decoded.decodedFrom.charset!;
        expect(Buffer.from(encode(decoded.value, charset, decoded.decodedFrom.bom)).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips any JSON value declared in any supported charset', () => {
    const charsets = fc.constantFrom<Charset>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be');
    fc.assert(
      fc.property(fc.jsonValue(), charsets, fc.boolean(), (value, charset, bom) => {
        const text = JSON.stringify(value);
        const decoded = decodeBody(encode(text, charset, bom), { contentType: 'application/json', contentEncoding: charset });
        expect(decoded.kind).toBe('json');
        expect(decoded.value).toEqual(JSON.parse(text));
      }),
    );
  });

  it('finds undeclared JSON objects in every charset without a byte-order mark', () => {
    const charsets = fc.constantFrom<Charset>('utf-8', 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be');
    const objects = fc.dictionary(fc.string({ minLength: 1 }), fc.oneof(fc.string(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean()));
    fc.assert(
      fc.property(objects, charsets, (value, charset) => {
        const text = JSON.stringify(value);
        const decoded = decodeBody(encode(text, charset));
        expect(decoded.kind).toBe('json');
        expect(decoded.value).toEqual(JSON.parse(text));
        expect(decoded.decodedFrom.charset).toBe(charset);
      }),
    );
  });
});

describe('decodeBody: declared UTF-8 JSON, the case every routed message takes', () => {
  const UTF8_BOM = [0xef, 0xbb, 0xbf];
  const bodies = fc.oneof(
    fc.json().map((text) => Buffer.from(text)),
    fc.json().map((text) => Buffer.from([...UTF8_BOM, ...Buffer.from(text)])),
    // Every code point, lone surrogates (written as EF BF BD, a real U+FFFD) and U+FFFD itself.
    fc.string({ unit: 'binary' }).map((text) => Buffer.from(JSON.stringify(`\ufffd${text}`))),
    fc.tuple(fc.json(), fc.uint8Array({ minLength: 1, maxLength: 3 })).map(([text, tail]) => Buffer.concat([Buffer.from(text), tail])),
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 3 }), fc.json()).map(([head, text]) => Buffer.concat([head, Buffer.from(text)])),
    fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)),
  );

  it('gives what the declaration says for any bytes: BOM removed, invalid UTF-8 binary, JSON.parse decides', () => {
    fc.assert(
      fc.property(bodies, fc.constantFrom('utf-8', 'UTF-8', 'utf8'), fc.boolean(), (bytes, contentEncoding, storedAsBase64) => {
        const decoded = decodeBody(bytes, { contentType: 'application/json', contentEncoding, storedAsBase64 });
        const bom = UTF8_BOM.every((b, i) => bytes[i] === b);
        const body = bom ? bytes.subarray(3) : bytes;
        const base64 = storedAsBase64 ? 'storage' : null;
        if (!isUtf8(body)) {
          expect(decoded).toMatchObject({ kind: 'binary', decodedFrom: { base64, charset: null, problem: { code: 'BodyEncodingUnsupported' } } });
          return;
        }
        const text = body.toString('utf8');
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch {
          expect(decoded).toMatchObject({ kind: 'text', value: text, decodedFrom: { charset: 'utf-8', bom, problem: { code: 'BodyNotJson' } } });
          return;
        }
        expect(decoded).toEqual({ kind: 'json', value, decodedFrom: { base64, charset: 'utf-8', bom, declared: true } });
      }),
      { numRuns: 3000 },
    );
  });

  it('reads plain UTF-8 JSON declared without a charset as UTF-8, as sniffing would', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(decodeBody(Buffer.from(text), { contentType: 'application/json' })).toEqual({
          kind: 'json',
          value: JSON.parse(text),
          decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: true },
        });
      }),
    );
  });
});

describe('decodeBody: declared UTF-8 JSON objects, scanned and parsed on demand', () => {
  const sample = '{"temperature":21.5,"humidity":55.3,"pressure":1013.2,"battery":97,"pointInfo":"This is a normal message."}';
  const scanned = [
    sample,
    json(reading),
    '{"temperature":21.5,"unit":"°C","site":"Zürich 温度 😀","temp°C":3}',
    ' {\n  "nested": {"a": [1, 2, {"b": null}]},\n  "n": -0,\n  "big": 1e400,\n  "tiny": -1e-400,\n  "s": "\\u00e9\\n\\"" \n} ',
    '{"precise":0.30000000000000004,"long":1.000000000000000000001,"int":9007199254740993,"e":12.5E-3}',
    '{"flag":true,"none":null,"list":[1,2,3],"text":"42"}',
    '{}',
  ];
  /** What the JSON.parse path gives (and gave before the scan existed). */
  const eager = (text: string, base64: 'storage' | null = null): DecodedBody => ({
    kind: 'json',
    value: JSON.parse(text) as DecodedBody['value'],
    decodedFrom: { base64, charset: 'utf-8', bom: false, declared: true },
  });
  const numbersOf = (decoded: DecodedBody): TopLevelNumbers | undefined => (decoded.kind === 'json' ? decoded.numbers : undefined);
  /** The for...in numeric members of the parsed body. */
  const forInNumbers = (text: string): Numbers | undefined => topLevelNumbersOracle(Buffer.from(text, 'utf8'));
  function message(decoded: DecodedBody, body: Uint8Array): RoutedMessage {
    return {
      deviceId: 'sensor-1',
      enqueuedTime: new Date(Date.UTC(2024, 0, 1)),
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      properties: { level: 'normal' },
      systemProperties: {},
      body,
      decoded,
      source: { kind: 'eventHub', partitionId: '0', sequenceNumber: 1, offset: '0' },
    };
  }

  it.each(scanned)('reads %j as the JSON.parse path does, by its fields, plainBody and JSON.stringify alike', (text) => {
    const bytes = Buffer.from(text);
    const decoded = decodeBody(bytes, DECLARED_JSON);
    expect(numbersOf(decoded)).toBeDefined();
    const expected = eager(text);
    expect(decoded.kind).toBe('json');
    expect(decoded.value).toStrictEqual(expected.value);
    expect(decoded.decodedFrom).toStrictEqual(expected.decodedFrom);
    expect(plainBody(decoded)).toStrictEqual(expected);
    expect(Object.keys(plainBody(decoded))).toEqual(['kind', 'value', 'decodedFrom']);
    // The equality tester of test/support/equality.ts: a lazy body equals the eager one, and differs from another.
    expect(decoded).toEqual(expected);
    expect(decoded).not.toEqual({ ...expected, value: { other: 1 } });
    expect(JSON.stringify(decoded)).toBe(JSON.stringify(expected));
    expect(JSON.stringify(toMessageRecord(message(decoded, bytes)))).toBe(JSON.stringify(toMessageRecord(message(expected, bytes))));
    expect(JSON.stringify(decodeBody(bytes, { ...DECLARED_JSON, storedAsBase64: true }))).toBe(JSON.stringify(eager(text, 'storage')));
  });

  it.each(scanned)('carries the for...in numeric members of %j as a non-enumerable `numbers`', (text) => {
    const decoded = decodeBody(Buffer.from(text), DECLARED_JSON);
    const numbers = numbersOf(decoded)!;
    const expected = forInNumbers(text)!;
    expect([...numbers.names]).toEqual(expected.names);
    expect(numbers.values.length).toBe(expected.values.length);
    numbers.values.forEach((value, i) => expect(Object.is(value, expected.values[i])).toBe(true));
    expect('numbers' in decoded).toBe(true);
    expect(Object.prototype.propertyIsEnumerable.call(decoded, 'numbers')).toBe(false);
    expect(Object.keys(decoded)).not.toContain('numbers');
    expect(JSON.stringify(decoded)).not.toContain('"numbers"');
    expect('numbers' in plainBody(decoded)).toBe(false);
  });

  it('parses the value only when it is read, once', () => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const decoded = decodeBody(Buffer.from(sample), DECLARED_JSON);
      expect(numbersOf(decoded)?.values).toEqual([21.5, 55.3, 1013.2, 97]);
      expect(parse).not.toHaveBeenCalled();
      const value = decoded.value;
      expect(parse).toHaveBeenCalledTimes(1);
      expect(decoded.value).toBe(value);
      expect(JSON.stringify(decoded)).toContain('"pointInfo":"This is a normal message."');
      expect(parse).toHaveBeenCalledTimes(1);
    } finally {
      parse.mockRestore();
    }
  });

  it.each([
    ['an array', '[1,2,3]'],
    ['a string', '"21.5"'],
    ['a number', '42'],
    ['null', 'null'],
    ['duplicate keys', '{"a":1,"a":2}'],
    ['duplicate keys of other kinds', '{"a":"x","b":1,"a":2}'],
    ['an array-index key', '{"b":1,"0":2}'],
    ['a key with an escape', '{"te\\u006dp":1}'],
    ['a __proto__ key', '{"__proto__":1,"x":2}'],
    ['nesting deeper than the scan goes', `{"a":${'['.repeat(80)}${']'.repeat(80)}}`],
  ])('leaves %s to JSON.parse, with the same result as before', (_what, text) => {
    const decoded = decodeBody(Buffer.from(text), DECLARED_JSON);
    expect(numbersOf(decoded)).toBeUndefined();
    expect(decoded).toEqual(eager(text));
    expect(JSON.stringify(decoded)).toBe(JSON.stringify(eager(text)));
  });

  it('leaves bodies that are not JSON or not UTF-8 to the general path, with the same results as before', () => {
    expect(decodeBody(Buffer.from('{"temperature":21.5,}'), DECLARED_JSON)).toMatchObject({
      kind: 'text',
      value: '{"temperature":21.5,}',
      decodedFrom: { problem: { code: 'BodyNotJson' } },
    });
    const invalid = Uint8Array.from([...Buffer.from('{"unit":"'), 0xb0, ...Buffer.from('C","t":1}')]);
    expect(decodeBody(invalid, DECLARED_JSON)).toMatchObject({ kind: 'binary', decodedFrom: { problem: { code: 'BodyEncodingUnsupported' } } });
    const bom = Buffer.from([0xef, 0xbb, 0xbf, ...Buffer.from(sample)]);
    const decoded = decodeBody(bom, DECLARED_JSON);
    expect(numbersOf(decoded)).toBeUndefined();
    expect(decoded).toEqual({ ...eager(sample), decodedFrom: { base64: null, charset: 'utf-8', bom: true, declared: true } });
  });

  it('does not read JSON nested deeper than MAX_JSON_DEPTH, which would break every serialisation of it', () => {
    const nested = (depth: number, open = '{"a":', close = '}') => `${open.repeat(depth)}1${close.repeat(depth)}`;
    // 25 KB of objects: JSON.parse takes it, JSON.stringify of the result overflows the stack.
    for (const text of [nested(5_000), nested(100_000, '[', ']')]) {
      for (const declaration of [DECLARED_JSON, {}]) {
        const decoded = decodeBody(Buffer.from(text), declaration);
        expect(decoded).toMatchObject({ kind: 'text', decodedFrom: { problem: { code: 'BodyNotJson' } } });
        expect(decoded.decodedFrom.problem?.detail).toContain(`more than ${MAX_JSON_DEPTH} levels`);
        expect(() => JSON.stringify(decoded)).not.toThrow();
      }
    }
    expect(decodeBody(Buffer.from(nested(MAX_JSON_DEPTH)), DECLARED_JSON).kind).toBe('json');
    expect(decodeBody(Buffer.from(nested(MAX_JSON_DEPTH + 1)), DECLARED_JSON).kind).toBe('text');
  });

  it('serializes any declared JSON body byte for byte as the JSON.parse path does', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.json({ stringUnit: 'binary' })), fc.boolean(), (text, storedAsBase64) => {
        const decoded = decodeBody(Buffer.from(text), { ...DECLARED_JSON, storedAsBase64 });
        const expected = eager(text, storedAsBase64 ? 'storage' : null);
        expect(JSON.stringify(decoded)).toBe(JSON.stringify(expected));
        expect(decoded).toEqual(expected);
        const numbers = numbersOf(decoded);
        if (numbers !== undefined) expect({ names: [...numbers.names], values: [...numbers.values] }).toEqual(forInNumbers(text));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('bodyBytesOf', () => {
  it('passes Buffers and typed-array views through without copying', () => {
    const buffer = Buffer.from('abc');
    expect(bodyBytesOf(buffer)).toBe(buffer);
    const words = new Uint16Array([0x4241]);
    expect(Buffer.from(bodyBytesOf(words)).toString('latin1')).toBe('AB');
    expect(bodyBytesOf(new ArrayBuffer(3)).byteLength).toBe(3);
  });

  it('re-serialises what the host JSON-parsed and encodes strings as UTF-8', () => {
    expect(Buffer.from(bodyBytesOf({ level: 'critical', t: 1 })).toString()).toBe('{"level":"critical","t":1}');
    expect(Buffer.from(bodyBytesOf(42)).toString()).toBe('42');
    expect(Buffer.from(bodyBytesOf(null)).toString()).toBe('null');
    expect(Buffer.from(bodyBytesOf('Zürich')).toString('hex')).toBe(Buffer.from('Zürich').toString('hex'));
    expect(bodyBytesOf(undefined).byteLength).toBe(0);
  });

  it('does not throw on values JSON cannot represent', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(Buffer.from(bodyBytesOf(cyclic)).toString()).toBe('[object Object]');
    expect(Buffer.from(bodyBytesOf(10n)).toString()).toBe('10');
  });
});
