/**
 * An alert the e-mail service refused is quarantined as delivered, its `$twin` placeholder unresolved, like every
 * other quarantined message: the recipient group came from the twin, so once the twin is fixed (and the ledger
 * record deleted) a replay must resolve it again rather than pick the refused group.
 */
import { describe, expect, it } from 'vitest';
import { parseAlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { ledgerVerdict } from '../../src/lib/alerts/criticalAlertHandler.js';
import type { EmailMessage, EmailSender, SendResult } from '../../src/lib/alerts/email.js';
import { createTwinResolver, type TwinDocument } from '../../src/lib/checks/twins/twinResolver.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { replayQuarantined, type ReplayResult } from '../../src/lib/quarantineReplay.js';
import type { Services } from '../../src/lib/runtime.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine, type QuarantinedMessage } from '../../src/lib/storage/quarantine.js';

class RejectingSender implements EmailSender {
  async send(m: EmailMessage): Promise<SendResult> {
    return { status: 'failed', operationId: m.operationId, error: 'The recipient address is not valid.', providerCode: 'InvalidRecipient', httpStatus: 400 };
  }
  async lookup(): Promise<SendResult | null> {
    return null;
  }
}

describe('an alert the e-mail service refused', () => {
  it('is quarantined as delivered, its $twin placeholder unresolved', async () => {
    const clock = new ManualClock(Date.parse('2026-11-22T10:00:00Z'));
    const store = new MemoryBlobStore();
    const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
    const config = buildAppConfig(env, {});
    const quarantine = createQuarantine(store, 'quarantine', clock);
    const twin: TwinDocument = { tags: { location: 'Building 43' }, properties: { desired: {}, reported: {} } };
    const twins = createTwinResolver({ reader: { getTwin: async () => twin }, clock, ttlMs: 60_000 });
    const services: Services = { env, config, clock, store, quarantine, twins, admitDeps: { checks: config.routing.checks, quarantine, twins, now: () => clock.now() } };
    const alerts = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] } });
    if ('errors' in alerts) throw new Error('config');
    const { handler, stores } = createAlertServices(services, { alerts: alerts.value, sender: new RejectingSender(), busyWait: { attempts: 0, intervalMs: 0 } });
    const m = decodeServiceBusMessage(
      Buffer.from('{"temperature":97.5}'),
      {
        messageId: 'm-1',
        contentType: 'application/json',
        enqueuedTimeUtc: '2026-11-22T10:00:00.000',
        deliveryCount: 1,
        sequenceNumber: 1,
        applicationProperties: { 'iothub-connection-device-id': 'dev-1', level: 'critical', deviceLocation: '$twin.tags.location' },
      },
      'critical',
    );
    expect(await handler.handle(m)).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    const names: string[] = [];
    for await (const item of quarantine.list()) names.push(item.name);
    expect(names).toHaveLength(1);
    const record = (await quarantine.get(names[0]!))?.value as QuarantinedMessage;
    expect(record.reasons.map((r) => r.code)).toEqual(['EmailRejected']);
    expect(record.properties['deviceLocation']).toBe('$twin.tags.location');

    // A dry run of its replay says what the replay does: it stays refused while the ledger keeps the verdict.
    const replayHandlers = async (_endpoint: unknown, on: typeof quarantine) => ({
      criticalQueue: createAlertServices(
        { ...services, quarantine: on, admitDeps: { ...services.admitDeps, quarantine: on } },
        { alerts: alerts.value, sender: new RejectingSender(), busyWait: { attempts: 0, intervalMs: 0 } },
      ).handler,
    });
    const dryRun = { admission: { checks: config.routing.checks, now: () => clock.now(), twins }, alertState: (message: RoutedMessage) => ledgerVerdict(stores.ledger, alerts.value, message) };
    const outcomes = async (dry: boolean) => {
      const results: ReplayResult[] = [];
      for await (const result of replayQuarantined({ quarantine, handlers: replayHandlers, ...(dry ? { dryRun } : {}) })) results.push(result);
      return results.map((r) => [r.outcome, r.outcome === 'quarantined' ? r.reasons : []]);
    };
    expect(await outcomes(true)).toEqual([['quarantined', ['EmailRejected']]]);
    expect(await outcomes(false)).toEqual([['quarantined', ['EmailRejected']]]);
  });
});
