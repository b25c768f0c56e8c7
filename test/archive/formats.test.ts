import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createFormatter, CSV_FIXED_COLUMNS, flattenJson, IsoFormatter, type QueryTrailer } from '../../src/lib/archive/formats.js';
import { csvCell } from '../../src/lib/csv.js';
import type { QueryStats } from '../../src/lib/archive/query.js';
import type { DecodedBody, JsonValue, PropertyValue, RoutedMessage } from '../../src/lib/message/RoutedMessage.js';

const decodedFrom = { base64: null, charset: 'utf-8', bom: false, declared: true } as const;

function message(index: number, body: JsonValue | { text: string }, properties: Record<string, PropertyValue> = { level: 'storage' }): RoutedMessage {
  const decoded: DecodedBody =
    body !== null && typeof body === 'object' && 'text' in body && typeof body.text === 'string'
      ? { kind: 'text', value: body.text, decodedFrom: { ...decodedFrom, declared: false } }
      : { kind: 'json', value: body as JsonValue, decodedFrom };
  return {
    deviceId: `dev-${index}`,
    messageId: `m-${index}`,
    enqueuedTime: new Date(Date.UTC(2024, 4, 1, 12, 0, index)),
    properties,
    systemProperties: {},
    body: new Uint8Array(0),
    decoded,
    source: { kind: 'blob', blobName: 'hub/0/2024/05/01/12/00', index, format: 'avro-iothub', sequenceNumber: null, offset: null },
  };
}

const stats: QueryStats = {
  blobsListed: 1,
  unrecognizedNames: 0,
  listingDone: true,
  manifestsRead: 0,
  summariesRead: 0,
  manifestsUnreadable: 0,
  blobsSkipped: 0,
  blobsRead: 1,
  bytesRead: 10,
  recordsScanned: 2,
  recordsReturned: 2,
  recordsExcluded: 0,
  damaged: [],
};
const trailer = (continuation: string | null = null, damaged: QueryStats['damaged'] = []): QueryTrailer => ({
  continuation,
  stats: { ...stats, damaged },
});

function render(format: 'csv' | 'json' | 'ndjson', messages: RoutedMessage[], options = {}, end = trailer()): string {
  const formatter = createFormatter(format, options);
  let text = formatter.start();
  for (const m of messages) text += formatter.push(m);
  return text + formatter.end(end);
}

/** A small RFC 4180 reader, enough to check what the writer produced. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  return rows;
}

describe('CSV', () => {
  it('quotes per RFC 4180 and guards against formulas without touching numbers', () => {
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvCell('+1+2')).toBe("'+1+2");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('-5')).toBe('-5');
    expect(csvCell('-2.5e3')).toBe('-2.5e3');
    expect(csvCell(-7)).toBe('-7');
    expect(csvCell(null)).toBe('');
    expect(csvCell(true)).toBe('true');
    expect(csvCell([1, 'a'])).toBe('"[1,""a""]"');
    // Reversible: a cell starting with an apostrophe is the text after it, so these stay three different texts.
    expect(['=a', "'=a", "''=a"].map(csvCell)).toEqual(["'=a", "''=a", "'''=a"]);
    expect(csvCell("it's")).toBe("it's");
    // Quoted, so that pandas' comment='#' (for the trailer lines) does not cut the row.
    expect(csvCell('color #ff0000')).toBe('"color #ff0000"');
  });

  it('writes fixed columns, then sorted property and body columns, with CRLF lines', () => {
    const text = render('csv', [
      message(1, { z: 1, a: { y: 'x,y', b: [1, 2] } }, { level: 'storage', Zeta: 'z' }),
      message(2, { a: { y: 'q' }, m: true }, { level: 'critical', alpha: 3 }),
    ]);
    expect(text.endsWith('\r\n')).toBe(true);
    const [header, first, second] = parseCsv(text);
    expect(header).toEqual([
      ...CSV_FIXED_COLUMNS,
      'properties.Zeta',
      'properties.alpha',
      'properties.level',
      'body.a.b',
      'body.a.y',
      'body.m',
      'body.z',
      'body',
      'extra',
    ]);
    const column = (row: string[] | undefined, name: string) => row?.[header!.indexOf(name)];
    expect(column(first, 'deviceId')).toBe('dev-1');
    expect(column(first, 'enqueuedTime')).toBe('2024-05-01T12:00:01.000Z');
    expect(column(first, 'level')).toBe('storage');
    expect(column(first, 'recordIndex')).toBe('1');
    expect(column(first, 'body.a.y')).toBe('x,y');
    expect(column(first, 'body.a.b')).toBe('[1,2]');
    expect(column(first, 'body.m')).toBe('');
    expect(column(second, 'body.m')).toBe('true');
    expect(column(second, 'properties.alpha')).toBe('3');
    expect(column(second, 'extra')).toBe('');
  });

  it('keeps fields first seen after the header window in `extra`, and non-JSON bodies in `body`', () => {
    const text = render('csv', [message(1, { a: 1 }), message(2, { a: 2, late: { x: 'new' } }, { level: 'normal', added: 'p' }), message(3, { text: 'plain' })], {
      csvHeaderWindow: 1,
    });
    const [header, , second, third] = parseCsv(text);
    expect(header).toEqual([...CSV_FIXED_COLUMNS, 'properties.level', 'body.a', 'body', 'extra']);
    expect(JSON.parse(second![header!.indexOf('extra')]!)).toEqual({ 'properties.added': 'p', 'body.late.x': 'new' });
    expect(second![header!.indexOf('body.a')]).toBe('2');
    expect(third![header!.indexOf('bodyKind')]).toBe('text');
    expect(third![header!.indexOf('body')]).toBe('plain');
  });

  it('ends with #continuation and #damaged lines only in-band and only when there is something to say', () => {
    const damaged = [{ blob: 'b', code: 'ArchiveTruncated' as const, detail: 'cut', byteOffset: 9, recordsBeforeDamage: 4 }];
    expect(render('csv', [message(1, { a: 1 })], { inBandTrailer: true })).not.toContain('#');
    const text = render('csv', [message(1, { a: 1 })], { inBandTrailer: true }, trailer('tok', damaged));
    expect(text).toMatch(/\r\n#continuation=tok\r\n#damaged=b: ArchiveTruncated at byte 9, 4 records before it\r\n$/);
    expect(render('csv', [message(1, { a: 1 })], {}, trailer('tok', damaged))).not.toContain('#');
  });

  it('writes a header even for an empty answer', () => {
    expect(parseCsv(render('csv', []))).toEqual([[...CSV_FIXED_COLUMNS, 'body', 'extra']]);
  });
});

describe('JSON and NDJSON', () => {
  it('JSON is one object with records, continuation and summary', () => {
    const parsed = JSON.parse(render('json', [message(1, { a: 1 }), message(2, { a: 2 })], {}, trailer('next'))) as {
      records: Array<{ deviceId: string; body: { value: unknown } }>;
      continuation: string;
      summary: { records: number };
    };
    expect(parsed.records.map((r) => r.deviceId)).toEqual(['dev-1', 'dev-2']);
    expect(parsed.records[0]?.body.value).toEqual({ a: 1 });
    expect(parsed.continuation).toBe('next');
    expect(parsed.summary.records).toBe(2);
    expect(JSON.parse(render('json', []))).toMatchObject({ records: [], continuation: null });
  });

  it('NDJSON is one record per line, with a closing @summary line only in-band', () => {
    const lines = render('ndjson', [message(1, { a: 1 })], { inBandTrailer: true }, trailer('t')).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ deviceId: 'dev-1', messageId: 'm-1' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ '@summary': { continuation: 't', records: 2 } });
    expect(render('ndjson', [message(1, { a: 1 })]).trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('flattenJson', () => {
  it('walks objects by dot path and keeps arrays, empty objects and non-object bodies as leaves', () => {
    expect([...flattenJson({ a: { b: 1, c: [1] }, d: {}, e: null })]).toEqual([
      ['a.b', 1],
      ['a.c', [1]],
      ['d', {}],
      ['e', null],
    ]);
    expect([...flattenJson([1, 2])]).toEqual([['', [1, 2]]]);
  });
});

describe('IsoFormatter', () => {
  it('writes exactly what Date.prototype.toISOString writes, for any instant (property)', () => {
    const iso = new IsoFormatter();
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }), fc.nat({ max: 120_000 }), (ms, step) => {
        expect(iso.format(ms)).toBe(new Date(ms).toISOString());
        // Neighbouring instants reuse the cached minute.
        const next = Math.min(ms + step, 8_640_000_000_000_000);
        expect(iso.format(next)).toBe(new Date(next).toISOString());
      }),
      { numRuns: 2000 },
    );
  });
});
