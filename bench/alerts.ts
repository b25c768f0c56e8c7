/**
 * Critical alert latency: from a Service Bus message handed to the criticalAlerts handler to the e-mail accepted and
 * finished by the loopback ACS stand-in and recorded in the ledger, on Azurite, through the real ACS `EmailClient`
 * (HMAC-signed requests, the stand-in verifies them). Every message is the first alert of a new device, the case the
 * issue sets a storage target for (at most 3 calls).
 *
 * Baseline: the bare send of the same rendered e-mails through the same `EmailClient` adapter, without checks,
 * ledger, gate or storage: what an alert could cost if it were not made exactly-once. The Logic App this replaces
 * polls the queue every few minutes (180 000 ms is the figure quoted here; its latency is dominated by that interval,
 * not measured), which is printed in the notes for scale.
 *
 * The budget is raised for the measurement (it would otherwise hold all but 25 of the alerts for a minute, which is
 * its job, not latency), and the ACS poll interval is 10 ms on both sides (the SDK's default is 2 s).
 */
import { createAcsEmailSender } from '../src/lib/alerts/acsEmailSender.js';
import { parseAlertsConfig } from '../src/lib/alerts/alertsConfig.js';
import { createAlertServices } from '../src/lib/alerts/alertServices.js';
import { alertFactsOf } from '../src/lib/alerts/alertPolicy.js';
import type { EmailSender } from '../src/lib/alerts/email.js';
import { renderAlertEmail } from '../src/lib/alerts/render.js';
import { buildAppConfig } from '../src/lib/config.js';
import type { RoutedMessage } from '../src/lib/message/RoutedMessage.js';
import { decodeServiceBusMessage } from '../src/lib/message/serviceBus.js';
import { ManualClock } from '../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../src/lib/storage/azureBlobStore.js';
import { createQuarantine } from '../src/lib/storage/quarantine.js';
import { startAcsEmailStandIn } from '../test/support/acsEmailStandIn.js';
import { startAzurite } from '../test/support/azurite.js';
import { faultyStore } from '../test/support/faultyStore.js';
import type { BenchOptions, BenchResult } from './types.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const LOGIC_APP_POLLING_MS = 180_000;
const POLL_INTERVAL_MS = 10;

export async function benchAlerts(options: BenchOptions): Promise<BenchResult[]> {
  const alerts = options.quick ? 40 : 200;
  const azurite = await startAzurite();
  const acs = await startAcsEmailStandIn();
  try {
    const sender: EmailSender = createAcsEmailSender(
      { connectionString: acs.connectionString },
      { pollIntervalMs: POLL_INTERVAL_MS, clientOptions: { allowInsecureConnection: true } },
    );
    const parsed = parseAlertsConfig({
      from: 'alerts@contoso.example',
      recipients: { default: ['ops@contoso.example'] },
      budget: { perMinute: 5_000, perHour: 5_000 },
    });
    if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
    const config = parsed.value;

    const store = faultyStore(new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite.connectionString })), () => false);
    const clock = new ManualClock(T0);
    const env = { AzureWebJobsStorage: azurite.connectionString, ALERTS_CONTAINER: `bench-alerts-${Date.now()}` };
    const app = buildAppConfig(env, {});
    const quarantine = createQuarantine(store, `bench-quarantine-${Date.now()}`, clock);
    const services = createAlertServices(
      { env, config: app, clock, store, quarantine, twins: undefined, admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() } },
      { alerts: config, sender },
    );

    // The first alert of the process creates the container and reads the gate: counted apart, as a cold start.
    let before = store.calls;
    await services.handler.handle(message('warm-up', 0));
    const coldCalls = store.calls - before;

    const messages = Array.from({ length: alerts }, (_, i) => message(`device-${i}`, i + 1));
    const oursMs: number[] = [];
    const callsPerAlert: number[] = [];
    for (const m of messages) {
      clock.advance(1);
      before = store.calls;
      const started = process.hrtime.bigint();
      const outcome = await services.handler.handle(m);
      oursMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      callsPerAlert.push(store.calls - before);
      if (outcome.outcome !== 'sent') throw new Error(`expected the alert to be sent, got ${JSON.stringify(outcome)}`);
    }

    // The same e-mails again, sent bare under fresh operation ids (the stand-in would otherwise answer the
    // repeated ids from its memory, which is faster than a real send).
    const baselineMs: number[] = [];
    for (const [i, m] of messages.entries()) {
      const email = renderAlertEmail(alertFactsOf(m, config), { config, dashboardUrl: services.settings.dashboardUrl });
      const started = process.hrtime.bigint();
      const result = await sender.send({ ...email, operationId: baselineOperationId(i) });
      baselineMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (result.status !== 'sent') throw new Error(`baseline send failed: ${JSON.stringify(result)}`);
    }
    const expectedSent = 1 + 2 * alerts;
    if (acs.sent.length !== expectedSent) throw new Error(`the stand-in accepted ${acs.sent.length} e-mails, expected ${expectedSent}`);

    // What a redelivered (duplicate) message and a folded alert of a device in its quiet period cost.
    before = store.calls;
    await services.handler.handle(messages[0]!);
    const duplicateCalls = store.calls - before;
    clock.advance(1);
    before = store.calls;
    const folded = await services.handler.handle(message('device-0', alerts + 1));
    const foldCalls = store.calls - before;
    if (folded.outcome !== 'digested') throw new Error(`expected a digested alert, got ${folded.outcome}`);

    const notes = {
      alerts,
      'storage calls/first alert (mean)': mean(callsPerAlert),
      'storage calls/first alert (max)': Math.max(...callsPerAlert),
      'storage calls, cold first alert': coldCalls,
      'storage calls/folded alert': foldCalls,
      'storage calls/duplicate': duplicateCalls,
      'ACS poll interval ms': POLL_INTERVAL_MS,
      'Logic App polling ms': LOGIC_APP_POLLING_MS,
    };
    const results: BenchResult[] = [];
    for (const [label, q] of [
      ['median', 0.5],
      ['p99', 0.99],
    ] as const) {
      const ours = quantile(oursMs, q);
      const baseline = quantile(baselineMs, q);
      results.push({
        name: `critical alert → e-mail, ${label} (lower is better)`,
        unit: 'ms',
        ours,
        baseline,
        ratio: ours / baseline,
        notes: { ...notes, 'vs Logic App polling': ours / LOGIC_APP_POLLING_MS },
      });
    }
    return results;
  } finally {
    await acs.stop();
    // startAzurite unrefs its child; keep the event loop alive until it has exited.
    const keepAlive = setInterval(() => undefined, 1_000);
    await azurite.stop().finally(() => clearInterval(keepAlive));
  }
}

function message(deviceId: string, n: number): RoutedMessage {
  return decodeServiceBusMessage(
    Buffer.from(JSON.stringify({ deviceId, temperature: 90 + (n % 10), humidity: 70, pointInfo: 'This is a critical message.' })),
    {
      messageId: `bench-${n}`,
      contentType: 'application/json',
      enqueuedTimeUtc: new Date(T0 + n).toISOString().replace('Z', ''),
      deliveryCount: 1,
      applicationProperties: { 'iothub-connection-device-id': deviceId, level: 'critical', deviceLocation: 'Building 43' },
    },
    'critical',
  );
}

function baselineOperationId(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
