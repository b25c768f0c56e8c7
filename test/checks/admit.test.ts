import { describe, expect, it } from 'vitest';
import { admit, type AdmitDeps } from '../../src/lib/checks/admit.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { createTwinResolver, type TwinDocument } from '../../src/lib/checks/twins/twinResolver.js';
import { toRoutedMessage } from '../../src/lib/message/normalize.js';
import type { PropertyValue, RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine, type QuarantinedMessage } from '../../src/lib/storage/quarantine.js';
import { faultyStore } from '../support/faultyStore.js';

const clock = new ManualClock('2026-11-22T10:00:00Z');

function message(overrides: {
  deviceId?: string | null;
  moduleId?: string;
  properties?: Record<string, PropertyValue>;
  body?: string;
  messageId?: string;
}): RoutedMessage {
  const sys: Record<string, PropertyValue> = {
    'iothub-enqueuedtime': '2026-11-22T09:59:00.0000000Z',
    'content-type': 'application/json',
    'content-encoding': 'utf-8',
  };
  if (overrides.deviceId !== null) sys['iothub-connection-device-id'] = overrides.deviceId ?? 'dev-1';
  if (overrides.messageId !== undefined) sys['message-id'] = overrides.messageId;
  if (overrides.moduleId !== undefined) sys['iothub-connection-module-id'] = overrides.moduleId;
  return toRoutedMessage({
    systemProperties: sys,
    properties: overrides.properties ?? { level: 'critical' },
    body: Buffer.from(overrides.body ?? '{"temperature":21.5}'),
    source: { kind: 'serviceBus', queue: 'critical', sequenceNumber: 1, deliveryCount: 1 },
  });
}

function deps(store = new MemoryBlobStore(), extra: Partial<AdmitDeps> = {}): AdmitDeps & { store: MemoryBlobStore } {
  return {
    store,
    checks: defaultChecksConfig(),
    quarantine: createQuarantine(store, 'quarantine', clock),
    now: () => clock.now(),
    ...extra,
  };
}

async function quarantined(store: MemoryBlobStore): Promise<QuarantinedMessage[]> {
  const out: QuarantinedMessage[] = [];
  for await (const item of store.list('quarantine')) {
    const doc = await store.get('quarantine', item.name);
    out.push(JSON.parse(doc!.body.toString('utf8')) as QuarantinedMessage);
  }
  return out;
}

describe('admit', () => {
  it('conserves every message: each is admitted or quarantined, never both, never neither', async () => {
    const d = deps();
    const batch = [
      message({ messageId: 'a' }),
      message({ deviceId: null, messageId: 'b' }), // DeviceIdMissing: quarantine
      message({ messageId: 'c', properties: { level: 'critical', location: '$twin.tags.location' } }), // warn
    ];
    const result = await admit(batch, 'criticalQueue', d);
    expect(result.admitted.map((a) => a.message.messageId)).toEqual(['a', 'c']);
    expect(result.quarantined).toBe(1);
    expect(result.admitted[1]!.check.outcome).toBe('warn');
    expect(result.findings).toMatchObject({ DeviceIdMissing: 1, EnrichmentUnresolved: 1 });
    // Only what quarantined: the warning of 'c' is a finding, not a quarantine reason.
    expect(result.quarantinedBy).toEqual({ DeviceIdMissing: 1 });
    const [entry] = await quarantined(d.store);
    expect(entry).toMatchObject({
      kind: 'message',
      endpoint: 'criticalQueue',
      deviceId: null,
      messageId: 'b',
      bodyBase64: Buffer.from('{"temperature":21.5}').toString('base64'),
      reasons: [expect.objectContaining({ code: 'DeviceIdMissing' })],
    });
    expect(entry!.reasons[0]!.hint.length).toBeGreaterThan(20);
  });

  it('replaying the same bad message any number of times leaves exactly one quarantine blob', async () => {
    const d = deps();
    const bad = message({ deviceId: null, body: 'not json at all' });
    let replays = 0;
    for (let i = 0; i < 5; i += 1) {
      const result = await admit([bad, bad], 'criticalQueue', d);
      replays += result.quarantineReplays;
      expect(result.quarantined).toBe(2);
    }
    expect(await quarantined(d.store)).toHaveLength(1);
    expect(replays).toBe(9);
  });

  it('resolves unresolved $twin enrichments when twin resolution is configured, so they are not flagged', async () => {
    const twins: Record<string, TwinDocument> = {
      'dev-1': { tags: { location: 'Lyon' }, properties: { desired: {}, reported: {} } },
    };
    let reads = 0;
    const resolver = createTwinResolver({
      reader: {
        getTwin: async ({ deviceId }) => {
          reads += 1;
          return twins[deviceId] ?? null;
        },
      },
      clock,
      sleep: async (ms) => {
        clock.advance(ms);
      },
    });
    const d = deps(new MemoryBlobStore(), { twins: resolver });
    const m = message({ properties: { level: 'critical', DeviceLocation: '$twin.tags.location' } });
    const result = await admit([m, m], 'criticalQueue', d);
    expect(result.admitted.map((a) => a.message.properties['DeviceLocation'])).toEqual(['Lyon', 'Lyon']);
    expect(result.admitted[0]!.twinResolved).toEqual(['DeviceLocation']);
    expect(result.findings.EnrichmentUnresolved).toBeUndefined();
    expect(reads).toBe(1);
    // The decoded message handed in is not mutated: replays see the original properties.
    expect(m.properties['DeviceLocation']).toBe('$twin.tags.location');

  });

  it("resolves a module's $twin enrichments from its module twin, never from the device twin", async () => {
    // Keyed as IoT Hub addresses twins: /twins/{device} and /twins/{device}/modules/{module}.
    const twins: Record<string, TwinDocument> = {
      'dev-1': { tags: { location: 'Lyon' }, properties: { desired: {}, reported: {} } },
      'dev-1/sensorModule': { tags: { location: 'Dock 4' }, properties: { desired: {}, reported: { rate: 5 } } },
    };
    const read: string[] = [];
    const resolver = createTwinResolver({
      reader: {
        getTwin: async ({ deviceId, moduleId }) => {
          const key = moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`;
          read.push(key);
          return twins[key] ?? null;
        },
      },
      clock,
      sleep: async (ms) => {
        clock.advance(ms);
      },
    });
    const d = deps(new MemoryBlobStore(), { twins: resolver });
    const placeholders = { level: 'critical', DeviceLocation: '$twin.tags.location', rate: '$twin.properties.reported.rate' };
    const fromModule = message({ moduleId: 'sensorModule', messageId: 'm1', properties: placeholders });
    const fromDevice = message({ messageId: 'm1', properties: { level: 'critical', DeviceLocation: '$twin.tags.location' } });

    const result = await admit([fromModule, fromDevice, fromModule], 'criticalQueue', d);
    expect(result.admitted.map((a) => a.message.properties['DeviceLocation'])).toEqual(['Dock 4', 'Lyon', 'Dock 4']);
    expect(result.admitted[0]!.message.properties['rate']).toBe('5');
    expect(result.admitted[0]!.twinResolved).toEqual(['DeviceLocation', 'rate']);
    expect(result.findings.EnrichmentUnresolved).toBeUndefined();
    // One read per twin: the module twin and the device twin are cached apart.
    expect(read).toEqual(['dev-1/sensorModule', 'dev-1']);
    // The identity is the module's as delivered: the resolved copy keeps device and module, the original is untouched.
    expect(result.admitted[0]!.message).toMatchObject({ deviceId: 'dev-1', moduleId: 'sensorModule', messageId: 'm1' });
    expect(result.admitted[0]!.delivered).toBe(fromModule);
    expect(fromModule.properties['DeviceLocation']).toBe('$twin.tags.location');
  });

  it("reports a module's unresolved enrichment with the module-twin hint when the module twin lacks it or is gone", async () => {
    const twins: Record<string, TwinDocument> = {
      // The device twin has the tag; the module inherits nothing from it.
      'dev-1': { tags: { location: 'Lyon' }, properties: { desired: {}, reported: {} } },
      'dev-1/sensorModule': { tags: {}, properties: { desired: {}, reported: {} } },
    };
    const resolver = createTwinResolver({
      reader: {
        getTwin: async ({ deviceId, moduleId }) => twins[moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`] ?? null,
      },
      clock,
      sleep: async (ms) => {
        clock.advance(ms);
      },
    });
    const d = deps(new MemoryBlobStore(), { twins: resolver });
    const properties = { level: 'critical', DeviceLocation: '$twin.tags.location' };
    const result = await admit(
      [message({ moduleId: 'sensorModule', properties }), message({ moduleId: 'removedModule', properties })],
      'criticalQueue',
      d,
    );
    expect(result.findings.EnrichmentUnresolved).toBe(2);
    expect(result.admitted.map((a) => a.message.properties['DeviceLocation'])).toEqual(['$twin.tags.location', '$twin.tags.location']);
    for (const [i, module] of ['sensorModule', 'removedModule'].entries()) {
      const [finding] = result.admitted[i]!.check.findings;
      expect(finding).toMatchObject({ code: 'EnrichmentUnresolved', outcome: 'warn', property: 'DeviceLocation' });
      expect(finding!.detail).toContain(`module "${module}"`);
      expect(finding!.hint).toContain('az iot hub module-twin update');
    }
    await expect(resolver.resolve({ deviceId: 'dev-1', moduleId: 'removedModule' }, '$twin.tags.location')).resolves.toEqual({
      resolved: false,
      reason: 'ModuleNotFound',
    });
  });

  it('gives a quarantined message only the findings that quarantined it as reasons', async () => {
    const d = deps();
    // No device id (quarantine) and no level (a warning on the critical queue).
    const result = await admit([message({ deviceId: null, properties: {} })], 'criticalQueue', d);
    expect(result.quarantinedBy).toEqual({ DeviceIdMissing: 1 });
    expect(result.findings.LevelMissing).toBe(1);
    const [record] = await quarantined(d.store);
    expect(record!.reasons.map((r) => r.code)).toEqual(['DeviceIdMissing']);
    const listed: string[][] = [];
    for await (const item of d.quarantine.list({ reason: 'LevelMissing' })) listed.push(item.reasons);
    expect(listed).toEqual([]);
  });

  it('throws transient storage failures so the trigger retries the batch', async () => {
    const store = new MemoryBlobStore();
    const failing = faultyStore(store, (operation, index) => operation === 'create' && index < 2);
    const d = deps(store, { quarantine: createQuarantine(failing, 'quarantine', clock) });
    const batch = [message({ deviceId: null })];
    await expect(admit(batch, 'criticalQueue', d)).rejects.toMatchObject({ code: 'StorageUnavailable', kind: 'transient' });
    // The retry after the failure ends exactly where an undisturbed run ends: one quarantine record.
    const retried = await admit(batch, 'criticalQueue', d);
    expect(retried).toMatchObject({ quarantined: 1, quarantineReplays: 0 });
    expect(await quarantined(store)).toHaveLength(1);
  });
});
