import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAlertsConfig, type AlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices, type AlertServiceOverrides, type AlertServices } from '../../src/lib/alerts/alertServices.js';
import type { AlertOutcome } from '../../src/lib/alerts/criticalAlertHandler.js';
import type { DeviceNotification, DeviceNotifier } from '../../src/lib/alerts/deviceNotification.js';
import { emailOperationId, type EmailMessage, type EmailSender, type SendResult } from '../../src/lib/alerts/email.js';
import { ledgerBlobName, type LedgerRecord } from '../../src/lib/alerts/ledger.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { RoutingError } from '../../src/lib/errors.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock, type BlobStore } from '../../src/lib/ports.js';
import { createServices, type Services } from '../../src/lib/runtime.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine, type QuarantinedMessage, type QuarantineEntry } from '../../src/lib/storage/quarantine.js';
import { faultyStore } from '../support/faultyStore.js';
import { routingRejection } from '../support/rejections.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const MINUTE = 60_000;

function alertsConfig(extra: Record<string, unknown> = {}): AlertsConfig {
  const result = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] }, ...extra });
  if ('errors' in result) throw new Error(result.errors.join('\n'));
  return result.value;
}

function services(store: BlobStore, clock: ManualClock, env: Record<string, string> = {}, routing: Record<string, unknown> = {}): Services {
  const allEnv = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', ...env };
  const config = buildAppConfig(allEnv, routing);
  const quarantine = createQuarantine(store, 'quarantine', clock);
  return { env: allEnv, config, clock, store, quarantine, twins: undefined, admitDeps: { checks: config.routing.checks, quarantine, twins: undefined, now: () => clock.now() } };
}

/** Behaves like ACS for a repeated Operation-Id: one e-mail per id, however often it is sent. */
class RecordingSender implements EmailSender {
  readonly calls: EmailMessage[] = [];
  readonly delivered = new Map<string, EmailMessage>();
  script: Array<(message: EmailMessage) => SendResult | Promise<SendResult>> = [];
  async send(message: EmailMessage): Promise<SendResult> {
    this.calls.push(message);
    const next = this.script.shift();
    if (next !== undefined) return next(message);
    if (!this.delivered.has(message.operationId)) this.delivered.set(message.operationId, message);
    return { status: 'sent', operationId: message.operationId, providerId: message.operationId };
  }
  readonly lookups: string[] = [];
  /** As ACS answers a poll of an operation id: its outcome once sent, nothing before. */
  async lookup(message: EmailMessage): Promise<SendResult | null> {
    this.lookups.push(message.operationId);
    return this.delivered.has(message.operationId) ? { status: 'sent', operationId: message.operationId, providerId: message.operationId } : null;
  }
}

interface Setup {
  alerts: AlertServices;
  sender: RecordingSender;
  clock: ManualClock;
  store: MemoryBlobStore;
}

function setup(config: AlertsConfig = alertsConfig(), overrides: AlertServiceOverrides & { store?: BlobStore } = {}): Setup {
  const clock = new ManualClock(T0);
  const memory = new MemoryBlobStore();
  const sender = new RecordingSender();
  const { store = memory, ...rest } = overrides;
  const alerts = createAlertServices(services(store, clock), { alerts: config, sender, busyWait: { attempts: 0, intervalMs: 0 }, ...rest });
  return { alerts, sender, clock, store: memory };
}

let sequence = 0;
/** A message as the Functions host hands it to criticalAlerts (first letters of property keys lower-cased). */
function message(options: { deviceId?: string; moduleId?: string; messageId?: string; body?: unknown; level?: string; enqueuedTime?: number; deliveryCount?: number } = {}): RoutedMessage {
  sequence += 1;
  const properties: Record<string, unknown> = { level: options.level ?? 'critical', iotHubName: 'ContosoHub', deviceLocation: 'Building 43' };
  if (options.deviceId !== '') properties['iothub-connection-device-id'] = options.deviceId ?? 'dev-1';
  if (options.moduleId !== undefined) properties['iothub-connection-module-id'] = options.moduleId;
  return decodeServiceBusMessage(
    Buffer.isBuffer(options.body) ? options.body : Buffer.from(JSON.stringify(options.body ?? { temperature: 97.5 })),
    {
      messageId: options.messageId ?? `m-${sequence}`,
      contentType: 'application/json',
      enqueuedTimeUtc: new Date(options.enqueuedTime ?? T0).toISOString().replace('Z', ''),
      deliveryCount: options.deliveryCount ?? 1,
      sequenceNumber: sequence,
      applicationProperties: properties,
    },
    'critical',
  );
}

async function ledgerRecord(store: BlobStore, key: string): Promise<LedgerRecord | undefined> {
  const doc = await store.get('alerts', ledgerBlobName(key));
  return doc === null ? undefined : (JSON.parse(doc.body.toString('utf8')) as LedgerRecord);
}

async function quarantined(store: BlobStore): Promise<QuarantinedMessage[]> {
  const out: QuarantinedMessage[] = [];
  for await (const item of store.list('quarantine')) out.push(JSON.parse((await store.get('quarantine', item.name))!.body.toString('utf8')) as QuarantinedMessage);
  return out;
}

describe('criticalAlerts handler: exactly one e-mail per alert', () => {
  it('sends the first alert at once and records it in the ledger', async () => {
    const { alerts, sender, store } = setup();
    const m = message({ messageId: 'msg-1' });
    const outcome = await alerts.handler.handle(m);
    const key = messageIdentity(m);
    expect(outcome).toEqual({
      outcome: 'sent',
      alertKey: key,
      deviceId: 'dev-1',
      operationId: emailOperationId(key),
      recipients: 1,
      deviceNotification: 'not-requested',
      takeover: false,
    });
    expect(sender.calls).toHaveLength(1);
    expect(sender.calls[0]).toMatchObject({ operationId: emailOperationId(key), to: ['ops@contoso.example'], headers: { 'X-Alert-Id': key } });
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'sent', attempts: 1, expiresAt: null, operationId: emailOperationId(key) });
  });

  it('redelivering the same message ten times sends one e-mail', async () => {
    const { alerts, sender } = setup();
    const outcomes: AlertOutcome[] = [];
    for (let delivery = 1; delivery <= 10; delivery += 1) {
      outcomes.push(await alerts.handler.handle(message({ messageId: 'msg-1', deliveryCount: delivery })));
    }
    expect(outcomes.map((o) => o.outcome)).toEqual(['sent', ...Array<string>(9).fill('duplicate')]);
    expect(sender.calls).toHaveLength(1);
  });

  it('ten deliveries racing on instances that share the store send one e-mail', async () => {
    const store = new MemoryBlobStore();
    const clock = new ManualClock(T0);
    const sender = new RecordingSender();
    const instances = Array.from({ length: 3 }, () =>
      createAlertServices(services(store, clock), { alerts: alertsConfig(), sender, busyWait: { attempts: 200, intervalMs: 1 } }),
    );
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => instances[i % 3]!.handler.handle(message({ messageId: 'msg-1', deliveryCount: i + 1 }))),
    );
    expect(outcomes.filter((o) => o.outcome === 'sent')).toHaveLength(1);
    expect(outcomes.filter((o) => o.outcome === 'duplicate')).toHaveLength(9);
    expect(sender.calls).toHaveLength(1);
  });

  it('hands a busy alert back (transient) when the other delivery does not finish while it waits', async () => {
    const { alerts, store, clock } = setup();
    const m = message({ messageId: 'msg-1' });
    const { ledger } = alerts.stores;
    await ledger.claim(messageIdentity(m), { kind: 'alert', deviceId: 'dev-1', operationId: emailOperationId(messageIdentity(m)) });
    const error = await routingRejection(alerts.handler.handle(m));
    expect(error).toMatchObject({ code: 'StorageConflict', kind: 'transient' });
    expect(error.message).toContain('being handled by another delivery');
    clock.advance(alertsConfig().leaseSeconds * 1000);
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'sent', attempts: 2 });
  });

  it('a crash between the send and the ledger update never produces a second e-mail', async () => {
    let failLedgerWrite = true;
    const inner = new MemoryBlobStore();
    const store = faultyStore(inner, (operation, _i, name) => {
      if (failLedgerWrite && operation === 'replace' && name.startsWith('ledger/')) {
        failLedgerWrite = false;
        return true;
      }
      return false;
    });
    const { alerts, sender, clock } = setup(alertsConfig(), { store });
    const m = message({ messageId: 'msg-1' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'StorageUnavailable' });
    expect(sender.calls).toHaveLength(1);
    // The Service Bus lock expires and the message comes back after the alert's lease has run out.
    clock.advance(alertsConfig().leaseSeconds * 1000);
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    // The takeover asked the service about the operation and found it sent: no second send, no new reservation.
    expect(sender.lookups).toEqual([emailOperationId(messageIdentity(m))]);
    expect(sender.calls).toHaveLength(1);
    expect(sender.delivered.size).toBe(1);
    expect(alerts.stores.gate.peek()?.sends).toHaveLength(1);
  });

  it.each([
    ['the gate write before the send', (name: string, operation: string) => name === 'gate.json' && (operation === 'create' || operation === 'replace'), 0],
    ['the ledger write after the send', (name: string, operation: string) => name.startsWith('ledger/') && operation === 'replace', 1],
  ])('a storage failure at %s hands the alert back: the immediate redelivery finishes it, one e-mail', async (_label, failing, sentBefore) => {
    let armed = true;
    const store = faultyStore(new MemoryBlobStore(), (operation, _i, name) => {
      if (!armed || !failing(name, operation)) return false;
      armed = false;
      return true;
    });
    // Each busy wait of a redelivery would advance nothing: only a released lease lets the next delivery in.
    const { alerts, sender } = setup(alertsConfig(), { store });
    const m = message({ messageId: 'msg-1' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'StorageUnavailable' });
    expect(armed).toBe(false);
    expect(sender.calls).toHaveLength(sentBefore);
    // Service Bus redelivers an abandoned message at once, long before the alert's lease would run out.
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(sender.delivered.size).toBe(1);
    expect(new Set(sender.calls.map((c) => c.operationId))).toEqual(new Set([emailOperationId(messageIdentity(m))]));
  });

  it('waits out a Retry-After the e-mail service gave (capped) before handing the message back', async () => {
    const slept: number[] = [];
    const { alerts, sender, store } = setup(alertsConfig(), { sleep: async (ms) => void slept.push(ms) });
    for (const seconds of [20, 600]) {
      sender.script.push(() => {
        throw new RoutingError('EmailUnavailable', 'ACS accepted a send, but its status poll was throttled (429)', { retryAfterSeconds: seconds });
      });
    }
    const m = message({ messageId: 'msg-1' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable' });
    // 20 s as asked; 600 s capped at 60 s (the lease is 75 s). No wait for the transient failure without one below.
    expect(slept).toEqual([20_000, 60_000]);
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'in-progress' });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(slept).toEqual([20_000, 60_000]);
  });

  it('waits no longer than its lease allows when the send itself took most of it', async () => {
    const slept: number[] = [];
    const { alerts, sender, clock } = setup(alertsConfig(), { sleep: async (ms) => void slept.push(ms) });
    sender.script.push(() => {
      clock.advance(55_000); // a slow poll: 20 of the lease's 75 seconds are left
      throw new RoutingError('EmailUnavailable', 'ACS accepted a send, but its status poll was throttled (429)', { retryAfterSeconds: 20 });
    });
    await routingRejection(alerts.handler.handle(message({ messageId: 'msg-1' })));
    // 20 s left, less 15 s so that the release comes before any other delivery could take over.
    expect(slept).toEqual([5_000]);
  });

  it('takes a module alert handled before identities named the module as a duplicate, and waits while it is in flight', async () => {
    const { alerts, sender, clock } = setup();
    // The earlier build keyed sensorA's message m-1 without the module: the same key as the device's m-1.
    const before = message({ messageId: 'm-1' });
    const fromModule = message({ messageId: 'm-1', moduleId: 'sensorA' });
    expect(messageIdentity(fromModule)).not.toBe(messageIdentity(before));
    expect(await alerts.handler.handle(before)).toMatchObject({ outcome: 'sent' });
    expect(await alerts.handler.handle(fromModule)).toMatchObject({ outcome: 'duplicate', state: 'sent' });
    expect(sender.delivered.size).toBe(1);

    // In flight under the earlier key (another instance's lease): not sent a second time now, redelivered later.
    const inFlight = message({ messageId: 'm-2' });
    await alerts.stores.ledger.claim(messageIdentity(inFlight), { kind: 'alert', deviceId: 'dev-1', operationId: 'op' });
    await expect(alerts.handler.handle(message({ messageId: 'm-2', moduleId: 'sensorA' }))).rejects.toMatchObject({ code: 'StorageConflict' });
    // Its lease ran out (the earlier instance died): this one handles it under its own key (folded into the digest
    // here, the device being in its quiet period after the first e-mail).
    clock.advance(alertsConfig().leaseSeconds * 1000);
    expect(await alerts.handler.handle(message({ messageId: 'm-2', moduleId: 'sensorA' }))).toMatchObject({ outcome: 'digested' });
  });

  it('releases the alert after a transient e-mail failure so that the redelivery sends it at once', async () => {
    const { alerts, sender, store } = setup();
    sender.script.push(() => {
      throw new RoutingError('EmailUnavailable', 'ACS answered 503');
    });
    const m = message({ messageId: 'msg-1' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable', kind: 'transient' });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'in-progress', lastError: 'RoutingError: ACS answered 503' });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(sender.delivered.size).toBe(1);
  });

  it('records a rejected e-mail as failed, quarantines the message and does not throw or retry', async () => {
    const { alerts, sender, store } = setup();
    sender.script.push((email) => ({ status: 'failed', operationId: email.operationId, error: 'The recipient address is not valid.', providerCode: 'InvalidRecipient', httpStatus: 400 }));
    const m = message({ messageId: 'msg-1' });
    const outcome = await alerts.handler.handle(m);
    expect(outcome).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'failed', providerCode: 'InvalidRecipient', httpStatus: 400 });
    const entries = await quarantined(store);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ identity: messageIdentity(m), endpoint: 'criticalQueue', reasons: [{ code: 'EmailRejected' }] });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'duplicate', state: 'failed' });
    expect(sender.calls).toHaveLength(1);
  });

  it('does not e-mail messages the policy does not call alerts, nor messages the checks quarantine', async () => {
    const { alerts, sender, store } = setup();
    expect(await alerts.handler.handle(message({ level: 'storage' }))).toMatchObject({ outcome: 'notAlert' });
    expect(await alerts.handler.handle(message({ deviceId: '' }))).toMatchObject({ outcome: 'quarantined', reasons: ['DeviceIdMissing'] });
    expect(sender.calls).toHaveLength(0);
    expect((await quarantined(store)).map((q) => q.reasons[0]?.code)).toEqual(['DeviceIdMissing']);
  });
  it('alerts on a body nested too deeply to read as JSON, as text, instead of throwing on every delivery', async () => {
    const { alerts, sender } = setup();
    // 25 KB of nested objects: JSON.parse takes it, writing it out again overflows the stack.
    const deep = Buffer.from(`${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`);
    expect(await alerts.handler.handle(message({ body: deep }))).toMatchObject({ outcome: 'sent' });
    expect(sender.calls).toHaveLength(1);
    expect(sender.calls[0]!.text).toContain('{"a":{"a":');
    expect(sender.calls[0]!.html.length).toBeLessThan(20_000);
  });
  it('keeps the enrichments among the properties an e-mail shows when a message has more than it shows', async () => {
    // The enrichments of the message below, as routing.config.json would declare them.
    const routing = {
      iotHubName: 'ContosoHub',
      enrichments: [
        { key: 'iothubname', value: '$iothubname', endpoints: ['criticalQueue'] },
        { key: 'DeviceLocation', value: 'Building 43', endpoints: ['criticalQueue'] },
      ],
    };
    const sender = new RecordingSender();
    const clock = new ManualClock(T0);
    const alerts = createAlertServices(services(new MemoryBlobStore(), clock, {}, routing), { alerts: alertsConfig(), sender, busyWait: { attempts: 0, intervalMs: 0 } });
    const message25 = message();
    const crowded = { ...message25, properties: { ...Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`A${String(i).padStart(2, '0')}`, 'x'])), ...message25.properties } };
    await alerts.handler.handle(crowded);
    const text = sender.calls[0]!.text;
    expect(text).toContain('iotHubName: ContosoHub');
    expect(text).toContain('deviceLocation: Building 43');
    expect(text).toContain('A00: x');
    expect(text).not.toContain('A24: x');
  });
});

describe('criticalAlerts handler: quiet periods and digests', () => {
  it('100 critical messages from one device in a minute send one alert and one digest', async () => {
    const { alerts, sender, clock } = setup();
    const outcomes: AlertOutcome[] = [];
    for (let i = 0; i < 100; i += 1) {
      clock.set(T0 + i * 600);
      outcomes.push(await alerts.handler.handle(message({ enqueuedTime: T0 + i * 600, body: { temperature: 50 + (i % 10) * 5, humidity: 70 - i / 10, pointInfo: `reading ${i}` } })));
    }
    expect(outcomes.filter((o) => o.outcome === 'sent')).toHaveLength(1);
    expect(outcomes.filter((o) => o.outcome === 'digested' && o.reason === 'quiet')).toHaveLength(99);
    expect(sender.calls).toHaveLength(1);

    clock.set(T0 + 14 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 0, sent: 0 });
    clock.set(T0 + 15 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 1, held: 0 });
    clock.set(T0 + 16 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 0, sent: 0 });

    expect(sender.calls).toHaveLength(2);
    const digest = sender.calls[1]!;
    expect(digest.subject).toBe('[critical] dev-1: 99 alerts between 2026-11-22T10:00:00.600Z and 2026-11-22T10:00:59.400Z');
    expect(digest.text).toContain('temperature: 50 .. 95');
    expect(digest.text).toContain('humidity: 60.1 .. 69.9');
    expect(digest.text).toContain('pointInfo: reading 99');
    expect(new Set(sender.calls.map((c) => c.operationId)).size).toBe(2);
    expect(await alerts.stores.digests.get('dev-1')).toBeNull();
  });

  it('folds the readings of wide messages into the digest without one alert\'s "N more not shown" count', async () => {
    const { alerts, sender, clock } = setup();
    const wide = (prefix: string) => Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`${prefix}${String(i).padStart(2, '0')}`, i]));
    for (const [i, prefix] of ['x', 'a', 'b'].entries()) {
      clock.set(T0 + i * 1000);
      await alerts.handler.handle(message({ enqueuedTime: T0 + i * 1000, body: wide(prefix) }));
    }
    // The first alert's e-mail says what it left out; the digest of the other two does not borrow that count.
    expect(sender.calls[0]!.text).toContain('\u2026: 5 more readings not shown');
    clock.set(T0 + 15 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ sent: 1 });
    expect(sender.calls[1]!.text).not.toContain('more readings not shown');
    expect(sender.calls[1]!.text).toContain('a00: 0');
  });

  it('a storm that goes on gets one digest per quiet period, not one e-mail per message', async () => {
    const { alerts, sender, clock } = setup();
    for (let minute = 0; minute < 60; minute += 1) {
      clock.set(T0 + minute * MINUTE);
      for (let i = 0; i < 5; i += 1) await alerts.handler.handle(message({ enqueuedTime: T0 + minute * MINUTE + i }));
      await alerts.digests.run();
    }
    // One alert at 10:00, then a digest every 15 minutes (each starts the next quiet period). The alerts that
    // arrive when a period has ended but before the digest run join that digest rather than jumping ahead of it.
    expect(sender.calls.map((c) => c.subject.replace(/ between .*/, ''))).toEqual([
      '[critical] dev-1: critical alert at 2026-11-22T10:00:00.000Z',
      '[critical] dev-1: 79 alerts',
      '[critical] dev-1: 75 alerts',
      '[critical] dev-1: 75 alerts',
    ]);
    expect((await alerts.stores.digests.get('dev-1'))?.windows).toEqual([expect.objectContaining({ count: 70, sealed: false })]);
  });

  it('an alert that arrives while the due digest is being sent waits for the next period, not for the next run', async () => {
    const { alerts, sender, clock } = setup();
    await alerts.handler.handle(message({ enqueuedTime: T0 }));
    clock.set(T0 + MINUTE);
    await alerts.handler.handle(message({ enqueuedTime: T0 + MINUTE }));
    // The period has ended; the digest run seals the window, and an alert arrives before the digest is reserved.
    clock.set(T0 + 16 * MINUTE);
    await alerts.stores.digests.seal('dev-1', clock.now());
    expect(await alerts.handler.handle(message({ enqueuedTime: T0 + 16 * MINUTE }))).toMatchObject({
      outcome: 'digested',
      dueAt: new Date(T0 + 31 * MINUTE).toISOString(),
    });
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 1 });
    // One digest per quiet period: the next run a minute later sends nothing; the alert goes with the next digest.
    clock.set(T0 + 17 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 0, sent: 0 });
    clock.set(T0 + 31 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 1 });
    expect(sender.calls.map((c) => c.subject.replace(/ between .*/, ''))).toEqual([
      '[critical] dev-1: critical alert at 2026-11-22T10:00:00.000Z',
      '[critical] dev-1: 1 alert',
      '[critical] dev-1: 1 alert',
    ]);
  });

  it('over budget, alerts wait for a digest and are never dropped (per minute and per hour)', async () => {
    const { alerts, sender, clock } = setup(alertsConfig({ budget: { perMinute: 5, perHour: 8 } }));
    const outcomes: AlertOutcome[] = [];
    for (let d = 0; d < 12; d += 1) outcomes.push(await alerts.handler.handle(message({ deviceId: `dev-${d}` })));
    expect(outcomes.filter((o) => o.outcome === 'sent')).toHaveLength(5);
    expect(outcomes.filter((o) => o.outcome === 'digested')).toEqual(
      Array.from({ length: 7 }, () => expect.objectContaining({ reason: 'budget', dueAt: new Date(T0 + MINUTE).toISOString() })),
    );
    clock.set(T0 + MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 7, sent: 3, held: 4, heldBy: 'budget' });
    clock.set(T0 + 30 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 4, sent: 0, held: 4, heldBy: 'budget' });
    clock.set(T0 + 60 * MINUTE);
    expect(await alerts.digests.run()).toMatchObject({ due: 4, sent: 4, held: 0 });
    const devices = new Set(sender.calls.map((c) => /dev-\d+/.exec(c.subject)?.[0]));
    expect(devices.size).toBe(12);
    expect(sender.calls).toHaveLength(12);
  });

  it('after a 429 every instance holds its alerts until Retry-After; a later redelivery sends exactly one', async () => {
    const { alerts, sender, clock } = setup();
    sender.script.push(() => {
      throw new RoutingError('EmailThrottled', 'ACS throttled (429)', { retryAfterSeconds: 30 });
    });
    const first = message({ deviceId: 'dev-1', messageId: 'a' });
    expect(await routingRejection(alerts.handler.handle(first))).toMatchObject({ code: 'EmailThrottled', kind: 'transient' });
    // Another device's alert during the pause is held, not sent into the same 429.
    expect(await alerts.handler.handle(message({ deviceId: 'dev-2', messageId: 'b' }))).toMatchObject({ outcome: 'digested', reason: 'paused' });
    clock.advance(30_000);
    expect(await alerts.handler.handle(first)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(await alerts.handler.handle(first)).toMatchObject({ outcome: 'duplicate' });
    expect(sender.delivered.size).toBe(1);
    expect(await alerts.digests.run()).toMatchObject({ sent: 1 });
    expect(sender.delivered.size).toBe(2);
  });

  it('seals the window before sending: an alert arriving during the digest goes into the next one', async () => {
    const { alerts, sender, clock } = setup();
    await alerts.handler.handle(message({ messageId: 'opener' }));
    clock.advance(MINUTE);
    await alerts.handler.handle(message({ messageId: 'folded-1', enqueuedTime: T0 + MINUTE }));
    clock.set(T0 + 15 * MINUTE);
    let during: AlertOutcome | undefined;
    sender.script.push(async (email) => {
      during = await alerts.handler.handle(message({ messageId: 'during-send', enqueuedTime: T0 + 15 * MINUTE }));
      return { status: 'sent', operationId: email.operationId };
    });
    expect(await alerts.digests.run()).toMatchObject({ sent: 1 });
    expect(sender.calls[1]?.subject).toContain(': 1 alert between');
    expect(during).toMatchObject({ outcome: 'digested', reason: 'quiet', dueAt: new Date(T0 + 30 * MINUTE).toISOString() });
    const pending = await alerts.stores.digests.get('dev-1');
    expect(pending?.windows).toEqual([expect.objectContaining({ sealed: false, count: 1, recentKeys: [messageIdentity(message({ messageId: 'during-send', enqueuedTime: T0 + 15 * MINUTE }))] })]);
  });

  it('a digest the e-mail service rejects is quarantined and recorded as failed, not retried; the next window starts clean', async () => {
    const { alerts, sender, clock, store } = setup();
    await alerts.handler.handle(message({ messageId: 'opener' }));
    const folded = await alerts.handler.handle(message({ messageId: 'folded', body: { temperature: 99 } }));
    clock.set(T0 + 15 * MINUTE);
    sender.script.push((email) => ({ status: 'failed', operationId: email.operationId, error: 'Denied', httpStatus: 403 }));
    const summary = await alerts.digests.run();
    expect(summary).toMatchObject({ due: 1, sent: 0, failed: [expect.objectContaining({ deviceId: 'dev-1', error: 'Denied' })] });
    const digestKey = summary.failed[0]!.digestKey;
    expect(await ledgerRecord(store, digestKey)).toMatchObject({ kind: 'digest', state: 'failed', httpStatus: 403 });
    // Never dropped: what the digest held is in the quarantine, with the reason and what to do.
    const entries = (await quarantined(store)) as unknown as QuarantineEntry[];
    expect(entries).toEqual([
      expect.objectContaining({
        kind: 'digest',
        identity: digestKey,
        deviceId: 'dev-1',
        reasons: [expect.objectContaining({ code: 'EmailRejected', detail: expect.stringContaining('HTTP 403') as unknown })],
        digest: expect.objectContaining({ alerts: 1, recentAlertKeys: [folded.alertKey], readings: [{ name: 'temperature', min: 99, max: 99 }] }) as unknown,
      }),
    ]);
    const listed = [];
    for await (const item of createQuarantine(store, 'quarantine', clock).list({ reason: 'EmailRejected' })) listed.push(item);
    expect(listed).toEqual([expect.objectContaining({ kind: 'digest', endpoint: 'criticalQueue', deviceId: 'dev-1' })]);
    expect(await alerts.stores.digests.get('dev-1')).toBeNull();
    expect(await alerts.digests.run()).toMatchObject({ due: 0 });
    expect(sender.calls).toHaveLength(2);
  });

  it('a throttled digest run stops, pauses every instance, and the next run sends the same operation once', async () => {
    const { alerts, sender, clock } = setup();
    for (const device of ['dev-1', 'dev-2']) {
      await alerts.handler.handle(message({ deviceId: device, messageId: `${device}-opener` }));
      await alerts.handler.handle(message({ deviceId: device, messageId: `${device}-folded` }));
    }
    clock.set(T0 + 15 * MINUTE);
    sender.script.push(() => {
      throw new RoutingError('EmailThrottled', 'ACS throttled (429)', { retryAfterSeconds: 40 });
    });
    expect(await alerts.digests.run()).toMatchObject({ due: 2, sent: 0, held: 2, interrupted: { code: 'EmailThrottled' } });
    expect(await alerts.digests.run()).toMatchObject({ due: 2, sent: 0, held: 2, heldBy: 'paused' });
    clock.advance(40_000);
    expect(await alerts.digests.run()).toMatchObject({ due: 2, sent: 2 });
    const digests = sender.calls.slice(2);
    expect(digests.map((c) => c.operationId)).toEqual([digests[0]!.operationId, digests[0]!.operationId, digests[2]!.operationId]);
    expect(JSON.stringify(digests[1])).toBe(JSON.stringify(digests[0]));
  });

  it('a takeover of an alert that was already folded finishes the fold instead of counting or sending it again', async () => {
    let failLedgerWrite = false;
    const store = faultyStore(new MemoryBlobStore(), (operation, _i, name) => failLedgerWrite && operation === 'replace' && name.startsWith('ledger/'));
    const { alerts, clock } = setup(alertsConfig(), { store });
    await alerts.handler.handle(message({ messageId: 'opener' }));
    failLedgerWrite = true;
    const folded = message({ messageId: 'folded' });
    expect(await routingRejection(alerts.handler.handle(folded))).toMatchObject({ code: 'StorageUnavailable' });
    failLedgerWrite = false;
    clock.advance(alertsConfig().leaseSeconds * 1000);
    expect(await alerts.handler.handle(folded)).toMatchObject({ outcome: 'digested', reason: 'retry' });
    expect((await alerts.stores.digests.get('dev-1'))?.windows[0]?.count).toBe(1);
  });
});

describe('criticalAlerts handler: device notification', () => {
  class FlakyNotifier implements DeviceNotifier {
    readonly calls: DeviceNotification[] = [];
    failures = 1;
    async notify(notification: DeviceNotification) {
      this.calls.push(notification);
      if (this.failures > 0) {
        this.failures -= 1;
        throw new RoutingError('DeviceNotificationFailed', 'AMQP connection dropped');
      }
      return { status: 'sent' as const };
    }
  }

  it('records the e-mail as sent, hands a failed notification back, and retries only the notification', async () => {
    const notifier = new FlakyNotifier();
    const { alerts, sender, store } = setup(alertsConfig({ notifyDevice: true }), { notifier });
    const m = message({ messageId: 'msg-1' });
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'DeviceNotificationFailed' });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'sent', deviceNotification: 'pending' });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'duplicate', state: 'sent' });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'sent', deviceNotification: 'sent' });
    expect(sender.calls).toHaveLength(1);
    expect(notifier.calls.map((n) => n.messageId)).toEqual([
      emailOperationId(`device-notification/${messageIdentity(m)}`),
      emailOperationId(`device-notification/${messageIdentity(m)}`),
    ]);
    expect(notifier.calls[0]).toMatchObject({ deviceId: 'dev-1', alertId: messageIdentity(m), severity: 'critical', summary: sender.calls[0]?.subject });
    expect(notifier.calls[1]).toEqual(notifier.calls[0]);
  });
});

describe('criticalAlerts with the local outbox sender', () => {
  let directory: string | undefined;
  afterEach(async () => {
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it('writes one .eml per alert, whatever the redeliveries (ALERT_SENDER=outbox)', async () => {
    directory = await mkdtemp(join(tmpdir(), 'alerts-outbox-'));
    const clock = new ManualClock(T0);
    const store = new MemoryBlobStore();
    const alerts = createAlertServices(services(store, clock, { ALERT_SENDER: 'outbox' }), {
      alerts: alertsConfig({ outboxDirectory: directory }),
    });
    const m = message({ messageId: 'msg-1' });
    for (let i = 0; i < 3; i += 1) await alerts.handler.handle(m);
    const files = await readdir(directory);
    expect(files).toEqual([`${emailOperationId(messageIdentity(m))}.eml`]);
    const eml = await readFile(join(directory, files[0]!), 'utf8');
    expect(eml).toContain('Subject: [critical] dev-1: critical alert at 2026-11-22T10:00:00.000Z');
    expect(eml).toContain('To: ops@contoso.example');
  });

  it('puts a relative alerts.outboxDirectory under the app root, not the working directory', async () => {
    directory = await mkdtemp(join(tmpdir(), 'alerts-outbox-'));
    // Unique, so that a copy written to the working directory (the defect) is found and removed, never a real one.
    const relative = `outbox-${process.pid}-relative`;
    const misplaced = resolve(relative);
    try {
      const alerts = {
        from: 'alerts@contoso.example',
        recipients: { default: ['ops@contoso.example'] },
        sender: 'outbox',
        outboxDirectory: relative,
      };
      await writeFile(join(directory, 'routing.config.json'), JSON.stringify({ alerts }));
      const clock = new ManualClock(T0);
      const services = await createServices({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }, { root: directory, clock, store: new MemoryBlobStore() });
      const m = message({ messageId: 'msg-root' });
      expect(await createAlertServices(services).handler.handle(m)).toMatchObject({ outcome: 'sent' });
      expect(await readdir(join(directory, relative))).toEqual([`${emailOperationId(messageIdentity(m))}.eml`]);
      expect(await readdir(misplaced).catch(() => [])).toEqual([]);
    } finally {
      await rm(misplaced, { recursive: true, force: true });
    }
  });

  it('refuses to start without a way to send, naming every problem at once', () => {
    const clock = new ManualClock(T0);
    // Settings are validated once for the whole app, so a bad DASHBOARD_URL stops every function, alerts included.
    expect(() => services(new MemoryBlobStore(), clock, { DASHBOARD_URL: 'ftp://x' })).toThrow(
      /Configuration is invalid \(1 problem\):\n- DASHBOARD_URL: expected an absolute http\(s\) URL/,
    );
    expect(() => createAlertServices(services(new MemoryBlobStore(), clock), { alerts: alertsConfig({ notifyDevice: true }) })).toThrow(
      /Alert configuration is invalid \(2 problems\):\n- alerts are sent with ACS but neither .*\n- alerts.notifyDevice is true but IOTHUB_SERVICE_CONNECTION is not set/,
    );
  });
});
