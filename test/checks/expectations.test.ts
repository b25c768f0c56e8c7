import { describe, expect, it } from 'vitest';
import { defaultChecksConfig, parseChecksConfig, type ChecksConfig } from '../../src/lib/checks/expectations.js';
import { ENDPOINT_NAMES, REASON_CODES, REASONS, moreSevere } from '../../src/lib/checks/reasons.js';

function valueOf(raw: unknown): ChecksConfig {
  const parsed = parseChecksConfig(raw);
  if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
  return parsed.value;
}

function errorsOf(raw: unknown, path?: string): string[] {
  const parsed = parseChecksConfig(raw, path);
  if ('value' in parsed) throw new Error('expected errors');
  return parsed.errors;
}

describe('reasons', () => {
  it('covers every code the issue names, each with a hint and an outcome on every endpoint', () => {
    expect([...REASON_CODES].sort()).toEqual(
      [
        'EnrichmentMissing',
        'EnrichmentUnresolved',
        'EnrichmentMismatch',
        'EnrichmentKeyInvalid',
        'BodyBase64',
        'BodyNotJson',
        'BodyEncodingUnsupported',
        'LevelMissing',
        'DeviceIdMissing',
        'MessageTooLarge',
        'EnqueuedTimeInvalid',
      ].sort(),
    );
    for (const code of REASON_CODES) {
      expect(REASONS[code].hint.length, code).toBeGreaterThan(40);
      for (const endpoint of ENDPOINT_NAMES) expect(['accept', 'warn', 'quarantine']).toContain(REASONS[code].defaultOutcome[endpoint]);
    }
  });

  it('gives BodyBase64 the device-side fix as its hint', () => {
    expect(REASONS.BodyBase64.hint).toContain('contentType=application/json');
    expect(REASONS.BodyBase64.hint).toContain('contentEncoding=UTF-8');
  });

  it('orders outcomes accept < warn < quarantine', () => {
    expect(moreSevere('accept', 'warn')).toBe('warn');
    expect(moreSevere('quarantine', 'warn')).toBe('quarantine');
    expect(moreSevere('accept', 'accept')).toBe('accept');
  });
});

describe('parseChecksConfig', () => {
  it('gives the defaults for an absent or empty section', () => {
    for (const raw of [undefined, {}, { endpoints: {} }]) {
      const config = valueOf(raw);
      expect(config.unresolvedPlaceholders).toBe(true);
      expect(config.endpoints.events).toMatchObject({ enrichments: [], requireLevel: false, maxBodyBytes: 262_144 });
      expect(config.endpoints.criticalQueue.requireLevel).toBe(true);
      expect(config.endpoints.archive.requireLevel).toBe(true);
      expect(config.endpoints.events.outcomes.BodyNotJson).toBe('quarantine');
      expect(config.endpoints.criticalQueue.outcomes.BodyNotJson).toBe('warn');
    }
    expect(defaultChecksConfig()).toEqual(valueOf(undefined));
  });

  it('reads enrichment rules, compiling patterns once', () => {
    const config = valueOf({
      unresolvedPlaceholders: false,
      endpoints: {
        criticalQueue: {
          enrichments: [
            { key: 'customerID', equals: '6ce345b8-1e4a-411e-9398-d34587459a3a' },
            { key: 'DeviceLocation', oneOf: ['Lyon', 'Paris'] },
            { key: 'iothubname', pattern: '^Contoso', required: false },
            { key: 'site.code' },
            { key: 'rack', equals: 7 },
          ],
          outcomes: { EnrichmentMissing: 'quarantine', BodyBase64: 'accept' },
          requireLevel: false,
          maxBodyBytes: 1024,
        },
      },
    });
    expect(config.unresolvedPlaceholders).toBe(false);
    const critical = config.endpoints.criticalQueue;
    expect(critical.enrichments.map((e) => [e.key, e.required, e.rule.kind])).toEqual([
      ['customerID', true, 'equals'],
      ['DeviceLocation', true, 'oneOf'],
      ['iothubname', false, 'pattern'],
      ['site.code', true, 'present'],
      ['rack', true, 'equals'],
    ]);
    const pattern = critical.enrichments[2]!.rule;
    expect(pattern.kind === 'pattern' && pattern.regex).toBeInstanceOf(RegExp);
    expect(critical.enrichments[4]!.rule).toEqual({ kind: 'equals', value: '7' });
    expect(critical.outcomes.EnrichmentMissing).toBe('quarantine');
    expect(critical.outcomes.BodyBase64).toBe('accept');
    expect(critical.outcomes.DeviceIdMissing).toBe('quarantine');
    expect(critical).toMatchObject({ requireLevel: false, maxBodyBytes: 1024 });
    // Overrides stay on their endpoint.
    expect(config.endpoints.archive.outcomes.EnrichmentMissing).toBe('warn');
  });

  it('reports every problem in one result, each with its JSON path', () => {
    const errors = errorsOf({
      unresolvedPlaceholders: 'yes',
      endpoint: {},
      endpoints: {
        critical: {},
        criticalQueue: {
          enrichments: [
            { key: 'customerID', equals: 'a' },
            { key: 'DeviceLocation', pattern: '(unclosed' },
            { key: 'device location' },
            { key: 'CUSTOMERID' },
            { key: 'x', equals: 'a', oneOf: ['a'] },
            { key: 'y', oneOf: [] },
            { key: 'z', required: 'no', colour: 'red' },
            'customerID',
          ],
          outcomes: { BodyBase46: 'warn', Unknown: 'warn', LevelMissing: 'ignore' },
          requireLevel: 'true',
          maxBodyBytes: -1,
        },
        archive: { enrichment: [] },
        events: 3,
      },
    });
    const expected = [
      'checks.unresolvedPlaceholders: expected true or false, got "yes"',
      'checks.endpoint: unknown setting; did you mean endpoints?',
      'checks.endpoints.critical: unknown setting; expected one of events, criticalQueue, archive',
      'checks.endpoints.criticalQueue.enrichments[1].pattern: invalid regular expression: /(unclosed/: Unterminated group',
      'checks.endpoints.criticalQueue.enrichments[2].key: "device location" is not a key IoT Hub accepts',
      'checks.endpoints.criticalQueue.enrichments[3].key: repeats enrichments[0] (keys are compared ignoring case',
      'checks.endpoints.criticalQueue.enrichments[4]: give at most one of equals, pattern and oneOf (found equals, oneOf)',
      'checks.endpoints.criticalQueue.enrichments[5].oneOf: expected a non-empty array of strings, got an array',
      'checks.endpoints.criticalQueue.enrichments[6].colour: unknown setting; expected one of key, equals, pattern, oneOf, required',
      'checks.endpoints.criticalQueue.enrichments[6].required: expected true or false, got "no"',
      'checks.endpoints.criticalQueue.enrichments[7]: expected an object',
      'checks.endpoints.criticalQueue.outcomes.BodyBase46: unknown reason code; did you mean BodyBase64?',
      'checks.endpoints.criticalQueue.outcomes.Unknown: unknown reason code; expected one of EnrichmentMissing,',
      'checks.endpoints.criticalQueue.outcomes.LevelMissing: expected one of accept, warn, quarantine, got "ignore"',
      'checks.endpoints.criticalQueue.requireLevel: expected true or false, got "true"',
      'checks.endpoints.criticalQueue.maxBodyBytes: expected a positive whole number of bytes, got number -1',
      'checks.endpoints.archive.enrichment: unknown setting; did you mean enrichments?',
      'checks.endpoints.events: expected an object, got number 3',
    ];
    for (const start of expected) {
      expect(errors.some((e) => e.startsWith(start)), `missing: ${start}\nin:\n${errors.join('\n')}`).toBe(true);
    }
    expect(errors).toHaveLength(expected.length);
  });

  it('prefixes paths with the given path and rejects a section that is not an object', () => {
    expect(errorsOf([], 'routing.checks')).toEqual(['routing.checks: expected an object, got an array']);
    expect(errorsOf({ endpoints: [] })).toEqual([
      'checks.endpoints: expected an object keyed by events, criticalQueue, archive, got an array',
    ]);
    expect(errorsOf({ endpoints: { archive: { maxBodyBytes: 1.5 } } }, 'x')).toEqual([
      'x.endpoints.archive.maxBodyBytes: expected a positive whole number of bytes, got number 1.5',
    ]);
  });

  it('rejects enrichment keys IoT Hub would not accept, including over-long ones', () => {
    const errors = errorsOf({
      endpoints: { archive: { enrichments: [{ key: 'a'.repeat(65) }, { key: '' }, { key: 'ok-key_1.2' }] } },
    });
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^checks\.endpoints\.archive\.enrichments\[0\]\.key: "a+" is not a key IoT Hub accepts/);
    expect(errors[1]).toBe('checks.endpoints.archive.enrichments[1].key: expected a non-empty string, got ""');
  });
});
