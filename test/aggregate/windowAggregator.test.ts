import { describe, expect, it } from 'vitest';
import { parseAggregationConfig, type AggregationConfig, type WindowSize } from '../../src/lib/aggregate/aggregationConfig.js';
import { readReports, type WindowReport } from '../../src/lib/aggregate/reports.js';
import { createTelemetryStreamHandler, type TelemetryBatchResult } from '../../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { createWindowFinalizer } from '../../src/lib/aggregate/windowFinalizer.js';
import {
  blobWindowStore,
  decodeBaseWindowDoc,
  decodeRollupWindowDoc,
  memoryWindowStore,
  type BaseWindowDoc,
  type RollupWindowDoc,
  type MemoryWindowStore,
  type WindowStore,
} from '../../src/lib/aggregate/windowStore.js';
import { windowDocName } from '../../src/lib/aggregate/windows.js';
import { admit } from '../../src/lib/checks/admit.js';
import { parseChecksConfig } from '../../src/lib/checks/expectations.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';

const T0 = Date.UTC(2024, 2, 1, 10, 0, 0);
const MINUTE = 60_000;

interface Spec {
  device?: string | null;
  /** Milliseconds after T0. */
  at: number;
  id?: string;
  level?: string;
  body?: unknown;
  properties?: Record<string, unknown>;
  time?: string | null;
  /** An IoT Edge module of the device. */
  module?: string;
}

let sequence = 0;

/** An Event Hubs trigger batch as the Node library hands it over (dataType binary), decoded by the real decoder. */
function batch(specs: readonly Spec[], partition = '0'): RoutedMessage[] {
  const bodies = specs.map((s) => Buffer.from(typeof s.body === 'string' ? s.body : JSON.stringify(s.body ?? { temperature: 20 })));
  const systemPropertiesArray = specs.map((s) => ({
    ...(s.device === null ? {} : { 'iothub-connection-device-id': s.device ?? 'thermostat-1' }),
    ...(s.time === null ? {} : { 'iothub-enqueuedtime': s.time ?? new Date(T0 + s.at).toISOString() }),
    ...(s.id === undefined ? {} : { 'message-id': s.id }),
    ...(s.module === undefined ? {} : { 'iothub-connection-module-id': s.module }),
    'content-type': 'application/json',
    'content-encoding': 'UTF-8',
    'x-opt-sequence-number': (sequence += 1),
  }));
  const propertiesArray = specs.map((s) => ({ ...(s.level === undefined ? {} : { level: s.level }), ...s.properties }));
  return decodeEventHubBatch(bodies, { partitionContext: { partitionId: partition }, systemPropertiesArray, propertiesArray });
}

function config(raw: unknown): AggregationConfig {
  const parsed = parseAggregationConfig(raw);
  if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
  return parsed.value;
}

function setup<S extends WindowStore = MemoryWindowStore>(raw: unknown = {}, checksRaw: unknown = undefined, store?: (clock: ManualClock) => S) {
  const clock = new ManualClock(T0 + 3 * 3_600_000);
  const windows = store?.(clock) ?? (memoryWindowStore() as WindowStore as S);
  const quarantineStore = new MemoryBlobStore({ clock });
  const quarantine = createQuarantine(quarantineStore, 'quarantine', clock);
  const checks = parseChecksConfig(checksRaw);
  if ('errors' in checks) throw new Error(checks.errors.join('\n'));
  const aggregation = config(raw);
  const handler = createTelemetryStreamHandler({
    admit: { checks: checks.value, quarantine, now: () => clock.now() },
    quarantine,
    aggregator: createWindowAggregator({ windows, config: aggregation, clock }),
  });
  const reports = async (window = aggregation.windows[0]!): Promise<WindowReport[]> =>
    readReports(windows, aggregation, { window });
  return { clock, windows, handler, reports, aggregation, quarantineStore };
}

function conserved(result: TelemetryBatchResult): boolean {
  return result.received === result.aggregated + result.countedOtherLevel + result.quarantined + result.duplicates;
}

async function baseDocs(windows: MemoryWindowStore): Promise<BaseWindowDoc[]> {
  const docs: BaseWindowDoc[] = [];
  for await (const name of windows.list('windows/')) {
    const doc = await windows.get<BaseWindowDoc>(name, (raw) => raw as BaseWindowDoc);
    if (doc?.kind === 'window') docs.push(doc);
  }
  return docs;
}

describe('windowed aggregation: statistics', () => {
  it('computes count, min, max, sum, mean, population variance, first and last per numeric field', async () => {
    const { handler, reports } = setup();
    const result = await handler.processBatch(
      batch([
        { at: 5_000, id: 'a', body: { temperature: 20, humidity: 40, label: 'x' } },
        { at: 15_000, id: 'b', body: { temperature: 22, humidity: 50 } },
        { at: 25_000, id: 'c', body: { temperature: 27 } },
        { at: MINUTE + 1_000, id: 'd', body: { temperature: 30 } },
      ]),
    );
    expect(result).toMatchObject({ received: 4, aggregated: 4, duplicates: 0, quarantined: 0, baseWindows: 2 });
    const [first, second] = await reports();
    expect(first).toMatchObject({
      deviceId: 'thermostat-1',
      window: '1m',
      windowStart: '2024-03-01T10:00:00Z',
      windowEnd: '2024-03-01T10:01:00Z',
      messages: 3,
      revision: 1,
      byLevel: { '(none)': 3 },
      byOutcome: { accept: 3, warn: 0 },
    });
    expect(first?.fields['temperature']).toEqual({
      count: 3,
      min: 20,
      max: 27,
      sum: 69,
      mean: 23,
      variance: ((20 - 23) ** 2 + (22 - 23) ** 2 + (27 - 23) ** 2) / 3,
      first: 20,
      firstTime: '2024-03-01T10:00:05.000Z',
      last: 27,
      lastTime: '2024-03-01T10:00:25.000Z',
    });
    expect(first?.fields['humidity']).toMatchObject({ count: 2, mean: 45, variance: 25 });
    expect(first?.fields).not.toHaveProperty('label');
    expect(second).toMatchObject({ windowStart: '2024-03-01T10:01:00Z', messages: 1 });
  });

  it('aggregates normal and level-less messages; counts other levels by level without field statistics', async () => {
    const { handler, reports } = setup();
    const result = await handler.processBatch(
      batch([
        { at: 1_000, id: 'a', level: 'normal', body: { temperature: 10 } },
        { at: 2_000, id: 'b', body: { temperature: 20 } },
        { at: 3_000, id: 'c', level: 'critical', body: { temperature: 99 } },
        { at: 4_000, id: 'd', level: 'storage', body: { temperature: 98 } },
      ]),
    );
    expect(result).toMatchObject({ aggregated: 2, countedOtherLevel: 2 });
    expect(conserved(result)).toBe(true);
    const [report] = await reports();
    expect(report?.byLevel).toEqual({ '(none)': 1, critical: 1, normal: 1, storage: 1 });
    expect(report?.messages).toBe(4);
    expect(report?.fields['temperature']).toMatchObject({ count: 2, max: 20 });
  });

  it('aggregates only the configured fields and levels', async () => {
    const { handler, reports } = setup({ fields: ['humidity'], levels: { aggregate: ['normal', 'storage'] } });
    await handler.processBatch(
      batch([
        { at: 1_000, id: 'a', level: 'storage', body: { temperature: 10, humidity: 1 } },
        { at: 2_000, id: 'b', level: 'critical', body: { temperature: 20, humidity: 2 } },
      ]),
    );
    const [report] = await reports();
    expect(Object.keys(report!.fields)).toEqual(['humidity']);
    expect(report?.fields['humidity']).toMatchObject({ count: 1, sum: 1 });
  });

  it('counts warnings by reason and keeps a field named __proto__ as data', async () => {
    const { handler, reports } = setup();
    await handler.processBatch(
      batch([
        { at: 1_000, id: 'a', body: '{"__proto__": 5, "temperature": 1}' },
        { at: 2_000, id: 'b', properties: { location: '$twin.tags.location' } },
      ]),
    );
    const [report] = await reports();
    expect(report?.byOutcome).toEqual({ accept: 1, warn: 1 });
    expect(report?.byReason).toEqual({ EnrichmentUnresolved: 1 });
    expect(Object.hasOwn(report!.fields, '__proto__')).toBe(true);
    expect(report?.fields['temperature']?.count).toBe(2);
  });

  it('counts numeric fields beyond the per-message limit in fieldsOmitted instead of dropping them silently', async () => {
    const { handler, reports } = setup();
    const body = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${String(i).padStart(2, '0')}`, i]));
    await handler.processBatch(batch([{ at: 1_000, id: 'a', body: { ...body, huge: 1e200 } }]));
    const [report] = await reports();
    expect(Object.keys(report!.fields)).toHaveLength(32);
    expect(report?.fieldsOmitted).toBe(9);
  });

  it('takes the same values from scanned bodies as from parsed ones, shape after shape and in body order', async () => {
    const bodies = [
      '{"temperature": 21.5, "humidity": 40, "note": "x"}',
      '{"temperature": 22, "humidity": 41}',
      '{"temperature": 23, "humidity": 42}',
      '{"humidity": 43, "temperature": 24}',
      '{"temperature": 25, "humidity": 44}',
      '{"temperature": -0, "humidity": 1e400, "pressure": 1e200}',
      '{"temperature": 26, "humidity": 45}',
      '{"a": 1, "b": 2, "c": 3}',
      '{"a": 1, "b": 2, "c": 3}',
      '{"a": 1, "b": 2, "c": 3}',
      JSON.stringify(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${40 - i}`, i]))),
    ];
    const specs = bodies.map((body, i) => ({ at: 1_000 * (i + 1), id: `m${i}`, body }));
    const scanned = batch(specs);
    expect(scanned.every((m) => m.decoded.kind === 'json' && m.decoded.numbers !== undefined)).toBe(true);
    // The same messages with their bodies parsed eagerly, as a decoder without the scan gives them.
    const parsed = scanned.map((m): RoutedMessage => ({
      ...m,
      decoded: { kind: 'json', value: JSON.parse(Buffer.from(m.body).toString('utf8')), decodedFrom: m.decoded.decodedFrom },
    }));
    const contributions = async (messages: RoutedMessage[]): Promise<string> => {
      const { handler, windows } = setup();
      await handler.processBatch(messages);
      const [doc] = await baseDocs(windows);
      // JSON text keeps key order, which is the order the totals list fields in.
      return JSON.stringify(doc?.contributions);
    };
    const fromScan = await contributions(scanned);
    expect(fromScan).toBe(await contributions(parsed));
    expect(JSON.parse(fromScan)[3].values).toEqual({ humidity: 43, temperature: 24 });
    expect(Object.keys(JSON.parse(fromScan)[3].values)).toEqual(['humidity', 'temperature']);
  });

  it('rolls base windows up into larger windows with the same totals', async () => {
    const { handler, reports, aggregation } = setup({ windows: ['1m', '1h'] });
    const specs = Array.from({ length: 30 }, (_, i) => ({ at: i * 7_001, id: `m${i}`, body: { temperature: i } }));
    await handler.processBatch(batch(specs.slice(0, 17)));
    await handler.processBatch(batch(specs.slice(17)));
    const minutes = await reports(aggregation.windows[0]);
    const [hour] = await reports(aggregation.windows[1]);
    expect(minutes.length).toBe(4);
    expect(hour).toMatchObject({ window: '1h', windowStart: '2024-03-01T10:00:00Z', windowEnd: '2024-03-01T11:00:00Z', messages: 30 });
    expect(hour?.fields['temperature']).toMatchObject({ count: 30, min: 0, max: 29, sum: 435, first: 0, last: 29 });
    const mean = 14.5;
    const variance = specs.reduce((s, x) => s + (x.body.temperature - mean) ** 2, 0) / 30;
    expect(hour?.fields['temperature']?.variance).toBeCloseTo(variance, 10);
  });
  /**
   * The product's store (conditional writes, documents decoded on every read) over an in-memory BlobStore, seeded
   * with thermostat-1's first minute and hour as schema 1 wrote them: contributions in an object by hashed identity,
   * roll-up entries holding rounded summaries.
   */
  const withSchema1 = async (messages: Record<string, { t: number; temperature: number }>) => {
    let blobs: MemoryBlobStore | undefined;
    const made = setup({ windows: ['1m', '1h'] }, undefined, (clock) => blobWindowStore((blobs = new MemoryBlobStore({ clock })), 'reports'));
    const [base, hour] = made.aggregation.windows as [WindowSize, WindowSize];
    const seed = async (size: WindowSize, doc: Record<string, unknown>): Promise<void> => {
      const startMs = T0;
      const document = {
        schema: 1,
        deviceId: 'thermostat-1',
        partition: '0',
        window: size.label,
        windowStart: new Date(startMs).toISOString().replace('.000Z', 'Z'),
        windowEnd: new Date(startMs + size.ms).toISOString().replace('.000Z', 'Z'),
        ...doc,
      };
      await blobs!.ensureContainer('reports');
      await blobs!.put('reports', windowDocName(size, 'thermostat-1', startMs, '0'), Buffer.from(JSON.stringify(document)));
    };
    const contributions = Object.fromEntries(
      Object.entries(messages).map(([id, m]) => [id, { t: T0 + m.t, level: null, outcome: 'accept', values: { temperature: m.temperature } }]),
    );
    await seed(base, { kind: 'window', rev: 1, messages: contributions, late: {} });
    const summary = { messages: 2, late: 0, byLevel: { '(none)': 2 }, byOutcome: { accept: 2, warn: 0 }, byReason: {}, fieldsOmitted: 0, fields: {} };
    await seed(hour, { kind: 'rollup', subs: { '2024-03-01T10:00:00Z': { rev: 1, summary } } });
    return { ...made, base, hour };
  };

  it('reads partials written by the previous build (schema 1) and keeps counting on them', async () => {
    const { handler, reports, windows, base, hour } = await withSchema1({ aaaa: { t: 1_000, temperature: 10 }, bbbb: { t: 2_000, temperature: 14 } });
    // A new message in the same minute, and one in the next.
    await handler.processBatch(batch([{ at: 3_000, id: 'new', body: { temperature: 18 } }, { at: MINUTE + 1, id: 'later', body: { temperature: 2 } }]));
    const [minute] = await reports(base);
    expect(minute).toMatchObject({ messages: 3, fields: { temperature: { count: 3, sum: 42, min: 10, max: 18, mean: 14 } } });
    const [hourly] = await reports(hour);
    expect(hourly).toMatchObject({ messages: 4, fields: { temperature: { count: 4, sum: 44, first: 10, last: 2 } } });
    expect(((await windows.get(windowDocName(base, 'thermostat-1', T0, '0'), decodeBaseWindowDoc)) as BaseWindowDoc).ids).toHaveLength(3);
  });

  it('reads a schema 1 roll-up entry the batch did not touch from its base partial', async () => {
    const { reports, hour } = await withSchema1({ aaaa: { t: 5_000, temperature: 7 } });
    const [hourly] = await reports(hour);
    expect(hourly).toMatchObject({ messages: 1, fields: { temperature: { count: 1, sum: 7 } } });
  });
});

describe('windowed aggregation: effectively once', () => {
  it('a replayed batch changes nothing and is counted as duplicates', async () => {
    const { handler, reports } = setup();
    const specs: Spec[] = [
      { at: 1_000, id: 'a', body: { temperature: 1 } },
      { at: 2_000, body: { temperature: 2 } },
    ];
    await handler.processBatch(batch(specs));
    const before = JSON.stringify(await reports());
    const replay = await handler.processBatch(batch(specs));
    expect(replay).toMatchObject({ received: 2, aggregated: 0, duplicates: 2 });
    expect(conserved(replay)).toBe(true);
    expect(JSON.stringify(await reports())).toBe(before);
  });

  it('a re-send within one batch (same message id, new sequence number) is counted once', async () => {
    const { handler, reports } = setup();
    const result = await handler.processBatch(
      batch([
        { at: 1_000, id: '1' },
        { at: 2_000, id: '2' },
        { at: 1_000, id: '1' },
        { at: 2_000, id: '2' },
        { at: 3_000, id: '3' },
      ]),
    );
    expect(result).toMatchObject({ received: 5, aggregated: 3, duplicates: 2 });
    expect((await reports())[0]?.messages).toBe(3);
  });

  it('a message id reused in two windows of one batch counts once in each, and its copies in either are duplicates', async () => {
    const { handler, reports } = setup();
    const result = await handler.processBatch(
      batch([
        { at: 1_000, id: 'x', body: { temperature: 1 } },
        { at: MINUTE + 1_000, id: 'x', body: { temperature: 2 } },
        { at: 1_000, id: 'x', body: { temperature: 1 } },
        { at: MINUTE + 1_000, id: 'x', body: { temperature: 2 } },
      ]),
    );
    expect(result).toMatchObject({ received: 4, aggregated: 2, duplicates: 2 });
    expect((await reports()).map((r) => [r.windowStart, r.messages, r.fields['temperature']?.sum])).toEqual([
      ['2024-03-01T10:00:00Z', 1, 1],
      ['2024-03-01T10:01:00Z', 1, 2],
    ]);
  });

  it('message ids are per device: two devices may both send id 1', async () => {
    const { handler, reports } = setup();
    await handler.processBatch(batch([{ at: 1_000, id: '1', device: 'a' }, { at: 1_000, id: '1', device: 'b' }]));
    expect((await reports()).map((r) => [r.deviceId, r.messages])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);
  });

  it('conflicting copies of one identity converge to the same report in either order', async () => {
    const one = setup();
    const other = setup();
    const a: Spec = { at: 1_000, id: 'reused', body: { temperature: 1 } };
    const b: Spec = { at: 1_000, id: 'reused', body: { temperature: 2 } };
    await one.handler.processBatch(batch([a]));
    await one.handler.processBatch(batch([b]));
    await other.handler.processBatch(batch([b]));
    await other.handler.processBatch(batch([a]));
    expect(JSON.stringify(await one.reports())).toBe(JSON.stringify(await other.reports()));
    expect((await one.reports())[0]?.messages).toBe(1);
  });

  it('the same message through two partitions (device moved) is counted once when partials are merged', async () => {
    const { handler, reports, windows } = setup({ windows: ['1m', '1h'] });
    await handler.processBatch(batch([{ at: 1_000, id: 'a', body: { temperature: 1 } }, { at: 2_000, id: 'b', body: { temperature: 2 } }], '0'));
    await handler.processBatch(batch([{ at: 2_000, id: 'b', body: { temperature: 2 } }, { at: 3_000, id: 'c', body: { temperature: 3 } }], '5'));
    expect((await baseDocs(windows)).map((d) => [d.partition, d.ids.length])).toEqual([
      ['0', 2],
      ['5', 2],
    ]);
    const [minute] = await reports();
    expect(minute).toMatchObject({ messages: 3 });
    expect(minute?.fields['temperature']).toMatchObject({ count: 3, sum: 6 });
    const [hour] = await reports({ label: '1h', ms: 3_600_000 });
    expect(hour).toMatchObject({ messages: 3 });
    expect(hour?.fields['temperature']).toMatchObject({ count: 3, sum: 6 });
  });
});

describe('windowed aggregation: IoT Edge modules', () => {
  it('counts two modules of one device that both number their messages from 1, and dedupes each one\'s replays', async () => {
    const { handler, reports } = setup();
    const specs: Spec[] = [
      { at: 1_000, id: '1', module: 'sensorA', body: { temperature: 10 } },
      { at: 2_000, id: '1', module: 'sensorB', body: { temperature: 30 } },
    ];
    expect(await handler.processBatch(batch(specs))).toMatchObject({ aggregated: 2, duplicates: 0 });
    expect(await handler.processBatch(batch(specs))).toMatchObject({ aggregated: 0, duplicates: 2 });
    expect((await reports())[0]).toMatchObject({ messages: 2, fields: { temperature: { count: 2, sum: 40 } } });
  });

  it('finds a module message counted before identities named the module (a replay across the upgrade) as a duplicate', async () => {
    const { handler, reports } = setup();
    // What the earlier build stored for sensorA's message 1: the device-scoped form, `id:1`.
    await handler.processBatch(batch([{ at: 1_000, id: '1', body: { temperature: 10 } }]));
    expect(await handler.processBatch(batch([{ at: 1_000, id: '1', module: 'sensorA', body: { temperature: 10 } }]))).toMatchObject({ aggregated: 0, duplicates: 1 });
    expect((await reports())[0]).toMatchObject({ messages: 1 });
  });
});

describe('windowed aggregation: bad input never throws', () => {
  it('quarantines what the checks reject and keeps conservation', async () => {
    const { handler, reports } = setup();
    const result = await handler.processBatch(
      batch([
        { at: 1_000, id: 'ok' },
        { at: 2_000, id: 'no-device', device: null },
        { at: 3_000, id: 'no-time', time: null },
        { at: 4_000, id: 'not-json', body: '{"temperature": 1' },
      ]),
    );
    expect(result).toMatchObject({ received: 4, aggregated: 1, quarantined: 3 });
    expect(conserved(result)).toBe(true);
    expect((await reports())[0]?.messages).toBe(1);
  });

  it('quarantines admitted messages that cannot be windowed when checks let them through as warnings', async () => {
    const { handler, quarantineStore } = setup({}, { endpoints: { events: { outcomes: { DeviceIdMissing: 'warn', EnqueuedTimeInvalid: 'warn' } } } });
    const result = await handler.processBatch(batch([{ at: 1_000, id: 'x', device: null }, { at: 1_000, id: 'y', time: null }]));
    expect(result).toMatchObject({ received: 2, quarantined: 2, aggregated: 0, quarantinedBy: { DeviceIdMissing: 1, EnqueuedTimeInvalid: 1 } });
    const names: string[] = [];
    for await (const item of quarantineStore.list('quarantine')) names.push(item.name);
    expect(names).toHaveLength(2);
  });

  it('says why each message cannot be windowed, so that whoever quarantines it need not decide again', async () => {
    const clock = new ManualClock(T0 + 3_600_000);
    const checks = parseChecksConfig({ endpoints: { events: { outcomes: { DeviceIdMissing: 'warn', EnqueuedTimeInvalid: 'warn' } } } });
    if ('errors' in checks) throw new Error(checks.errors.join('\n'));
    const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
    const { admitted } = await admit(
      batch([{ at: 1_000, id: 'x', device: null }, { at: 2_000, id: 'kept' }, { at: 1_000, id: 'y', time: null }]),
      'events',
      { checks: checks.value, quarantine, now: () => clock.now() },
    );
    const result = await createWindowAggregator({ windows: memoryWindowStore(), config: config({}), clock }).aggregate(admitted, '0');
    expect(result.unwindowable.map(({ admitted: item, code }) => [item.delivered.messageId, code])).toEqual([
      ['x', 'DeviceIdMissing'],
      ['y', 'EnqueuedTimeInvalid'],
    ]);
    expect(result.aggregated).toBe(1);
  });
});

describe('lateness', () => {
  it('a message later than the allowed lateness is counted once, recorded, and bumps the revision', async () => {
    const { handler, reports, windows } = setup({ allowedLatenessSeconds: 120 });
    await handler.processBatch(batch([{ at: 10_000, id: 'a' }]));
    await handler.processBatch(batch([{ at: 5 * MINUTE, id: 'b' }]));
    const late = await handler.processBatch(batch([{ at: 20_000, id: 'late' }]));
    expect(late).toMatchObject({ aggregated: 1, late: 1 });
    const [first] = await reports();
    expect(first).toMatchObject({ windowStart: '2024-03-01T10:00:00Z', messages: 2, late: 1, revision: 2, status: 'final' });
    const doc = (await baseDocs(windows)).find((d) => d.windowStart === '2024-03-01T10:00:00Z');
    expect(Object.keys(doc!.late)).toHaveLength(1);
    // Replaying the late message changes nothing more.
    const replay = await handler.processBatch(batch([{ at: 20_000, id: 'late' }]));
    expect(replay).toMatchObject({ duplicates: 1, late: 0 });
    expect((await reports())[0]?.revision).toBe(2);
  });

  it('the idle-partition timer firing during a batch never changes a final window without a new revision', async () => {
    // A consumer catching up after the partition sat idle; the timer fires (another host, the same moment) right
    // after the batch has looked at its partition, before the batch writes.
    let blobs: MemoryBlobStore | undefined;
    let hook: (() => Promise<void>) | undefined;
    const { handler, reports, clock, aggregation } = setup({}, undefined, (c) => {
      blobs = new MemoryBlobStore({ clock: c });
      const inner = blobWindowStore(blobs, 'reports');
      const fire = async (name: string) => {
        if (!name.startsWith('partitions/') || hook === undefined) return;
        const run = hook;
        hook = undefined;
        await run();
      };
      return {
        async update(name, mutate, decode) {
          const result = await inner.update(name, mutate, decode);
          await fire(name);
          return result;
        },
        async get(name, decode) {
          const value = await inner.get(name, decode);
          await fire(name);
          return value;
        },
        list: (prefix) => inner.list(prefix),
      } satisfies WindowStore;
    });
    const finalizer = createWindowFinalizer({ windows: blobWindowStore(blobs!, 'reports'), config: aggregation, clock });
    const past = clock.now().getTime() - T0 - 20 * MINUTE;
    await handler.processBatch(batch([{ at: past + 10_000, id: 'a' }]));
    clock.advance(2 * MINUTE); // idle for longer than idlePartitionSeconds (60)
    let seen: WindowReport | undefined;
    hook = async () => {
      await finalizer.finalizeIdlePartitions();
      [seen] = await reports();
    };
    await handler.processBatch(batch([{ at: past + 20_000, id: 'b' }]));
    expect(hook).toBeUndefined();
    const [after] = await reports();
    expect(after).toMatchObject({ messages: 2 });
    // Either the batch claimed the partition first (the timer left it alone: the window is still open) or the timer
    // won and the batch counted the message as late, with a new revision.
    if (seen?.status === 'final') expect(after).toMatchObject({ late: 1, revision: seen.revision + 1 });
    else expect(after).toMatchObject({ status: 'open', late: 0, revision: 1 });
  });

  it('within the allowed lateness an out-of-order message is on time', async () => {
    const { handler, reports } = setup({ allowedLatenessSeconds: 600 });
    await handler.processBatch(batch([{ at: 5 * MINUTE, id: 'b' }]));
    const result = await handler.processBatch(batch([{ at: 10_000, id: 'a' }]));
    expect(result.late).toBe(0);
    expect((await reports())[0]).toMatchObject({ revision: 1, status: 'open' });
  });

  it('lateness inside one batch follows arrival order, as it would across batches', async () => {
    const inOne = setup({ allowedLatenessSeconds: 60 });
    const split = setup({ allowedLatenessSeconds: 60 });
    const specs: Spec[] = [{ at: 10 * MINUTE, id: 'b' }, { at: 10_000, id: 'a' }];
    const together = await inOne.handler.processBatch(batch(specs));
    await split.handler.processBatch(batch(specs.slice(0, 1)));
    const apart = await split.handler.processBatch(batch(specs.slice(1)));
    expect(together.late).toBe(1);
    expect(apart.late).toBe(1);
    expect(JSON.stringify(await inOne.reports())).toBe(JSON.stringify(await split.reports()));
  });

  it('a late message counts as late for a roll-up only if the roll-up had closed too', async () => {
    const { handler, reports } = setup({ windows: ['1m', '1h'], allowedLatenessSeconds: 60 });
    await handler.processBatch(batch([{ at: 10_000, id: 'a' }, { at: 10 * MINUTE, id: 'b' }]));
    await handler.processBatch(batch([{ at: 20_000, id: 'late-for-minute' }]));
    const [minute] = await reports();
    const [hour] = await reports({ label: '1h', ms: 3_600_000 });
    expect(minute).toMatchObject({ late: 1, revision: 2 });
    expect(hour).toMatchObject({ messages: 3, late: 0, revision: 1 });
  });

  it('the finalize timer closes the windows of an idle partition by the clock', async () => {
    const { handler, reports, clock, windows, aggregation } = setup({ allowedLatenessSeconds: 600, idlePartitionSeconds: 60 });
    clock.set(T0 + 30_000);
    await handler.processBatch(batch([{ at: 10_000, id: 'a' }]));
    const finalizer = createWindowFinalizer({ windows, config: aggregation, clock });
    clock.advance(30_000);
    expect((await finalizer.finalizeIdlePartitions()).advanced).toEqual([]);
    expect((await reports())[0]?.status).toBe('open');
    clock.set(T0 + 12 * MINUTE);
    const result = await finalizer.finalizeIdlePartitions();
    expect(result).toEqual({ partitions: 1, advanced: [{ partition: '0', watermark: '2024-03-01T10:02:00Z' }] });
    expect((await reports())[0]?.status).toBe('final');
    // Running it again changes nothing.
    expect((await finalizer.finalizeIdlePartitions()).advanced).toEqual([]);
    // Whatever the idle partition delivers afterwards for that window is late, counted, and revises the report.
    const late = await handler.processBatch(batch([{ at: 20_000, id: 'after-final' }]));
    expect(late.late).toBe(1);
    expect((await reports())[0]).toMatchObject({ messages: 2, revision: 2, status: 'final' });
  });

  it('an enqueued time far ahead of the clock does not close every window', async () => {
    const { handler, clock } = setup({ allowedLatenessSeconds: 60 });
    clock.set(T0 + 5 * MINUTE);
    // Accepted by the checks (less than a day ahead), but it moves the watermark only to the clock plus 5 minutes
    // (minus the lateness): 10:09, so the window 10:09-10:10 is still open.
    await handler.processBatch(batch([{ at: 20 * 3_600_000, id: 'future' }]));
    expect((await handler.processBatch(batch([{ at: 9 * MINUTE + 30_000, id: 'open' }]))).late).toBe(0);
    expect((await handler.processBatch(batch([{ at: 8 * MINUTE + 30_000, id: 'closed' }]))).late).toBe(1);
  });
});

describe('roll-ups spanning more than 60 base windows are kept in pages', () => {
  const DAY = { label: '1d', ms: 86_400_000 };

  it('1m + 1d: the day report counts every message once, from pages of at most 60 minutes each', async () => {
    const { handler, reports, windows } = setup({ windows: ['1m', '1d'] });
    // One device, one message every 7 minutes for 3 hours (across 4 pages), temperatures 0..25.
    const specs: Spec[] = Array.from({ length: 26 }, (_, i) => ({ at: i * 7 * MINUTE + 1_000, id: `m-${i}`, body: { temperature: i } }));
    for (let i = 0; i < specs.length; i += 5) await handler.processBatch(batch(specs.slice(i, i + 5)));
    const [day] = await reports(DAY);
    expect(day).toMatchObject({ windowStart: '2024-03-01T00:00:00Z', messages: 26, fields: { temperature: { count: 26, sum: 325, min: 0, max: 25, mean: 12.5 } } });
    const names: string[] = [];
    for await (const name of windows.list('windows/1d/')) names.push(name);
    // Minutes 10:00 to 12:55: pages 10, 11 and 12 of the day (page k holds the minutes of hour k).
    expect(names).toEqual([10, 11, 12].map((k) => `windows/1d/2024-03-01/thermostat-1/2024-03-01T00:00:00Z/0,${k}.json`));
    for (const name of names) {
      const page = await windows.get(name, decodeRollupWindowDoc);
      expect(Object.keys(page!.subs).length).toBeLessThanOrEqual(60);
    }
  });

  it('a batch rewrites only the page of its minute, not the whole day', async () => {
    let written: string[] = [];
    const { handler } = setup({ windows: ['1m', '1d'] }, undefined, (clock) => {
      const blobs = new MemoryBlobStore({ clock });
      const recording = new Proxy(blobs, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver) as unknown;
          if (typeof value !== 'function' || typeof key !== 'string') return value;
          return (...args: unknown[]) => {
            if (key === 'replace' || key === 'create') written.push(String(args[1]));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      return blobWindowStore(recording, 'reports');
    });
    // Two hours of minutes (pages 10 and 11 of the day), then one more message in a minute of 11:30.
    for (let hour = 0; hour < 2; hour++) {
      await handler.processBatch(batch(Array.from({ length: 60 }, (_, m) => ({ at: hour * 3_600_000 + m * MINUTE + 1_000, id: `h${hour}-${m}`, body: { temperature: m } }))));
    }
    written = [];
    await handler.processBatch(batch([{ at: 3_600_000 + 30 * MINUTE + 30_000, id: 'one-more', body: { temperature: 1 } }]));
    expect(written).toEqual([
      'windows/1m/2024-03-01/thermostat-1/2024-03-01T11:30:00Z/0.json',
      'windows/1d/2024-03-01/thermostat-1/2024-03-01T00:00:00Z/0,11.json',
    ]);
  });

  it('reads a day an earlier build kept in one document together with pages written since, counting each message once', async () => {
    const { handler, reports, windows } = setup({ windows: ['1m', '1d'] });
    await handler.processBatch(batch([{ at: 1_000, id: 'a', body: { temperature: 1 } }, { at: 2 * 3_600_000, id: 'b', body: { temperature: 2 } }]));
    // What an earlier build wrote: the same day in one unpaged document, holding both minutes.
    const pages: RollupWindowDoc[] = [];
    for await (const name of windows.list('windows/1d/')) pages.push((await windows.get(name, decodeRollupWindowDoc))!);
    const merged: RollupWindowDoc = { ...pages[0]!, subs: Object.assign({}, ...pages.map((p) => p.subs)) as RollupWindowDoc['subs'] };
    windows.update<RollupWindowDoc>('windows/1d/2024-03-01/thermostat-1/2024-03-01T00:00:00Z/0.json', () => merged, decodeRollupWindowDoc);
    await handler.processBatch(batch([{ at: 2_000, id: 'c', body: { temperature: 3 } }]));
    const [day] = await reports(DAY);
    expect(day).toMatchObject({ messages: 3, fields: { temperature: { count: 3, sum: 6 } } });
  });
});

describe('the base window a reports container keeps', () => {
  it('refuses another base window over the same container, before writing anything; roll-up sizes may change', async () => {
    const first = setup({ windows: ['1m', '1h'] });
    await first.handler.processBatch(batch([{ at: 10_000, id: 'a' }, { at: 70_000, id: 'b' }]));
    const before = JSON.stringify(await first.reports({ label: '1h', ms: 3_600_000 }));
    const names = async () => {
      const all: string[] = [];
      for await (const name of first.windows.list('')) all.push(name);
      return all;
    };
    const written = await names();
    expect(written).toContain('config/base-window.json');

    // The next deployment, over the same container.
    const changed = setup({ windows: ['5m', '1h'] }, undefined, () => first.windows);
    await expect(changed.handler.processBatch(batch([{ at: 130_000, id: 'c' }]))).rejects.toMatchObject({
      code: 'ConfigInvalid',
      message: expect.stringMatching(/holds windows built on a 1m base window, and this configuration's smallest window is 5m.*REPORTS_CONTAINER/),
    });
    expect(await names()).toEqual(written);
    expect(JSON.stringify(await first.reports({ label: '1h', ms: 3_600_000 }))).toBe(before);

    // Another roll-up on the same base is fine.
    const wider = setup({ windows: ['1m', '1h', '1d'] }, undefined, () => first.windows);
    expect(await wider.handler.processBatch(batch([{ at: 130_000, id: 'c' }]))).toMatchObject({ aggregated: 1 });
  });
});

describe('storage calls (the product store over an in-memory BlobStore)', () => {
  /** Counts the BlobStore calls by method. */
  function counted(blobs: MemoryBlobStore): { store: MemoryBlobStore; calls: Record<string, number> } {
    const calls: Record<string, number> = {};
    const store = new Proxy(blobs, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (typeof value !== 'function' || typeof key !== 'string') return value;
        return (...args: unknown[]) => {
          calls[key] = (calls[key] ?? 0) + 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { store, calls };
  }

  it('a new window costs one create, a window written before one conditional replace, and neither a read', async () => {
    let counter: ReturnType<typeof counted> | undefined;
    const { handler } = setup({ windows: ['1m', '1h'] }, undefined, (clock) => {
      counter = counted(new MemoryBlobStore({ clock }));
      return blobWindowStore(counter.store, 'reports');
    });
    await handler.processBatch(batch([{ at: 1_000, id: 'a' }]));
    const calls = counter!.calls;
    for (const key of Object.keys(calls)) delete calls[key];
    // The same minute and hour again, then a new minute in the same hour.
    await handler.processBatch(batch([{ at: 2_000, id: 'b' }]));
    // Minute, hour and partition replaced; the partition is claimed from the version this process wrote, not read.
    expect(calls).toEqual({ replace: 3 });
    for (const key of Object.keys(calls)) delete calls[key];
    await handler.processBatch(batch([{ at: MINUTE + 1_000, id: 'c' }]));
    expect(calls).toEqual({ create: 1, replace: 2 });
  });

  it('keeps written documents for the next batch within a size budget, reading again what did not fit', async () => {
    const runs: Array<Record<string, number>> = [];
    for (const cachedCharacters of [undefined, 1]) {
      let counter: ReturnType<typeof counted> | undefined;
      const { handler } = setup({ windows: ['1m', '1h'] }, undefined, (clock) => {
        counter = counted(new MemoryBlobStore({ clock }));
        return blobWindowStore(counter.store, 'reports', cachedCharacters === undefined ? {} : { cachedCharacters });
      });
      await handler.processBatch(batch([{ at: 1_000, id: 'a' }]));
      for (const key of Object.keys(counter!.calls)) delete counter!.calls[key];
      await handler.processBatch(batch([{ at: 2_000, id: 'b' }]));
      runs.push({ ...counter!.calls });
    }
    expect(runs).toEqual([
      { replace: 3 },
      // Nothing kept: each document (the partition claimed, the minute, the hour, the partition advanced) is first
      // tried as new, refused, and read; the claim then finds nothing to change.
      { create: 4, get: 4, replace: 3 },
    ]);
  });

  it('a window written by another instance is read and updated after its create is refused', async () => {
    const clock = new ManualClock(T0 + 3 * 3_600_000);
    const blobs = new MemoryBlobStore({ clock });
    const first = setup({}, undefined, () => blobWindowStore(blobs, 'reports'));
    await first.handler.processBatch(batch([{ at: 1_000, id: 'a' }]));
    // A second instance (its own cache) takes the partition over and counts into the same window.
    const second = setup({}, undefined, () => blobWindowStore(blobs, 'reports'));
    await second.handler.processBatch(batch([{ at: 2_000, id: 'b' }]));
    await second.handler.processBatch(batch([{ at: 3_000, id: 'a' }]));
    expect((await second.reports())[0]).toMatchObject({ messages: 2, fields: { temperature: { count: 2 } } });
  });
});
