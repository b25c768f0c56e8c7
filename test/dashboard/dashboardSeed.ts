/**
 * Data for the dashboard tests, written through the product's own paths (the telemetry stream handler, the alert
 * ledger, the quarantine, archive ingestion) so that the dashboard reads exactly what production writes. Returns
 * what was written, computed here from the inputs, as the expected answer.
 */
import { windowStartOf } from '../../src/lib/aggregate/windows.js';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { createAlertStores } from '../../src/lib/alerts/alertStores.js';
import { EMAIL_REJECTED_HINT } from '../../src/lib/alerts/criticalAlertHandler.js';
import { archiveFromServices, ingestDepsFromServices } from '../../src/lib/archive/archiveDeps.js';
import { createArchiveIngestHandler } from '../../src/lib/archive/ingest.js';
import { readManifest } from '../../src/lib/archive/manifest.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import type { ManualClock } from '../../src/lib/ports.js';
import type { Services } from '../../src/lib/runtime.js';
import { writeArchive } from '../support/archiveFixtures.js';

export const MINUTE = 60_000;
export const FIELDS = ['humidity', 'temperature'] as const;
const MESSAGES_PER_WINDOW = 3;

export interface SeedOptions {
  /** Data lies in the `windows` whole minutes before this instant. */
  endMs: number;
  devices: readonly string[];
  windows: number;
  /** Moved to stamp ledger records at known times; without it they get the services' clock as it runs. */
  clock?: ManualClock;
}

export interface Seeded {
  devices: readonly string[];
  /** Window starts (ms), oldest first; every device has a report in each. */
  windowStarts: number[];
  /** Messages counted in reports, and messages quarantined on the events route (BodyNotJson). */
  events: { counted: number; quarantined: number };
  alerts: Array<{ deviceId: string; state: 'sent' | 'digested' | 'failed' }>;
  archive: { records: number; accept: number; warn: number; quarantine: number; quarantinedEntries: number };
  /** The values of one field in one device's window. */
  values(deviceIndex: number, window: number, field: (typeof FIELDS)[number]): number[];
}

function value(deviceIndex: number, window: number, k: number, field: (typeof FIELDS)[number]): number {
  return field === 'temperature' ? 20 + deviceIndex + window * 0.5 + k : 50 - deviceIndex * 2 + k * 2 + (window % 3);
}

function eventBatch(
  iotHubName: string,
  partition: string,
  items: ReadonlyArray<{ deviceId: string; id: string; at: number; body: string }>,
): RoutedMessage[] {
  return decodeEventHubBatch(
    items.map((m) => Buffer.from(m.body, 'utf8')),
    {
      partitionContext: { partitionId: partition },
      propertiesArray: items.map(() => ({ iothubname: iotHubName })),
      systemPropertiesArray: items.map((m) => ({
        'iothub-connection-device-id': m.deviceId,
        'iothub-enqueuedtime': new Date(m.at).toISOString(),
        'message-id': m.id,
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
      })),
    },
  );
}

export async function seedDashboard(services: Services, options: SeedOptions): Promise<Seeded> {
  const { devices, windows } = options;
  const iotHubName = services.config.routing.iotHubName;
  const lastStart = windowStartOf(options.endMs, { label: '1m', ms: MINUTE }) - MINUTE;
  const windowStarts = Array.from({ length: windows }, (_, w) => lastStart - (windows - 1 - w) * MINUTE);

  // Telemetry: each device on its own partition, three messages per window, sent twice (at-least-once) to show
  // that the dashboard reads the effectively-once reports.
  const stream = telemetryStreamFromServices(services);
  for (const [i, deviceId] of devices.entries()) {
    const items = windowStarts.flatMap((start, w) =>
      Array.from({ length: MESSAGES_PER_WINDOW }, (_, k) => ({
        deviceId,
        id: `m-${w}-${k}`,
        at: start + 1_000 + k * 15_000,
        body: JSON.stringify({ temperature: value(i, w, k, 'temperature'), humidity: value(i, w, k, 'humidity') }),
      })),
    );
    await stream.processBatch(eventBatch(iotHubName, String(i % 2), items));
    await stream.processBatch(eventBatch(iotHubName, String(i % 2), items));
  }
  const broken = [0, 1].map((k) => ({ deviceId: devices[0]!, id: `broken-${k}`, at: lastStart + 5_000 + k, body: '{"temperature": 21,' }));
  const brokenResult = await stream.processBatch(eventBatch(iotHubName, '0', broken));

  // Alerts: one of each final state, and a digest record, which is not an alert of its own.
  const stores = createAlertStores(services.store, services.config.settings.alerts.container, services.clock, services.config.routing.alerts);
  const alerts: Seeded['alerts'] = [];
  const states = ['sent', 'digested', 'failed'] as const;
  for (const [n, state] of states.entries()) {
    const deviceId = devices[n % devices.length]!;
    options.clock?.set(options.endMs - (10 - n * 3) * MINUTE);
    const claim = await stores.ledger.claim(`alert-${n}`, { kind: 'alert', deviceId, operationId: `op-${n}` });
    if (claim.status !== 'claimed') throw new Error(`seed: alert-${n} was not claimed`);
    if (state === 'sent') await stores.ledger.finish(claim, { state, recipients: 1, deviceNotification: 'not-requested' });
    if (state === 'digested') await stores.ledger.finish(claim, { state, windowId: 'w1', dueAt: new Date(options.endMs + 5 * MINUTE).toISOString() });
    if (state === 'failed') {
      // As the alert handler does: the refused alert is quarantined, then the ledger records the failure.
      const [critical] = eventBatch(iotHubName, '0', [{ deviceId, id: `critical-${n}`, at: options.endMs - 9 * MINUTE, body: '{"alarm":"fire"}' }]);
      await services.quarantine.putMessage(critical!, 'criticalQueue', [
        { code: 'EmailRejected', detail: 'recipient rejected', hint: EMAIL_REJECTED_HINT },
      ]);
      await stores.ledger.finish(claim, { state, error: 'recipient rejected' });
    }
    alerts.push({ deviceId, state });
  }
  const digest = await stores.ledger.claim('digest-0', { kind: 'digest', deviceId: devices[0]!, operationId: 'op-digest' });
  if (digest.status === 'claimed') await stores.ledger.finish(digest, { state: 'sent', recipients: 1, deviceNotification: 'not-requested' });

  // Archive: two blobs IoT Hub would have written in the range, indexed by archiveIngest.
  const archive = archiveFromServices(services);
  const written = await writeArchive(services.store, archive.container, archive.config.fileNameFormat, [
    { partition: '0', minute: lastStart - 6 * MINUTE, records: 12, encoding: 'json' },
    { partition: '1', minute: lastStart - 2 * MINUTE, records: 8, encoding: 'json' },
  ]);
  const ingest = createArchiveIngestHandler(ingestDepsFromServices(services));
  const archiveCounts = { records: 0, accept: 0, warn: 0, quarantine: 0, quarantinedEntries: 0 };
  for (const blob of written) {
    const summary = await ingest(blob.name);
    archiveCounts.quarantinedEntries += summary.quarantined;
    const manifest = (await readManifest(services.store, archive.indexContainer, archive.container, blob.name))?.manifest;
    if (manifest === null || manifest === undefined) throw new Error(`seed: no manifest for ${blob.name}`);
    archiveCounts.records += manifest.records;
    archiveCounts.accept += manifest.outcomes.accept;
    archiveCounts.warn += manifest.outcomes.warn;
    archiveCounts.quarantine += manifest.outcomes.quarantine;
  }

  return {
    devices,
    windowStarts,
    events: { counted: devices.length * windows * MESSAGES_PER_WINDOW, quarantined: brokenResult.quarantined },
    alerts,
    archive: archiveCounts,
    values: (deviceIndex, window, field) => Array.from({ length: MESSAGES_PER_WINDOW }, (_, k) => value(deviceIndex, window, k, field)),
  };
}
