import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { EndpointName, RouteConfig } from '../../src/lib/config.js';
import { decodeBody } from '../../src/lib/message/body.js';
import type { PropertyValue } from '../../src/lib/message/RoutedMessage.js';
import type { RouteContext, RouteMessage } from '../../src/lib/routing/evaluate.js';
import { compileRoutes, evaluateRoutes, FALLBACK_ENDPOINT, type CompiledRoute } from '../../src/lib/routing/routes.js';

function message(
  properties: Record<string, PropertyValue> = {},
  body?: unknown,
  declaration: { contentType?: string; contentEncoding?: string } = {},
): RouteMessage {
  const bytes = Buffer.from(body === undefined ? '' : JSON.stringify(body), 'utf8');
  return {
    properties,
    systemProperties: {},
    decoded: decodeBody(bytes, declaration),
    ...declaration,
  };
}

function route(name: string, condition: string, endpoint: EndpointName, enabled = true): RouteConfig {
  return { name, condition, endpoint, enabled };
}

function compiled(routes: RouteConfig[]): CompiledRoute[] {
  const result = compileRoutes(routes);
  if ('errors' in result) throw new Error(result.errors.join('; '));
  return result.compiled;
}

/** The routing tutorial's set-up (DESIGN.md section 1). */
const TUTORIAL = [
  route('critical', 'level="critical"', 'criticalQueue'),
  route('storage', 'level="storage"', 'archive'),
];

describe('compileRoutes', () => {
  it('compiles every route, disabled ones too', () => {
    const result = compileRoutes([...TUTORIAL, route('off', "$body.x = 'y'", 'archive', false)]);
    expect('compiled' in result && result.compiled.map((r) => [r.name, r.usesBody, r.enabled])).toEqual([
      ['critical', false, true],
      ['storage', false, true],
      ['off', true, false],
    ]);
  });

  it('reports each failing condition by index with its offset', () => {
    const result = compileRoutes([
      route('a', 'true', 'events'),
      route('b', 'level="critical"', 'criticalQueue'),
      route('c', "(level = 'x'))", 'archive'),
      route('d', 'level ==', 'archive', false),
    ]);
    expect(result).toEqual({
      errors: [
        "routes[2].condition: unexpected token ')' at 13",
        "routes[3].condition: unexpected token '==' at 6 (use '=' for equality)",
      ],
    });
  });

  it('collects the references a route reads, once each', () => {
    const [r] = compiled([route('t', "$twin.tags.site = 'a' AND $twin.tags.site != 'b' AND level = 'x'", 'archive')]);
    expect(r!.usesTwin).toBe(true);
    expect(r!.references.map((ref) => ref.root)).toEqual(['twin', 'app']);
  });
});

describe('evaluateRoutes', () => {
  it('the tutorial: a critical message goes to the queue only; the fallback route is not used', () => {
    const result = evaluateRoutes(compiled(TUTORIAL), true, { message: message({ level: 'critical' }) });
    expect(result).toMatchObject({
      endpoints: ['criticalQueue'],
      matched: [{ route: 'critical', endpoint: 'criticalQueue' }],
      fallback: false,
    });
    expect(result.explanations).toEqual([
      'route "critical" → criticalQueue: matched (level="critical")',
      'route "storage" → archive: not matched: level="storage" is false',
      'fallback route → events: not used, because a route matched',
    ]);
  });

  it('the tutorial: a normal message has no level, so only the fallback route delivers it (to events)', () => {
    const result = evaluateRoutes(compiled(TUTORIAL), true, { message: message({}) });
    expect(result.endpoints).toEqual([FALLBACK_ENDPOINT]);
    expect(result.fallback).toBe(true);
    expect(result.matched).toEqual([]);
    expect(result.explanations).toEqual([
      'route "critical" → criticalQueue: not matched: the condition is undefined, which IoT Hub treats as false: level is not an application property of the message',
      'route "storage" → archive: not matched: the condition is undefined, which IoT Hub treats as false: level is not an application property of the message',
      'fallback route → events: delivered, because no route matched',
    ]);
  });

  it('every matching route delivers: one message can reach several endpoints', () => {
    const routes = compiled([
      route('alerts', "level = 'critical'", 'criticalQueue'),
      route('everything', 'true', 'archive'),
      route('hot', "processingPath = 'hot'", 'events'),
    ]);
    const result = evaluateRoutes(routes, true, { message: message({ level: 'critical', processingPath: 'hot' }) });
    expect(result.endpoints).toEqual(['criticalQueue', 'archive', 'events']);
    expect(result.matched.map((m) => m.route)).toEqual(['alerts', 'everything', 'hot']);
    expect(result.fallback).toBe(false);
  });

  it('routes to the same endpoint deliver once', () => {
    const routes = compiled([route('a', 'true', 'archive'), route('b', 'true', 'archive')]);
    const result = evaluateRoutes(routes, true, { message: message() });
    expect(result.endpoints).toEqual(['archive']);
    expect(result.matched).toHaveLength(2);
  });

  it('a matching route to events is a match, not the fallback', () => {
    const result = evaluateRoutes(compiled([route('all', 'true', 'events')]), true, { message: message() });
    expect(result).toMatchObject({ endpoints: ['events'], fallback: false });
  });

  it('disabled routes never match; with the fallback route disabled an unmatched message is dropped', () => {
    const routes = compiled([route('off', 'true', 'archive', false)]);
    const result = evaluateRoutes(routes, false, { message: message() });
    expect(result.endpoints).toEqual([]);
    expect(result.fallback).toBe(false);
    expect(result.explanations).toEqual([
      'route "off" → archive: disabled',
      'fallback route is disabled and no route matched: IoT Hub drops the message',
    ]);
  });

  it('explains the $body trap: the route references $body but the message is not declared JSON', () => {
    const routes = compiled([route('hot', '$body.Weather.Temperature > 40', 'archive')]);
    const result = evaluateRoutes(routes, true, { message: message({}, { Weather: { Temperature: 50 } }) });
    expect(result.endpoints).toEqual(['events']);
    expect(result.explanations[0]).toBe(
      'route "hot" → archive: not matched: the condition is undefined, which IoT Hub treats as false: route "hot" references $body but the message has no contentType=application/json / contentEncoding=UTF-8 (contentType is not set; contentEncoding is not set), so $body is undefined',
    );

    const declared = message({}, { Weather: { Temperature: 50 } }, { contentType: 'application/json', contentEncoding: 'UTF-8' });
    expect(evaluateRoutes(routes, true, { message: declared }).endpoints).toEqual(['archive']);
  });

  it('explains a missing body field when $body is available', () => {
    const routes = compiled([route('hot', '$body.Weather.Humidity > 40', 'archive')]);
    const declared = message({}, { Weather: { Temperature: 50 } }, { contentType: 'application/json', contentEncoding: 'utf-8' });
    expect(evaluateRoutes(routes, true, { message: declared }).explanations[0]).toBe(
      'route "hot" → archive: not matched: the condition is undefined, which IoT Hub treats as false: $body.Weather.Humidity is not in the message body',
    );
  });

  it('explains a string application property compared with a number', () => {
    const routes = compiled([route('hot', 'temperature > 30', 'archive')]);
    const result = evaluateRoutes(routes, true, { message: message({ temperature: '35' }) });
    expect(result.explanations[0]).toBe(
      'route "hot" → archive: not matched: the condition is undefined, which IoT Hub treats as false: temperature > 30 compares a string with a number, which is undefined (application properties are always strings: compare with a string, or use AS_NUMBER(...))',
    );
  });

  it('explains a missing twin', () => {
    const routes = compiled([route('site', "$twin.tags.site = 'a'", 'archive')]);
    expect(evaluateRoutes(routes, true, { message: message() }).explanations[0]).toBe(
      'route "site" → archive: not matched: the condition is undefined, which IoT Hub treats as false: $twin.tags.site is undefined: no twin is available for this message (twin resolution is off, or the device has none)',
    );
    const withTwin: RouteContext = { message: message(), twin: { tags: { site: 'a' } } };
    expect(evaluateRoutes(routes, true, withTwin).endpoints).toEqual(['archive']);
  });

  it('accepts plain RouteConfig[]; a condition that does not parse matches nothing and says so', () => {
    const result = evaluateRoutes(
      [route('bad', "level = 'x')", 'archive'), route('ok', "level = 'x'", 'criticalQueue')],
      true,
      { message: message({ level: 'x' }) },
    );
    expect(result.endpoints).toEqual(['criticalQueue']);
    expect(result.explanations[0]).toBe(
      `route "bad" → archive: not matched: the condition does not parse (unexpected token ')' at 11); IoT Hub would not accept this route`,
    );
  });

  it('explain: false gives the same routing without explanations', () => {
    const routes = compiled(TUTORIAL);
    const context: RouteContext = { message: message({ level: 'storage' }) };
    const quiet = evaluateRoutes(routes, true, context, { explain: false });
    expect(quiet).toEqual({ ...evaluateRoutes(routes, true, context), explanations: [] });
  });

  it('with no routes at all, the fallback route delivers everything', () => {
    expect(evaluateRoutes([], true, { message: message() })).toMatchObject({ endpoints: ['events'], fallback: true });
  });

  it('properties: endpoints are distinct, fallback exactly when nothing matched, one explanation per route plus one', () => {
    const endpointArb = fc.constantFrom<EndpointName>('events', 'criticalQueue', 'archive');
    const conditionArb = fc.constantFrom('true', 'false', "level = 'a'", "level = 'b'", 'missing = 1', '$body.x = 1', "level = 'a' OR x");
    const routeArb = fc.record({ condition: conditionArb, endpoint: endpointArb, enabled: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(routeArb, { maxLength: 6 }),
        fc.boolean(),
        fc.constantFrom('a', 'b', 'c'),
        (specs, fallbackRoute, level) => {
          const routes = specs.map((s, i) => route(`r${i}`, s.condition, s.endpoint, s.enabled));
          const result = evaluateRoutes(compiled(routes), fallbackRoute, { message: message({ level }) });
          expect(new Set(result.endpoints).size).toBe(result.endpoints.length);
          expect(result.fallback).toBe(fallbackRoute && result.matched.length === 0);
          expect(result.explanations).toHaveLength(routes.length + (result.matched.length > 0 && !fallbackRoute ? 0 : 1));
          for (const m of result.matched) expect(result.endpoints).toContain(m.endpoint);
          expect(evaluateRoutes(routes, fallbackRoute, { message: message({ level }) })).toEqual(result);
        },
      ),
      { numRuns: 500 },
    );
  });
});
