import { describe, expect, it } from 'vitest';
import {
  DEFAULT_AGGREGATION_CONFIG,
  aggregationConfigOf,
  parseAggregationConfig,
  parseReportsContainer,
  parseWindowSize,
  withWindow,
} from '../../src/lib/aggregate/aggregationConfig.js';

function errors(raw: unknown): string[] {
  const result = parseAggregationConfig(raw);
  return 'errors' in result ? result.errors : [];
}

describe('parseAggregationConfig', () => {
  it('defaults to one-minute windows, every numeric field, normal level and ten minutes of lateness', () => {
    expect(parseAggregationConfig(undefined)).toEqual({ value: DEFAULT_AGGREGATION_CONFIG });
    expect(DEFAULT_AGGREGATION_CONFIG).toEqual({
      windows: [{ label: '1m', ms: 60_000 }],
      fields: null,
      allowedLatenessMs: 600_000,
      aggregateLevels: ['normal'],
      idlePartitionMs: 60_000,
    });
  });

  it('reads the documented section, sorting windows and canonicalising their labels', () => {
    const result = parseAggregationConfig({
      windows: ['60m', '30s', '6h'],
      fields: ['temperature', 'humidity'],
      allowedLatenessSeconds: 120,
      levels: { aggregate: ['normal', 'storage'] },
      idlePartitionSeconds: 30,
    });
    expect(result).toEqual({
      value: {
        windows: [
          { label: '30s', ms: 30_000 },
          { label: '1h', ms: 3_600_000 },
          { label: '6h', ms: 21_600_000 },
        ],
        fields: ['humidity', 'temperature'],
        allowedLatenessMs: 120_000,
        aggregateLevels: ['normal', 'storage'],
        idlePartitionMs: 30_000,
      },
    });
  });

  it('fills what a section leaves out with the defaults', () => {
    expect(parseAggregationConfig({ windows: ['1m', '1h'] })).toEqual({
      value: { ...DEFAULT_AGGREGATION_CONFIG, windows: [{ label: '1m', ms: 60_000 }, { label: '1h', ms: 3_600_000 }] },
    });
    expect(parseAggregationConfig({})).toEqual({ value: DEFAULT_AGGREGATION_CONFIG });
  });

  it('reports every problem at once, each with its path', () => {
    expect(
      errors({
        windows: ['1m', '7m', 'soon', '60s'],
        fields: [],
        allowedLatenessSeconds: -1,
        levels: { aggregate: 'normal', other: 1 },
        extra: true,
      }),
    ).toEqual([
      'aggregation.extra: unknown setting (allowed: windows, fields, allowedLatenessSeconds, levels, idlePartitionSeconds)',
      'aggregation.windows[1]: "7m" does not divide a day, so its windows would not align to UTC midnight',
      'aggregation.windows[2]: "soon" is not a window size (a number and s, m, h or d: "1m", "1h")',
      'aggregation.windows[3]: "60s" is the same size as another entry',
      'aggregation.fields: expected a non-empty array of strings, got an array',
      'aggregation.allowedLatenessSeconds: expected a whole number of seconds from 0 to 604800, got number -1',
      'aggregation.levels.other: unknown setting (allowed: aggregate)',
      'aggregation.levels.aggregate: expected a non-empty array of strings, got "normal"',
    ]);
  });

  it('keeps identity sets bounded: the base window is at most 15 minutes and a roll-up spans at most 1440 of them', () => {
    expect(errors({ windows: ['1h'] })).toEqual([
      'aggregation.windows: the smallest window (1h) holds every counted message id and must be at most 15m',
    ]);
    expect(errors({ windows: ['10s', '1d'] })).toEqual([
      'aggregation.windows: 1d spans 8640 windows of 10s; at most 1440 (add a larger smallest window)',
    ]);
    expect(errors({ windows: ['2m', '5m'] })).toEqual(['aggregation.windows: 5m is not a whole multiple of the smallest window 2m']);
    expect(errors({ windows: ['1m', '1d'] })).toEqual([]);
  });

  it('is found on a loaded routing config, defaults otherwise', () => {
    const parsed = parseAggregationConfig({ windows: ['1m', '1h'] });
    if ('errors' in parsed) throw new Error('invalid');
    expect(aggregationConfigOf({ aggregation: parsed.value })).toBe(parsed.value);
    expect(aggregationConfigOf({})).toBe(DEFAULT_AGGREGATION_CONFIG);
  });
});

describe('window sizes', () => {
  it('parses and canonicalises', () => {
    expect(parseWindowSize('90s')).toEqual({ label: '90s', ms: 90_000 });
    expect(parseWindowSize('120s')).toEqual({ label: '2m', ms: 120_000 });
    expect(parseWindowSize('24h')).toEqual({ label: '1d', ms: 86_400_000 });
    for (const bad of ['', '0m', '1w', '-1m', '1.5h', 'm']) expect(parseWindowSize(bad)).toBeNull();
  });

  it('adds a size for the CLI only when it composes with the configured base', () => {
    expect(withWindow(DEFAULT_AGGREGATION_CONFIG, '1h')).toMatchObject({ value: { windows: [{ label: '1m' }, { label: '1h' }] } });
    expect(withWindow(DEFAULT_AGGREGATION_CONFIG, '1m')).toEqual({ value: DEFAULT_AGGREGATION_CONFIG });
    expect(withWindow(DEFAULT_AGGREGATION_CONFIG, '90s')).toEqual({ errors: ['windows: 90s is not a whole multiple of the smallest window 1m'] });
  });
});

describe('REPORTS_CONTAINER', () => {
  it('defaults to reports and must be a valid container name', () => {
    expect(parseReportsContainer({})).toEqual({ value: 'reports' });
    expect(parseReportsContainer({ REPORTS_CONTAINER: ' telemetry-reports ' })).toEqual({ value: 'telemetry-reports' });
    expect(parseReportsContainer({ REPORTS_CONTAINER: 'Reports_1' })).toEqual({
      errors: ['REPORTS_CONTAINER: "Reports_1" is not a valid container name (3-63 lower-case letters, digits and single hyphens)'],
    });
  });
});
