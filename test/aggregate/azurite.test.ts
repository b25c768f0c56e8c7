/**
 * The effectively-once claims against real conditional writes (Azurite): a storage failure mid-batch followed by
 * the trigger's retry, and two instances processing one partition at the same time (an ownership handover).
 */
import { describe, expect, it } from 'vitest';
import { parseAggregationConfig, type AggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { readReports, reportsToCsv } from '../../src/lib/aggregate/reports.js';
import { createReportsEndpoint } from '../../src/lib/aggregate/reportsQuery.js';
import { createTelemetryStreamHandler, type TelemetryBatchResult, type TelemetryStreamHandler } from '../../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { blobWindowStore, memoryWindowStore, type WindowStore } from '../../src/lib/aggregate/windowStore.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { RoutingError, isTransient } from '../../src/lib/errors.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock, type BlobStore, type BlobWriteOptions, type ETag } from '../../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';

const azurite = useAzurite();

const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);
const parsed = parseAggregationConfig({ windows: ['1m', '10m'], allowedLatenessSeconds: 600 });
if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
const CONFIG: AggregationConfig = parsed.value;

interface Telemetry {
  device: string;
  offsetMs: number;
  id: string | undefined;
  temperature: number;
}

/** 120 messages from 3 devices over 6 minutes, slightly out of order, some without a message id; deterministic. */
const TELEMETRY: Telemetry[] = Array.from({ length: 120 }, (_, i) => ({
  device: `dev-${i % 3}`,
  offsetMs: i * 3_000 + ((i * 7919) % 5) * 1_000,
  id: i % 4 === 0 ? undefined : `m-${i}`,
  temperature: Math.round(((i * 104729) % 1000) * 0.37 * 1000) / 1000 - 100.1,
}));

let sequence = 0;

function toBatch(items: readonly Telemetry[], partition = '2'): RoutedMessage[] {
  return decodeEventHubBatch(
    items.map((m) => Buffer.from(JSON.stringify({ temperature: m.temperature, humidity: 40 + (m.offsetMs % 7) }))),
    {
      partitionContext: { partitionId: partition },
      systemPropertiesArray: items.map((m) => ({
        'iothub-connection-device-id': m.device,
        'iothub-enqueuedtime': new Date(T0 + m.offsetMs).toISOString(),
        ...(m.id === undefined ? {} : { 'message-id': m.id }),
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
        'x-opt-sequence-number': (sequence += 1),
      })),
      propertiesArray: items.map(() => ({})),
    },
  );
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function azureStore(): AzureBlobStore {
  return new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString }));
}

function handlerOn(store: BlobStore, windows: WindowStore, clock: ManualClock): TelemetryStreamHandler {
  const quarantine = createQuarantine(store, uniqueContainerName('quarantine'), clock);
  return createTelemetryStreamHandler({
    admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
    quarantine,
    aggregator: createWindowAggregator({ windows, config: CONFIG, clock }),
  });
}

async function reportsOf(windows: WindowStore): Promise<string> {
  const out: string[] = [];
  for (const window of CONFIG.windows) {
    const reports = await readReports(windows, CONFIG, { window });
    out.push(JSON.stringify(reports), reportsToCsv(reports));
  }
  return out.join('\n');
}

/** The reference: the same batches, in memory, no failures. */
async function referenceReports(batches: readonly (readonly Telemetry[])[]): Promise<string> {
  const clock = new ManualClock(T0 + 3_600_000);
  const windows = memoryWindowStore();
  const handler = handlerOn(new MemoryBlobStore({ clock }), windows, clock);
  for (const items of batches) await handler.processBatch(toBatch(items));
  return reportsOf(windows);
}

type FailureMode = 'before' | 'after';

/**
 * A BlobStore whose Nth write fails with StorageUnavailable: `before` the write reaches storage, or `after` it was
 * applied (the response was lost), which is the case that tempts a naive retry into counting twice.
 */
class FlakyBlobStore implements BlobStore {
  writes = 0;
  failures = 0;
  /** Conditional writes that lost their condition: another writer got there first. */
  lostRaces = 0;
  constructor(
    private readonly inner: BlobStore,
    private readonly failOn: number,
    private readonly mode: FailureMode,
  ) {}

  private async write<T>(apply: () => Promise<T>): Promise<T> {
    this.writes += 1;
    const fail = this.writes === this.failOn;
    if (fail && this.mode === 'before') {
      this.failures += 1;
      throw new RoutingError('StorageUnavailable', `injected failure before write #${this.writes}`);
    }
    const result = await apply();
    if (fail) {
      this.failures += 1;
      throw new RoutingError('StorageUnavailable', `injected failure after write #${this.writes} was applied`);
    }
    return result;
  }

  ensureContainer(container: string) {
    return this.inner.ensureContainer(container);
  }
  get(container: string, name: string) {
    return this.inner.get(container, name);
  }
  async create(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions) {
    const result = await this.write(() => this.inner.create(container, name, body, options));
    if (!result.created) this.lostRaces += 1;
    return result;
  }
  async replace(container: string, name: string, body: Uint8Array, etag: ETag, options?: BlobWriteOptions) {
    const result = await this.write(() => this.inner.replace(container, name, body, etag, options));
    if (!result.ok) this.lostRaces += 1;
    return result;
  }
  put(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions) {
    return this.write(() => this.inner.put(container, name, body, options));
  }
  delete(container: string, name: string, etag?: ETag) {
    return this.inner.delete(container, name, etag);
  }
  list(container: string, prefix?: string) {
    return this.inner.list(container, prefix);
  }
  listHierarchy(...args: Parameters<BlobStore['listHierarchy']>) {
    return this.inner.listHierarchy(...args);
  }
  openRead(container: string, name: string) {
    return this.inner.openRead(container, name);
  }
}

/** What the Event Hubs trigger does with a retry policy: run the same batch again until it succeeds. */
async function processWithRetry(handler: TelemetryStreamHandler, batch: RoutedMessage[]): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      await handler.processBatch(batch);
      return attempt;
    } catch (error) {
      if (!isTransient(error) || attempt > 5) throw error;
    }
  }
}

describe('telemetry stream against Azurite', () => {
  const batches = chunks(TELEMETRY, 20);
  // A replay of two earlier batches after a restart, as the Event Hubs trigger does.
  const delivered = [...batches, batches[1]!, batches[2]!];

  it('writes the same reports to blob storage as the in-memory store computes', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0 + 3_600_000);
    const windows = blobWindowStore(store, uniqueContainerName('reports'));
    const handler = handlerOn(store, windows, clock);
    for (const items of delivered) await handler.processBatch(toBatch(items));
    expect(await reportsOf(windows)).toBe(await referenceReports(delivered));
  });

  it.each([
    [1, 'before'],
    [2, 'after'],
    [3, 'before'],
    [5, 'after'],
    [8, 'after'],
    [13, 'before'],
    [21, 'after'],
    [34, 'after'],
  ] as const)('a storage failure at write %i (%s it applies) and the retry leave the reports of a clean run', async (failOn, mode) => {
    const flaky = new FlakyBlobStore(azureStore(), failOn, mode);
    const clock = new ManualClock(T0 + 3_600_000);
    const windows = blobWindowStore(flaky, uniqueContainerName('reports'));
    const handler = handlerOn(flaky, windows, clock);
    let retried = 0;
    for (const items of delivered) retried += (await processWithRetry(handler, toBatch(items))) - 1;
    expect(flaky.failures).toBe(1);
    expect(retried).toBe(1);
    expect(await reportsOf(windows)).toBe(await referenceReports(delivered));
  });

  it('two instances processing one partition at once (an ownership handover) never count a message twice', async () => {
    const store = azureStore();
    const container = uniqueContainerName('reports');
    const clock = new ManualClock(T0 + 3_600_000);
    // Separate handler instances, each with its own store client: nothing is shared but the blobs.
    const first = handlerOn(store, blobWindowStore(store, container), clock);
    const secondStore = azureStore();
    const second = handlerOn(secondStore, blobWindowStore(secondStore, container), clock);
    // The old owner still works through its batches while the new owner starts from an earlier checkpoint with
    // batches cut differently.
    const results: TelemetryBatchResult[] = [];
    await Promise.all([
      (async () => {
        for (const items of chunks(TELEMETRY, 20)) results.push(await first.processBatch(toBatch(items)));
      })(),
      (async () => {
        for (const items of chunks(TELEMETRY.slice(10), 13)) results.push(await second.processBatch(toBatch(items)));
      })(),
    ]);
    const counted = results.reduce((n, r) => n + r.aggregated + r.countedOtherLevel, 0);
    const duplicates = results.reduce((n, r) => n + r.duplicates, 0);
    expect(counted).toBe(TELEMETRY.length);
    expect(duplicates).toBe(TELEMETRY.length - 10);
    expect(await reportsOf(blobWindowStore(store, container))).toBe(await referenceReports([TELEMETRY]));
  });

  it('with every write racing (in-memory store, deterministic interleaving) the counts still hold', async () => {
    const clock = new ManualClock(T0 + 3_600_000);
    const shared = new FlakyBlobStore(new MemoryBlobStore({ clock }), 0, 'before');
    const container = uniqueContainerName('reports');
    const instances = [0, 1, 2].map(() => handlerOn(shared, blobWindowStore(shared, container), clock));
    const results = await Promise.all(
      instances.map(async (handler, i) => {
        const out: TelemetryBatchResult[] = [];
        for (const items of chunks(TELEMETRY, 9 + i * 4)) out.push(await handler.processBatch(toBatch(items)));
        return out;
      }),
    );
    const all = results.flat();
    expect(shared.lostRaces).toBeGreaterThan(0);
    expect(all.reduce((n, r) => n + r.aggregated + r.countedOtherLevel, 0)).toBe(TELEMETRY.length);
    expect(await reportsOf(blobWindowStore(shared, container))).toBe(await referenceReports([TELEMETRY]));
  });
});

describe('reading a reports container written with another base window', () => {
  it('answers 503 naming REPORTS_CONTAINER instead of an empty or partial report', async () => {
    const store = azureStore();
    const windows = blobWindowStore(store, uniqueContainerName('reports'));
    const clock = new ManualClock(T0 + 3_600_000);
    await handlerOn(store, windows, clock).processBatch(toBatch(TELEMETRY));
    const range = [['from', '2024-03-01T10:00:00Z'], ['to', '2024-03-01T11:00:00Z']] as Array<[string, string]>;
    const written = await createReportsEndpoint({ windows, config: CONFIG, clock })([...range, ['window', '10m']]);
    expect(written.status).toBe(200);
    expect((JSON.parse(written.body) as { count: number }).count).toBeGreaterThan(0);

    // The configuration moved to a 5-minute base; its 5m windows were never written to this container, and its 10m
    // roll-ups are keyed by 1-minute base windows it would look up as 5-minute ones.
    const moved = parseAggregationConfig({ windows: ['5m', '10m'] });
    if ('errors' in moved) throw new Error(moved.errors.join());
    const endpoint = createReportsEndpoint({ windows, config: moved.value, clock });
    for (const window of ['5m', '10m']) {
      const response = await endpoint([...range, ['window', window]]);
      expect(response.status).toBe(503);
      const body = JSON.parse(response.body) as { error: string; problems: string[] };
      expect(body.error).toBe('Misconfigured');
      expect(body.problems).toEqual([expect.stringMatching(/REPORTS_CONTAINER.* 1m base window.* smallest window is 5m/)]);
    }
  });
});
