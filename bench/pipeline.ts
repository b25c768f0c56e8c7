/**
 * Telemetry stream throughput, in batches of 100 as the Event Hubs trigger delivers them.
 *
 * 1. In memory: the whole pipeline (decode the trigger batch, admit with an in-memory quarantine, aggregate into an
 *    in-memory window store) against a bare loop of JSON.parse over the same bodies. Beside it, the essential loop
 *    of bench/pipelineFloor.ts against the same baseline (`floor ratio`): the essential work of the issue under
 *    ADR 0007's design, so the highest ratio an implementation of that design could report here.
 * 2. With Azurite: the same pipeline writing its partials with conditional writes, reporting messages/s and storage
 *    calls per batch; the baseline is the same bare JSON.parse loop.
 */
import { parseAggregationConfig, type AggregationConfig } from '../src/lib/aggregate/aggregationConfig.js';
import { createTelemetryStreamHandler, type TelemetryStreamHandler } from '../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../src/lib/aggregate/windowAggregator.js';
import { blobWindowStore, memoryWindowStore, type WindowStore } from '../src/lib/aggregate/windowStore.js';
import { windowListPrefixes } from '../src/lib/aggregate/windows.js';
import { admit } from '../src/lib/checks/admit.js';
import { defaultChecksConfig } from '../src/lib/checks/expectations.js';
import { decodeEventHubBatch } from '../src/lib/message/eventHubBatch.js';
import { ManualClock, type BlobStore, type Clock } from '../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../src/lib/storage/azureBlobStore.js';
import { MemoryBlobStore } from '../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../src/lib/storage/quarantine.js';
import { startAzurite } from '../test/support/azurite.js';
import { runFloor } from './pipelineFloor.js';
import type { BenchOptions, BenchResult } from './types.js';

const BATCH = 100;
/** Timed runs of each side, alternating; the median is reported (the machine may be shared, so one run says little). */
const RUNS = 7;
const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);
const AUTH = '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}';

interface TriggerBatch {
  messages: Buffer[];
  triggerMetadata: Record<string, unknown>;
}

/**
 * Batches as the Node library hands them to `app.eventHub({ cardinality: 'many', dataType: 'binary' })`: the
 * system properties IoT Hub and Event Hubs stamp, the application properties (an enrichment), a ~130-byte body.
 * `devices` send in turn, one message every `periodMs` each.
 */
function triggerBatches(count: number, devices: number, periodMs: number): TriggerBatch[] {
  const batches: TriggerBatch[] = [];
  let n = 0;
  for (let b = 0; b < count; b++) {
    const messages: Buffer[] = [];
    const system: Array<Record<string, unknown>> = [];
    for (let i = 0; i < BATCH; i++, n++) {
      const device = n % devices;
      const enqueued = new Date(T0 + Math.floor(n / devices) * periodMs + device * Math.floor(periodMs / devices)).toISOString();
      messages.push(
        Buffer.from(
          JSON.stringify({
            temperature: Math.round(2000 + ((n * 7919) % 1500)) / 100,
            humidity: Math.round(3000 + ((n * 104729) % 4000)) / 100,
            pressure: 1013 + (n % 17) / 10,
            battery: 100 - (n % 60),
            pointInfo: 'This is a normal message.',
          }),
        ),
      );
      system.push({
        'iothub-connection-device-id': `device-${String(device).padStart(4, '0')}`,
        'iothub-connection-auth-method': AUTH,
        'iothub-connection-auth-generation-id': '638447109012345678',
        'iothub-enqueuedtime': enqueued,
        'iothub-message-source': 'Telemetry',
        'message-id': `m-${n}`,
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
        'x-opt-sequence-number': n,
        'x-opt-offset': String(n * 512),
        'x-opt-enqueued-time': enqueued,
        sequenceNumber: n,
        offset: n * 512,
        partitionKey: null,
        enqueuedTimeUtc: enqueued.slice(0, -1),
      });
    }
    batches.push({
      messages,
      triggerMetadata: {
        partitionContext: { partitionId: '0', consumerGroup: '$Default', eventHubName: 'bench' },
        systemPropertiesArray: system,
        propertiesArray: system.map(() => ({ iothubname: 'bench-hub' })),
        sequenceNumberArray: system.map((s) => s['sequenceNumber']),
        offsetArray: system.map((s) => s['offset']),
        enqueuedTimeUtcArray: system.map((s) => s['enqueuedTimeUtc']),
      },
    });
  }
  return batches;
}

function config(windows: string[]): AggregationConfig {
  const parsed = parseAggregationConfig({ windows });
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

function handler(windows: WindowStore, aggregation: AggregationConfig, clock: Clock, quarantineStore: BlobStore): TelemetryStreamHandler {
  const quarantine = createQuarantine(quarantineStore, 'quarantine', clock);
  return createTelemetryStreamHandler({
    admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
    quarantine,
    aggregator: createWindowAggregator({ windows, config: aggregation, clock }),
  });
}

/** Messages per second through the whole pipeline; every message must be counted, or the run does not count. */
async function runPipeline(batches: readonly TriggerBatch[], stream: TelemetryStreamHandler): Promise<number> {
  const started = process.hrtime.bigint();
  let counted = 0;
  for (const batch of batches) {
    const result = await stream.processBatch(decodeEventHubBatch(batch.messages, batch.triggerMetadata));
    counted += result.aggregated;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const expected = batches.length * BATCH;
  if (counted !== expected) throw new Error(`pipeline counted ${counted} messages, expected ${expected}`);
  return expected / seconds;
}

function runBaseline(batches: readonly TriggerBatch[]): number {
  const started = process.hrtime.bigint();
  let parsed = 0;
  for (const batch of batches) {
    for (const body of batch.messages) if (JSON.parse(body.toString('utf8')) !== undefined) parsed++;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (parsed !== batches.length * BATCH) throw new Error('baseline parsed too few');
  return parsed / seconds;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The base windows the pipeline keeps over `batches`: what the floor loop must keep too. */
async function pipelineBaseWindows(batches: readonly TriggerBatch[], aggregation: AggregationConfig): Promise<number> {
  const clock = new ManualClock(T0 + 86_400_000);
  const windows = memoryWindowStore();
  await runPipeline(batches, handler(windows, aggregation, clock, new MemoryBlobStore({ clock })));
  let count = 0;
  for (const prefix of windowListPrefixes(aggregation.windows[0]!, undefined, undefined)) {
    for await (const _ of windows.list(prefix)) count++;
  }
  return count;
}

/**
 * The essential loop's rate; it must count every message and keep every base window, as the pipeline does, or the
 * run does not count: a loop that skipped either would be faster than the work it stands for.
 */
function floorRate(batches: readonly TriggerBatch[], baseMs: number, baseWindows: number): number {
  const { rate, counted, windows } = runFloor(batches, baseMs);
  if (counted !== batches.length * BATCH) throw new Error(`floor counted ${counted} messages, expected ${batches.length * BATCH}`);
  if (windows !== baseWindows) throw new Error(`floor kept ${windows} windows, the pipeline ${baseWindows}`);
  return rate;
}

function inMemoryHandler(aggregation: AggregationConfig): TelemetryStreamHandler {
  const clock = new ManualClock(T0 + 86_400_000);
  return handler(memoryWindowStore(), aggregation, clock, new MemoryBlobStore({ clock }));
}

/**
 * Microseconds per message of each stage over the same batches (second of two passes), and of the bare JSON.parse
 * loop over each batch right after its stages. Batches flow through one at
 * a time, as in the pipeline, each stage timed around its own call, so that no stage pays for holding every other
 * batch's output (decoding all batches up front made decoding look twice as slow as it is in the pipeline).
 */
async function stages(batches: readonly TriggerBatch[], aggregation: AggregationConfig): Promise<Record<string, number>> {
  await stagesOnce(batches, aggregation);
  return stagesOnce(batches, aggregation);
}

async function stagesOnce(batches: readonly TriggerBatch[], aggregation: AggregationConfig): Promise<Record<string, number>> {
  const clock = new ManualClock(T0 + 86_400_000);
  const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
  const deps = { checks: defaultChecksConfig(), quarantine, now: () => clock.now() };
  const aggregator = createWindowAggregator({ windows: memoryWindowStore(), config: aggregation, clock });
  const messages = batches.length * BATCH;
  let decodeNs = 0n;
  let admitNs = 0n;
  let aggregateNs = 0n;
  let parseNs = 0n;
  for (const batch of batches) {
    const t0 = process.hrtime.bigint();
    const decoded = decodeEventHubBatch(batch.messages, batch.triggerMetadata);
    const t1 = process.hrtime.bigint();
    const { admitted } = await admit(decoded, 'events', deps);
    const t2 = process.hrtime.bigint();
    await aggregator.aggregate(admitted, '0');
    const t3 = process.hrtime.bigint();
    // The baseline over the same batch, right after: each stage's cost can be read as a multiple of it.
    for (const body of batch.messages) if (JSON.parse(body.toString('utf8')) === undefined) throw new Error('unparsed body');
    const t4 = process.hrtime.bigint();
    decodeNs += t1 - t0;
    admitNs += t2 - t1;
    aggregateNs += t3 - t2;
    parseNs += t4 - t3;
  }
  const perMessage = (ns: bigint): number => Number(ns) / 1e3 / messages;
  return {
    'decode us/msg': perMessage(decodeNs),
    'admit us/msg': perMessage(admitNs),
    'aggregate us/msg': perMessage(aggregateNs),
    'JSON.parse us/msg': perMessage(parseNs),
  };
}

/** Devices sending in turn, one message every `periodMs` each. */
interface Mix {
  label: string;
  devices: number;
  periodMs: number;
}

/**
 * Two fleets at the ends of what a batch of 100 looks like: a few chatty devices (10 messages per device and window
 * in a batch) and a large fleet (every message of a batch in its own device's window, so window work is per message).
 */
const MIXES: readonly Mix[] = [
  { label: '10 devices', devices: 10, periodMs: 500 },
  { label: '200 devices', devices: 200, periodMs: 10_000 },
];

async function inMemory(options: BenchOptions, windows: string[], mix: Mix): Promise<BenchResult> {
  const aggregation = config(windows);
  const batches = triggerBatches(options.quick ? 50 : 500, mix.devices, mix.periodMs);
  // Warm both up (JIT), then alternate, and report the median of the per-round ratios: on a shared machine a
  // round of one side and the next round of the other see about the same machine, two medians of rates need not.
  const baseMs = aggregation.windows[0]!.ms;
  const baseWindows = await pipelineBaseWindows(batches, aggregation);
  for (let warm = 0; warm < 2; warm++) {
    await runPipeline(batches, inMemoryHandler(aggregation));
    runBaseline(batches);
    floorRate(batches, baseMs, baseWindows);
  }
  const rounds: Array<{ ours: number; baseline: number; floor: number }> = [];
  for (let run = 0; run < RUNS; run++) {
    const ours = await runPipeline(batches, inMemoryHandler(aggregation));
    const baseline = runBaseline(batches);
    rounds.push({ ours, baseline, floor: floorRate(batches, baseMs, baseWindows) });
  }
  const ratio = median(rounds.map((r) => r.ours / r.baseline));
  return {
    name: `telemetry pipeline in memory, ${windows.join('+')}, ${mix.label}`,
    unit: 'messages/s',
    ours: median(rounds.map((r) => r.ours)),
    baseline: median(rounds.map((r) => r.baseline)),
    ratio,
    notes: {
      messages: batches.length * BATCH,
      batch: BATCH,
      'target ratio': 0.5,
      // The least work the requirements leave (bench/pipelineFloor.ts) against the same JSON.parse loop,
      // and how much of that speed the whole pipeline keeps.
      'floor ratio': median(rounds.map((r) => r.floor / r.baseline)),
      'ours/floor': median(rounds.map((r) => r.ours / r.floor)),
      ...(await stages(batches, aggregation)),
    },
  };
}

/** Counts the storage calls the pipeline makes. */
class CountingBlobStore implements BlobStore {
  calls = 0;
  constructor(private readonly inner: BlobStore) {}
  ensureContainer(container: string) {
    this.calls++;
    return this.inner.ensureContainer(container);
  }
  get(...args: Parameters<BlobStore['get']>) {
    this.calls++;
    return this.inner.get(...args);
  }
  create(...args: Parameters<BlobStore['create']>) {
    this.calls++;
    return this.inner.create(...args);
  }
  replace(...args: Parameters<BlobStore['replace']>) {
    this.calls++;
    return this.inner.replace(...args);
  }
  put(...args: Parameters<BlobStore['put']>) {
    this.calls++;
    return this.inner.put(...args);
  }
  delete(...args: Parameters<BlobStore['delete']>) {
    this.calls++;
    return this.inner.delete(...args);
  }
  list(...args: Parameters<BlobStore['list']>) {
    this.calls++;
    return this.inner.list(...args);
  }
  listHierarchy(...args: Parameters<BlobStore['listHierarchy']>) {
    this.calls++;
    return this.inner.listHierarchy(...args);
  }
  openRead(...args: Parameters<BlobStore['openRead']>) {
    this.calls++;
    return this.inner.openRead(...args);
  }
}

async function withAzurite(options: BenchOptions): Promise<BenchResult[]> {
  const azurite = await startAzurite();
  try {
    const results: BenchResult[] = [];
    const mixes = [
      // A few chatty devices: many messages per window per batch, so few documents to write.
      { devices: 10, periodMs: 500, batches: options.quick ? 11 : 60 },
      // A larger fleet: nearly every message of a batch is another device's window.
      { devices: 200, periodMs: 10_000, batches: options.quick ? 4 : 20 },
    ];
    const aggregation = config(['1m', '1h']);
    for (const mix of mixes) {
      const batches = triggerBatches(mix.batches, mix.devices, mix.periodMs);
      const clock = new ManualClock(T0 + 86_400_000);
      const store = new CountingBlobStore(new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite.connectionString })));
      const windows = blobWindowStore(store, `bench-${mix.devices}-${Date.now()}`);
      const stream = handler(windows, aggregation, clock, new MemoryBlobStore({ clock }));
      // The first batch creates the container; count steady-state calls only.
      await stream.processBatch(decodeEventHubBatch(batches[0]!.messages, batches[0]!.triggerMetadata));
      const rest = batches.slice(1);
      store.calls = 0;
      let baseWindows = 0;
      const started = process.hrtime.bigint();
      for (const batch of rest) {
        baseWindows += (await stream.processBatch(decodeEventHubBatch(batch.messages, batch.triggerMetadata))).baseWindows;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const ours = (rest.length * BATCH) / seconds;
      const baseline = runBaseline(rest);
      results.push({
        name: `telemetry pipeline + Azurite, ${mix.devices} devices`,
        unit: 'messages/s',
        ours,
        baseline,
        ratio: ours / baseline,
        notes: {
          batches: rest.length,
          'storage calls/batch': store.calls / rest.length,
          'base windows/batch': baseWindows / rest.length,
          'storage calls/message': store.calls / (rest.length * BATCH),
          windows: '1m+1h',
        },
      });
    }
    return results;
  } finally {
    // startAzurite unrefs the child and its stop() waits for the exit event with an unref'd timer: outside the
    // test runner nothing else holds the event loop open, so keep it alive until Azurite has gone.
    const keepAlive = setInterval(() => undefined, 1_000);
    await azurite.stop().finally(() => clearInterval(keepAlive));
  }
}

export async function benchPipeline(options: BenchOptions): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const windows of [['1m'], ['1m', '1h']]) {
    for (const mix of MIXES) results.push(await inMemory(options, windows, mix));
  }
  return [...results, ...(await withAzurite(options))];
}
