import { describe, expect, it } from 'vitest';
import { parseTelemetryQuery } from '../../src/lib/archive/telemetryQuery.js';

const limits = { maxQueryRangeHours: 24, maxPageSize: 500 };
const parse = (query: string) => parseTelemetryQuery(new URLSearchParams(query), limits);
const RANGE = 'from=2024-05-01T12:00:00Z&to=2024-05-01T13:00:00Z';

describe('parseTelemetryQuery', () => {
  it('accepts a full query and applies defaults', () => {
    const result = parse(`${RANGE}&deviceId=a&deviceId=b,c&level=storage&property=customerID%3Dx&where=temperature%3E30&format=csv&limit=50&code=key`);
    expect(result).toEqual({
      value: {
        filter: {
          from: new Date('2024-05-01T12:00:00Z'),
          to: new Date('2024-05-01T13:00:00Z'),
          deviceIds: ['a', 'b,c'],
          level: 'storage',
          properties: [{ key: 'customerID', value: 'x' }],
          where: [{ path: ['temperature'], op: '>', value: '30' }],
        },
        format: 'csv',
        limit: 50,
        continuation: null,
      },
    });
    expect(parse(RANGE)).toMatchObject({ value: { format: 'json', limit: 500 } });
  });

  it('reports every problem at once', () => {
    const result = parse('from=yesterday&to=2024-05-01T13:00:00&format=xml&limit=0&where=temperature&property=nokey&levle=x&level=a&level=b');
    expect('errors' in result && result.errors).toEqual([
      expect.stringMatching(/^levle: unknown parameter/),
      'level: given 2 times; give it once',
      expect.stringMatching(/^from: "yesterday" is not an ISO 8601 time with a zone/),
      expect.stringMatching(/^to: "2024-05-01T13:00:00" is not an ISO 8601 time with a zone/),
      expect.stringMatching(/^property: "nokey" is not a property condition/),
      expect.stringMatching(/^where: "temperature" is not a body predicate/),
      expect.stringMatching(/^format: expected one of json, ndjson, csv/),
      expect.stringMatching(/^limit: expected a whole number from 1 to 500/),
    ]);
  });

  it('requires a range, in order, no longer than the maximum', () => {
    expect(parse('')).toEqual({ errors: [expect.stringMatching(/^from: required/), expect.stringMatching(/^to: required/)] });
    expect(parse('from=2024-05-01T13:00:00Z&to=2024-05-01T12:00:00Z')).toEqual({ errors: ['to: must be after from (the range is [from, to))'] });
    expect(parse('from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:01Z')).toEqual({
      errors: ['to: the range is longer than the maximum of 24 hours; split the query'],
    });
    expect(parse('from=2024-05-01T00:00:00%2B02:00&to=2024-05-02T00:00:00%2B02:00')).toHaveProperty('value');
  });

  it('limits the number of devices and conditions, and empty values', () => {
    const devices = Array.from({ length: 101 }, (_, i) => `deviceId=d${i}`).join('&');
    expect(parse(`${RANGE}&${devices}`)).toEqual({ errors: ['deviceId: at most 100 device ids per query'] });
    expect(parse(`${RANGE}&deviceId=&level=&continuation=`)).toEqual({
      errors: ['deviceId: empty device id', 'level: empty', 'continuation: empty'],
    });
  });

  it('names a mangled continuation token with the other problems; one of another query waits for a valid query', () => {
    expect(parse('format=xml&continuation=not-a-token')).toEqual({
      errors: [
        expect.stringMatching(/^from: required/),
        expect.stringMatching(/^to: required/),
        'format: expected one of json, ndjson, csv, got "xml"',
        'continuation: continuation is not a token this API issued (copy it unchanged from the previous page)',
      ],
    });
    // Well formed: whether it belongs to this query is only known once the query is valid.
    const wellFormed = Buffer.from(JSON.stringify({ v: 1, b: 'hub/0/2024/05/01/12/00', i: 3, f: '0123456789abcdef' })).toString('base64url');
    expect(parse(`format=xml&continuation=${wellFormed}`)).toEqual({ errors: [expect.stringMatching(/^from/), expect.stringMatching(/^to/), expect.stringMatching(/^format/)] });
  });
});
