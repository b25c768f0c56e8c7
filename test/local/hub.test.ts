import { describe, expect, it } from 'vitest';
import { parseRoutingConfig, type RoutingConfig } from '../../src/lib/config.js';
import { compileRoutes, type CompiledRoute } from '../../src/lib/routing/routes.js';
import { generationIdOf, LocalHub, SAS_AUTH_METHOD, type DeviceMessage, type HubMessage, type HubOptions } from '../../src/local/hub.js';
import { mulberry32 } from '../../src/local/random.js';

function routing(raw: Record<string, unknown>): { config: RoutingConfig; compiled: CompiledRoute[] } {
  const problems: string[] = [];
  const config = parseRoutingConfig(raw, problems);
  expect(problems).toEqual([]);
  const compiled = compileRoutes(config.routes);
  if ('errors' in compiled) throw new Error(compiled.errors.join('; '));
  return { config, compiled: compiled.compiled };
}

/** The routing tutorial's set-up, as in routing.config.json. */
const TUTORIAL = {
  iotHubName: 'ContosoTestHub',
  routes: [
    { name: 'CriticalRoute', condition: 'level="critical"', endpoint: 'criticalQueue' },
    { name: 'StorageRoute', condition: 'level="storage"', endpoint: 'archive' },
  ],
  fallbackRoute: true,
  enrichments: [
    { key: 'iothubname', value: '$iothubname', endpoints: ['events', 'criticalQueue', 'archive'] },
    { key: 'DeviceLocation', value: '$twin.tags.location', endpoints: ['criticalQueue', 'archive'] },
    { key: 'customerID', value: '6ce345b8-1e4a-411e-9398-d34587459a3a', endpoints: ['criticalQueue', 'archive'] },
  ],
};

function hubWith(raw: Record<string, unknown>, extra: Partial<HubOptions> = {}) {
  const { config, compiled } = routing(raw);
  const delivered: HubMessage[] = [];
  const sink = { deliver: (m: HubMessage) => delivered.push(m) };
  const hub = new LocalHub({
    iotHubName: config.iotHubName,
    routes: compiled,
    fallbackRoute: config.fallbackRoute,
    enrichments: config.enrichments,
    twinOf: (id) => (id === 'device-001' ? { tags: { location: 'Seattle' }, properties: { desired: { mode: 'eco' }, reported: {} } } : undefined),
    endpoints: { events: sink, criticalQueue: sink, archive: sink },
    ...extra,
  });
  return { hub, delivered };
}

function message(level: string, overrides: Partial<DeviceMessage> = {}): DeviceMessage {
  return {
    deviceId: 'device-001',
    body: Buffer.from(JSON.stringify({ temperature: 30.5, humidity: 70 })),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    properties: { level },
    messageId: 'm-1',
    ...overrides,
  };
}

const T = new Date('2026-05-01T12:00:00.123Z');

describe('local hub', () => {
  it('stamps the system properties IoT Hub stamps', () => {
    const { hub, delivered } = hubWith(TUTORIAL);
    hub.send(message('normal'), T);
    expect(delivered[0]!.systemProperties).toEqual({
      'iothub-connection-device-id': 'device-001',
      'iothub-connection-auth-method': SAS_AUTH_METHOD,
      'iothub-connection-auth-generation-id': generationIdOf('device-001'),
      'iothub-enqueuedtime': '2026-05-01T12:00:00.123Z',
      'iothub-message-source': 'Telemetry',
      'message-id': 'm-1',
      'content-type': 'application/json',
      'content-encoding': 'utf-8',
    });
    expect(generationIdOf('device-001')).toMatch(/^\d{18}$/);
    const { hub: h2, delivered: d2 } = hubWith(TUTORIAL);
    h2.send(message('normal', { contentType: undefined, contentEncoding: undefined, messageId: undefined }), T);
    expect(Object.keys(d2[0]!.systemProperties)).not.toContain('message-id');
    expect(Object.keys(d2[0]!.systemProperties)).not.toContain('content-type');
  });

  it('routes by level as in the tutorial, with the fallback taking what no route matched', () => {
    const { hub, delivered } = hubWith(TUTORIAL);
    expect(hub.send(message('critical'), T).evaluation.endpoints).toEqual(['criticalQueue']);
    expect(hub.send(message('storage'), T).evaluation.endpoints).toEqual(['archive']);
    expect(hub.send(message('normal'), T).evaluation.endpoints).toEqual(['events']);
    expect(hub.send(message('CRITICAL'), T).evaluation.endpoints).toEqual(['events']); // values compare exactly
    expect(delivered.map((d) => d.endpoint)).toEqual(['criticalQueue', 'archive', 'events', 'events']);
    expect(hub.stats).toMatchObject({ sent: 4, routed: { events: 2, criticalQueue: 1, archive: 1 }, dropped: 0 });
  });

  it('applies enrichments per endpoint, after routing, stamping the literal text when the twin lacks the path', () => {
    const { hub, delivered } = hubWith(TUTORIAL);
    hub.send(message('critical'), T);
    hub.send(message('normal'), T);
    hub.send(message('storage', { deviceId: 'device-009' }), T);
    expect(delivered[0]!.properties).toEqual({
      level: 'critical',
      iothubname: 'ContosoTestHub',
      DeviceLocation: 'Seattle',
      customerID: '6ce345b8-1e4a-411e-9398-d34587459a3a',
    });
    expect(delivered[1]!.properties).toEqual({ level: 'normal', iothubname: 'ContosoTestHub' });
    expect(delivered[2]!.enrichments['DeviceLocation']).toBe('$twin.tags.location');
  });

  it('delivers once per endpoint however many routes match, and evaluates $body, $twin and functions', () => {
    const { hub } = hubWith({
      iotHubName: 'h',
      routes: [
        { name: 'hot', condition: '$body.temperature > 30 AND $contentType = "application/json"', endpoint: 'archive' },
        { name: 'eco', condition: "$twin.properties.desired.mode = 'eco' OR NOT IS_DEFINED($twin.tags.location)", endpoint: 'archive' },
        { name: 'named', condition: 'STARTS_WITH($connectionDeviceId, "device-")', endpoint: 'criticalQueue' },
      ],
      fallbackRoute: false,
    });
    const record = hub.send(message('normal'), T);
    expect(record.evaluation.matched.map((m) => m.route)).toEqual(['hot', 'eco', 'named']);
    expect(record.deliveries.map((d) => d.endpoint)).toEqual(['archive', 'criticalQueue']);
  });

  it('cannot see $body without contentType/contentEncoding, and drops what nothing routes when the fallback is off', () => {
    const { hub, delivered } = hubWith({
      iotHubName: 'h',
      routes: [{ name: 'hot', condition: '$body.temperature > 30', endpoint: 'archive' }],
      fallbackRoute: false,
    });
    expect(hub.send(message('normal', { contentType: undefined, contentEncoding: undefined }), T).evaluation.endpoints).toEqual([]);
    expect(hub.stats.dropped).toBe(1);
    expect(delivered).toHaveLength(0);
  });

  it('re-sends exact copies later (same enqueued time, message id and properties) when asked to', () => {
    const scheduled: Array<{ delay: number; run: () => void }> = [];
    const { hub, delivered } = hubWith(TUTORIAL, {
      resends: { probability: 0.5, random: mulberry32(4), schedule: (delay, run) => scheduled.push({ delay, run }) },
    });
    for (let i = 0; i < 40; i++) hub.send(message('critical', { messageId: `m-${i}` }), new Date(T.getTime() + i * 1000));
    expect(scheduled.length).toBeGreaterThan(5);
    for (const s of scheduled) s.run();
    expect(delivered).toHaveLength(40 + scheduled.length);
    expect(hub.stats.resent.criticalQueue).toBe(scheduled.length);
    for (const copy of delivered.filter((d) => d.resend > 0)) {
      const original = delivered.find((d) => d.resend === 0 && d.messageId === copy.messageId)!;
      expect(copy.enqueuedTime).toEqual(original.enqueuedTime);
      expect(copy.systemProperties).toEqual(original.systemProperties);
      expect(copy.properties).toEqual(original.properties);
      expect(copy.deliveredAt.getTime()).toBeGreaterThan(original.deliveredAt.getTime());
    }
    for (const s of scheduled) {
      expect(s.delay).toBeGreaterThanOrEqual(1_000);
      expect(s.delay).toBeLessThanOrEqual(10_000);
    }
  });

  it("enriches a module's message from the module twin, never from its device's twin", () => {
    const modules = { 'device-001/filter': { tags: { location: 'Dock 4' }, properties: { desired: {}, reported: {} } } };
    const { hub, delivered } = hubWith(TUTORIAL, {
      twinOf: (id, moduleId) =>
        moduleId === undefined
          ? id === 'device-001'
            ? { tags: { location: 'Seattle' }, properties: { desired: {}, reported: {} } }
            : undefined
          : modules[`${id}/${moduleId}` as keyof typeof modules],
    });
    hub.send(message('critical', { moduleId: 'filter' }), T);
    hub.send(message('critical', { moduleId: 'other', messageId: 'm-2' }), T);
    hub.send(message('critical', { messageId: 'm-3' }), T);
    expect(delivered.map((m) => m.properties['DeviceLocation'])).toEqual(['Dock 4', '$twin.tags.location', 'Seattle']);
  });

  it('counts messages routed to an endpoint it has no sink for', () => {
    const { config, compiled } = routing(TUTORIAL);
    const hub = new LocalHub({
      iotHubName: 'h',
      routes: compiled,
      fallbackRoute: config.fallbackRoute,
      enrichments: [],
      twinOf: () => undefined,
      endpoints: {},
    });
    hub.send(message('critical'), T);
    expect(hub.stats.undeliverable).toBe(1);
  });
});
