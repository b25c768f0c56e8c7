/**
 * Replaying a message whose enrichment came from twin resolution: the quarantine keeps it as delivered (the `$twin`
 * placeholder), so a replay after the device twin is fixed reads the twin again and lets it through. Real resolver,
 * aggregator and in-memory stores; the twin itself is served by a reader function.
 */
import { describe, expect, it } from 'vitest';
import { parseAggregationConfig } from '../src/lib/aggregate/aggregationConfig.js';
import { createTelemetryStreamHandler } from '../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../src/lib/aggregate/windowAggregator.js';
import { memoryWindowStore } from '../src/lib/aggregate/windowStore.js';
import { parseChecksConfig } from '../src/lib/checks/expectations.js';
import { createTwinResolver, type TwinDocument } from '../src/lib/checks/twins/twinResolver.js';
import { decodeEventHubBatch } from '../src/lib/message/eventHubBatch.js';
import { ManualClock } from '../src/lib/ports.js';
import { replayQuarantined, type ReplayResult } from '../src/lib/quarantineReplay.js';
import { MemoryBlobStore } from '../src/lib/storage/memoryBlobStore.js';
import { createQuarantine, type QuarantinedMessage } from '../src/lib/storage/quarantine.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('quarantine replay after a device twin is fixed', () => {
  it('stores the placeholder, reads the twin again on replay, and lets the message through', async () => {
    const clock = new ManualClock(new Date('2024-05-01T13:00:00Z'));
    const store = new MemoryBlobStore({ clock });
    const quarantine = createQuarantine(store, 'quarantine', clock);
    const twin: TwinDocument = { tags: { site: 'lyon' }, properties: { desired: {}, reported: {} } };
    const twins = createTwinResolver({ reader: { getTwin: async () => twin }, clock, ttlMs: 60_000 });
    const checks = parseChecksConfig({ endpoints: { events: { enrichments: [{ key: 'site', oneOf: ['Lyon'] }], outcomes: { EnrichmentMismatch: 'quarantine' } } } });
    const aggregation = parseAggregationConfig({ windows: ['1m'] });
    if (!('value' in checks) || checks.value === undefined || 'errors' in aggregation) throw new Error('config');
    const windows = memoryWindowStore();
    const stream = (on: typeof quarantine) =>
      createTelemetryStreamHandler({
        admit: { checks: checks.value!, quarantine: on, twins, now: () => clock.now() },
        quarantine: on,
        aggregator: createWindowAggregator({ windows, config: aggregation.value, clock }),
      });

    const batch = decodeEventHubBatch([Buffer.from('{"temperature":21.5}')], {
      partitionContext: { partitionId: '0' },
      systemPropertiesArray: [{ 'iothub-connection-device-id': 'pump-7', 'iothub-enqueuedtime': '2024-05-01T12:00:01.000Z', 'message-id': 'm1' }],
      propertiesArray: [{ site: '$twin.tags.site' }],
    });
    expect(await stream(quarantine).processBatch(batch)).toMatchObject({ quarantined: 1, quarantinedBy: { EnrichmentMismatch: 1 } });
    const [item] = await all(quarantine.list());
    const record = (await quarantine.get(item!.name)) as QuarantinedMessage;
    // As delivered: the placeholder, not the value the twin had then (the reason names that value).
    expect(record.properties['site']).toBe('$twin.tags.site');
    expect(record.reasons[0]?.detail).toContain('"lyon"');

    twin.tags = { site: 'Lyon' };
    clock.advance(61_000); // past the resolver's cache
    const results: ReplayResult[] = await all(replayQuarantined({ quarantine, handlers: async (_endpoint, on) => ({ events: stream(on) }) }));
    expect(results).toEqual([expect.objectContaining({ outcome: 'replayed', deviceId: 'pump-7', detail: expect.stringMatching(/^aggregated/) })]);
    expect(await all(quarantine.list())).toEqual([]);
    expect(windows.size).toBeGreaterThan(0);
  });
});
