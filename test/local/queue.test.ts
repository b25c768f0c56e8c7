import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/local/clock.js';
import type { HubMessage } from '../../src/local/hub.js';
import { PeekLockQueue, serviceBusApplicationProperties, serviceBusMessageIdOf, type QueuedMessage } from '../../src/local/queue.js';

const T = new Date('2026-05-01T12:00:00.000Z');

function hubMessage(i: number, overrides: Partial<HubMessage> = {}): HubMessage {
  return {
    sequence: i,
    endpoint: 'criticalQueue',
    resend: 0,
    deviceId: `device-${i % 3}`,
    enqueuedTime: new Date(T.getTime() + i),
    deliveredAt: new Date(T.getTime() + i),
    body: Buffer.from(`{"n":${i}}`),
    contentType: 'application/json',
    messageId: `m-${i}`,
    properties: { level: 'critical', DeviceLocation: 'Seattle' },
    enrichments: { DeviceLocation: 'Seattle' },
    systemProperties: {
      'iothub-connection-device-id': `device-${i % 3}`,
      'iothub-enqueuedtime': T.toISOString(),
      'iothub-message-source': 'Telemetry',
      'message-id': `m-${i}`,
    },
    ...overrides,
  };
}

function queueWith(process: (m: QueuedMessage) => Promise<void>, concurrency = 2) {
  return new PeekLockQueue({ queueName: 'critical', clock: new SimulatedClock(T, 1000), concurrency, process });
}

describe('peek-lock queue', () => {
  it("carries IoT Hub's properties: iothub-* without the enqueued time, the device's and the enrichments", () => {
    expect(serviceBusApplicationProperties(hubMessage(1))).toEqual({
      'iothub-connection-device-id': 'device-1',
      'iothub-message-source': 'Telemetry',
      level: 'critical',
      DeviceLocation: 'Seattle',
    });
    expect(serviceBusMessageIdOf(hubMessage(1))).toBe('m-1');
    // Without a device message id, one derived from the message: every re-send of it gets the same.
    const anonymous = hubMessage(2, { messageId: undefined });
    expect(serviceBusMessageIdOf(anonymous)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(serviceBusMessageIdOf({ ...anonymous, resend: 1 })).toBe(serviceBusMessageIdOf(anonymous));
    expect(serviceBusMessageIdOf(hubMessage(3, { messageId: undefined }))).not.toBe(serviceBusMessageIdOf(anonymous));
  });

  it('completes what the function handled, each message locked by one receiver at a time', async () => {
    const seen: QueuedMessage[] = [];
    const locked = new Set<string>();
    const queue = queueWith(async (m) => {
      expect(m.lockToken).toBeDefined();
      expect(locked.has(m.messageId)).toBe(false);
      locked.add(m.messageId);
      await new Promise((r) => setTimeout(r, 1));
      locked.delete(m.messageId);
      seen.push({ ...m });
    }, 4);
    queue.start();
    for (let i = 0; i < 20; i++) queue.deliver(hubMessage(i));
    await queue.drain();
    await queue.stop();
    expect(seen.map((m) => m.messageId).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m-${i}`).sort());
    expect(seen.every((m) => m.deliveryCount === 1)).toBe(true);
    expect(new Set(seen.map((m) => m.sequenceNumber)).size).toBe(20);
    expect(queue.stats).toMatchObject({ enqueued: 20, deliveries: 20, completed: 20, abandoned: 0, deadLettered: 0 });
  });

  it('redelivers what the function threw on, counting deliveries', async () => {
    const counts: number[] = [];
    const queue = queueWith(async (m) => {
      counts.push(m.deliveryCount);
      if (m.deliveryCount < 3) throw new Error('transient');
    }, 1);
    queue.start();
    queue.deliver(hubMessage(1));
    await queue.drain();
    await queue.stop();
    expect(counts).toEqual([1, 2, 3]);
    expect(queue.stats).toMatchObject({ deliveries: 3, abandoned: 2, completed: 1, deadLettered: 0 });
  });

  it('dead-letters a message after the maximum delivery count (10), keeping it with the reason', async () => {
    const dead: string[] = [];
    const queue = new PeekLockQueue({
      queueName: 'critical',
      clock: new SimulatedClock(T, 1000),
      concurrency: 2,
      process: async (m) => {
        if (m.messageId === 'm-0') throw new Error('storage down');
      },
      onDeadLetter: (entry) => dead.push(entry.message.messageId),
    });
    queue.start();
    queue.deliver(hubMessage(0));
    queue.deliver(hubMessage(1));
    await queue.drain();
    await queue.stop();
    expect(dead).toEqual(['m-0']);
    expect(queue.deadLetters).toHaveLength(1);
    expect(queue.deadLetters[0]).toMatchObject({ reason: 'MaxDeliveryCountExceeded', message: { deliveryCount: 10 } });
    expect(queue.deadLetters[0]!.description).toContain('storage down');
    expect(queue.stats).toMatchObject({ deliveries: 11, completed: 1, abandoned: 10, deadLettered: 1 });
    expect(queue.activeCount).toBe(0);
  });
});
