/**
 * The pipeline bench's floor loop (bench/pipelineFloor.ts) against the pipeline it is the floor of: it is a floor
 * only if it does the essential work its header lists, no less. Over the same trigger batches, a replayed batch and
 * windows revisited out of order included, it must count each message once, keep every base window the pipeline
 * keeps, with the same identities, and hold the same exact Σx and Σx² per field.
 */
import { describe, expect, it } from 'vitest';
import { runFloor, type FloorBatch } from '../../bench/pipelineFloor.js';
import { parseAggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { addTo, roundExpansion } from '../../src/lib/aggregate/exactSum.js';
import { createTelemetryStreamHandler } from '../../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { memoryWindowStore, type BaseWindowDoc } from '../../src/lib/aggregate/windowStore.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';

const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);
const MINUTE = 60_000;

interface Sent {
  device: string;
  id: string;
  time: number;
  body: Record<string, number | string>;
}

function batchOf(messages: readonly Sent[]): FloorBatch {
  return {
    messages: messages.map((m) => Buffer.from(JSON.stringify(m.body))),
    triggerMetadata: {
      partitionContext: { partitionId: '0', consumerGroup: '$Default', eventHubName: 'bench' },
      systemPropertiesArray: messages.map((m) => ({
        'iothub-connection-device-id': m.device,
        'iothub-enqueuedtime': new Date(m.time).toISOString(),
        'iothub-message-source': 'Telemetry',
        'message-id': m.id,
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
      })),
      propertiesArray: messages.map(() => ({})),
    },
  };
}

/** Three devices over an hour, times scattered so that windows are left and come back; sums that `+=` would round. */
function sent(): Sent[] {
  return Array.from({ length: 600 }, (_, i) => ({
    device: `device-${i % 3}`,
    id: `m-${i}`,
    time: T0 + ((i * 7919) % 3600) * 1000,
    body: { temperature: 0.1 * (i % 13) + 1e-3, pressure: (i % 5) * 1e20 + 0.3, tiny: i % 2 === 1 ? 1e-90 : 7, info: 'normal' },
  }));
}

/** The exact value of a - b, rounded: 0 exactly when the two expansions hold the same sum. */
function difference(a: readonly number[], b: readonly number[]): number {
  const e = [...a];
  for (const component of b) addTo(e, -component);
  return roundExpansion(e);
}

describe('the pipeline bench floor', () => {
  it('counts each message once, keeps every base window the pipeline keeps, and adds exactly as it does', async () => {
    const messages = sent();
    const batches: FloorBatch[] = [];
    for (let i = 0; i < messages.length; i += 100) batches.push(batchOf(messages.slice(i, i + 100)));
    // Event Hubs replays a batch; IoT Hub re-sends a few messages into windows left long ago.
    batches.push(batches[1]!, batchOf([...messages.slice(5, 15), ...messages.slice(400, 410)]));

    const parsed = parseAggregationConfig({ windows: ['1m'] });
    if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
    const clock = new ManualClock(T0 + 86_400_000);
    const windows = memoryWindowStore();
    const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
    const stream = createTelemetryStreamHandler({
      admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
      quarantine,
      aggregator: createWindowAggregator({ windows, config: parsed.value, clock }),
    });
    let aggregated = 0;
    for (const batch of batches) aggregated += (await stream.processBatch(decodeEventHubBatch(batch.messages, batch.triggerMetadata))).aggregated;
    const docs: BaseWindowDoc[] = [];
    for await (const name of windows.list('windows/1m/')) docs.push((await windows.get<BaseWindowDoc>(name, (raw) => raw as BaseWindowDoc))!);

    const floor = runFloor(batches, MINUTE);
    expect(aggregated).toBe(messages.length);
    expect(floor.counted).toBe(aggregated);
    expect(docs.length).toBeGreaterThan(100);
    expect(floor.windows).toBe(docs.length);
    expect([...floor.kept.values()].reduce((n, list) => n + list.length, 0)).toBe(docs.length);

    for (const doc of docs) {
      const window = floor.kept.get(doc.deviceId)?.find((w) => w.startMs === Date.parse(doc.windowStart));
      expect(window, `${doc.deviceId} ${doc.windowStart}`).toBeDefined();
      expect([...window!.ids].sort()).toEqual([...doc.ids].sort());
      expect(window!.contributions).toHaveLength(doc.ids.length);
      expect([...window!.fields.keys()].sort()).toEqual(Object.keys(doc.totals.fields).sort());
      for (const [name, totals] of Object.entries(doc.totals.fields)) {
        const field = window!.fields.get(name)!;
        expect(field.count, name).toBe(totals.count);
        expect(difference(field.sum, totals.sum), `Σ${name}`).toBe(0);
        expect(difference(field.squares, totals.squares), `Σ${name}²`).toBe(0);
      }
    }
  });
});
