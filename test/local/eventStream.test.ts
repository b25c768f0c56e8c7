import { describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { SimulatedClock } from '../../src/local/clock.js';
import { CHECKPOINT_CONTAINER, checkpointBlobName, EventStream, partitionOf, type EventStreamOptions, type StreamEvent } from '../../src/local/eventStream.js';
import type { HubMessage } from '../../src/local/hub.js';

const T = new Date('2026-05-01T12:00:00.000Z');

function hubMessage(deviceId: string, i: number): HubMessage {
  return {
    sequence: i,
    endpoint: 'events',
    resend: 0,
    deviceId,
    enqueuedTime: new Date(T.getTime() + i * 10),
    deliveredAt: new Date(T.getTime() + i * 10),
    body: Buffer.from(`{"i":${i}}`),
    properties: { level: 'normal' },
    enrichments: {},
    systemProperties: { 'iothub-connection-device-id': deviceId },
  };
}

function streamWith(store: MemoryBlobStore, overrides: Partial<EventStreamOptions>): { stream: EventStream; batches: StreamEvent[][] } {
  const batches: StreamEvent[][] = [];
  const stream = new EventStream({
    store,
    clock: new SimulatedClock(T, 10_000),
    partitionCount: 4,
    fullyQualifiedNamespace: 'localhost',
    eventHubName: 'iothub-ehub-test',
    consumerGroup: '$Default',
    retry: null,
    process: async (_context, events) => {
      batches.push([...events]);
    },
    ...overrides,
  });
  return { stream, batches };
}

describe('built-in endpoint stream', () => {
  it('partitions by device id, stably', () => {
    const devices = Array.from({ length: 40 }, (_, i) => `device-${i}`);
    const partitions = devices.map((d) => partitionOf(d, 4));
    expect(devices.map((d) => partitionOf(d, 4))).toEqual(partitions);
    expect(new Set(partitions).size).toBe(4);
  });

  it('hands each partition its events in order, in batches of at most 100, and checkpoints after each', async () => {
    const store = new MemoryBlobStore();
    const { stream, batches } = streamWith(store, {});
    await stream.start();
    for (let i = 0; i < 450; i++) stream.deliver(hubMessage(`device-${i % 7}`, i));
    await stream.drain();
    await stream.stop();
    expect(batches.every((b) => b.length >= 1 && b.length <= 100)).toBe(true);
    const all = batches.flat();
    expect(all).toHaveLength(450);
    for (const partition of ['0', '1', '2', '3']) {
      const events = all.filter((e) => e.partitionId === partition);
      expect(events.map((e) => e.sequenceNumber)).toEqual(events.map((_, i) => i));
      const offsets = events.map((e) => Number(e.offset));
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      expect(new Set(events.map((e) => partitionOf(e.message.deviceId, 4))).size).toBeLessThanOrEqual(1);
      if (events.length === 0) continue;
      const checkpoint = await store.get(CHECKPOINT_CONTAINER, checkpointBlobName(stream.partitions[0]!.context, partition));
      expect(checkpoint?.metadata).toEqual({ sequencenumber: String(events.length - 1), offset: events[events.length - 1]!.offset });
    }
    expect(checkpointBlobName(stream.partitions[0]!.context, '2')).toBe('localhost/iothub-ehub-test/$default/checkpoint/2');
    expect(stream.stats).toMatchObject({ events: 450, lostEvents: 0, checkpointed: 450 });
  });

  it('continues the sequence numbers a previous run checkpointed', async () => {
    const store = new MemoryBlobStore();
    const first = streamWith(store, {});
    await first.stream.start();
    for (let i = 0; i < 30; i++) first.stream.deliver(hubMessage('device-1', i));
    await first.stream.drain();
    await first.stream.stop();
    const second = streamWith(store, {});
    await second.stream.start();
    second.stream.deliver(hubMessage('device-1', 30));
    await second.stream.drain();
    await second.stream.stop();
    expect(second.batches.flat()[0]!.sequenceNumber).toBe(30);
  });

  it('retries a failed batch under the retry policy, with the retry count, then succeeds', async () => {
    const attempts: number[] = [];
    const { stream } = streamWith(new MemoryBlobStore(), {
      retry: { maxRetryCount: 5, delayMs: () => 1000 },
      process: async (_c, _events, retryCount) => {
        attempts.push(retryCount);
        if (retryCount < 2) throw new Error('storage unavailable');
      },
    });
    await stream.start();
    stream.deliver(hubMessage('device-1', 0));
    await stream.drain();
    await stream.stop();
    expect(attempts).toEqual([0, 1, 2]);
    expect(stream.stats).toMatchObject({ retries: 2, lostEvents: 0, checkpointed: 1 });
  });

  it('checkpoints past a batch whose retries are exhausted, as the host does, and reports it lost', async () => {
    const lost: number[] = [];
    const { stream } = streamWith(new MemoryBlobStore(), {
      retry: { maxRetryCount: 2, delayMs: () => 10 },
      process: async () => {
        throw new Error('always');
      },
      onBatchLost: (_c, events) => lost.push(events.length),
    });
    await stream.start();
    for (let i = 0; i < 3; i++) stream.deliver(hubMessage('device-1', i));
    await stream.drain();
    await stream.stop();
    expect(lost.reduce((a, b) => a + b, 0)).toBe(3);
    expect(stream.stats).toMatchObject({ lostEvents: 3, checkpointed: 3 });
  });
});
