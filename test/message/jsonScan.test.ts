import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import {
  MAX_SCAN_DEPTH,
  MAX_SCAN_MEMBERS,
  MAX_SCAN_NUMBERS,
  scanTopLevelNumbers,
  type TopLevelNumbers,
} from '../../src/lib/message/jsonScan.js';
import { topLevelNumbersOracle as oracle, type Numbers } from '../support/jsonNumbers.js';


function scan(input: string | Uint8Array): TopLevelNumbers | undefined {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  return scanTopLevelNumbers(bytes, 0, bytes.length);
}

/** Values compared with Object.is, so that -0 and 0 differ and NaN would equal itself. */
function sameNumbers(got: TopLevelNumbers, want: Numbers): void {
  expect([...got.names]).toEqual(want.names);
  expect(got.values.length).toBe(want.values.length);
  got.values.forEach((value, i) => {
    if (!Object.is(value, want.values[i])) {
      throw new Error(`value ${i} (${got.names[i]}): scanned ${value}, JSON.parse gives ${want.values[i]}`);
    }
  });
}

/** The contract: whenever the scanner answers, the bytes are valid UTF-8 and JSON.parse agrees exactly. */
function expectSound(bytes: Uint8Array): TopLevelNumbers | undefined {
  const got = scanTopLevelNumbers(bytes, 0, bytes.length);
  if (got === undefined) return undefined;
  expect(isUtf8(bytes)).toBe(true);
  const want = oracle(bytes);
  if (want === undefined) {
    throw new Error(`scanned ${JSON.stringify(got)} from bytes JSON.parse does not accept as an object: ${Buffer.from(bytes).toString('hex')}`);
  }
  sameNumbers(got, want);
  return got;
}

/** Whether the scanner promises to handle this parsed object (written by JSON.stringify, so no duplicate keys). */
function handled(value: unknown, text: string): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (depth(value) > MAX_SCAN_DEPTH) return false;
  let members = 0;
  let numbers = 0;
  for (const key of Object.keys(value)) {
    members++;
    if (typeof (value as Record<string, unknown>)[key] === 'number') numbers++;
    if (/^[0-9]+$/.test(key) || key === '__proto__' || JSON.stringify(key) !== `"${key}"`) return false;
  }
  return members <= MAX_SCAN_MEMBERS && numbers <= MAX_SCAN_NUMBERS && isUtf8(Buffer.from(text));
}

function depth(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const children = Array.isArray(value) ? value : Object.values(value as object);
  return 1 + children.reduce<number>((max, child) => Math.max(max, depth(child)), 0);
}

/**
 * Sound, and complete for what the scanner says it handles. `distinctKeys` says the text has no repeated top-level
 * key (JSON.parse would hide one), as JSON.stringify's output never has.
 */
function expectAgrees(text: string, distinctKeys = true): void {
  const bytes = Buffer.from(text, 'utf8');
  const got = expectSound(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return;
  }
  if (distinctKeys && handled(parsed, text) && got === undefined) throw new Error(`declined a body it handles: ${text}`);
}

function objectText(members: ReadonlyArray<readonly [string, string]>): string {
  return `{${members.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const JSON_ALPHABET = [...'{}[]":,-+.0123456789eE \t\n\rtruefalsnl\\/"abu'].map((c) => c.charCodeAt(0));
const INTERESTING_BYTES = [
  ...JSON_ALPHABET,
  0x00, 0x01, 0x0b, 0x0c, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5,
  0xff, 0xa0, 0xb0, 0x9f,
];

/** A JSON number literal as a device might write it, exponents and long digit runs included. */
const numberLiteral = fc
  .tuple(
    fc.boolean(),
    fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,24}$/)),
    fc.option(fc.stringMatching(/^[0-9]{1,30}$/), { nil: undefined }),
    fc.option(
      fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.oneof(fc.stringMatching(/^[0-9]{1,3}$/), fc.stringMatching(/^[0-9]{4,8}$/))),
      { nil: undefined },
    ),
  )
  .map(([negative, int, fraction, exponent]) => `${negative ? '-' : ''}${int}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : exponent.join('')}`);

const doubleLiteral = fc.double().map((d) => JSON.stringify(d));

const specialLiteral = fc.constantFrom(
  '-0',
  '-0.0',
  '-0e5',
  '0e-999',
  '1e400',
  '-1e400',
  '1e-400',
  '-1e-400',
  '1.000000000000000000001',
  '1.0000000000000000000000000000000000001',
  '100000000000000000000000',
  '9007199254740993',
  '9007199254740992.5',
  '123456789012345',
  '1234567890123456',
  '0.1',
  '0.30000000000000004',
  '1e22',
  '1e23',
  '1.5e-22',
  '123456789012345e-22',
  '2.2250738585072011e-308',
  '2.2250738585072012e-308',
  '4.9e-324',
  '2.4703282292062328e-324',
  '1.7976931348623157e308',
  '1.7976931348623158e308',
  '0.000000000000000000000000000001',
  '1E+2',
  '1e-0',
  '12.5e1',
);

const anyNumberLiteral = fc.oneof(numberLiteral, doubleLiteral, specialLiteral);

const asciiKey = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_ .-]{0,20}$/);

/** Objects whose members are mostly numbers, written out by hand so that every literal form reaches the scanner. */
const numericObjectText = fc
  .uniqueArray(fc.tuple(asciiKey, fc.oneof({ weight: 4, arbitrary: anyNumberLiteral }, fc.json({ maxDepth: 2 }))), {
    maxLength: 12,
    selector: ([key]) => key,
  })
  .map(objectText);

const validJsonText = fc.oneof(
  fc.json(),
  fc.json({ stringUnit: 'binary' }),
  fc.json({ stringUnit: 'grapheme' }),
  fc.jsonValue().map((value) => JSON.stringify(value, null, 2)),
  numericObjectText,
);

type Mutation = { kind: 'set' | 'insert'; at: number; byte: number } | { kind: 'delete'; at: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('set' as const, 'insert' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);

function mutate(text: string, mutations: readonly Mutation[]): Uint8Array {
  const bytes = [...Buffer.from(text, 'utf8')];
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % (bytes.length + (m.kind === 'insert' ? 1 : 0));
    if (m.kind === 'set' && bytes.length > 0) bytes[at] = m.byte;
    else if (m.kind === 'insert') bytes.splice(at, 0, m.byte);
    else if (m.kind === 'delete') bytes.splice(at, 1);
  }
  return Uint8Array.from(bytes);
}

// ---------------------------------------------------------------------------------------------------------------

describe('scanTopLevelNumbers: differential against JSON.parse', () => {
  it('agrees with JSON.parse on any JSON text, and answers for every object it promises to handle', () => {
    fc.assert(
      fc.property(validJsonText, (text) => {
        expectAgrees(text);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees on objects of numbers written in every literal form', () => {
    fc.assert(
      fc.property(numericObjectText, (text) => {
        expectAgrees(text);
      }),
      { numRuns: 3000 },
    );
  });

  it('converts every double exactly as JSON.parse does, -0 and non-finite results included', () => {
    fc.assert(
      fc.property(fc.array(anyNumberLiteral, { minLength: 1, maxLength: 8 }), (literals) => {
        const text = `{${literals.map((literal, i) => `"n${i}":${literal}`).join(',')}}`;
        const got = scan(text);
        expect(got).toBeDefined();
        sameNumbers(got!, oracle(Buffer.from(text))!);
      }),
      { numRuns: 5000 },
    );
  });

  it('never answers wrongly for mutated JSON (bytes set, inserted, deleted)', () => {
    fc.assert(
      fc.property(validJsonText, fc.array(mutation, { minLength: 1, maxLength: 4 }), (text, mutations) => {
        expectSound(mutate(text, mutations));
      }),
      { numRuns: 5000 },
    );
  });

  it('never answers wrongly for random bytes, or random text over the JSON alphabet', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.array(fc.constantFrom(...INTERESTING_BYTES), { maxLength: 48 }).map((bytes) => Uint8Array.from([0x7b, ...bytes])),
          fc.array(fc.constantFrom(...JSON_ALPHABET), { maxLength: 48 }).map((bytes) => Uint8Array.from([0x7b, 0x22, ...bytes])),
        ),
        (bytes) => {
          expectSound(bytes);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('keeps agreeing across a stream of bodies that reuse, reorder and repeat a few keys', () => {
    // The scanner remembers keys by position between calls; duplicates must still be found whatever it remembers.
    const member = fc.tuple(fc.constantFrom('a', 'b', 'temp', 'tempX', 'hum', '', 'é'), fc.oneof(anyNumberLiteral, fc.constantFrom('"x"', 'null', '[1]')));
    fc.assert(
      fc.property(fc.array(fc.array(member, { maxLength: 6 }), { minLength: 1, maxLength: 12 }), (bodies) => {
        for (const members of bodies) {
          const distinct = new Set(members.map(([key]) => key)).size === members.length;
          expectAgrees(objectText(members), distinct);
          if (!distinct) expect(scan(objectText(members))).toBeUndefined();
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('scanTopLevelNumbers: the sample telemetry body', () => {
  const sample = '{"temperature":21.5,"humidity":55.3,"pressure":1013.2,"battery":97,"pointInfo":"This is a normal message."}';

  it('finds the numeric members in order, with their values', () => {
    expect(scan(sample)).toEqual({ names: ['temperature', 'humidity', 'pressure', 'battery'], values: [21.5, 55.3, 1013.2, 97] });
  });

  it('hands out the same name strings, and the same frozen names array, for bodies with the same keys', () => {
    const first = scan(sample)!;
    const second = scan('{"temperature":19,"humidity":40.25,"pressure":1000,"battery":3,"pointInfo":"other"}')!;
    expect(second.names).toBe(first.names);
    expect(Object.isFrozen(second.names)).toBe(true);
    expect(second.values).not.toBe(first.values);
    expect(second.values).toEqual([19, 40.25, 1000, 3]);
    const fewer = scan('{"temperature":1,"humidity":2}')!;
    expect(fewer.names).toEqual(['temperature', 'humidity']);
    expect(fewer.names[0]).toBe(first.names[0]);
  });

  it('reads bytes[start, end) of a larger buffer and nothing outside it', () => {
    const backing = Buffer.from(`{"x":1}${sample}"junk`);
    expect(scanTopLevelNumbers(backing, 7, 7 + sample.length)).toEqual(scan(sample));
    expect(scanTopLevelNumbers(backing, 7, 7 + sample.length - 1)).toBeUndefined();
    expect(scanTopLevelNumbers(backing, 0, 7)).toEqual({ names: ['x'], values: [1] });
    expect(scanTopLevelNumbers(backing, -1, 7)).toBeUndefined();
    expect(scanTopLevelNumbers(backing, 0, backing.length + 1)).toBeUndefined();
    expect(scanTopLevelNumbers(backing, 5, 4)).toBeUndefined();
  });

  it('reads a plain Uint8Array as well as a Buffer', () => {
    expect(scanTopLevelNumbers(Uint8Array.from(Buffer.from(sample)), 0, Buffer.byteLength(sample))).toEqual(scan(sample));
  });
});

describe('scanTopLevelNumbers: grammar', () => {
  const accepts = (text: string, names: string[] = [], values: number[] = []): void => {
    const got = scan(text);
    expect(got, text).toBeDefined();
    sameNumbers(got!, { names, values });
    sameNumbers(got!, oracle(Buffer.from(text))!);
  };
  const declines = (input: string | Uint8Array): void => {
    expect(scan(input), typeof input === 'string' ? input : Buffer.from(input).toString('hex')).toBeUndefined();
  };

  it('accepts only space, tab, line feed and carriage return as whitespace', () => {
    accepts(' \t\n\r{ \t\n\r"a" \t\n\r: \t\n\r1 \t\n\r, \t\n\r"b"\r\n:\n2\t} \t\n\r', ['a', 'b'], [1, 2]);
    accepts('{}');
    accepts(' { } ');
    for (const blank of ['\f', '\v', '\u00a0', '\ufeff', '\u2028', '\0']) {
      declines(`{${blank}"a":1}`);
      declines(`{"a":1}${blank}`);
      declines(`${blank}{"a":1}`);
    }
    // Single bytes that some encodings call blank (NEL, NBSP in Latin-1), in every place whitespace may go.
    for (const byte of [0x85, 0xa0, 0x1c, 0x1f, 0x7f]) {
      const places = ['', '{', '{"a"', '{"a":', '{"a":1', '{"a":1,', '{"a":1}'];
      for (const head of places) {
        const tail = '{"a":1}'.slice(head.length);
        declines(Uint8Array.from([...Buffer.from(head), byte, ...Buffer.from(tail)]));
      }
    }
  });

  it('declines an empty or blank body and every top-level value that is not an object', () => {
    for (const text of ['', ' ', '\n', '[]', '[1,2]', '"a"', '1', '-0', 'true', 'false', 'null', '[{"a":1}]']) declines(text);
  });

  it('declines anything after the object but whitespace', () => {
    for (const text of ['{"a":1}x', '{"a":1} {}', '{"a":1}}', '{"a":1},', '{"a":1}\0', '{"a":1}1']) declines(text);
  });

  it('declines objects that are not closed or not separated properly', () => {
    for (const text of ['{', '{"a"', '{"a":', '{"a":1', '{"a":1,', '{"a":1,}', '{,"a":1}', '{"a":1,,"b":2}', '{"a" 1}', '{"a":1 "b":2}', '{a:1}', "{'a':1}", '{"a"::1}', '{"a":1;"b":2}']) {
      declines(text);
    }
  });

  it('accepts the literals and declines their misspellings', () => {
    accepts('{"t":true,"f":false,"n":null,"x":1}', ['x'], [1]);
    for (const literal of ['tru', 'True', 'nul', 'NULL', 'fals', 'falsey', 'undefined', 'NaN', 'Infinity', '-Infinity', 'truee']) {
      declines(`{"a":${literal}}`);
    }
  });

  it('reads numbers by RFC 8259 and nothing else', () => {
    const valid = ['0', '-0', '1', '-1', '10', '1.5', '-1.5', '0.5', '1e5', '1E5', '1e+5', '1e-5', '1.25E-3', '-0.0e0', '123456789', '0.000001'];
    for (const literal of valid) accepts(`{"a":${literal}}`, ['a'], [JSON.parse(literal) as number]);
    const invalid = ['+1', '01', '-01', '00', '1.', '.5', '-.5', '1e', '1e+', '1E-', '-', '--1', '0x10', '1.5.5', '1e5.5', '1ee5', '- 1', '1_000', '٣'];
    for (const literal of invalid) {
      declines(`{"a":${literal}}`);
      declines(`{"a":[${literal}]}`);
      declines(`{"a":{"b":${literal}}}`);
    }
  });

  it('converts the hard cases exactly', () => {
    const cases: Array<[string, number]> = [
      ['-0', -0],
      ['0', 0],
      ['-0.000', -0],
      ['1e400', Infinity],
      ['-1e400', -Infinity],
      ['1e-400', 0],
      ['-1e-400', -0],
      ['1.000000000000000000001', 1],
      ['9007199254740993', 9007199254740992],
      ['0.30000000000000004', 0.30000000000000004],
      ['1e23', 1e23],
      ['4.9e-324', 5e-324],
      ['1.7976931348623158e308', 1.7976931348623157e308],
      // An exponent past the scanner's cap with as many fraction digits: the capped exponent minus the digits would
      // look like a small scale (found by reading the code; random texts are never this long).
      [`0.${'0'.repeat(99_999)}1e100000000`, Infinity],
      [`-0.${'0'.repeat(99_999)}1e100000000`, -Infinity],
      [`1${'0'.repeat(100_010)}e-100000000`, 0],
    ];
    for (const [literal, value] of cases) {
      const got = scan(`{"v":${literal}}`);
      expect(Object.is(got?.values[0], value), `${literal.slice(0, 40)} -> ${got?.values[0]}`).toBe(true);
      expect(Object.is(got?.values[0], JSON.parse(literal))).toBe(true);
    }
  });

  it('validates strings: no raw control characters, only the JSON escapes, \\u with four hex digits', () => {
    accepts(String.raw`{"s":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00 \ud800 \uABCD \uabcd","x":1}`, ['x'], [1]);
    accepts('{"s":"\u007f ~ DEL is not a control character","x":1}', ['x'], [1]);
    for (const body of [String.raw`\x41`, String.raw`\U0041`, String.raw`\u12`, String.raw`\u12G4`, String.raw`\u123G`, String.raw`\u123`, String.raw`\u`, String.raw`\a`, String.raw`\'`, String.raw`\ `, '\\']) {
      declines(`{"s":"${body}","x":1}`);
    }
    for (let c = 0; c < 0x20; c++) {
      declines(`{"s":"a${String.fromCharCode(c)}b","x":1}`);
      declines(`{"x":1,"k${String.fromCharCode(c)}":1}`);
      declines(`{"a":["${String.fromCharCode(c)}"]}`);
    }
    declines('{"s":"unterminated}');
    declines('{"s":"unterminated\\"}');
  });

  it('validates nested arrays and objects but does not collect their numbers', () => {
    accepts('{"a":[1,2,{"b":3}],"c":{"d":[[]],"e":{}},"f":4}', ['f'], [4]);
    accepts('{"a":[ 1 , "x" , null , [ ] , { } ]}');
    for (const text of ['{"a":[1,2,]}', '{"a":[,1]}', '{"a":[1 2]}', '{"a":{"b"}}', '{"a":{"b":1,}}', '{"a":{1:2}}', '{"a":[}', '{"a":{]}', '{"a":[1}', '{"a":{"b":1]}']) {
      declines(text);
    }
  });

  it('validates nesting up to MAX_SCAN_DEPTH and declines deeper bodies', () => {
    const nested = (levels: number): string => `{"a":${'['.repeat(levels - 1)}1${']'.repeat(levels - 1)},"n":1}`;
    accepts(nested(MAX_SCAN_DEPTH), ['n'], [1]);
    declines(nested(MAX_SCAN_DEPTH + 1));
    const objects = (levels: number): string => `${'{"a":'.repeat(levels - 1)}{"n":1}${'}'.repeat(levels - 1)}`;
    accepts(objects(MAX_SCAN_DEPTH));
    declines(objects(MAX_SCAN_DEPTH + 1));
  });

  it('validates UTF-8 in strings and keys, and accepts "°C"', () => {
    accepts('{"unit":"°C","temperature":21.5,"city":"Zürich 温度 😀"}', ['temperature'], [21.5]);
    accepts('{"temp°C":21.5,"Größe":2,"温度":3,"😀":4}', ['temp°C', 'Größe', '温度', '😀'], [21.5, 2, 3, 4]);
    const broken = [
      [0xc0, 0x80], // overlong NUL
      [0xc1, 0xbf], // overlong
      [0xe0, 0x80, 0x80], // overlong
      [0xe0, 0x9f, 0xbf], // overlong
      [0xed, 0xa0, 0x80], // surrogate D800
      [0xed, 0xbf, 0xbf], // surrogate DFFF
      [0xf0, 0x80, 0x80, 0x80], // overlong
      [0xf0, 0x8f, 0xbf, 0xbf], // overlong
      [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
      [0xf5, 0x80, 0x80, 0x80],
      [0xff],
      [0x80], // lone continuation
      [0xc3], // truncated
      [0xe2, 0x82], // truncated
      [0xf0, 0x9f, 0x98], // truncated
      [0xc3, 0x28], // bad continuation
      [0xe2, 0x28, 0xa1],
    ];
    for (const sequence of broken) {
      const inValue = Uint8Array.from([...Buffer.from('{"s":"a'), ...sequence, ...Buffer.from('","x":1}')]);
      const inKey = Uint8Array.from([...Buffer.from('{"k'), ...sequence, ...Buffer.from('":1}')]);
      const inNested = Uint8Array.from([...Buffer.from('{"a":["'), ...sequence, ...Buffer.from('"]}')]);
      for (const bytes of [inValue, inKey, inNested]) {
        expect(isUtf8(bytes)).toBe(false);
        declines(bytes);
      }
    }
    const valid = [
      [0xc2, 0x80],
      [0xdf, 0xbf],
      [0xe0, 0xa0, 0x80],
      [0xed, 0x9f, 0xbf],
      [0xee, 0x80, 0x80],
      [0xef, 0xbf, 0xbf],
      [0xf0, 0x90, 0x80, 0x80],
      [0xf4, 0x8f, 0xbf, 0xbf],
    ];
    for (const sequence of valid) {
      const bytes = Uint8Array.from([...Buffer.from('{"s":"'), ...sequence, ...Buffer.from('","k'), ...sequence, ...Buffer.from('":1}')]);
      expect(isUtf8(bytes)).toBe(true);
      expect(expectSound(bytes)).toBeDefined();
    }
    // Outside strings, any non-ASCII byte is invalid JSON.
    declines('{"a":1,\u00a0"b":2}');
    declines('{"a":1°}');
  });
});

describe('scanTopLevelNumbers: what it declines although JSON.parse accepts it', () => {
  const declinesValid = (text: string): void => {
    expect(oracle(Buffer.from(text)), text).toBeDefined();
    expect(scan(text), text).toBeUndefined();
  };

  it('declines keys holding escapes', () => {
    declinesValid(String.raw`{"a\"b":1}`);
    declinesValid(String.raw`{"\u0061":1}`);
    declinesValid(String.raw`{"x":1,"a\nb":"s"}`);
  });

  it('declines keys that are all digits (array indices, which for...in lists first)', () => {
    declinesValid('{"b":1,"0":2}');
    declinesValid('{"42":1}');
    declinesValid('{"x":1,"007":"s"}');
    // Not array indices: ordinary names, in order.
    expect(scan('{"b":1,"-1":2,"1.5":3,"1e3":4,"":5," 1":6}')).toEqual({ names: ['b', '-1', '1.5', '1e3', '', ' 1'], values: [1, 2, 3, 4, 5, 6] });
  });

  it('declines duplicate keys, numeric or not, wherever they are', () => {
    declinesValid('{"a":1,"a":2}');
    declinesValid('{"a":"x","a":2}');
    declinesValid('{"a":1,"b":2,"a":"x"}');
    declinesValid('{"a":1,"b":2,"c":3,"b":{}}');
    // Seen as distinct keys before, duplicates later: what the scanner remembers must not hide them.
    expect(scan('{"a":1,"b":2,"c":3}')).toBeDefined();
    declinesValid('{"a":1,"b":2,"a":3}');
    declinesValid('{"a":1,"a":2,"c":3}');
    expect(scan('{"a":1,"b":2,"c":3}')).toBeDefined();
    declinesValid('{"a":1,"c":2,"c":3}');
    declinesValid('{"aé":1,"aé":2}');
  });

  it('declines a __proto__ key', () => {
    declinesValid('{"__proto__":1}');
    declinesValid('{"x":1,"__proto__":{}}');
    expect(scan('{"__proto_":1,"__proto__x":2}')).toEqual({ names: ['__proto_', '__proto__x'], values: [1, 2] });
  });

  it(`declines more than ${MAX_SCAN_NUMBERS} numeric members or ${MAX_SCAN_MEMBERS} members`, () => {
    const numbers = (n: number): string => `{${Array.from({ length: n }, (_, i) => `"n${i}":${i}`).join(',')}}`;
    expect(scan(numbers(MAX_SCAN_NUMBERS))?.values).toHaveLength(MAX_SCAN_NUMBERS);
    declinesValid(numbers(MAX_SCAN_NUMBERS + 1));
    const members = (n: number): string => `{${Array.from({ length: n }, (_, i) => `"m${i}":${i < 10 ? i : '"s"'}`).join(',')}}`;
    expect(scan(members(MAX_SCAN_MEMBERS))?.values).toHaveLength(10);
    declinesValid(members(MAX_SCAN_MEMBERS + 1));
  });

  it('keeps names of long and non-ASCII keys correct though it does not remember them', () => {
    const long = 'k'.repeat(100);
    for (let round = 0; round < 3; round++) {
      expect(scan(`{"${long}":1,"é":2,"short":3}`)).toEqual({ names: [long, 'é', 'short'], values: [1, 2, 3] });
      expect(scan(`{"${long}":1,"${long}x":2}`)).toEqual({ names: [long, `${long}x`], values: [1, 2] });
      declinesValid(`{"${long}":1,"${long}":2}`);
    }
  });
});
