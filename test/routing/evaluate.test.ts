import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/lib/message/body.js';
import type { PropertyValue } from '../../src/lib/message/RoutedMessage.js';
import {
  bodyAvailability,
  evaluateExpression,
  evaluateRoute,
  prepareContext,
  type RouteContext,
  type RouteMessage,
  type RouteTwin,
} from '../../src/lib/routing/evaluate.js';
import { parseRouteQuery, printRouteQuery, type Expr } from '../../src/lib/routing/parser.js';

interface MessageSpec {
  properties?: Record<string, PropertyValue>;
  systemProperties?: Record<string, PropertyValue>;
  body?: unknown;
  /** Raw body bytes; overrides `body`. */
  bytes?: Uint8Array;
  contentType?: string;
  contentEncoding?: string;
}

/** A message as the decoders build it: the body goes through the real decodeBody. */
function message(spec: MessageSpec = {}): RouteMessage {
  const bytes = spec.bytes ?? Buffer.from(spec.body === undefined ? '' : JSON.stringify(spec.body), 'utf8');
  const m: RouteMessage = {
    properties: spec.properties ?? {},
    systemProperties: spec.systemProperties ?? {},
    decoded: decodeBody(bytes, { contentType: spec.contentType, contentEncoding: spec.contentEncoding }),
  };
  if (spec.contentType !== undefined) m.contentType = spec.contentType;
  if (spec.contentEncoding !== undefined) m.contentEncoding = spec.contentEncoding;
  return m;
}

function parse(text: string): Expr {
  const result = parseRouteQuery(text);
  if ('error' in result) throw new Error(result.error.message);
  return result.ast;
}

const routes = (text: string, context: RouteContext): boolean => evaluateRoute(parse(text), context);
const value = (text: string, context: RouteContext = { message: message() }): unknown => evaluateExpression(parse(text), context);

/** The body of the docs' "properly formed and encoded JSON body" example. */
const WEATHER = {
  Weather: {
    Temperature: 50,
    Time: '2017-03-09T00:00:00.000Z',
    PrevTemperatures: [20, 30, 40],
    IsEnabled: true,
    Location: { Street: 'One Microsoft Way', City: 'Redmond', State: 'WA' },
    HistoricalData: [
      { Month: 'Feb', Temperature: 40 },
      { Month: 'Jan', Temperature: 30 },
    ],
  },
};

/** The docs' sample message: system properties, application properties (strings) and a JSON body. */
const docMessage = message({
  contentType: 'application/json',
  contentEncoding: 'UTF-8',
  systemProperties: {
    'iothub-message-source': 'deviceMessages',
    'iothub-enqueuedtime': '2017-05-08T18:55:31.8514657Z',
    'iothub-connection-device-id': 'thermostat-1',
  },
  properties: { processingPath: 'hot', verbose: 'true', severity: '3', testDevice: 'false', Status: 'Active' },
  body: WEATHER,
});

/** The docs' sample device twin. */
const docTwin: RouteTwin = {
  tags: { deploymentLocation: { building: '43', floor: '1' } },
  properties: {
    desired: { telemetryConfig: { sendFrequency: '5m' }, $version: 1 },
    reported: { telemetryConfig: { sendFrequency: '5m', status: 'success' }, batteryLevel: 55, $version: 4 },
  },
};

const doc: RouteContext = { message: docMessage, twin: docTwin };

describe('documented examples (iot-hub-devguide-routing-query-syntax) against the documented sample message and twin', () => {
  it.each([
    "$contentEncoding = 'UTF-8'",
    "processingPath = 'hot'",
    "$contentEncoding = 'UTF-8' AND processingPath = 'hot'",
    "$body.Weather.HistoricalData[0].Month = 'Feb'",
    '$body.Weather.Temperature = 50 AND $body.Weather.IsEnabled',
    'length($body.Weather.Location.State) = 2',
    "$body.Weather.Temperature = 50 AND processingPath = 'hot'",
    "$twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
    "$body.Weather.Temperature = 50 AND $twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
  ])('"%s" routes', (text) => {
    expect(routes(text, doc)).toBe(true);
  });

  it('"$body[0] = \'Feb\'" is not supported and returns undefined', () => {
    expect(value("$body[0] = 'Feb'", doc)).toBeUndefined();
    expect(value('$body', doc)).toBeUndefined();
    expect(routes("$body[0] = 'Feb'", doc)).toBe(false);
  });

  it('"$twin.tags.deploymentLocation.floor = 1" is undefined against the sample twin, whose floor is the string "1"', () => {
    // The page calls the query valid (it parses); with the sample twin it compares a string with a number.
    expect(value('$twin.tags.deploymentLocation.floor = 1', doc)).toBeUndefined();
    expect(routes("$twin.tags.deploymentLocation.floor = '1'", doc)).toBe(true);
    const numericFloor: RouteContext = { message: docMessage, twin: { tags: { deploymentLocation: { floor: 1 } } } };
    expect(routes('$twin.tags.deploymentLocation.floor = 1', numericFloor)).toBe(true);
  });

  it('"$body.properties.desired.telemetryConfig.sendFrequency > 10" and "is_defined(...)" on a twin change notification body', () => {
    const notification: RouteContext = {
      message: message({
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        body: { properties: { desired: { telemetryConfig: { sendFrequency: 15 } } } },
      }),
    };
    expect(routes('$body.properties.desired.telemetryConfig.sendFrequency > 10', notification)).toBe(true);
    expect(routes('is_defined($body.properties.desired.telemetryConfig.sendFrequency)', notification)).toBe(true);
    expect(routes('is_defined($body.properties.desired.telemetryConfig.other)', notification)).toBe(false);
  });

  it('"level=\\"critical\\"" (the routing tutorial) routes messages whose level application property is critical', () => {
    expect(routes('level="critical"', { message: message({ properties: { level: 'critical' } }) })).toBe(true);
    expect(routes('level="critical"', { message: message({ properties: { level: 'storage' } }) })).toBe(false);
    expect(routes('level="critical"', { message: message({ properties: { level: 'Critical' } }) })).toBe(false);
    expect(routes('level="critical"', { message: message() })).toBe(false);
  });

  it('"true" routes everything', () => {
    expect(routes('true', { message: message() })).toBe(true);
  });
});

describe('application properties are strings (routing query syntax, "Application properties")', () => {
  it('"verbose" holds the string "true", not the Boolean', () => {
    expect(value('verbose = true', doc)).toBeUndefined();
    expect(routes("verbose = 'true'", doc)).toBe(true);
  });

  it('"temperature > 30" on the string property "35" is undefined, so it does not route; AS_NUMBER fixes it', () => {
    const hot: RouteContext = { message: message({ properties: { temperature: '35' } }) };
    expect(value('temperature > 30', hot)).toBeUndefined();
    expect(routes('temperature > 30', hot)).toBe(false);
    expect(routes('NOT (temperature > 30)', hot)).toBe(false);
    expect(routes('AS_NUMBER(temperature) > 30', hot)).toBe(true);
    // Strings compare ordinally, which is not numeric order.
    expect(routes("temperature > '4'", hot)).toBe(false);
  });

  it('values an endpoint delivered typed (a number) are compared as the strings IoT Hub saw', () => {
    const typed: RouteContext = { message: message({ properties: { severity: 3 } }) };
    expect(routes("severity = '3'", typed)).toBe(true);
    expect(value('severity = 3', typed)).toBeUndefined();
  });

  it('names are case-insensitive, exact spelling first', () => {
    expect(routes("PROCESSINGPATH = 'hot'", doc)).toBe(true);
    const both: RouteContext = { message: message({ properties: { Level: 'a', level: 'b' } }) };
    expect(routes("level = 'b'", both)).toBe(true);
    expect(routes("Level = 'a'", both)).toBe(true);
  });

  it('a dotted name can only be a property named with dots', () => {
    const dotted: RouteContext = { message: message({ properties: { 'device.name': 'pump' } }) };
    expect(routes("device.name = 'pump'", dotted)).toBe(true);
    expect(value('device.name[0]', dotted)).toBeUndefined();
  });

  it('inherited names never resolve', () => {
    expect(value('constructor', { message: message() })).toBeUndefined();
    expect(value('__proto__', { message: message() })).toBeUndefined();
    expect(value('$body.constructor', doc)).toBeUndefined();
    expect(value('$twin.tags.toString', doc)).toBeUndefined();
  });
});

describe('system properties', () => {
  const sys = message({
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    systemProperties: {
      'iothub-connection-device-id': 'dev-1',
      'iothub-connection-module-id': 'mod-1',
      'iothub-enqueuedtime': '2024-01-02T03:04:05.1234567Z',
      'message-id': 'm-1',
      'correlation-id': 'c-1',
      'user-id': 'u-1',
      'dt-dataschema': 'dtmi:com:example:Thermostat;1',
      'dt-subject': 'thermostat1',
      'iothub-interface-name': 'sensor',
    },
    body: {},
  });
  const ctx: RouteContext = { message: sys };

  it.each([
    ["$contentType = 'application/json'"],
    ["$contentEncoding = 'utf-8'"],
    ["$connectionDeviceId = 'dev-1'"],
    ["$connectionModuleId = 'mod-1'"],
    ["$enqueuedTime = '2024-01-02T03:04:05.1234567Z'"],
    ["$iothub-enqueuedtime > '2024-01-01'"],
    ["$messageId = 'm-1'"],
    ["$correlationId = 'c-1'"],
    ["$userId = 'u-1'"],
    ["$dt-dataschema = 'dtmi:com:example:Thermostat;1'"],
    ["$dt-subject = 'thermostat1'"],
    ["$iothub-interface-name = 'sensor'"],
    ["$CONNECTIONDEVICEID = 'dev-1'"],
  ])('%s', (text) => {
    expect(routes(text, ctx)).toBe(true);
  });

  it('reads the storage encoding names and the model fields too', () => {
    const stored: RouteContext = {
      message: { ...message({ systemProperties: { connectionDeviceId: 'dev-2', enqueuedTime: 1_700_000_000_000 } }), messageId: 'm-2' },
    };
    expect(routes("$connectionDeviceId = 'dev-2'", stored)).toBe(true);
    expect(routes("$enqueuedTime = '2023-11-14T22:13:20.000Z'", stored)).toBe(true);
    expect(routes("$messageId = 'm-2'", stored)).toBe(true);
    const modelOnly: RouteContext = {
      message: { ...message(), deviceId: 'dev-3', enqueuedTime: new Date('2024-05-06T07:08:09Z') },
    };
    expect(routes("$connectionDeviceId = 'dev-3'", modelOnly)).toBe(true);
    expect(routes("$enqueuedTime = '2024-05-06T07:08:09.000Z'", modelOnly)).toBe(true);
  });

  it('a $name that is not a system property falls back to an application property named $name', () => {
    const ctx2: RouteContext = { message: message({ properties: { $custom: 'yes' } }) };
    expect(routes("$custom = 'yes'", ctx2)).toBe(true);
    expect(value('$nothing', ctx2)).toBeUndefined();
  });
});

describe('the $body trap: $body exists only for contentType application/json with a UTF-8/16/32 contentEncoding', () => {
  const query = '$body.Weather.Temperature = 50';

  it('routes when both are declared', () => {
    for (const contentEncoding of ['UTF-8', 'utf-8', 'Utf-8']) {
      expect(routes(query, { message: message({ contentType: 'application/json', contentEncoding, body: WEATHER }) })).toBe(true);
    }
    expect(routes(query, { message: message({ contentType: 'application/JSON', contentEncoding: 'UTF-8', body: WEATHER }) })).toBe(true);
  });

  it('UTF-16 and UTF-32 bodies work when declared', () => {
    const utf16 = Buffer.from(JSON.stringify(WEATHER), 'utf16le');
    expect(routes(query, { message: message({ contentType: 'application/json', contentEncoding: 'UTF-16', bytes: utf16 }) })).toBe(true);
    const text = JSON.stringify(WEATHER);
    const utf32 = Buffer.alloc(text.length * 4);
    for (let i = 0; i < text.length; i++) utf32.writeUInt32LE(text.charCodeAt(i), i * 4);
    expect(routes(query, { message: message({ contentType: 'application/json', contentEncoding: 'UTF-32', bytes: utf32 }) })).toBe(true);
  });

  it('is undefined without contentType/contentEncoding even though the bytes are JSON, and says why', () => {
    const bare = message({ body: WEATHER });
    expect(bare.decoded.kind).toBe('json');
    expect(routes(query, { message: bare })).toBe(false);
    expect(bodyAvailability(bare)).toEqual({
      available: false,
      code: 'BodyNotDeclaredJson',
      reason: 'the message has no contentType=application/json / contentEncoding=UTF-8 (contentType is not set; contentEncoding is not set)',
    });
  });

  it.each([
    [{ contentType: 'application/json' }, 'contentEncoding is not set'],
    [{ contentEncoding: 'utf-8' }, 'contentType is not set'],
    [{ contentType: 'text/plain', contentEncoding: 'utf-8' }, 'contentType is "text/plain"'],
    [{ contentType: 'application/json', contentEncoding: 'utf8' }, 'contentEncoding is "utf8", which is not UTF-8, UTF-16 or UTF-32'],
    [{ contentType: 'application/json; charset=utf-8', contentEncoding: 'utf-8' }, 'contentType is "application/json; charset=utf-8"'],
  ])('%j: %s', (declaration, problem) => {
    const m = message({ ...declaration, body: WEATHER });
    expect(routes(query, { message: m })).toBe(false);
    const availability = bodyAvailability(m);
    expect(availability.available).toBe(false);
    expect(!availability.available && availability.reason).toContain(problem);
  });

  it('a declared body that does not parse is undefined too', () => {
    const broken = message({ contentType: 'application/json', contentEncoding: 'utf-8', bytes: Buffer.from('{"Weather":') });
    expect(routes('IS_DEFINED($body.Weather)', { message: broken })).toBe(false);
    const availability = bodyAvailability(broken);
    expect(!availability.available && availability.code).toBe('BodyNotJson');
  });

  it('a base64-wrapped JSON body is not JSON to IoT Hub', () => {
    const wrapped = message({
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      bytes: Buffer.from(JSON.stringify(Buffer.from(JSON.stringify(WEATHER)).toString('base64'))),
    });
    expect(routes(query, { message: wrapped })).toBe(false);
  });

  it('application properties still work when $body is unavailable', () => {
    const bare = message({ properties: { processingPath: 'hot' }, body: WEATHER });
    expect(routes("$body.Weather.Temperature = 50 OR processingPath = 'hot'", { message: bare })).toBe(true);
    expect(routes("$body.Weather.Temperature = 50 AND processingPath = 'hot'", { message: bare })).toBe(false);
  });

  it('body paths ignore case, exact spelling first', () => {
    expect(routes('$body.weather.temperature = 50', doc)).toBe(true);
  });
});

describe('undefined and three-valued logic (Cosmos DB logical operators, which IoT Hub\'s language follows)', () => {
  const ctx: RouteContext = { message: message({ properties: { yes: 'y' } }) };
  // t: true, f: false, u: undefined (a missing property compared with a string).
  const T = "yes = 'y'";
  const F = "yes = 'n'";
  const U = "missing = 'x'";

  it.each([
    [`${T} OR ${U}`, true],
    [`${U} OR ${T}`, true],
    [`${F} OR ${U}`, undefined],
    [`${U} OR ${U}`, undefined],
    [`${F} OR ${F}`, false],
    [`${F} AND ${U}`, false],
    [`${U} AND ${F}`, false],
    [`${T} AND ${U}`, undefined],
    [`${T} AND ${T}`, true],
    [`NOT (${U})`, undefined],
    [`NOT (${T})`, false],
    [`NOT (${F})`, true],
    [`NOT NOT (${U})`, undefined],
  ])('%s is %s', (text, expected) => {
    expect(value(text, ctx)).toBe(expected);
    expect(routes(text, ctx)).toBe(expected === true);
  });

  it('a missing property compared with anything, even with != or <>, is undefined', () => {
    expect(value("missing != 'x'", ctx)).toBeUndefined();
    expect(value("missing <> 'x'", ctx)).toBeUndefined();
    expect(value('missing = null', ctx)).toBeUndefined();
    expect(routes("NOT (missing = 'x')", ctx)).toBe(false);
  });

  it('"NOT IS_DEFINED(...)" is how to route on absence', () => {
    expect(routes('NOT IS_DEFINED(missing)', ctx)).toBe(true);
    expect(routes('NOT IS_DEFINED(yes)', ctx)).toBe(false);
    expect(routes('NOT IS_DEFINED($twin.tags.location)', ctx)).toBe(true);
  });

  it('mismatched types compare as undefined', () => {
    expect(value("1 = '1'")).toBeUndefined();
    expect(value('true = 1')).toBeUndefined();
    expect(value('null = false')).toBeUndefined();
    expect(value("'a' < 1")).toBeUndefined();
  });

  it('same types compare; objects and arrays only for equality', () => {
    expect(value("'abc' < 'abd'")).toBe(true);
    expect(value("'B' < 'a'")).toBe(true);
    expect(value('false < true')).toBe(true);
    expect(value('null = null')).toBe(true);
    expect(value('[1, [2]] = [1, [2]]')).toBe(true);
    expect(value('[1, 2] != [2, 1]')).toBe(true);
    expect(value('[1] < [2]')).toBeUndefined();
    expect(value('$body.Weather.Location = $body.Weather.Location', doc)).toBe(true);
    expect(value('$body.Weather.PrevTemperatures = [20, 30, 40]', doc)).toBe(true);
  });

  it('only exactly true routes: a string, a number, null, an object are all false', () => {
    for (const text of ["'true'", '1', 'null', 'undefined', '$body.Weather', '$body.Weather.PrevTemperatures']) {
      expect(routes(text, doc)).toBe(false);
    }
    expect(routes('$body.Weather.IsEnabled', doc)).toBe(true);
  });

  it('a non-Boolean operand of AND/OR/NOT counts as undefined', () => {
    expect(value("'x' AND true")).toBeUndefined();
    expect(value("'x' OR true")).toBe(true);
    expect(value("'x' AND false")).toBe(false);
    expect(value('NOT 1')).toBeUndefined();
  });
});

describe('arithmetic', () => {
  it.each([
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ['10 - 4 - 3', 3],
    ['7 % 4', 3],
    ['7 / 2', 3.5],
    ['-(3)', -3],
    ['+2', 2],
    ['- -2', 2],
    ['0x10 + 1', 17],
  ])('%s = %s', (text, expected) => {
    expect(value(text)).toBe(expected);
  });

  it('is undefined for non-numbers and for results JSON cannot hold', () => {
    expect(value("'a' + 'b'")).toBeUndefined();
    expect(value("1 + '1'")).toBeUndefined();
    expect(value('1 / 0')).toBeUndefined();
    expect(value('1 % 0')).toBeUndefined();
    expect(value('-true')).toBeUndefined();
    expect(value('missing + 1')).toBeUndefined();
  });

  it('"$body.Weather.Temperature * 9 / 5 + 32 > 100" computes on body numbers', () => {
    expect(routes('$body.Weather.Temperature * 9 / 5 + 32 > 100', doc)).toBe(true);
    expect(routes('$twin.properties.reported.batteryLevel - 50 = 5', doc)).toBe(true);
  });
});

describe('functions (IoT Hub query language, "Functions" for routes conditions)', () => {
  it.each([
    ['ABS(-4)', 4],
    ['EXP(0)', 1],
    ['POWER(2, 10)', 1024],
    ['SQUARE(3)', 9],
    ['CEILING(1.2)', 2],
    ['FLOOR(-1.2)', -2],
    ['SIGN(-3)', -1],
    ['SIGN(0)', 0],
    ['SQRT(16)', 4],
    ["AS_NUMBER('42.5')", 42.5],
    ["AS_NUMBER(' -1e2 ')", -100],
    ['AS_NUMBER(7)', 7],
    ["CONCAT('a', 'b', 'c')", 'abc'],
    ["LENGTH('héllo')", 5],
    ["LOWER('AbC')", 'abc'],
    ["UPPER('AbC')", 'ABC'],
    ["SUBSTRING('routing', 1, 3)", 'out'],
    ["SUBSTRING('routing', 4)", 'ing'],
    ["SUBSTRING('routing', 5, 10)", 'ng'],
    ["INDEX_OF('routing', 'ut')", 2],
    ["INDEX_OF('routing', 'x')", -1],
    ["STARTS_WITH('routing', 'rout')", true],
    ["STARTS_WITH('routing', 'Rout')", false],
    ["ENDS_WITH('routing', 'ing')", true],
    ["CONTAINS('routing', 'tin')", true],
    ['IS_ARRAY([1])', true],
    ["IS_ARRAY('a')", false],
    ['IS_BOOL(false)', true],
    ['IS_DEFINED(null)', true],
    ['IS_DEFINED(missing)', false],
    ['IS_NULL(null)', true],
    ['IS_NULL(missing)', false],
    ['IS_NUMBER(1)', true],
    ["IS_NUMBER('1')", false],
    ['IS_OBJECT([1])', false],
    ['IS_PRIMITIVE(null)', true],
    ['IS_PRIMITIVE([1])', false],
    ['IS_STRING(\'\')', true],
  ])('%s = %j', (text, expected) => {
    expect(value(text)).toEqual(expected);
  });

  it.each([
    "AS_NUMBER('12abc')",
    "AS_NUMBER('')",
    'AS_NUMBER(true)',
    'ABS(missing)',
    "ABS('1')",
    'SQRT(-1)',
    'POWER(-8, 0.5)',
    'EXP(1000)',
    "CONCAT('a', 1)",
    'LENGTH(5)',
    'LOWER(null)',
    "SUBSTRING('abc', 0.5)",
    "SUBSTRING(1, 0)",
    "STARTS_WITH(missing, 'a')",
    "CONTAINS('a', 1)",
  ])('%s is undefined', (text) => {
    expect(value(text)).toBeUndefined();
  });

  it('type checks apply to body and twin values', () => {
    expect(routes('IS_OBJECT($body.Weather.Location) AND IS_ARRAY($body.Weather.HistoricalData)', doc)).toBe(true);
    expect(routes('IS_NUMBER($twin.properties.reported.batteryLevel)', doc)).toBe(true);
    expect(routes('IS_STRING($twin.tags.deploymentLocation.building)', doc)).toBe(true);
    expect(routes("LOWER($twin.properties.reported.telemetryConfig.status) = 'success'", doc)).toBe(true);
    expect(routes("STARTS_WITH($connectionDeviceId, 'thermo')", doc)).toBe(true);
    expect(routes("CONCAT($body.Weather.Location.City, ', ', $body.Weather.Location.State) = 'Redmond, WA'", doc)).toBe(true);
  });
});

describe('twins', () => {
  it('every $twin reference is undefined without a twin', () => {
    expect(value('IS_DEFINED($twin.tags)', { message: docMessage })).toBe(false);
    expect(routes("$twin.properties.desired.telemetryConfig.sendFrequency = '5m'", { message: docMessage, twin: null })).toBe(false);
  });

  it('twin paths ignore case and may name $version', () => {
    expect(routes("$twin.TAGS.deploymentlocation.BUILDING = '43'", doc)).toBe(true);
    expect(routes('$twin.properties.reported.$version = 4', doc)).toBe(true);
    expect(value('$twin', doc)).toBeUndefined();
  });
});

describe('prepared contexts', () => {
  it('decide $body once and give the same answers', () => {
    const prepared = prepareContext(doc);
    expect(evaluateRoute(parse('$body.Weather.Temperature = 50'), prepared)).toBe(true);
    expect(prepared.body()).toBe(prepared.body());
  });
});

describe('properties', () => {
  const propertyValue = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean(), fc.constant(null));
  const jsonValue = fc.jsonValue({ maxDepth: 3 });
  const contextArb = fc.record({
    properties: fc.dictionary(fc.constantFrom('a', 'b', 'level', 'A', '$x'), propertyValue),
    body: jsonValue,
    declared: fc.boolean(),
    twin: fc.option(fc.record({ tags: fc.dictionary(fc.constantFrom('a', 'b'), jsonValue) }), { nil: undefined }),
  });
  const queryUnit = fc.constantFrom(
    'a', 'b', 'level', '$x', '$body.a', '$body.b[0]', '$twin.tags.a', "'a'", '1', 'true', 'null', ' = ', ' != ', ' < ',
    ' AND ', ' OR ', 'NOT ', ' + ', ' / ', '(', ')', 'IS_DEFINED(', 'LENGTH(', 'CONCAT(', ', ', 'AS_NUMBER(', '[1, 2]',
  );

  it('evaluation never throws and a route matches exactly when the value is true', () => {
    fc.assert(
      fc.property(fc.array(queryUnit, { minLength: 1, maxLength: 12 }), contextArb, (units, spec) => {
        const parsed = parseRouteQuery(units.join(''));
        if ('error' in parsed) return;
        const m = message({
          properties: spec.properties,
          body: spec.body,
          ...(spec.declared ? { contentType: 'application/json', contentEncoding: 'utf-8' } : {}),
        });
        const context: RouteContext = { message: m, twin: spec.twin };
        const v = evaluateExpression(parsed.ast, context);
        expect(evaluateRoute(parsed.ast, context)).toBe(v === true);
      }),
      { numRuns: 2000 },
    );
  });

  it('NOT never turns undefined into true', () => {
    fc.assert(
      fc.property(fc.array(queryUnit, { minLength: 1, maxLength: 10 }), (units) => {
        const parsed = parseRouteQuery(units.join(''));
        if ('error' in parsed) return;
        const context: RouteContext = { message: message() };
        const inner = evaluateExpression(parsed.ast, context);
        const negated = evaluateExpression(parse(`NOT (${printRouteQuery(parsed.ast)})`), context);
        if (inner === true) expect(negated).toBe(false);
        else if (inner === false) expect(negated).toBe(true);
        else expect(negated).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });
});
