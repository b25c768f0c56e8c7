/**
 * Replaying messages whose enrichment came from twin resolution. The quarantine keeps them as delivered (the `$twin`
 * placeholder), so a replay reads the twin again: after the twin is fixed the message goes through, and a dry run
 * resolves twins as the replay does, so both give the same answer. Real resolver, aggregator and in-memory stores;
 * the twin itself is served by a reader function.
 */
import { describe, expect, it } from 'vitest';
import { parseAggregationConfig } from '../src/lib/aggregate/aggregationConfig.js';
import { createTelemetryStreamHandler } from '../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../src/lib/aggregate/windowAggregator.js';
import { memoryWindowStore } from '../src/lib/aggregate/windowStore.js';
import { parseChecksConfig } from '../src/lib/checks/expectations.js';
import { createTwinResolver, type TwinDocument, type TwinOwner } from '../src/lib/checks/twins/twinResolver.js';
import { decodeEventHubBatch } from '../src/lib/message/eventHubBatch.js';
import { ManualClock } from '../src/lib/ports.js';
import { replayQuarantined } from '../src/lib/quarantineReplay.js';
import { MemoryBlobStore } from '../src/lib/storage/memoryBlobStore.js';
import { createQuarantine, type QuarantinedMessage } from '../src/lib/storage/quarantine.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * pump-7's `site` enrichment is `$twin.tags.site`, and the rule wants "Lyon"; the twin says "lyon" at first.
 * `enqueued: false`: the message has no enqueued time (which `outcomes` may let through as a warning).
 * `moduleId`: the message is that IoT Edge module's, enriched from the module twin ("lyon" at first); pump-7's device
 * twin then says "Lyon" all along, so reading it instead would let the message through on the first pass.
 */
function setup(outcomes: object, { enqueued = true, moduleId }: { enqueued?: boolean; moduleId?: string } = {}) {
  const clock = new ManualClock(new Date('2024-05-01T13:00:00Z'));
  const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
  const twin: TwinDocument = { tags: { site: 'lyon' }, properties: { desired: {}, reported: {} } };
  const deviceTwin: TwinDocument = { tags: { site: 'Lyon' }, properties: { desired: {}, reported: {} } };
  const reads: string[] = [];
  const reader = {
    getTwin: async (owner: TwinOwner) => {
      reads.push(owner.moduleId === undefined ? owner.deviceId : `${owner.deviceId}/${owner.moduleId}`);
      return moduleId === undefined || owner.moduleId === moduleId ? twin : owner.moduleId === undefined ? deviceTwin : null;
    },
  };
  const twins = createTwinResolver({ reader, clock, ttlMs: 60_000 });
  const parsed = parseChecksConfig({ endpoints: { events: { enrichments: [{ key: 'site', oneOf: ['Lyon'] }], outcomes } } });
  const aggregation = parseAggregationConfig({ windows: ['1m'] });
  if (!('value' in parsed) || parsed.value === undefined || 'errors' in aggregation) throw new Error('config');
  const checks = parsed.value;
  const windows = memoryWindowStore();
  const stream = (on: typeof quarantine) =>
    createTelemetryStreamHandler({
      admit: { checks, quarantine: on, twins, now: () => clock.now() },
      quarantine: on,
      aggregator: createWindowAggregator({ windows, config: aggregation.value, clock }),
    });
  const batch = decodeEventHubBatch([Buffer.from('{"temperature":21.5}')], {
    partitionContext: { partitionId: '0' },
    systemPropertiesArray: [
      {
        'iothub-connection-device-id': 'pump-7',
        ...(moduleId === undefined ? {} : { 'iothub-connection-module-id': moduleId }),
        ...(enqueued ? { 'iothub-enqueuedtime': '2024-05-01T12:00:01.000Z' } : {}),
        'message-id': 'm1',
      },
    ],
    propertiesArray: [{ site: '$twin.tags.site' }],
  });
  const fixTwin = (): void => {
    twin.tags = { site: 'Lyon' };
    clock.advance(61_000); // past the resolver's cache
  };
  return {
    quarantine,
    windows,
    reads,
    fixTwin,
    quarantineFirst: async () => (await stream(quarantine).processBatch(batch)).quarantinedBy,
    dry: () => all(replayQuarantined({ quarantine, handlers: async () => ({}), dryRun: { admission: { checks, now: () => clock.now(), twins } } })),
    replay: () => all(replayQuarantined({ quarantine, handlers: async (_endpoint, on) => ({ events: stream(on) }) })),
  };
}

describe('quarantine replay of twin-resolved messages', () => {
  it('stores the placeholder, reads the twin again on replay, and lets the message through once the twin is fixed', async () => {
    const s = setup({ EnrichmentMismatch: 'quarantine' });
    expect(await s.quarantineFirst()).toEqual({ EnrichmentMismatch: 1 });
    const [item] = await all(s.quarantine.list());
    const record = (await s.quarantine.get(item!.name))?.value as QuarantinedMessage;
    // As delivered: the placeholder, not the value the twin had then (the reason names that value).
    expect(record.properties['site']).toBe('$twin.tags.site');
    expect(record.reasons[0]?.detail).toContain('"lyon"');

    s.fixTwin();
    expect(await s.replay()).toEqual([expect.objectContaining({ outcome: 'replayed', deviceId: 'pump-7', detail: expect.stringMatching(/^aggregated/) })]);
    expect(await all(s.quarantine.list())).toEqual([]);
    expect(s.windows.size).toBeGreaterThan(0);
  });

  it('dry run, twin not fixed: refused, as the replay refuses it (the placeholder alone is only a warning)', async () => {
    const s = setup({ EnrichmentMismatch: 'quarantine' });
    expect(await s.quarantineFirst()).toEqual({ EnrichmentMismatch: 1 });
    expect((await s.dry())[0]).toMatchObject({ outcome: 'quarantined', reasons: ['EnrichmentMismatch'] });
    expect((await s.replay())[0]).toMatchObject({ outcome: 'quarantined', reasons: ['EnrichmentMismatch'] });
  });

  it('dry run, twin fixed, unresolved placeholders quarantined: would go through, as the replay does', async () => {
    const s = setup({ EnrichmentMismatch: 'quarantine', EnrichmentUnresolved: 'quarantine' });
    expect(await s.quarantineFirst()).toEqual({ EnrichmentMismatch: 1 });
    s.fixTwin();
    expect((await s.dry())[0]).toMatchObject({ outcome: 'would-replay' });
    expect((await s.replay())[0]).toMatchObject({ outcome: 'replayed' });
  });

  it('a message the checks let through without an enqueued time: quarantined as delivered, and the dry run agrees it stays', async () => {
    const s = setup({ EnrichmentMismatch: 'quarantine', EnqueuedTimeInvalid: 'warn' }, { enqueued: false });
    s.fixTwin();
    // The checks pass it (a warning); the aggregation cannot place it in a window and quarantines it.
    expect(await s.quarantineFirst()).toEqual({ EnqueuedTimeInvalid: 1 });
    const [item] = await all(s.quarantine.list());
    expect(((await s.quarantine.get(item!.name))?.value as QuarantinedMessage).properties['site']).toBe('$twin.tags.site');
    expect((await s.dry())[0]).toMatchObject({ outcome: 'quarantined', reasons: ['EnqueuedTimeInvalid'] });
    expect((await s.replay())[0]).toMatchObject({ outcome: 'quarantined', reasons: ['EnqueuedTimeInvalid'] });
  });

  it("an IoT Edge module's message: quarantined, dry-run and replayed against the module twin, keyed as the module's", async () => {
    const s = setup({ EnrichmentMismatch: 'quarantine' }, { moduleId: 'filter' });
    expect(await s.quarantineFirst()).toEqual({ EnrichmentMismatch: 1 });
    const [item] = await all(s.quarantine.list());
    const record = (await s.quarantine.get(item!.name))?.value as QuarantinedMessage;
    expect(record).toMatchObject({ deviceId: 'pump-7', moduleId: 'filter', properties: { site: '$twin.tags.site' } });
    expect(record.reasons[0]?.detail).toContain('"lyon"');
    expect((await s.dry())[0]).toMatchObject({ outcome: 'quarantined', reasons: ['EnrichmentMismatch'] });

    s.fixTwin();
    expect((await s.dry())[0]).toMatchObject({ outcome: 'would-replay' });
    expect(await s.replay()).toEqual([expect.objectContaining({ outcome: 'replayed', deviceId: 'pump-7', detail: expect.stringMatching(/^aggregated/) })]);
    expect(await all(s.quarantine.list())).toEqual([]);
    // Only the module twin was ever read; the aggregate counts the message under the module's identity.
    expect(new Set(s.reads)).toEqual(new Set(['pump-7/filter']));
    const documents: unknown[] = [];
    for await (const name of s.windows.list('')) documents.push(await s.windows.get(name, (raw) => raw));
    expect(JSON.stringify(documents)).toContain('mid:filter/m1');
  });
});
