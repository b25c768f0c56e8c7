import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkMessage, isUnresolvedPlaceholder, type CheckResult } from '../../src/lib/checks/checks.js';
import { defaultChecksConfig, parseChecksConfig, type ChecksConfig } from '../../src/lib/checks/expectations.js';
import { BODY_BASE64_NOT_JSON_HINT, REASON_CODES, REASONS, type EndpointName, type ReasonCode } from '../../src/lib/checks/reasons.js';
import type { BodyDecoding, DecodedBody, PropertyValue, RoutedMessage } from '../../src/lib/message/RoutedMessage.js';

const NOW = new Date('2024-05-01T12:00:00Z');
const JSON_BODY = '{"temperature":21.5}';

function decoding(overrides: Partial<BodyDecoding> = {}): BodyDecoding {
  return { base64: null, charset: 'utf-8', bom: false, declared: true, ...overrides };
}

function message(overrides: Partial<RoutedMessage> = {}): RoutedMessage {
  return {
    deviceId: 'thermostat-1',
    enqueuedTime: new Date('2024-05-01T10:00:00Z'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    properties: { level: 'critical' },
    systemProperties: {},
    body: new TextEncoder().encode(JSON_BODY),
    decoded: { kind: 'json', value: { temperature: 21.5 }, decodedFrom: decoding() },
    source: { kind: 'serviceBus', queue: 'critical', sequenceNumber: 1, deliveryCount: 1 },
    ...overrides,
  };
}

function config(raw: unknown): ChecksConfig {
  const parsed = parseChecksConfig(raw);
  if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
  return parsed.value;
}

const defaults = defaultChecksConfig();

function codes(result: CheckResult): ReasonCode[] {
  return result.findings.map((f) => f.code);
}

function check(m: RoutedMessage, endpoint: EndpointName = 'criticalQueue', c: ChecksConfig = defaults): CheckResult {
  return checkMessage(m, endpoint, c, NOW);
}

describe('checkMessage: a clean message', () => {
  it('is accepted on every endpoint with no findings, sharing one result object', () => {
    for (const endpoint of ['events', 'criticalQueue', 'archive'] as const) {
      const result = check(message(), endpoint);
      expect(result).toEqual({ outcome: 'accept', findings: [] });
      expect(check(message(), endpoint)).toBe(result);
    }
    expect(Object.isFrozen(check(message()).findings)).toBe(true);
  });
});

describe('structural checks', () => {
  it('DeviceIdMissing: null or empty device id, quarantined by default', () => {
    for (const deviceId of [null, '']) {
      const result = check(message({ deviceId }));
      expect(codes(result)).toEqual(['DeviceIdMissing']);
      expect(result.outcome).toBe('quarantine');
      expect(result.findings[0]!.hint).toBe(REASONS.DeviceIdMissing.hint);
    }
    expect(codes(check(message({ deviceId: 'x' })))).toEqual([]);
  });

  it('EnqueuedTimeInvalid: absent, invalid, before 2010, or more than a day after now', () => {
    const cases: Array<[Date | null, string]> = [
      [null, 'absent'],
      [new Date(Number.NaN), 'not a valid instant'],
      [new Date(0), '1970-01-01T00:00:00.000Z is before 2010'],
      [new Date('2024-05-03T12:00:00Z'), 'more than a day after 2024-05-01T12:00:00.000Z'],
    ];
    for (const [enqueuedTime, detail] of cases) {
      const result = check(message({ enqueuedTime }), 'events');
      expect(codes(result)).toEqual(['EnqueuedTimeInvalid']);
      expect(result.findings[0]!.detail).toContain(detail);
      expect(result.outcome).toBe('quarantine');
    }
    // An alert is worth more than its timestamp: Service Bus routing may omit iothub-enqueuedtime.
    expect(check(message({ enqueuedTime: null }), 'criticalQueue').outcome).toBe('warn');
    expect(codes(check(message({ enqueuedTime: new Date('2024-05-02T11:00:00Z') })))).toEqual([]);
    expect(codes(check(message({ enqueuedTime: new Date('2010-01-01T00:00:00Z') })))).toEqual([]);
  });

  it('EnqueuedTimeInvalid: the future is only judged against a given clock', () => {
    const future = message({ enqueuedTime: new Date('2099-01-01T00:00:00Z') });
    expect(codes(checkMessage(future, 'events', defaults))).toEqual([]);
    expect(codes(checkMessage(future, 'events', defaults, NOW))).toEqual(['EnqueuedTimeInvalid']);
  });

  it("MessageTooLarge: over IoT Hub's 256 KB by default, or the endpoint's maxBodyBytes", () => {
    const at = (bytes: number): RoutedMessage => message({ body: new Uint8Array(bytes) });
    expect(codes(check(at(262_144)))).toEqual([]);
    const result = check(at(262_145));
    expect(codes(result)).toEqual(['MessageTooLarge']);
    expect(result.outcome).toBe('quarantine');
    expect(result.findings[0]!.detail).toBe("the body is 262145 bytes, over this endpoint's limit of 262144");
    const small = config({ endpoints: { archive: { maxBodyBytes: 10 } } });
    expect(codes(check(at(11), 'archive', small))).toEqual(['MessageTooLarge']);
    expect(codes(check(at(11), 'criticalQueue', small))).toEqual([]);
  });
});

describe('body checks', () => {
  it('BodyBase64 from storage: warns with the device-side fix and says what was declared', () => {
    const m = message({
      contentType: undefined,
      contentEncoding: undefined,
      decoded: { kind: 'json', value: { a: 1 }, decodedFrom: decoding({ base64: 'storage', declared: false }) },
    });
    delete m.contentType;
    delete m.contentEncoding;
    const result = check(m);
    expect(codes(result)).toEqual(['BodyBase64']);
    expect(result.outcome).toBe('warn');
    expect(result.findings[0]!.detail).toBe(
      'the endpoint stored the body as base64 (contentType: not set, contentEncoding: not set); decoded as json',
    );
    expect(result.findings[0]!.hint).toContain('set contentType=application/json and contentEncoding=UTF-8 on the device');
  });

  it('BodyBase64 from storage of a body that is not JSON: says that is expected, not to declare it JSON', () => {
    const m = message({ decoded: { kind: 'text', value: 'Ping from Az CLI', decodedFrom: decoding({ base64: 'storage', declared: false }) } });
    const [finding] = check(m).findings;
    expect(finding).toMatchObject({ code: 'BodyBase64', outcome: 'warn' });
    expect(finding!.hint).toMatch(/^IoT Hub stores a body it was not told is UTF-8 JSON as base64; this one is not JSON, so that is expected/);
    expect(finding!.hint).not.toContain('set contentType=application/json and contentEncoding=UTF-8 on the device');
  });

  it('BodyBase64 detected in the bytes the device sent is told apart from the storage layer', () => {
    const decoded: DecodedBody = { kind: 'text', value: 'hello', decodedFrom: decoding({ base64: 'detected' }) };
    const result = check(message({ decoded }));
    expect(codes(result)).toEqual(['BodyBase64']);
    expect(result.findings[0]!.detail).toContain('base64 text wrapping the payload (the device encoded it); decoded as text');
  });

  it('BodyNotJson: quarantined where aggregation needs fields, warned where a person reads it', () => {
    const decoded: DecodedBody = {
      kind: 'text',
      value: '{"a":',
      decodedFrom: decoding({ problem: { code: 'BodyNotJson', detail: 'Unexpected end of JSON input at 5' } }),
    };
    const m = message({ decoded });
    expect(check(m, 'events').outcome).toBe('quarantine');
    expect(check(m, 'criticalQueue').outcome).toBe('warn');
    expect(check(m, 'archive').outcome).toBe('warn');
    expect(check(m).findings[0]).toMatchObject({ code: 'BodyNotJson', detail: 'Unexpected end of JSON input at 5' });
  });

  it('BodyEncodingUnsupported: from the decoder problem', () => {
    const decoded: DecodedBody = {
      kind: 'binary',
      value: 'AAE=',
      decodedFrom: decoding({
        charset: null,
        problem: { code: 'BodyEncodingUnsupported', detail: 'contentEncoding "latin-1" is not a character set this decoder reads' },
      }),
    };
    const m = message({ decoded });
    expect(codes(check(m))).toEqual(['BodyEncodingUnsupported']);
    expect(check(m, 'events').outcome).toBe('quarantine');
    expect(check(m, 'archive').outcome).toBe('quarantine');
    expect(check(m, 'criticalQueue').outcome).toBe('warn');
  });

  it('a body with neither base64 nor a problem gives no body finding', () => {
    const decoded: DecodedBody = { kind: 'text', value: 'Ping', decodedFrom: decoding({ declared: false }) };
    expect(codes(check(message({ decoded })))).toEqual([]);
  });
});

describe('LevelMissing', () => {
  it('is reported on the critical queue and the archive, not on the built-in endpoint where no level means normal', () => {
    const m = message({ properties: {} });
    expect(codes(check(m, 'criticalQueue'))).toEqual(['LevelMissing']);
    expect(codes(check(m, 'archive'))).toEqual(['LevelMissing']);
    expect(check(m, 'archive').outcome).toBe('warn');
    expect(check(m, 'events')).toEqual({ outcome: 'accept', findings: [] });
  });

  it('finds the level whatever the case of its key, and treats an empty or null level as missing', () => {
    expect(codes(check(message({ properties: { Level: 'critical' } })))).toEqual([]);
    expect(codes(check(message({ properties: { LEVEL: 'storage' } }), 'archive'))).toEqual([]);
    expect(codes(check(message({ properties: { level: '' } })))).toEqual(['LevelMissing']);
    expect(codes(check(message({ properties: { level: null } })))).toEqual(['LevelMissing']);
  });

  it('can be required on the events endpoint and switched off elsewhere', () => {
    const c = config({ endpoints: { events: { requireLevel: true }, criticalQueue: { requireLevel: false } } });
    const m = message({ properties: {} });
    expect(codes(check(m, 'events', c))).toEqual(['LevelMissing']);
    expect(codes(check(m, 'criticalQueue', c))).toEqual([]);
  });
});

describe('enrichments', () => {
  const expecting = config({
    endpoints: {
      criticalQueue: {
        enrichments: [
          { key: 'customerID', equals: '6ce345b8-1e4a-411e-9398-d34587459a3a' },
          { key: 'DeviceLocation', oneOf: ['Lyon', 'Paris'] },
          { key: 'iothubname', pattern: '^Contoso', required: false },
          { key: 'rack', equals: 7 },
        ],
      },
    },
  });
  const good: Record<string, PropertyValue> = {
    level: 'critical',
    customerID: '6ce345b8-1e4a-411e-9398-d34587459a3a',
    DeviceLocation: 'Lyon',
    iothubname: 'ContosoTestHub',
    rack: '7',
  };
  const withProps = (changes: Record<string, PropertyValue | undefined>): RoutedMessage => {
    const properties: Record<string, PropertyValue> = { ...good };
    for (const [key, value] of Object.entries(changes)) {
      if (value === undefined) delete properties[key];
      else properties[key] = value;
    }
    return message({ properties });
  };

  it('accepts a message that meets every expectation', () => {
    expect(check(withProps({}), 'criticalQueue', expecting)).toEqual({ outcome: 'accept', findings: [] });
  });

  it('looks properties up ignoring case, as IoT Hub does', () => {
    const m = message({
      properties: {
        LEVEL: 'critical',
        CUSTOMERID: '6ce345b8-1e4a-411e-9398-d34587459a3a',
        devicelocation: 'Paris',
        IoTHubName: 'ContosoTestHub',
        Rack: 7,
      },
    });
    expect(check(m, 'criticalQueue', expecting).findings).toEqual([]);
  });

  it('EnrichmentMissing: a required enrichment is absent or null; an optional one may be absent', () => {
    const result = check(withProps({ customerID: undefined, iothubname: undefined }), 'criticalQueue', expecting);
    expect(result.findings).toEqual([
      {
        code: 'EnrichmentMissing',
        outcome: 'warn',
        detail: 'enrichment "customerID" is not on the message',
        hint: REASONS.EnrichmentMissing.hint,
        property: 'customerID',
      },
    ]);
    expect(codes(check(withProps({ customerID: null }), 'criticalQueue', expecting))).toEqual(['EnrichmentMissing']);
    // Not configured on the events endpoint.
    expect(codes(check(withProps({ customerID: undefined }), 'events', expecting))).toEqual([]);
  });

  it('EnrichmentMismatch: equals, pattern and oneOf, values compared exactly', () => {
    const cases: Array<[Record<string, PropertyValue>, string]> = [
      [{ customerID: 'someone-else' }, 'enrichment "customerID" is "someone-else", expected "6ce345b8-1e4a-411e-9398-d34587459a3a"'],
      [{ DeviceLocation: 'lyon' }, 'enrichment "DeviceLocation" is "lyon", expected one of "Lyon", "Paris"'],
      [{ iothubname: 'FabrikamHub' }, 'enrichment "iothubname" is "FabrikamHub", expected to match /^Contoso/'],
      [{ rack: 8 }, 'enrichment "rack" is "8", expected "7"'],
    ];
    for (const [changes, detail] of cases) {
      const result = check(withProps(changes), 'criticalQueue', expecting);
      expect(result.findings.map((f) => [f.code, f.detail])).toEqual([['EnrichmentMismatch', detail]]);
      expect(result.outcome).toBe('quarantine');
    }
    expect(codes(check(withProps({ rack: 7 }), 'criticalQueue', expecting))).toEqual([]);
  });

  it('shortens long values in details', () => {
    const result = check(withProps({ customerID: 'x'.repeat(500) }), 'criticalQueue', expecting);
    expect(result.findings[0]!.detail.length).toBeLessThan(200);
  });

  it('EnrichmentUnresolved: a configured enrichment holding its placeholder is unresolved, not a mismatch', () => {
    const result = check(withProps({ DeviceLocation: '$twin.tags.location' }), 'criticalQueue', expecting);
    expect(result.findings.map((f) => [f.code, f.property])).toEqual([['EnrichmentUnresolved', 'DeviceLocation']]);
    expect(result.outcome).toBe('warn');
    expect(result.findings[0]!.hint).toContain('up to five minutes');
  });

  it('EnrichmentUnresolved: with placeholder reporting off, only configured enrichments are reported', () => {
    const off = config({
      unresolvedPlaceholders: false,
      endpoints: { criticalQueue: { enrichments: [{ key: 'DeviceLocation' }] } },
    });
    const m = message({ properties: { level: 'critical', DeviceLocation: '$twin.tags.location', other: '$iothubname' } });
    expect(check(m, 'criticalQueue', off).findings.map((f) => [f.code, f.property])).toEqual([
      ['EnrichmentUnresolved', 'DeviceLocation'],
    ]);
    expect(codes(check(m, 'criticalQueue', defaults))).toEqual(['EnrichmentUnresolved', 'EnrichmentUnresolved']);
  });

  it('EnrichmentKeyInvalid: the expected key spelled with a space is named in the missing finding and reported', () => {
    const m = withProps({ DeviceLocation: undefined, 'Device Location': 'Lyon' });
    const result = check(m, 'criticalQueue', expecting);
    expect(result.findings.map((f) => [f.code, f.property])).toEqual([
      ['EnrichmentMissing', 'DeviceLocation'],
      ['EnrichmentKeyInvalid', 'Device Location'],
    ]);
    expect(result.findings[0]!.detail).toContain('"Device Location" is, which is the same key spelled differently');
    expect(result.findings[1]!.hint).toContain('letters, digits, hyphen (-), underscore (_) and period (.)');
  });

  it('EnrichmentKeyInvalid: ordinary device properties may use any key', () => {
    const m = message({ properties: { level: 'critical', 'battery level': 80, 'fw version': '1.2' } });
    expect(codes(check(m, 'criticalQueue', expecting))).toEqual(['EnrichmentMissing', 'EnrichmentMissing', 'EnrichmentMissing']);
    expect(codes(check(m, 'criticalQueue', defaults))).toEqual([]);
  });
});

describe('the tutorial record: "device location": "$twin.tags.location"', () => {
  it('is flagged EnrichmentUnresolved with no configuration at all, and its key as invalid', () => {
    const m = message({
      properties: {
        level: 'storage',
        myIotHub: 'ContosoTestHub',
        'device location': '$twin.tags.location',
        customerID: '6ce345b8-1e4a-411e-9398-d34587459a3a',
      },
    });
    for (const endpoint of ['events', 'criticalQueue', 'archive'] as const) {
      const result = checkMessage(m, endpoint, defaultChecksConfig());
      expect(result.findings.map((f) => [f.code, f.property])).toEqual([
        ['EnrichmentUnresolved', 'device location'],
        ['EnrichmentKeyInvalid', 'device location'],
      ]);
      expect(result.findings[0]!.detail).toBe('"device location" is "$twin.tags.location": IoT Hub could not resolve it');
      expect(result.outcome).toBe('warn');
    }
  });
});

describe('isUnresolvedPlaceholder', () => {
  it('recognises the enrichment variables IoT Hub stamps literally, and nothing else', () => {
    for (const value of ['$twin.tags.location', '$twin.properties.desired.x', '$TWIN.tags.x', '$iothubname', '$IoTHubName']) {
      expect(isUnresolvedPlaceholder(value), value).toBe(true);
    }
    for (const value of ['$twin', '$iothubname2', '$body.level', 'price $twin.x', '', 'Lyon', 5, null, undefined, true]) {
      expect(isUnresolvedPlaceholder(value), String(value)).toBe(false);
    }
  });
});

describe('outcomes', () => {
  it('are overridable per endpoint, and the result takes the most severe', () => {
    const c = config({ endpoints: { archive: { outcomes: { BodyBase64: 'quarantine', LevelMissing: 'accept' } } } });
    const m = message({
      properties: {},
      decoded: { kind: 'json', value: 1, decodedFrom: decoding({ base64: 'storage' }) },
    });
    const archive = check(m, 'archive', c);
    expect(archive.findings.map((f) => [f.code, f.outcome])).toEqual([
      ['BodyBase64', 'quarantine'],
      ['LevelMissing', 'accept'],
    ]);
    expect(archive.outcome).toBe('quarantine');
    const critical = check(m, 'criticalQueue', c);
    expect(critical.findings.map((f) => [f.code, f.outcome])).toEqual([
      ['BodyBase64', 'warn'],
      ['LevelMissing', 'warn'],
    ]);
    expect(critical.outcome).toBe('warn');
  });

  it('accept still records the finding without holding the message back', () => {
    const c = config({ endpoints: { criticalQueue: { outcomes: { LevelMissing: 'accept' } } } });
    const result = check(message({ properties: {} }), 'criticalQueue', c);
    expect(result).toMatchObject({ outcome: 'accept', findings: [{ code: 'LevelMissing', outcome: 'accept' }] });
  });
});

describe('the JSON storage cases (records built as the JSON-lines reader will build them)', () => {
  it('chgeuer: a base64-stored text body is flagged BodyBase64 and still reads as text', () => {
    // {"Properties":{},"SystemProperties":{"connectionDeviceId":"simulatedDevice",...},"Body":"UGluZyBmcm9tIEF6IENMSSBJb1QgRXh0ZW5zaW9u"}
    const text = Buffer.from('UGluZyBmcm9tIEF6IENMSSBJb1QgRXh0ZW5zaW9u', 'base64').toString('utf8');
    const m: RoutedMessage = {
      deviceId: 'simulatedDevice',
      enqueuedTime: new Date('2021-05-07T08:12:19.695Z'),
      properties: {},
      systemProperties: { connectionDeviceId: 'simulatedDevice', enqueuedTime: '2021-05-07T08:12:19.6950000Z' },
      body: new TextEncoder().encode(text),
      decoded: { kind: 'text', value: text, decodedFrom: decoding({ base64: 'storage', declared: false }) },
      source: { kind: 'blob', blobName: 'chgpiothub/00/2021/05/07/08/12.json', index: 0, format: 'json-lines', sequenceNumber: null, offset: null },
    };
    const result = check(m, 'archive');
    expect(codes(result)).toEqual(['BodyBase64', 'LevelMissing']);
    expect(result.outcome).toBe('warn');
    expect(m.decoded).toMatchObject({ kind: 'text', value: 'Ping from Az CLI IoT Extension' });
  });

  it('leo-charles: a base64-stored JSON body is flagged BodyBase64 and still reads as JSON', () => {
    const json = { box: "Armoire banc d'essai Omron", process_serial_number: 'PMXA-C999999', values: [] };
    const bytes = new TextEncoder().encode(JSON.stringify(json));
    const m: RoutedMessage = {
      deviceId: '2239-0657-24',
      enqueuedTime: new Date('2026-06-22T09:55:56.858Z'),
      properties: {},
      systemProperties: { connectionDeviceId: '2239-0657-24' },
      body: bytes,
      decoded: { kind: 'json', value: json, decodedFrom: decoding({ base64: 'storage', declared: false }) },
      source: { kind: 'blob', blobName: 'brut/09_56_01.json', index: 0, format: 'json-lines', sequenceNumber: null, offset: null },
    };
    const result = checkMessage(m, 'events', defaults, new Date('2026-06-22T10:00:00Z'));
    expect(codes(result)).toEqual(['BodyBase64']);
    expect(result.findings[0]!.detail).toContain('decoded as json');
  });
});

describe('properties', () => {
  const propertyValue = fc.oneof(
    fc.string(),
    fc.constantFrom('$twin.tags.location', '$iothubname', '$twin.', 'Lyon', '6ce345b8'),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
  );
  const propertyKey = fc.oneof(fc.string(), fc.constantFrom('level', 'LEVEL', 'customerID', 'device location', '__proto__', 'constructor'));
  const bodyDecoding = fc.record({
    base64: fc.constantFrom('storage' as const, 'detected' as const, null),
    charset: fc.constantFrom('utf-8' as const, 'utf-16le' as const, null),
    bom: fc.boolean(),
    declared: fc.boolean(),
  });
  const problem = fc.option(
    fc.record({ code: fc.constantFrom('BodyNotJson' as const, 'BodyEncodingUnsupported' as const), detail: fc.string() }),
    { nil: undefined },
  );
  const arbitraryMessage = fc
    .record({
      deviceId: fc.option(fc.string(), { nil: null }),
      enqueuedTime: fc.option(fc.date(), { nil: null }),
      properties: fc.dictionary(propertyKey, propertyValue, { maxKeys: 12 }),
      body: fc.uint8Array({ maxLength: 300 }),
      decodedFrom: bodyDecoding,
      problem,
      text: fc.string(),
    })
    .map(({ decodedFrom, problem: p, text, ...rest }): RoutedMessage => {
      const from: BodyDecoding = p === undefined ? decodedFrom : { ...decodedFrom, problem: p };
      return { ...message(), ...rest, decoded: { kind: 'text', value: text, decodedFrom: from } };
    });
  const configs = [
    defaults,
    config({
      unresolvedPlaceholders: false,
      endpoints: {
        events: { requireLevel: true, maxBodyBytes: 100, outcomes: { BodyBase64: 'accept' } },
        criticalQueue: {
          enrichments: [{ key: 'customerID', equals: '6ce345b8' }, { key: 'DeviceLocation', oneOf: ['Lyon'] }, { key: 'hub', pattern: '^C', required: false }],
        },
        archive: { enrichments: [{ key: 'device.location' }] },
      },
    }),
  ];

  it('checkMessage never throws, and its outcome is the most severe of its findings', () => {
    fc.assert(
      fc.property(
        arbitraryMessage,
        fc.constantFrom<EndpointName>('events', 'criticalQueue', 'archive'),
        fc.constantFrom(...configs),
        fc.option(fc.date(), { nil: undefined }),
        (m, endpoint, c, now) => {
          const result = checkMessage(m, endpoint, c, now);
          const rank = { accept: 0, warn: 1, quarantine: 2 } as const;
          const worst = Math.max(0, ...result.findings.map((f) => rank[f.outcome]));
          expect(rank[result.outcome]).toBe(worst);
          for (const finding of result.findings) {
            expect(REASON_CODES).toContain(finding.code);
            expect(finding.outcome).toBe(c.endpoints[endpoint].outcomes[finding.code]);
            // The code's hint; BodyBase64 has a second one for bodies that are not JSON.
            expect(finding.code === 'BodyBase64' ? [REASONS.BodyBase64.hint, BODY_BASE64_NOT_JSON_HINT] : [REASONS[finding.code].hint]).toContain(finding.hint);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('the case of a property key never changes the result', () => {
    const c = configs[1]!;
    fc.assert(
      fc.property(
        fc.constantFrom('customerID', 'DeviceLocation', 'hub', 'level'),
        fc.constantFrom('6ce345b8', 'Lyon', 'Contoso', 'x', '$twin.tags.location'),
        fc.func(fc.boolean()),
        (key, value, upper) => {
          const recased = [...key].map((ch, i) => (upper(i) ? ch.toUpperCase() : ch.toLowerCase())).join('');
          const strip = (r: CheckResult): Array<[ReasonCode, string]> => r.findings.map((f) => [f.code, f.outcome]);
          const original = check(message({ properties: { [key]: value } }), 'criticalQueue', c);
          const changed = check(message({ properties: { [recased]: value } }), 'criticalQueue', c);
          expect(strip(changed)).toEqual(strip(original));
        },
      ),
    );
  });
});
