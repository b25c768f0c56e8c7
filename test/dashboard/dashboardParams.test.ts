import { describe, expect, it } from 'vitest';
import { parseAggregationConfig, type AggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { parseReportsQuery } from '../../src/lib/aggregate/reportsQuery.js';
import {
  defaultRangeFor,
  MAX_DEVICE_FILTER,
  parseDashboardQuery,
  RANGE_PRESETS,
  type DashboardQuery,
} from '../../src/lib/dashboard/dashboardParams.js';

function config(windows: string[]): AggregationConfig {
  const parsed = parseAggregationConfig({ windows });
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

const ONE_MINUTE = config(['1m', '15m', '1h']);
const NOW = new Date('2024-03-01T10:30:20Z');

function parse(query: string, aggregation = ONE_MINUTE): { value: DashboardQuery } | { errors: string[] } {
  return parseDashboardQuery(new URLSearchParams(query), aggregation, NOW);
}

function ok(query: string, aggregation = ONE_MINUTE): DashboardQuery {
  const parsed = parse(query, aggregation);
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

function errors(query: string): string[] {
  const parsed = parse(query);
  if (!('errors' in parsed)) throw new Error(`expected errors for ${query}`);
  return parsed.errors;
}

describe('parseDashboardQuery', () => {
  it('defaults to the smallest window over the range that shows about sixty of them, ending now', () => {
    expect(ok('')).toEqual({
      window: { label: '1m', ms: 60_000 },
      fromMs: NOW.getTime() - 3_600_000,
      toMs: NOW.getTime(),
      range: '1h',
      deviceIds: [],
    });
  });

  it('takes a configured window in any spelling, a range back from now, and the function key untouched', () => {
    expect(ok('window=60m&range=24h&code=abc')).toMatchObject({ window: { label: '1h' }, range: '24h', fromMs: NOW.getTime() - 86_400_000 });
  });

  it('takes an explicit from/to instead of a range, and from alone runs to now', () => {
    expect(ok('from=2024-03-01T09:00:00Z&to=2024-03-01T10:00:00%2B00:00')).toMatchObject({
      fromMs: Date.parse('2024-03-01T09:00:00Z'),
      toMs: Date.parse('2024-03-01T10:00:00Z'),
      range: null,
    });
    expect(ok('from=2024-03-01T10:00:00Z')).toMatchObject({ fromMs: Date.parse('2024-03-01T10:00:00Z'), toMs: NOW.getTime(), range: null });
  });

  it('collects repeated device ids once each, in the order given', () => {
    expect(ok("deviceId=b&deviceId=a&deviceId=b&deviceId=valve(3)'%3D&deviceId=__proto__").deviceIds).toEqual(['b', 'a', "valve(3)'=", '__proto__']);
  });

  it('names the deviceId it refused, and says how to send a "+" that the URL turned into a space', () => {
    // IoT Hub device ids may hold "+"; written as is in a query string it arrives as a space.
    expect(errors('deviceId=pump+7')).toEqual([
      expect.stringMatching(/^deviceId: "pump 7" is not an IoT Hub device id \(.*\); a "\+" in a URL reads as a space: write it as %2B$/),
    ]);
    expect(ok(`deviceId=${encodeURIComponent('pump+7')}`).deviceIds).toEqual(['pump+7']);
  });

  it('accepts and refuses the device ids GET /api/reports does, with its words', () => {
    const ids = ['pump+7', 'pump 7', "valve(3)'=", '__proto__', 'x'.repeat(128), 'x'.repeat(129), 'a/b', 'pümpe', 'tab\there', ''];
    const range = 'from=2024-03-01T10:00:00Z&to=2024-03-01T10:30:00Z';
    for (const id of ids) {
      const query = `${range}&deviceId=${encodeURIComponent(id)}`;
      const reports = parseReportsQuery(new URLSearchParams(query), ONE_MINUTE, NOW);
      const dashboard = parse(query);
      expect('errors' in dashboard ? dashboard.errors : [], id).toEqual('errors' in reports ? reports.errors : []);
    }
  });

  it('reports every problem at once', () => {
    expect(errors('window=7m&range=soon&deviceId=has%20space&deviceId=' + 'x'.repeat(129) + '&window=1m&top=5')).toEqual([
      expect.stringMatching(/^deviceId: "has space" is not an IoT Hub device id \(1-128 characters/),
      expect.stringMatching(/^deviceId: "x{129}" is not an IoT Hub device id/),
      'window: given more than once',
      'top: unknown parameter (allowed: window, range, from, to, deviceId)',
      'window: "7m" is not a configured window (1m, 15m, 1h)',
      'range: "soon" is not a duration (a number and s, m, h or d: "1h", "7d")',
    ]);
  });

  it('bounds the devices, the range and the windows per chart', () => {
    const many = Array.from({ length: MAX_DEVICE_FILTER + 1 }, (_, i) => `deviceId=d${i}`).join('&');
    expect(errors(many)).toEqual([`deviceId: at most ${MAX_DEVICE_FILTER} devices at once, got ${MAX_DEVICE_FILTER + 1}`]);
    expect(errors('range=32d&window=1h')).toEqual(['range: at most 31 days, got 32 days']);
    // Just over the bound does not read as the bound itself (it was "got 31.0").
    expect(errors('from=2024-03-01T00:00:00Z&to=2024-04-01T00:00:01Z&window=1h')).toEqual(['range: at most 31 days, got 31 days and 1 s']);
    expect(errors('range=25h')).toEqual(['range: 1500 windows of 1m; at most 1440 per chart: choose a larger window or a shorter range']);
    expect(ok('range=24h').range).toBe('24h');
    expect(errors('range=1h&from=2024-03-01')).toEqual(['range: give either range (a duration back from now) or from/to, not both']);
    expect(errors('from=2024-03-01T11:00:00Z&to=2024-03-01T10:00:00Z')).toEqual(['to: must be after from (2024-03-01T11:00:00.000Z)']);
    expect(errors('from=yesterday')).toEqual([
      'from: "yesterday" is not an ISO 8601 time with a zone (2024-03-01T10:00:00Z) or a date (2024-03-01)',
    ]);
  });
});

describe('defaultRangeFor', () => {
  it('picks the preset closest to sixty windows that a chart can hold', () => {
    const pick = (label: string) => defaultRangeFor(config([label]).windows[0]!).value;
    expect(pick('1m')).toBe('1h');
    expect(pick('5m')).toBe('6h');
    expect(pick('15m')).toBe('24h');
    expect(pick('10s')).toBe('15m');
  });

  it('never picks a preset shorter than the window', () => {
    const day = { label: '1d', ms: 86_400_000 };
    expect(defaultRangeFor(day).value).toBe('7d');
    expect(RANGE_PRESETS.map((p) => p.value)).toEqual(['15m', '1h', '6h', '24h', '7d']);
  });
});
