import { describe, expect, it } from 'vitest';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { installProcessClock, SimulatedClock } from '../../src/local/clock.js';
import { conservation, DeliveryLog, identityOn } from '../../src/local/conservation.js';
import type { EndpointName } from '../../src/lib/config.js';
import type { HubMessage } from '../../src/local/hub.js';
import type { OutputSnapshot } from '../../src/local/outputs.js';
import { systemClock } from '../../src/lib/ports.js';
import { serviceBusMessageIdOf } from '../../src/local/queue.js';

const T = new Date('2026-05-01T12:00:00.000Z');

function delivery(endpoint: EndpointName, i: number, overrides: Partial<HubMessage> = {}): HubMessage {
  return {
    sequence: i,
    endpoint,
    resend: 0,
    deviceId: 'device-001',
    enqueuedTime: new Date(T.getTime() + i),
    deliveredAt: new Date(T.getTime() + i),
    body: Buffer.from(`{"i":${i}}`),
    messageId: `m-${i}`,
    properties: {},
    enrichments: {},
    systemProperties: {},
    ...overrides,
  };
}

function snapshot(parts: Partial<OutputSnapshot>): OutputSnapshot {
  return { reported: new Set(), reportWindows: 0, quarantined: new Map(), quarantinedBlobs: 0, ledger: new Map(), manifests: new Map(), emails: 0, ...parts };
}

describe('conservation', () => {
  it('uses the identity each handler computes from its endpoint', () => {
    const withId = delivery('events', 1);
    expect(identityOn('events', withId)).toBe(messageIdentity({ deviceId: 'device-001', messageId: 'm-1', enqueuedTime: withId.enqueuedTime, body: withId.body }));
    const anonymous = delivery('criticalQueue', 2, { messageId: undefined });
    expect(identityOn('criticalQueue', anonymous)).toBe(
      messageIdentity({ deviceId: 'device-001', messageId: serviceBusMessageIdOf(anonymous), enqueuedTime: anonymous.enqueuedTime, body: anonymous.body }),
    );
    expect(identityOn('archive', { ...anonymous, endpoint: 'archive' })).toBe(
      messageIdentity({ deviceId: 'device-001', enqueuedTime: anonymous.enqueuedTime, body: anonymous.body }),
    );
  });

  it('finds every message in exactly one outcome, counting re-sent copies as suppressed duplicates', () => {
    const log = new DeliveryLog();
    const events = [0, 1, 2].map((i) => delivery('events', i));
    const ids = events.map((m) => log.record(m));
    log.record({ ...events[0]!, resend: 1 });
    const critical = [3, 4].map((i) => delivery('criticalQueue', i));
    const criticalIds = critical.map((m) => log.record(m));
    const archiveIds = [5].map((i) => log.record(delivery('archive', i)));
    const accounts = conservation({
      deliveries: log,
      snapshot: snapshot({
        reported: new Set([ids[0]!, ids[1]!]),
        quarantined: new Map([['events', new Set([ids[2]!])]]),
        ledger: new Map([
          [criticalIds[0]!, { kind: 'alert', state: 'sent' }],
          [criticalIds[1]!, { kind: 'alert', state: 'digested' }],
        ]),
      }),
      deadLettered: new Set(),
      indexedArchive: new Set(archiveIds),
    });
    expect(accounts.events).toMatchObject({ routed: 3, deliveries: 4, outcomes: { aggregated: 2, quarantined: 1 }, duplicates: 1, ok: true });
    expect(accounts.criticalQueue).toMatchObject({ routed: 2, outcomes: { emailed: 1, digested: 1 }, ok: true });
    expect(accounts.archive).toMatchObject({ routed: 1, outcomes: { archived: 1 }, ok: true });
  });

  it('counts a critical-queue message the alert policy does not select as notAlert, which leaves no record', () => {
    const log = new DeliveryLog((m) => m.properties['level'] === 'critical');
    const [alert, other, quarantined, emailed] = [
      delivery('criticalQueue', 1, { properties: { level: 'critical' } }),
      delivery('criticalQueue', 2, { properties: { level: 'warning' } }),
      delivery('criticalQueue', 3, { properties: {} }),
      delivery('criticalQueue', 4, { properties: { level: 'warning' } }),
    ].map((m) => log.record(m));
    const accounts = conservation({
      deliveries: log,
      snapshot: snapshot({
        quarantined: new Map([['criticalQueue', new Set([quarantined!])]]),
        ledger: new Map([
          [alert!, { kind: 'alert', state: 'sent' }],
          // An e-mail for a message the policy does not select: counted twice, so conservation fails.
          [emailed!, { kind: 'alert', state: 'sent' }],
        ]),
      }),
      deadLettered: new Set(),
      indexedArchive: new Set(),
    });
    expect(accounts.criticalQueue).toMatchObject({ routed: 4, outcomes: { emailed: 2, notAlert: 2, quarantined: 1 }, double: 1, missing: 0, ok: false });
    expect(log.notAlert).toEqual(new Set([other, quarantined, emailed]));
  });

  it('fails a message counted twice or not at all', () => {
    const log = new DeliveryLog();
    const [a, b] = [0, 1].map((i) => log.record(delivery('events', i)));
    const accounts = conservation({
      deliveries: log,
      snapshot: snapshot({ reported: new Set([a!]), quarantined: new Map([['events', new Set([a!])]]) }),
      deadLettered: new Set(),
      indexedArchive: new Set(),
    });
    expect(accounts.events).toMatchObject({ double: 1, missing: 1, missingExamples: [b], ok: false });
  });
});

describe('simulated clock', () => {
  it('runs K times faster than the wall clock and becomes the process clock while installed', async () => {
    const clock = new SimulatedClock(T, 1000);
    const before = clock.nowMs();
    await clock.sleep(2_000);
    expect(clock.nowMs() - before).toBeGreaterThanOrEqual(2_000);
    expect(clock.toRealMs(60_000)).toBe(60);
    const restore = installProcessClock(clock);
    try {
      expect(Math.abs(systemClock.now().getTime() - clock.nowMs())).toBeLessThan(1_000);
    } finally {
      restore();
    }
    expect(Math.abs(systemClock.now().getTime() - Date.now())).toBeLessThan(100);
  });

  it('wakes sleepers when their signal aborts, and never for a wait without end unless aborted', async () => {
    const clock = new SimulatedClock(T, 1);
    const stop = new AbortController();
    const sleeping = clock.sleepUntil(Number.POSITIVE_INFINITY, stop.signal);
    stop.abort();
    await sleeping;
    clock.cancelAll();
  });
});
