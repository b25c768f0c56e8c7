import { describe, expect, it } from 'vitest';
import {
  compileFilter,
  parseBodyPredicate,
  parsePropertyEquals,
  queryFingerprint,
  type ArchiveFilter,
  type BodyPredicate,
} from '../../src/lib/archive/filter.js';
import type { JsonValue, RoutedMessage } from '../../src/lib/message/RoutedMessage.js';

function message(over: Partial<RoutedMessage> & { json?: JsonValue; text?: string } = {}): RoutedMessage {
  const { json, text, ...rest } = over;
  return {
    deviceId: 'dev-1',
    enqueuedTime: new Date('2024-05-01T12:00:30Z'),
    properties: { Level: 'storage', customerID: 'c-1' },
    systemProperties: {},
    body: new Uint8Array(0),
    decoded:
      text !== undefined
        ? { kind: 'text', value: text, decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: false } }
        : { kind: 'json', value: json ?? { temperature: 21.5, status: { code: 200 }, on: true, note: null, name: 'b', list: [1, 2] }, decodedFrom: { base64: null, charset: 'utf-8', bom: false, declared: true } },
    source: { kind: 'blob', blobName: 'b', index: 0, format: 'avro-iothub', sequenceNumber: null, offset: null },
    ...rest,
  };
}

function where(text: string): BodyPredicate {
  const parsed = parseBodyPredicate(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed.value;
}

const matches = (filter: ArchiveFilter, m = message()) => compileFilter(filter).matches(m);

describe('body predicates', () => {
  it('parses every operator and IoT Hub style $body paths', () => {
    expect(where('temperature>=20')).toEqual({ path: ['temperature'], op: '>=', value: '20' });
    expect(where('$body.status.code!=500')).toEqual({ path: ['status', 'code'], op: '!=', value: '500' });
    expect(where('name=a=b')).toEqual({ path: ['name'], op: '=', value: 'a=b' });
    expect(where("name=''")).toEqual({ path: ['name'], op: '=', value: '', quoted: true });
    expect(where("$body.pointInfo = 'This is a storage message.'")).toEqual({ path: ['pointInfo'], op: '=', value: 'This is a storage message.', quoted: true });
    expect(where('pointInfo = This is a storage message. ')).toEqual({ path: ['pointInfo'], op: '=', value: 'This is a storage message.' });
    expect(where('code="007"')).toEqual({ path: ['code'], op: '=', value: '007', quoted: true });
    // What would silently match nothing is refused, saying why.
    for (const [text, why] of [
      ['name=', 'there is no value after ='],
      ['temperature>', 'there is no value after >'],
      ['temperature>>30', 'starts with an operator'],
      ['temperature=>30', 'starts with an operator'],
      ['temperature>abc', "quote it: 'abc'"],
    ] as const) {
      expect(parseBodyPredicate(text)).toEqual({ error: expect.stringContaining(why) as unknown as string });
    }
    expect(parseBodyPredicate('temperature')).toHaveProperty('error');
    expect(parseBodyPredicate('a..b=1')).toHaveProperty('error');
    expect(parseBodyPredicate('=1')).toHaveProperty('error');
  });

  it('compares numbers numerically, strings as strings, booleans and null by their JSON spelling', () => {
    expect(matches({ where: [where('temperature=21.50')] })).toBe(true);
    expect(matches({ where: [where('temperature>21')] })).toBe(true);
    expect(matches({ where: [where('temperature<21')] })).toBe(false);
    expect(matches({ where: [where('temperature=warm')] })).toBe(false);
    expect(matches({ where: [where('status.code=200')] })).toBe(true);
    expect(matches({ where: [where("name>'a'")] })).toBe(true);
    // Quoted, a number is text: it never equals a JSON number.
    expect(matches({ where: [where("temperature='21.5'")] })).toBe(false);
    expect(matches({ where: [where('on=true')] })).toBe(true);
    expect(matches({ where: [where('note=null')] })).toBe(true);
    expect(matches({ where: [where('list.1=2')] })).toBe(true);
  });

  it('fails every operator, != included, on a missing field, an object, or a body that is not JSON', () => {
    expect(matches({ where: [where('missing!=1')] })).toBe(false);
    expect(matches({ where: [where('status!=1')] })).toBe(false);
    expect(matches({ where: [where('temperature!=1')] }, message({ text: 'hello' }))).toBe(false);
  });
});

describe('compileFilter', () => {
  it('selects everything when empty', () => {
    const filter = compileFilter({});
    expect(filter.all).toBe(true);
    expect(filter.matches(message({ deviceId: null, enqueuedTime: null }))).toBe(true);
  });

  it('treats the range as [from, to) and never places an undated record in one', () => {
    const from = new Date('2024-05-01T12:00:30Z');
    const to = new Date('2024-05-01T12:01:00Z');
    expect(matches({ from, to })).toBe(true);
    expect(matches({ from, to }, message({ enqueuedTime: to }))).toBe(false);
    expect(matches({ from }, message({ enqueuedTime: null }))).toBe(false);
  });

  it('matches any listed device, the level and properties (keys ignoring case, values exactly), all together', () => {
    expect(matches({ deviceIds: ['x', 'dev-1'] })).toBe(true);
    expect(matches({ deviceIds: ['x'] })).toBe(false);
    expect(matches({ level: 'storage' })).toBe(true);
    expect(matches({ level: 'Storage' })).toBe(false);
    expect(matches({ properties: [{ key: 'CUSTOMERID', value: 'c-1' }] })).toBe(true);
    expect(matches({ properties: [{ key: 'customerID', value: 'C-1' }] })).toBe(false);
    expect(matches({ level: 'storage', deviceIds: ['dev-1'], where: [where('temperature>30')] })).toBe(false);
  });

  it('parses property conditions', () => {
    expect(parsePropertyEquals('a=b=c')).toEqual({ value: { key: 'a', value: 'b=c' } });
    expect(parsePropertyEquals('=x')).toHaveProperty('error');
  });
});

describe('queryFingerprint', () => {
  it('is the same for the same query written differently and differs for another query', () => {
    const a = queryFingerprint('c', 'f', { deviceIds: ['b', 'a'], where: [where('x=1'), where('y=2')] });
    const b = queryFingerprint('c', 'f', { deviceIds: ['a', 'b', 'a'], where: [where('y=2'), where('x=1')] });
    expect(a).toBe(b);
    expect(queryFingerprint('c', 'f', { deviceIds: ['a'] })).not.toBe(a);
    expect(queryFingerprint('other', 'f', { deviceIds: ['b', 'a'], where: [where('x=1'), where('y=2')] })).not.toBe(a);
  });
});
