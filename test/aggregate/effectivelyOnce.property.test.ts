/**
 * The invariant, as properties: for any sequence of messages, replaying batches, duplicating messages
 * (re-sends with new sequence numbers), reordering within the allowed lateness, splitting batches differently and
 * spreading a device over partitions all produce byte-identical reports.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAggregationConfig, type AggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { readReports, reportsToCsv } from '../../src/lib/aggregate/reports.js';
import { createTelemetryStreamHandler } from '../../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { createWindowFinalizer } from '../../src/lib/aggregate/windowFinalizer.js';
import { memoryWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';

const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);
const SPAN_MS = 2 * 3_600_000;
const LATENESS_S = 600;

// 2h spans 120 base windows: two roll-up pages (windows.ts, rollupPageOf), under every replay and split below.
const parsed = parseAggregationConfig({ windows: ['1m', '10m', '1h', '2h'], allowedLatenessSeconds: LATENESS_S });
if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
const CONFIG: AggregationConfig = parsed.value;

interface Telemetry {
  index: number;
  device: string;
  offsetMs: number;
  withId: boolean;
  level: string | undefined;
  temperature: number;
  humidity: number | undefined;
  /** Arrival delay, at most the allowed lateness: arriving in order of offset + delay keeps every message on time. */
  delayMs: number;
  /** The partition this message (and each copy) is delivered through when partitions are spread. */
  partition: 0 | 1;
}

interface Delivery {
  message: Telemetry;
  partition: string;
}

const telemetry = fc.record({
  device: fc.constantFrom('dev-a', 'dev-b', 'dev-c'),
  offsetMs: fc.integer({ min: 0, max: SPAN_MS }),
  withId: fc.boolean(),
  level: fc.constantFrom(undefined, 'normal', 'storage'),
  temperature: fc.double({ min: -50, max: 50, noNaN: true, noDefaultInfinity: true }),
  humidity: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  delayMs: fc.integer({ min: 0, max: LATENESS_S * 1000 }),
  partition: fc.constantFrom<0 | 1>(0, 1),
});

const scenario = fc.record({
  messages: fc.array(telemetry, { minLength: 1, maxLength: 80 }).map((list) => list.map((m, index) => ({ ...m, index }))),
  /** Re-sent copies: [which message, where after its original (fraction of the rest), through the other partition]. */
  copies: fc.array(fc.tuple(fc.nat(), fc.double({ min: 0, max: 0.999, noNaN: true }), fc.boolean()), { maxLength: 20 }),
  batchSizes: fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 12 }),
  /** After batch i (mod count), replay batch j ≤ i (mod i + 1). */
  replays: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 6 }),
});

let sequence = 0;

function toBatch(deliveries: readonly Delivery[]) {
  const bodies = deliveries.map(({ message: m }) =>
    Buffer.from(JSON.stringify(m.humidity === undefined ? { temperature: m.temperature } : { temperature: m.temperature, humidity: m.humidity })),
  );
  return decodeEventHubBatch(bodies, {
    partitionContext: { partitionId: deliveries[0]?.partition ?? '0' },
    systemPropertiesArray: deliveries.map(({ message: m }) => ({
      'iothub-connection-device-id': m.device,
      'iothub-enqueuedtime': new Date(T0 + m.offsetMs).toISOString(),
      ...(m.withId ? { 'message-id': `msg-${m.index}` } : {}),
      'content-type': 'application/json',
      'content-encoding': 'utf-8',
      // A re-send or replay gets a new sequence number; identity must not depend on it.
      'x-opt-sequence-number': (sequence += 1),
    })),
    propertiesArray: deliveries.map(({ message: m }) => (m.level === undefined ? {} : { level: m.level })),
  });
}

/** Runs batches through one handler (as the trigger would), then reads every window size's reports. */
async function run(batches: readonly (readonly Delivery[])[], finalize: boolean, spread = false): Promise<string> {
  const clock = new ManualClock(T0 + SPAN_MS + 3_600_000);
  const windows = memoryWindowStore();
  const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
  const handler = createTelemetryStreamHandler({
    admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
    quarantine,
    aggregator: createWindowAggregator({ windows, config: CONFIG, clock }),
  });
  let received = 0;
  let counted = 0;
  for (const deliveries of batches) {
    // One trigger batch always comes from one partition.
    for (const partition of ['0', '1']) {
      const part = deliveries.filter((d) => d.partition === partition);
      if (part.length === 0) continue;
      const result = await handler.processBatch(toBatch(part));
      expect(result.received).toBe(result.aggregated + result.countedOtherLevel + result.quarantined + result.duplicates);
      // A copy re-sent through another partition long after its original may be late in that partition's
      // partial; the merged report still counts it on time, because the original was.
      if (!spread) expect(result.late).toBe(0);
      received += result.received;
      counted += result.aggregated + result.countedOtherLevel;
    }
  }
  expect(received).toBeGreaterThanOrEqual(counted);
  if (finalize) {
    clock.advance(2 * 86_400_000);
    await createWindowFinalizer({ windows, config: CONFIG, clock }).finalizeIdlePartitions();
  }
  const out: string[] = [];
  for (const window of CONFIG.windows) {
    const reports = await readReports(windows, CONFIG, { window });
    out.push(JSON.stringify(reports), reportsToCsv(reports));
  }
  return out.join('\n');
}

function chunks<T>(items: readonly T[], sizes: readonly number[]): T[][] {
  const out: T[][] = [];
  for (let i = 0, k = 0; i < items.length; k++) {
    const size = sizes[k % sizes.length]!;
    out.push(items.slice(i, i + size));
    i += size;
  }
  return out;
}

function inTimeOrder(messages: readonly Telemetry[]): Telemetry[] {
  return [...messages].sort((a, b) => a.offsetMs - b.offsetMs || a.index - b.index);
}

function inArrivalOrder(messages: readonly Telemetry[]): Telemetry[] {
  return [...messages].sort((a, b) => a.offsetMs + a.delayMs - (b.offsetMs + b.delayMs) || a.index - b.index);
}

type Scenario = typeof scenario extends fc.Arbitrary<infer S> ? S : never;

/**
 * Arrival order, plus re-sent copies (after their original, as IoT Hub re-sends, possibly through the other
 * partition), cut into batches, with earlier batches replayed later.
 */
function disturbed(s: Scenario, spread: boolean): Delivery[][] {
  const arrival = inArrivalOrder(s.messages);
  const deliveries: Delivery[] = arrival.map((message) => ({ message, partition: spread ? String(message.partition) : '0' }));
  for (const [which, where, otherPartition] of s.copies) {
    const message = arrival[which % arrival.length]!;
    const original = deliveries.findIndex((d) => d.message === message);
    const at = original + 1 + Math.floor(where * (deliveries.length - original));
    const partition = spread ? String(otherPartition ? 1 - message.partition : message.partition) : '0';
    deliveries.splice(at, 0, { message, partition });
  }
  const batches = chunks(deliveries, s.batchSizes);
  const withReplays: Delivery[][] = [];
  batches.forEach((b, i) => {
    withReplays.push(b);
    for (const [after, which] of s.replays) {
      if (after % batches.length === i) withReplays.push(batches[which % (i + 1)]!);
    }
  });
  return withReplays;
}

describe('effectively-once aggregation (fast-check)', () => {
  it('replays, duplicates, reordering within the lateness and any batch split give byte-identical reports', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const reference = chunks(inTimeOrder(s.messages).map((message) => ({ message, partition: '0' })), [10]);
        const expected = await run(reference, false);
        expect(await run(disturbed(s, false), false)).toBe(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('spreading a device over partitions (with copies landing in the other one) gives the same reports once final', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const reference = chunks(inTimeOrder(s.messages).map((message) => ({ message, partition: '0' })), [10]);
        const expected = await run(reference, true);
        expect(await run(disturbed(s, true), true, true)).toBe(expected);
      }),
      { numRuns: 100 },
    );
  });

  it('every distinct message is counted exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const json = await run(disturbed(s, true), true, true);
        const minuteReports = JSON.parse(json.split('\n')[0]!) as Array<{ messages: number }>;
        const identities = new Set(
          s.messages.map((m) => (m.withId ? `${m.device}/id/${m.index}` : `${m.device}/${m.offsetMs}/${m.temperature}/${m.humidity}`)),
        );
        expect(minuteReports.reduce((sum, r) => sum + r.messages, 0)).toBe(identities.size);
      }),
      { numRuns: 100 },
    );
  });
});
