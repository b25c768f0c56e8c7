/**
 * `npm start` end to end: the local runtime with a fixed seed and speed-up, checked against what the devices sent.
 * Everything the runtime reports is checked against an independent reading: the routes by level as the tutorial
 * defines them, the outbox's .eml files and the alert ledger, the archive blobs decoded with readArchive, and the
 * reports served over HTTP against a recomputation from the sent bodies.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAlertSettings } from '../../src/lib/alerts/alertsConfig.js';
import { deviceBlobName } from '../../src/lib/alerts/deviceDigests.js';
import { ledgerBlobName } from '../../src/lib/alerts/ledger.js';
import type { EndpointName } from '../../src/lib/config.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { readArchive } from '../../src/lib/message/readArchive.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import type { DeviceKind } from '../../src/local/devices.js';
import type { HubMessage, RoutedRecord } from '../../src/local/hub.js';
import { runLocal, type LocalSummary, type RunningLocal } from '../../src/local/main.js';
import { serviceBusMessageIdOf } from '../../src/local/queue.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const DEVICES = 5;
const DURATION_SECONDS = 120;

/** The tutorial's routes, written out independently of routing.config.json and the routing engine. */
function expectedEndpoint(level: string | undefined): EndpointName {
  if (level === 'critical') return 'criticalQueue';
  if (level === 'storage') return 'archive';
  return 'events';
}

/** The body as the device meant it, decoded here by what we know each device kind sends. */
function bodyOf(body: Uint8Array, kind: DeviceKind): { temperature: number; humidity: number } {
  const bytes = Buffer.from(body);
  let text = '';
  if (kind === 'utf32') for (let i = 0; i < bytes.length; i += 4) text += String.fromCodePoint(bytes.readUInt32LE(i));
  else text = bytes.toString('utf8');
  return JSON.parse(text) as { temperature: number; humidity: number };
}

interface Observed {
  kinds: string[];
  deviceKinds: Map<string, DeviceKind>;
  eml: Map<string, number>;
  ledger: Map<string, { state: string; kind: string }>;
  digestEntries: Map<string, Set<string>>;
  archive: Array<{ name: string; records: number; format: string; damage: unknown; messages: RoutedMessage[] }>;
  reports: Array<{
    deviceId: string;
    windowStart: string;
    messages: number;
    byLevel: Record<string, number>;
    fields: Record<string, { count: number; min: number; max: number; sum: number }>;
  }>;
  reportsStatus: number;
  health: number;
  writtenBlobs: RunningLocal['blobs'];
  /** Why the first dead-lettered alert failed, to make a failing run say so. */
  deadLetterReason: string | undefined;
}

async function observe(runtime: RunningLocal, criticalKeys: () => string[], from: Date, to: Date): Promise<Observed> {
  const { store, env } = runtime;
  const eml = new Map<string, number>();
  const outbox = await readdir(runtime.outboxDirectory!).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  for (const file of outbox.filter((f) => f.endsWith('.eml'))) {
    const header = /^X-Alert-Id: (.+)$/m.exec(await readFile(path.join(runtime.outboxDirectory!, file), 'utf8'));
    if (header?.[1] !== undefined) eml.set(header[1].trim(), (eml.get(header[1].trim()) ?? 0) + 1);
  }
  const settings = parseAlertSettings(env);
  const alerts = 'value' in settings ? settings.value.container : 'alerts';
  const ledger = new Map<string, { state: string; kind: string }>();
  for (const key of criticalKeys()) {
    const doc = await store.get(alerts, ledgerBlobName(key));
    if (doc !== null) ledger.set(key, JSON.parse(doc.body.toString('utf8')) as { state: string; kind: string });
  }
  const digestEntries = new Map<string, Set<string>>();
  for (const device of runtime.fleet.devices) {
    const doc = await store.get(alerts, deviceBlobName(device.deviceId));
    if (doc === null) continue;
    const windows = (JSON.parse(doc.body.toString('utf8')) as { windows: Array<{ recentKeys: string[] }> }).windows;
    digestEntries.set(device.deviceId, new Set(windows.flatMap((w) => w.recentKeys)));
  }
  const archive: Observed['archive'] = [];
  for (const blob of runtime.blobs) {
    const read = await store.openRead(blob.container, blob.name);
    const messages: RoutedMessage[] = [];
    let end = { format: 'missing', damage: null as unknown };
    if (read !== null) {
      for await (const event of readArchive(read.chunks, { name: blob.name })) {
        if (event.type === 'records') messages.push(...event.messages);
        else end = event.summary;
      }
    }
    archive.push({ name: blob.name, records: blob.records, format: end.format, damage: end.damage, messages });
  }
  const query = `window=1m&from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  const reportsResponse = await fetch(`${runtime.baseUrl}/reports?${query}`);
  const reports = reportsResponse.ok ? ((await reportsResponse.json()) as { reports: Observed['reports'] }).reports : [];
  const health = (await fetch(`${runtime.baseUrl}/health`)).status;
  return {
    kinds: runtime.registrations.map((r) => `${r.kind}:${r.name}`),
    deviceKinds: new Map(runtime.fleet.devices.map((d) => [d.deviceId, d.kind])),
    eml,
    ledger,
    digestEntries,
    archive,
    reports,
    reportsStatus: reportsResponse.status,
    health,
    writtenBlobs: runtime.blobs,
    deadLetterReason: runtime.deadLetters[0]?.description,
  };
}

describe('npm start, end to end', () => {
  it(
    'accounts for every sent message exactly once, with an e-mail or digest entry per alert, decodable archives and exact reports',
    async () => {
      const dir = await tempDir('iot-routing-local-');
      const records: RoutedRecord[] = [];
      const critical: HubMessage[] = [];
      let observed: Observed | undefined;
      const started = performance.now();
      const summary = await runLocal({
        devices: DEVICES,
        durationSeconds: DURATION_SECONDS,
        seed: 42,
        speedup: 60,
        legacyShare: 0.4,
        resendProbability: 0.05,
        inMemoryAzurite: true,
        sampleSettingsOnly: true,
        port: 0,
        stateDirectory: dir,
        outboxDirectory: path.join(dir, 'outbox'),
        summaryPath: path.join(dir, 'summary.json'),
        output: null,
        onRouted: (record) => {
          records.push(record);
          critical.push(...record.deliveries.filter((d) => d.endpoint === 'criticalQueue'));
        },
        beforeStop: async (runtime) => {
          const first = records[0]!.enqueuedTime.getTime();
          const last = records[records.length - 1]!.enqueuedTime.getTime();
          const criticalKeys = () => critical.map((m) => messageIdentity({ ...m, messageId: serviceBusMessageIdOf(m) }));
          observed = await observe(runtime, criticalKeys, new Date(Math.floor(first / 60_000) * 60_000), new Date(last + 60_000));
        },
      });
      const elapsedMs = performance.now() - started;
      const seen = observed!;

      // Every path's function is there: a missing one fails here rather than as a count further down.
      expect(seen.kinds).toEqual(expect.arrayContaining(['eventHub:telemetryStream', 'serviceBusQueue:criticalAlerts', 'storageBlob:archiveIngest']));
      expect(summary.notEmulated).toEqual([]);
      expect(seen.health).toBe(200);

      // Sent and routed, recounted from what the devices sent.
      expect(summary.sent).toBe(DEVICES * DURATION_SECONDS);
      expect(records).toHaveLength(summary.sent);
      const routed: Record<EndpointName, number> = { events: 0, criticalQueue: 0, archive: 0 };
      for (const record of records) {
        const endpoint = expectedEndpoint(record.message.properties['level']);
        expect(record.evaluation.endpoints).toEqual([endpoint]);
        routed[endpoint]++;
      }
      expect(summary.routed).toEqual(routed);
      expect(Object.values(routed).every((n) => n > 0)).toBe(true);

      // Conservation: each routed message in exactly one outcome, nothing lost, nothing dead-lettered.
      expect(summary.deadLettered, `criticalAlerts failed: ${seen.deadLetterReason ?? ''}`).toBe(0);
      expect(summary.conservation.events).toMatchObject({ routed: routed.events, double: 0, missing: 0, ok: true });
      expect(summary.conservation.criticalQueue).toMatchObject({ routed: routed.criticalQueue, double: 0, missing: 0, ok: true });
      expect(summary.conservation.archive).toMatchObject({ routed: routed.archive, double: 0, missing: 0, ok: true });
      expect(summary.conservation.ok).toBe(true);
      expect(summary.lost).toEqual({ events: 0, poisonBlobs: 0, archiveWriteFailures: 0 });
      expect(summary.aggregated + summary.quarantined.events).toBe(routed.events);
      expect(summary.archived + summary.quarantined.archive).toBe(routed.archive);
      expect(summary.alerted + summary.quarantined.criticalQueue).toBe(routed.criticalQueue);
      expect(summary.resent.events + summary.resent.criticalQueue).toBeGreaterThan(0);
      expect(summary.duplicatesSuppressed).toBe(summary.resent.events + summary.resent.criticalQueue);
      expect(JSON.parse(await readFile(path.join(dir, 'summary.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(summary)) as LocalSummary);

      // One e-mail or one digest entry per critical message, never both, never two e-mails.
      const keys = critical.map((m) => ({ key: messageIdentity({ ...m, messageId: serviceBusMessageIdOf(m) }), deviceId: m.deviceId }));
      expect(new Set(keys.map((k) => k.key)).size).toBe(routed.criticalQueue);
      let emailed = 0;
      let digested = 0;
      for (const { key, deviceId } of keys) {
        const state = seen.ledger.get(key)?.state;
        const emails = seen.eml.get(key) ?? 0;
        const inDigest = seen.digestEntries.get(deviceId)?.has(key) === true;
        if (state === 'sent') {
          expect([emails, inDigest]).toEqual([1, false]);
          emailed++;
        } else {
          expect([state, emails, inDigest]).toEqual(['digested', 0, true]);
          digested++;
        }
      }
      expect(emailed).toBeGreaterThan(0);
      expect({ emailed, digested }).toEqual({ emailed: summary.alerts.emailed, digested: summary.alerts.digested });
      expect(summary.emailsSent).toBe([...seen.eml.values()].reduce((a, b) => a + b, 0));

      // Archive blobs: every one decodes completely, and together they hold exactly what the hub delivered there.
      expect(seen.archive.length).toBeGreaterThan(0);
      const archived: string[] = [];
      for (const blob of seen.archive) {
        expect(blob.damage).toBeNull();
        expect(blob.format).toBe(blob.records === 0 ? 'empty' : 'avro-iothub');
        expect(blob.messages).toHaveLength(blob.records);
        for (const m of blob.messages) archived.push(`${m.deviceId}|${m.enqueuedTime?.toISOString()}|${Buffer.from(m.body).toString('base64')}`);
      }
      const delivered = seen.writtenBlobs.flatMap((b) => b.messages).map((m) => `${m.deviceId}|${m.enqueuedTime.toISOString()}|${Buffer.from(m.body).toString('base64')}`);
      expect(archived.sort()).toEqual(delivered.sort());
      expect(new Set(archived).size).toBe(routed.archive);

      // Reports over HTTP equal a recomputation from the bodies of the messages routed to events.
      expect(seen.reportsStatus).toBe(200);
      type Expected = { messages: number; fields: Record<string, { count: number; min: number; max: number; sum: number }> };
      const expected = new Map<string, Expected>();
      for (const record of records) {
        if (!record.evaluation.endpoints.includes('events')) continue;
        const body = bodyOf(record.message.body, seen.deviceKinds.get(record.message.deviceId)!);
        const windowStart = Math.floor(record.enqueuedTime.getTime() / 60_000) * 60_000;
        const key = `${record.message.deviceId}|${windowStart}`;
        const entry = expected.get(key) ?? { messages: 0, fields: {} };
        entry.messages++;
        for (const field of ['temperature', 'humidity'] as const) {
          const value = body[field];
          const stats = entry.fields[field] ?? { count: 0, min: Infinity, max: -Infinity, sum: 0 };
          entry.fields[field] = { count: stats.count + 1, min: Math.min(stats.min, value), max: Math.max(stats.max, value), sum: stats.sum + value };
        }
        expected.set(key, entry);
      }
      expect(seen.reports).toHaveLength(expected.size);
      expect(summary.reportWindows).toBe(expected.size);
      for (const report of seen.reports) {
        const want = expected.get(`${report.deviceId}|${Date.parse(report.windowStart)}`);
        expect(want, `${report.deviceId} ${report.windowStart}`).toBeDefined();
        expect(report.messages).toBe(want!.messages);
        expect(report.byLevel).toEqual({ normal: want!.messages });
        for (const field of ['temperature', 'humidity']) {
          const got = report.fields[field]!;
          const wanted = want!.fields[field]!;
          expect([got.count, got.min, got.max]).toEqual([wanted.count, wanted.min, wanted.max]);
          expect(got.sum).toBeCloseTo(wanted.sum, 6);
        }
      }

      // Kept under a minute on a two-core runner (measured about 15 s).
      expect(elapsedMs).toBeLessThan(60_000);
    },
    120_000,
  );
});
