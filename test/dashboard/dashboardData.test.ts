/**
 * The dashboard's data shaping over an in-memory store, written by the product's own paths (dashboardSeed.ts):
 * what the bounds cut and say, that unchanged documents are not read twice, device ids that are also JavaScript
 * property names, and which quarantine entries count where.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { aggregationConfigOf } from '../../src/lib/aggregate/aggregationConfig.js';
import { archiveFromServices } from '../../src/lib/archive/archiveDeps.js';
import { DIGEST_REJECTED_HINT } from '../../src/lib/alerts/digestRunner.js';
import { createAlertLedger } from '../../src/lib/alerts/ledger.js';
import { REASONS } from '../../src/lib/checks/reasons.js';
import { decodeWindowDoc } from '../../src/lib/aggregate/windowStore.js';
import {
  cachedWindowStore,
  createDashboardDataSource,
  decodeLedgerView,
  describeReason,
  type DashboardDeps,
} from '../../src/lib/dashboard/dashboardData.js';
import { parseDashboardQuery, type DashboardQuery } from '../../src/lib/dashboard/dashboardParams.js';
import { EtagCache } from '../../src/lib/dashboard/etagCache.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { ManualClock, type BlobStore } from '../../src/lib/ports.js';
import { createServices, type Services } from '../../src/lib/runtime.js';
import { DAMAGE_HINTS } from '../../src/lib/storage/quarantine.js';
import { isUndecodableDocument } from '../../src/lib/storage/jsonDocuments.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { seedDashboard, type Seeded } from './dashboardSeed.js';

const END = Date.parse('2024-03-01T10:30:00Z');
const NOW = END + 20_000;
const MINUTE = 60_000;
const DAY_MS = 86_400_000;
const DEVICES = ['__proto__', 'constructor', 'pump-1'] as const;
const ENV = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', ARCHIVE_CONTAINER: 'archive' };

/** Counts the downloads a request makes. */
class CountingStore extends MemoryBlobStore {
  gets = 0;
  override get(container: string, name: string) {
    this.gets += 1;
    return super.get(container, name);
  }
}

let clock: ManualClock;
let store: CountingStore;
let services: Services;
let seeded: Seeded;

beforeEach(async () => {
  clock = new ManualClock(END);
  store = new CountingStore({ clock });
  services = await createServices(ENV, { store, clock });
  seeded = await seedDashboard(services, { endMs: END, devices: DEVICES, windows: 5, clock });
  clock.set(NOW);
});

function deps(overrides: Partial<DashboardDeps> = {}): DashboardDeps {
  return {
    store: services.store,
    clock,
    aggregation: aggregationConfigOf(services.config.routing),
    reportsContainer: services.config.settings.reportsContainer,
    alertsContainer: services.config.settings.alerts.container,
    quarantineContainer: services.config.settings.quarantineContainer,
    archive: archiveFromServices(services),
    cache: new EtagCache(1000),
    ...overrides,
  };
}

function query(text = ''): DashboardQuery {
  const parsed = parseDashboardQuery(new URLSearchParams(text), aggregationConfigOf(services.config.routing), clock.now());
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('createDashboardDataSource', () => {
  it('keeps device ids that are JavaScript property names as plain keys of the series', async () => {
    const data = await createDashboardDataSource(deps())(query());
    expect(data.charted).toEqual(['__proto__', 'constructor', 'pump-1']);
    expect(Object.keys(data.series)).toEqual(['__proto__', 'constructor', 'pump-1']);
    expect(Object.getPrototypeOf(data.series)).toBe(Object.prototype);
    const json = JSON.parse(JSON.stringify(data)) as typeof data;
    expect(Object.hasOwn(json.series, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(json.series, '__proto__')?.value.temperature).toHaveLength(5);
    expect(json.series['constructor']!['humidity']).toHaveLength(5);
  });

  it('reads an unchanged document once: a refresh downloads only what changed', async () => {
    const source = createDashboardDataSource(deps());
    await source(query());
    const first = store.gets;
    await source(query());
    const second = store.gets - first;
    // Only each device's partition watermark (never listed, so never cached) is read again.
    expect(second).toBe(DEVICES.length);

    // A new message changes one window: that document is read again, the others still are not.
    const [message] = decodeEventHubBatch([Buffer.from('{"temperature": 99}')], {
      partitionContext: { partitionId: '1' },
      propertiesArray: [{ iothubname: services.config.routing.iotHubName }],
      systemPropertiesArray: [
        { 'iothub-connection-device-id': 'constructor', 'iothub-enqueuedtime': new Date(END - 30_000).toISOString(), 'message-id': 'late', 'content-type': 'application/json', 'content-encoding': 'UTF-8' },
      ],
    });
    const { telemetryStreamFromServices } = await import('../../src/lib/aggregate/telemetryStream.js');
    await telemetryStreamFromServices(services).processBatch([message!]);
    const before = store.gets;
    const after = await source(query());
    expect(store.gets - before).toBe(DEVICES.length + 1);
    expect(after.series['constructor']!['temperature']!.at(-1)!.count).toBe(4);
  });

  it('charts only the chosen devices and counts only theirs', async () => {
    const data = await createDashboardDataSource(deps())(query('deviceId=pump-1'));
    expect(data.charted).toEqual(['pump-1']);
    expect(Object.keys(data.series)).toEqual(['pump-1']);
    // pump-1 is the third device: the failed alert is its, counted once although it is also quarantined.
    expect(data.routes).toEqual({ events: 5 * 3, criticalQueue: 1, archive: null });
    expect(data.alerts.map((a) => [a.deviceId, a.status])).toEqual([['pump-1', 'failed']]);
    expect(data.outcomes).toEqual({ accept: 15, warn: 0, quarantine: 1 });
    expect(data.lowerBounds).toEqual([]);
  });

  it('says where the bounds cut the answer short', async () => {
    const data = await createDashboardDataSource(
      deps({ limits: { devices: 2, ledgerReads: 2, manifestReads: 1, quarantineScanned: 3, concurrency: 2 } }),
    )(query());
    expect(data.devices).toHaveLength(2);
    expect(data.coverage.devices).toEqual({ listed: 2, limited: true, charted: 2 });
    expect(data.coverage.alerts).toEqual({ listed: 4, read: 2, limited: true });
    expect(data.coverage.quarantine).toMatchObject({ scanned: 3, limited: true });
    expect(data.coverage.archive).toEqual({ blobs: 2, indexed: 1, limited: true });
    expect(data.routes.archive).toBeNull();
    // Every count fed by a cut scan is marked; the archive route is not counted at all here (devices were cut).
    expect(data.lowerBounds).toEqual(['events', 'criticalQueue', 'accept', 'warn', 'quarantine', 'refusedDigests']);
    expect(data.notes).toEqual(
      expect.arrayContaining([
        'Charts and event counts cover the first 2 of 2+ devices: choose up to 12 devices in the filter to compare others.',
        'Alerts: the newest 2 of 4 ledger records were read; older alerts in the range are not counted.',
        'Quarantine counts cover messages enqueued on the UTC day 2024-03-01 (the newest 3 entries).',
      ]),
    );
  });

  it('counts whole archive blobs newest first and says how many are not indexed yet', async () => {
    const data = await createDashboardDataSource(deps({ limits: { manifestReads: 1 } }))(query());
    expect(data.routes.archive).toBeGreaterThan(0);
    expect(data.routes.archive).toBeLessThan(seeded.archive.records);
    expect(data.notes).toContain('Archive: the newest 1 of 2 blobs named in the range are counted.');
    expect(data.lowerBounds).toEqual(['archive', 'accept', 'warn', 'quarantine']);
    expect(data.notes).toContain('Archive: 1 blob is not indexed yet.');
  });

  it('leaves the archive route out, and says so, when no archive container is configured', async () => {
    const data = await createDashboardDataSource(deps({ archive: null }))(query());
    expect(data.routes.archive).toBeNull();
    expect(data.coverage.archive).toBeNull();
    expect(data.outcomes.quarantine).toBe(seeded.events.quarantined + 1 + seeded.archive.quarantinedEntries);
    expect(data.notes).toContain('Archive: no archive container is configured (ARCHIVE_CONTAINER), so the archive route is not counted.');
  });

  it('stops reading the ledger at the first record last written before the range', async () => {
    // The range starts after the seeded alerts were created: none is in it, and their listing says so (no reads).
    const later = await createDashboardDataSource(deps({ limits: { concurrency: 1 } }))(query(`from=${new Date(END).toISOString()}`));
    expect(later.alerts).toEqual([]);
    expect(later.coverage.alerts).toEqual({ listed: 4, read: 0, limited: false });
    const all = await createDashboardDataSource(deps({ limits: { concurrency: 1 } }))(query());
    expect(all.alerts).toHaveLength(3);
    // The fourth record is the digest, which the listing marks as such.
    expect(all.coverage.alerts).toEqual({ listed: 4, read: 3, limited: false });
  });

  it('reads records of earlier builds (no listing metadata) and stops at the first written before the range', async () => {
    for await (const item of store.list(services.config.settings.alerts.container, 'ledger/')) {
      const document = (await store.get(services.config.settings.alerts.container, item.name))!;
      await store.put(services.config.settings.alerts.container, item.name, document.body, { contentType: 'application/json' });
    }
    const later = await createDashboardDataSource(deps({ limits: { concurrency: 1 } }))(query(`from=${new Date(END).toISOString()}`));
    expect(later.coverage.alerts).toEqual({ listed: 4, read: 1, limited: false });
    const all = await createDashboardDataSource(deps({ limits: { concurrency: 1 } }))(query());
    expect(all.alerts).toHaveLength(3);
    expect(all.coverage.alerts).toEqual({ listed: 4, read: 4, limited: false });
  });

  it('finds the alerts of a past range without spending its reads on the many created since', async () => {
    const container = services.config.settings.alerts.container;
    const ledger = createAlertLedger({ store, container, clock, leaseMs: 75_000, ready: async () => undefined });
    const before = await createDashboardDataSource(deps())(query());
    for (let i = 0; i < 600; i++) {
      clock.advance(1_000);
      const claim = await ledger.claim(`id:later-${i}`, { kind: 'alert', deviceId: 'pump-1', operationId: `op-${i}` });
      if (claim.status !== 'claimed') throw new Error('not claimed');
      await ledger.finish(claim, { state: 'sent', recipients: 1, deviceNotification: 'not-requested' });
    }
    store.gets = 0;
    const past = await createDashboardDataSource(deps())(query(`from=${new Date(END - 3_600_000).toISOString()}&to=${new Date(END).toISOString()}`));
    expect(past.alerts).toEqual(before.alerts);
    expect(past.coverage.alerts).toEqual({ listed: 604, read: 3, limited: false });
    expect(past.notes.join(' ')).not.toMatch(/older alerts in the range are not counted/);
  });

  it('takes quarantine entries by their enqueued day, and damaged archive blobs by the day they were quarantined', async () => {
    const other = new MemoryBlobStore({ clock });
    const container = 'quarantine';
    await other.ensureContainer(container);
    const put = (name: string, reasons: string, deviceId?: string) =>
      other.put(container, name, Buffer.from('{}'), { metadata: { kind: 'message', reasons, ...(deviceId === undefined ? {} : { deviceid: encodeURIComponent(deviceId) }) } });
    await put('messages/events/2024/03/01/a.json', 'BodyNotJson', 'pump,1');
    await put('messages/events/2024/02/29/b.json', 'BodyNotJson', 'pump,1');
    await put('messages/criticalQueue/2024/03/01/c.json', 'EmailRejected', 'pump,1');
    await put('messages/criticalQueue/2024/03/01/d.json', 'EnrichmentMismatch,LevelMissing', 'valve');
    await put('messages/archive/2024/03/01/e.json', 'EnrichmentMismatch', 'valve');
    await put('messages/undated/f.json', 'EnqueuedTimeInvalid');
    await put('blobs/archive/g.json', 'ArchiveTruncated');
    const data = await createDashboardDataSource(deps({ store: other, archive: null, quarantineContainer: container }))(query());
    expect(data.routes).toEqual({ events: 1, criticalQueue: 1, archive: null });
    expect(data.outcomes.quarantine).toBe(4);
    expect(data.quarantineTop.map((r) => [r.code, r.count])).toEqual([
      ['EnrichmentMismatch', 2],
      ['ArchiveTruncated', 1],
      ['BodyNotJson', 1],
      ['EmailRejected', 1],
      ['LevelMissing', 1],
    ]);
    const narrowed = await createDashboardDataSource(deps({ store: other, archive: null, quarantineContainer: container }))(query('deviceId=pump,1'));
    expect(narrowed.quarantineTop.map((r) => [r.code, r.count])).toEqual([
      ['BodyNotJson', 1],
      ['EmailRejected', 1],
    ]);
  });

  it('does not count a refused digest as a quarantined message (its alerts are in the ledger)', async () => {
    const before = await createDashboardDataSource(deps())(query());
    await services.quarantine.putDigest({
      identity: 'digest-1',
      deviceId: 'pump-1',
      reasons: [{ code: 'EmailRejected', detail: 'refused', hint: 'fix the recipients' }],
      digest: { operationId: 'op-1', alerts: 2, firstTime: null, lastTime: null, severities: [], recipients: [], readings: [], recentAlertKeys: [] },
    });
    expect((await all(services.quarantine.list())).some((item) => item.kind === 'digest')).toBe(true);
    const after = await createDashboardDataSource(deps())(query());
    expect(after.outcomes).toEqual(before.outcomes);
    expect(after.quarantineTop).toEqual(before.quarantineTop);
  });

  it('shows refused digests apart: when, which device, how many alerts, the reason and its hint; counted in no other section', async () => {
    const before = await createDashboardDataSource(deps())(query());
    expect(before.refusedDigests).toEqual({ count: 0, latest: [] });
    const refuse = (identity: string, deviceId: string, alerts: number) =>
      services.quarantine.putDigest({
        identity,
        deviceId,
        reasons: [{ code: 'EmailRejected', detail: `InvalidRecipient: ${identity} refused`, hint: DIGEST_REJECTED_HINT }],
        digest: {
          operationId: `op-${identity}`,
          alerts,
          firstTime: '2024-03-01T10:01:00.000Z',
          lastTime: '2024-03-01T10:14:00.000Z',
          severities: [],
          recipients: ['ops@contoso.example'],
          readings: [],
          recentAlertKeys: [],
        },
      });
    clock.set(NOW - 2 * DAY_MS);
    await refuse('digest-old', 'pump-1', 9); // refused before the range
    clock.set(NOW - 20 * MINUTE);
    await refuse('digest-a', 'pump-1', 4);
    clock.set(NOW - 10 * MINUTE);
    await refuse('digest-b', 'constructor', 2);
    // One an earlier build filed under the day it was refused, without the time in its metadata.
    await services.store.put(services.config.settings.quarantineContainer, 'messages/criticalQueue/2024/03/01/digest-c.json', Buffer.from('{}'), {
      metadata: { kind: 'digest', reasons: 'EmailRejected', deviceid: 'pump-1' },
    });
    clock.set(NOW);

    const data = await createDashboardDataSource(deps())(query());
    expect(data.refusedDigests.count).toBe(3);
    expect(data.refusedDigests.latest).toEqual([
      {
        time: new Date(NOW - 10 * MINUTE).toISOString(),
        deviceId: 'constructor',
        alerts: 2,
        firstTime: '2024-03-01T10:01:00.000Z',
        lastTime: '2024-03-01T10:14:00.000Z',
        reasons: [{ code: 'EmailRejected', detail: 'InvalidRecipient: digest-b refused', hint: DIGEST_REJECTED_HINT }],
        name: 'digests/criticalQueue/2024/03/01/digest-b.json',
      },
      expect.objectContaining({ time: new Date(NOW - 10 * MINUTE).toISOString(), deviceId: 'pump-1', alerts: null, name: 'messages/criticalQueue/2024/03/01/digest-c.json' }),
      expect.objectContaining({ time: new Date(NOW - 20 * MINUTE).toISOString(), deviceId: 'pump-1', alerts: 4 }),
    ]);
    // An unreadable record still says what the listing knows, with the digest's hint.
    expect(data.refusedDigests.latest[1]?.reasons).toEqual([{ code: 'EmailRejected', detail: '', hint: DIGEST_REJECTED_HINT }]);
    // Not messages, not failed alerts: every other section reads as before.
    expect(data.routes).toEqual(before.routes);
    expect(data.outcomes).toEqual(before.outcomes);
    expect(data.quarantineTop).toEqual(before.quarantineTop);
    expect(data.alerts).toEqual(before.alerts);

    const narrowed = await createDashboardDataSource(deps())(query('deviceId=constructor'));
    expect(narrowed.refusedDigests).toMatchObject({ count: 1, latest: [{ deviceId: 'constructor', name: 'digests/criticalQueue/2024/03/01/digest-b.json' }] });
  });

  it('gives a refused digest\'s times only when they are times: the page formats them, and one it cannot would stop it', async () => {
    const record = {
      schema: 1,
      kind: 'digest',
      endpoint: 'criticalQueue',
      identity: 'digest-edited',
      deviceId: 'pump-1',
      quarantinedAt: new Date(NOW - MINUTE).toISOString(),
      reasons: [{ code: 'EmailRejected', detail: 'InvalidRecipient', hint: DIGEST_REJECTED_HINT }],
      digest: { operationId: 'op', alerts: 3, firstTime: 'this morning', lastTime: '2024-03-01T10:14:00.000Z', severities: [], recipients: [], readings: [], recentAlertKeys: [] },
    };
    await services.store.put(services.config.settings.quarantineContainer, 'digests/criticalQueue/2024/03/01/digest-edited.json', Buffer.from(JSON.stringify(record)), {
      metadata: { kind: 'digest', reasons: 'EmailRejected', deviceid: 'pump-1', quarantinedat: record.quarantinedAt },
    });

    const data = await createDashboardDataSource(deps())(query());
    expect(data.refusedDigests.latest).toEqual([
      expect.objectContaining({ name: 'digests/criticalQueue/2024/03/01/digest-edited.json', alerts: 3, firstTime: null, lastTime: '2024-03-01T10:14:00.000Z' }),
    ]);
  });

  it("counts the range's quarantined messages whole however many digests were refused long before it", async () => {
    // A recipient the e-mail service refuses piles up one refused digest per device and quiet period until someone
    // notices. They are filed by their first alert's day, so those of long before are not even listed.
    const limits = { quarantineScanned: 40 };
    const before = await createDashboardDataSource(deps({ limits }))(query());
    expect(before.lowerBounds).not.toContain('quarantine');
    expect(before.quarantineTop.length).toBeGreaterThan(0);
    const longBefore = NOW - 30 * DAY_MS;
    clock.set(longBefore);
    for (let i = 0; i < 50; i += 1) {
      const at = new Date(longBefore - 20 * 60_000).toISOString();
      await services.quarantine.putDigest({
        identity: `digest-old-${i}`,
        deviceId: 'pump-1',
        reasons: [{ code: 'EmailRejected', detail: 'InvalidRecipient', hint: DIGEST_REJECTED_HINT }],
        digest: { operationId: `op-${i}`, alerts: 3, firstTime: at, lastTime: at, severities: [], recipients: [], readings: [], recentAlertKeys: [] },
      });
    }
    clock.set(NOW);

    const after = await createDashboardDataSource(deps({ limits }))(query());
    expect(after.quarantineTop).toEqual(before.quarantineTop);
    expect(after.routes).toEqual(before.routes);
    expect(after.outcomes).toEqual(before.outcomes);
    expect(after.lowerBounds).not.toContain('quarantine');
    expect(after.refusedDigests.count).toBe(0);
    expect(after.lowerBounds).not.toContain('refusedDigests');
  });

  it('answers an empty store with empty sections', async () => {
    const empty = new MemoryBlobStore({ clock });
    const data = await createDashboardDataSource(deps({ store: empty }))(query());
    expect(data).toMatchObject({
      devices: [],
      charted: [],
      fields: [],
      series: {},
      alerts: [],
      routes: { events: 0, criticalQueue: 0, archive: 0 },
      outcomes: { accept: 0, warn: 0, quarantine: 0 },
      quarantineTop: [],
    });
  });
});

describe('decodeLedgerView', () => {
  it('accepts ledger records and ignores anything else in the ledger folder', () => {
    const record = { schema: 1, kind: 'alert', deviceId: 'd', state: 'sent', attempts: 2, createdAt: '2024-03-01T10:00:00Z', updatedAt: '2024-03-01T10:00:01Z' };
    expect(decodeLedgerView(record)).toEqual({
      kind: 'alert',
      deviceId: 'd',
      state: 'sent',
      attempts: 2,
      createdMs: Date.parse('2024-03-01T10:00:00Z'),
      updatedMs: Date.parse('2024-03-01T10:00:01Z'),
    });
    expect(decodeLedgerView({ ...record, schema: 2 })).toBeNull();
    expect(decodeLedgerView({ ...record, state: 'lost' })).toBeNull();
    expect(decodeLedgerView({ ...record, createdAt: 'yesterday' })).toBeNull();
    expect(decodeLedgerView([])).toBeNull();
  });
});

describe('describeReason', () => {
  it('gives the hint of every kind of reason code, and a way to look at unknown ones', () => {
    expect(describeReason('LevelMissing')).toEqual({ summary: REASONS.LevelMissing.summary, hint: REASONS.LevelMissing.hint });
    expect(describeReason('ArchiveCorrupt').hint).toBe(DAMAGE_HINTS.ArchiveCorrupt);
    expect(describeReason('EmailRejected').hint).toMatch(/^The e-mail service refused this alert for good/);
    expect(describeReason('toString').hint).toBe(
      'Show the entries with `iot-routing quarantine list --reason toString` and `iot-routing quarantine show <name>`: each keeps its own hint.',
    );
  });
});

describe('cachedWindowStore', () => {
  it('reads a damaged window document as every other reader does: an undecodable document naming the blob', async () => {
    const store = new MemoryBlobStore();
    const name = 'windows/1m/2024-03-01/dev-1/2024-03-01T10:00:00Z/0.json';
    await store.ensureContainer('reports');
    await store.put('reports', name, Buffer.from('{"schema":2,"kind":"window",', 'utf8'));
    const windows = cachedWindowStore(store, 'reports', new EtagCache(10));
    for await (const _ of windows.list('windows/')) break; // the dashboard lists before it reads
    const error: unknown = await windows.get(name, decodeWindowDoc).catch((e: unknown) => e);
    expect(isUndecodableDocument(error)).toBe(true);
    expect((error as Error).message).toBe(`Blob reports/${name} is not valid JSON`);
  });
});

describe('EtagCache', () => {
  it('answers only for the ETag it holds and forgets the least recently used first', () => {
    const cache = new EtagCache(2);
    cache.set('a', '"1"', 'A');
    cache.set('b', '"1"', 'B');
    expect(cache.get('a', '"2"')).toBeUndefined();
    expect(cache.get('a', '"1"')).toBe('A');
    cache.set('c', '"1"', 'C');
    expect(cache.get('b', '"1"')).toBeUndefined();
    expect([cache.get('a', '"1"'), cache.get('c', '"1"'), cache.size]).toEqual(['A', 'C', 2]);
  });
});

// Keeps the store type honest: the counting store is a full BlobStore.
const _typeCheck: BlobStore = new CountingStore();
