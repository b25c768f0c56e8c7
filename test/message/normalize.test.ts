import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  lookupProperty,
  metadataValue,
  parseEnqueuedTime,
  systemField,
  systemFields,
  toPropertyMap,
  toPropertyValue,
  toRoutedMessage,
  storedRecordMessage,
  SYSTEM_FIELD_ALIASES,
  toSafeInteger,
} from '../../src/lib/message/normalize.js';
import type { DecodedBody, PropertyValue } from '../../src/lib/message/RoutedMessage.js';

const iso = (value: unknown): string | null => parseEnqueuedTime(value)?.toISOString() ?? null;

describe('parseEnqueuedTime', () => {
  it.each([
    ['2018-07-05T15:11:42.6850000Z', '2018-07-05T15:11:42.685Z'],
    ['2021-05-07T08:12:19.6950000Z', '2021-05-07T08:12:19.695Z'],
    ['2024-03-01T10:15:30.123456789Z', '2024-03-01T10:15:30.123Z'],
    ['2024-03-01T10:15:30Z', '2024-03-01T10:15:30.000Z'],
    ['2024-03-01T10:15:30.5', '2024-03-01T10:15:30.500Z'],
    ['2024-03-01 10:15:30.123', '2024-03-01T10:15:30.123Z'],
    ['2024-03-01T10:15:30.123+00:00', '2024-03-01T10:15:30.123Z'],
    ['2024-03-01T12:15:30.123+02:00', '2024-03-01T10:15:30.123Z'],
    ['2024-03-01T05:45:30-0430', '2024-03-01T10:15:30.000Z'],
    ['  2024-03-01T10:15:30Z  ', '2024-03-01T10:15:30.000Z'],
  ])('reads ISO-8601 %j as UTC', (input, expected) => {
    expect(iso(input)).toBe(expected);
  });

  it('keeps every millisecond of a 7-digit fraction', () => {
    for (let ms = 0; ms < 1000; ms++) {
      const digits = String(ms).padStart(3, '0');
      expect(parseEnqueuedTime(`2021-05-07T08:12:19.${digits}9999Z`)?.getUTCMilliseconds()).toBe(ms);
    }
  });

  it.each([
    ['5/7/2021 8:12:19 AM', '2021-05-07T08:12:19.000Z'],
    ['12/9/2022 4:50:12 PM', '2022-12-09T16:50:12.000Z'],
    ['1/1/2020 12:00:00 AM', '2020-01-01T00:00:00.000Z'],
    ['1/1/2020 12:30:05 PM', '2020-01-01T12:30:05.000Z'],
    ['1/1/2020 12:59:59 am', '2020-01-01T00:59:59.000Z'],
    ['2/29/2024 11:59:59 PM', '2024-02-29T23:59:59.000Z'],
    ['10/31/2016 3:04:05.1234567 PM', '2016-10-31T15:04:05.123Z'],
    ['10/31/2016 3:04:05PM', '2016-10-31T15:04:05.000Z'],
  ])('reads the Capture US format %j as UTC', (input, expected) => {
    expect(iso(input)).toBe(expected);
  });

  it('reads epoch milliseconds and Dates', () => {
    expect(iso(1620375139695)).toBe('2021-05-07T08:12:19.695Z');
    expect(iso(0)).toBe('1970-01-01T00:00:00.000Z');
    const date = new Date('2024-03-01T10:15:30.123Z');
    expect(parseEnqueuedTime(date)).toBe(date);
  });

  it.each([
    ['2/31/2021 10:00:00 AM'],
    ['2021-02-31T10:00:00Z'],
    ['2/29/2023 10:00:00 AM'],
    ['2023-02-29T00:00:00Z'],
    ['13/1/2021 10:00:00 AM'],
    ['1/1/2021 0:00:00 AM'],
    ['1/1/2021 13:00:00 PM'],
    ['1/1/2021 10:00:00'],
    ['2021-13-01T00:00:00Z'],
    ['2021-01-01T24:00:00Z'],
    ['2021-01-01T23:60:00Z'],
    ['2021-01-01T23:59:60Z'],
    ['2021-01-00T00:00:00Z'],
    ['2021-01-01'],
    ['yesterday'],
    [''],
    ['2021-01-01X00:00:00Z'],
    ['0001-01-01T00:00:00.0000000'],
    ['1620375139695'],
  ])('rejects %j', (input) => {
    expect(parseEnqueuedTime(input)).toBeNull();
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY], [1e20], [-1e20], [new Date(Number.NaN)], [null], [undefined], [{}], [true]])(
    'rejects %j',
    (input) => {
      expect(parseEnqueuedTime(input)).toBeNull();
    },
  );

  it('keeps years before 100 as written', () => {
    expect(iso('0050-06-15T12:00:00Z')).toBe('0050-06-15T12:00:00.000Z');
    expect(iso('0001-01-01T00:00:01Z')).toBe('0001-01-01T00:00:01.000Z');
  });

  it('does not read the US form in local time', () => {
    // Date.parse would apply the machine's time zone; the result must not depend on it.
    expect(iso('3/10/2024 2:30:00 AM')).toBe('2024-03-10T02:30:00.000Z');
  });

  it("reads IoT Hub's 28- and 24-character forms exactly as the general ISO parser does, valid or not", () => {
    const pad = (n: number, width: number): string => String(n).padStart(width, '0');
    const field = (max: number): fc.Arbitrary<number> => fc.oneof(fc.integer({ min: 0, max }), fc.constantFrom(0, max));
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 1960, max: 2500 }), fc.constantFrom(1970, 2000, 2100, 2400)),
        field(13),
        field(32),
        field(24),
        field(60),
        field(60),
        fc.integer({ min: 0, max: 9_999_999 }),
        fc.constantFrom(7, 3),
        (y, mo, d, h, mi, s, fraction, digits) => {
          const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(fraction, 7).slice(0, digits)}Z`;
          // A leading blank keeps the same text off the fast path.
          expect(parseEnqueuedTime(text)?.getTime() ?? null).toBe(parseEnqueuedTime(` ${text}`)?.getTime() ?? null);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('reads runs of times in the same minute (valid or not) as the general parser does', () => {
    // The fast path remembers the last valid minute; runs sharing a minute, and invalid minutes among them, must
    // not change any answer.
    const minutes = ['2024-03-01T10:15', '2024-02-29T23:59', '2023-02-29T10:00', '2024-13-01T10:15', '2024-03-01T24:00', '1969-12-31T23:59'];
    const time = fc
      .tuple(fc.constantFrom(...minutes), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 9_999_999 }), fc.constantFrom(7, 3))
      .map(([minute, s, fraction, digits]) => `${minute}:${String(s).padStart(2, '0')}.${String(fraction).padStart(7, '0').slice(0, digits)}Z`);
    fc.assert(
      fc.property(fc.array(time, { minLength: 1, maxLength: 20 }), (texts) => {
        for (const text of texts) {
          expect(parseEnqueuedTime(text)?.getTime() ?? null).toBe(parseEnqueuedTime(` ${text}`)?.getTime() ?? null);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with Date for every ISO instant it is given', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (date) => {
        expect(parseEnqueuedTime(date.toISOString())?.getTime()).toBe(date.getTime());
      }),
    );
  });
});

describe('property lookups', () => {
  it('never takes a system field from a polluted Object.prototype', () => {
    const key = 'iothub-connection-device-id';
    Object.defineProperty(Object.prototype, key, { value: 'polluted', enumerable: true, configurable: true, writable: true });
    try {
      expect(systemFields({ 'message-id': 'm1' })).toEqual({ messageId: 'm1' });
      expect(systemFields({ 'message-id': 'm1', [key]: 'd1' })).toEqual({ messageId: 'm1', deviceId: 'd1' });
    } finally {
      delete (Object.prototype as Record<string, unknown>)[key];
    }
    expect(systemFields({ 'message-id': 'm2' })).toEqual({ messageId: 'm2' });
  });

  const sys = { 'iothub-connection-device-id': 'dev-1', 'Content-Type': 'application/json', contentEncoding: 'utf-8', 'message-id': '' };

  it('finds the first alias present, ignoring case', () => {
    expect(lookupProperty(sys, ['content-type', 'contentType'])).toBe('application/json');
    expect(systemField(sys, 'deviceId')).toBe('dev-1');
    expect(systemField(sys, 'contentEncoding')).toBe('utf-8');
    expect(systemField({ connectionDeviceId: 'dev-2' }, 'deviceId')).toBe('dev-2');
  });

  it('treats empty values as absent', () => {
    expect(systemField(sys, 'messageId')).toBeUndefined();
    expect(systemField({ 'message-id': null }, 'messageId')).toBeUndefined();
  });
});

describe('toPropertyValue / toPropertyMap', () => {
  it('keeps scalars and turns everything else into strings', () => {
    expect(toPropertyValue('critical')).toBe('critical');
    expect(toPropertyValue(21.5)).toBe(21.5);
    expect(toPropertyValue(false)).toBe(false);
    expect(toPropertyValue(null)).toBeNull();
    expect(toPropertyValue(undefined)).toBeNull();
    expect(toPropertyValue(Number.NaN)).toBe('NaN');
    expect(toPropertyValue(2n ** 64n)).toBe('18446744073709551616');
    expect(toPropertyValue(new Date('2024-03-01T10:15:30.123Z'))).toBe('2024-03-01T10:15:30.123Z');
    expect(toPropertyValue(Buffer.from('abc'))).toBe('YWJj');
    expect(toPropertyValue({ scope: 'device' })).toBe('{"scope":"device"}');
    expect(toPropertyValue(['a', 1])).toBe('["a",1]');
  });

  it('builds maps without inheriting anything', () => {
    const parsed = JSON.parse('{"__proto__":"x","level":"critical","when":null}') as unknown;
    const map = toPropertyMap(parsed);
    expect(Object.keys(map)).toEqual(['__proto__', 'level', 'when']);
    expect(Object.getPrototypeOf(map)).toBe(Object.prototype);
    expect(map['__proto__']).toBe('x');
    expect(toPropertyMap(null)).toEqual({});
    expect(toPropertyMap('level=critical')).toEqual({});
    expect(toPropertyMap([1, 2])).toEqual({});
  });
});

describe('trigger metadata helpers', () => {
  it('reads the Node library spelling and the host spelling', () => {
    expect(metadataValue({ systemPropertiesArray: [1] }, 'systemPropertiesArray')).toEqual([1]);
    expect(metadataValue({ SystemPropertiesArray: [2] }, 'systemPropertiesArray')).toEqual([2]);
    expect(metadataValue({ toString: 1 }, 'hasOwnProperty')).toBeUndefined();
  });

  it('accepts integers as numbers or numeric strings only', () => {
    expect(toSafeInteger(42)).toBe(42);
    expect(toSafeInteger('42')).toBe(42);
    expect(toSafeInteger('')).toBeNull();
    expect(toSafeInteger('4.5')).toBeNull();
    expect(toSafeInteger(2 ** 60)).toBeNull();
    expect(toSafeInteger(null)).toBeNull();
  });
});

describe('toRoutedMessage', () => {
  const source = { kind: 'eventHub', partitionId: '0', sequenceNumber: 1, offset: '0' } as const;

  it('reads identity, time and declaration from the system properties', () => {
    const message = toRoutedMessage({
      systemProperties: {
        'iothub-connection-device-id': 'dev-1',
        'iothub-connection-module-id': 'mod',
        'message-id': 'm-1',
        'iothub-enqueuedtime': '2024-03-01T10:15:30.118Z',
        'content-type': 'application/json',
        'content-encoding': 'utf-8',
      },
      properties: { level: 'critical' },
      body: Buffer.from('{"t":1}'),
      enqueuedTimeFallbacks: ['2000-01-01T00:00:00Z'],
      source,
    });
    expect(message).toMatchObject({
      deviceId: 'dev-1',
      moduleId: 'mod',
      messageId: 'm-1',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      decoded: { kind: 'json', value: { t: 1 }, decodedFrom: { declared: true } },
    });
    expect(message.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.118Z');
  });

  it('falls back through the enqueued-time candidates and leaves absent fields out', () => {
    const message = toRoutedMessage({
      systemProperties: {},
      properties: {},
      body: new Uint8Array(0),
      enqueuedTimeFallbacks: [undefined, 'not a time', '5/7/2021 8:12:19 AM'],
      source,
    });
    expect(message.deviceId).toBeNull();
    expect(message.enqueuedTime?.toISOString()).toBe('2021-05-07T08:12:19.000Z');
    expect(Object.keys(message)).not.toContain('messageId');
    expect(Object.keys(message)).not.toContain('contentType');
  });

  it('uses a decoded view the transport already produced instead of parsing again', () => {
    const decoded: DecodedBody = {
      kind: 'json',
      value: { t: 1 },
      decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: true },
    };
    const message = toRoutedMessage({ systemProperties: {}, properties: {}, body: Buffer.from('{"t":1}'), decoded, source });
    expect(message.decoded).toBe(decoded);
  });
});

describe('storedRecordMessage (what the archive readers build per record)', () => {
  it('is toRoutedMessage with EnqueuedTimeUtc as the one fallback, for any system properties', () => {
    const source = { kind: 'blob', blobName: 'b', index: 3, format: 'avro-iothub', sequenceNumber: null, offset: null } as const;
    const time = fc.constantFrom('2024-03-01T10:15:30.1180000Z', '5/7/2021 8:12:19 AM', 'not a time', '', undefined, 1620375139695);
    const key = fc.constantFrom('enqueuedTime', 'iothub-enqueuedtime', 'connectionDeviceId', 'messageId', 'contentType', 'contentEncoding', 'other');
    const value = fc.oneof(time, fc.constantFrom('application/json', 'utf-8', 'dev-1', 'm-1'));
    fc.assert(
      fc.property(fc.dictionary(key, value.filter((v) => v !== undefined)), time, fc.constantFrom('{"t":1}', 'text', ''), (sys, fallback, body) => {
        const systemProperties = sys as Record<string, string | number>;
        const bytes = Buffer.from(body);
        expect(storedRecordMessage(systemProperties, { level: 'critical' }, bytes, fallback, source)).toEqual(
          toRoutedMessage({ systemProperties, properties: { level: 'critical' }, body: bytes, enqueuedTimeFallbacks: [fallback], source }),
        );
      }),
      { numRuns: 500 },
    );
  });
});

describe('systemFields (the one-pass lookup every decoder uses)', () => {
  it('finds what systemField finds for each field, whatever the key case', () => {
    const aliases = ['iothub-connection-device-id', 'connectionDeviceId', 'message-id', 'messageId', 'iothub-enqueuedtime', 'enqueuedTime', 'content-type', 'contentType', 'content-encoding', 'contentEncoding', 'iothub-connection-module-id', 'x-opt-offset'];
    const key = fc.constantFrom(...aliases).chain((name) =>
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((upper) =>
        [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''),
      ),
    );
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ minLength: 1, maxLength: 8 }), { maxKeys: 8 }), (properties) => {
        const fields = systemFields(properties);
        for (const field of ['deviceId', 'moduleId', 'messageId', 'enqueuedTime', 'contentType', 'contentEncoding'] as const) {
          expect(fields[field]).toBe(systemField(properties, field));
        }
      }),
      { numRuns: 2000 },
    );
  });

  /** The fields' aliases (data); a reference implementation of the scan's choice among them follows. */
  const ALIASES = SYSTEM_FIELD_ALIASES;

  /** Keys holding nothing (null, '') skipped; exact spellings in alias order, then case variants; the first on a tie. */
  function firstAlias(properties: Record<string, PropertyValue>, aliases: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestRank = Infinity;
    for (const [key, value] of Object.entries(properties)) {
      if (value === null || value === '') continue;
      const exact = aliases.indexOf(key);
      const folded = aliases.findIndex((alias) => alias.toLowerCase() === key.toLowerCase());
      const rank = exact >= 0 ? exact : folded >= 0 ? aliases.length + folded : Infinity;
      if (rank < bestRank) {
        best = String(value);
        bestRank = rank;
      }
    }
    return best;
  }

  it('finds the same on maps that repeat the previous keys in order, whatever their values', () => {
    // Keys repeated at the same positions take the remembered aliases, as a stream's maps do; values decide anew.
    const names = ['iothub-connection-device-id', 'connectionDeviceId', 'ConnectionDeviceId', 'x-opt-offset', 'message-id'];
    names.push('MessageId', 'content-type', 'iothub-content-type', 'Content-Type', 'contentEncoding', 'iothub-enqueuedtime');
    const value = fc.oneof(fc.constantFrom(null, '', 'a', 'b'), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(fc.uniqueArray(fc.constantFrom(...names), { maxLength: 8 }), fc.array(fc.array(value)), (keys, rows) => {
        for (const row of rows) {
          const properties = Object.fromEntries(keys.map((key, i) => [key, row[i] ?? null]));
          const fields = systemFields(properties);
          for (const [field, aliases] of Object.entries(ALIASES)) {
            expect(fields[field as keyof typeof fields]).toBe(firstAlias(properties, aliases));
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
