/**
 * The alert handler end to end on real adapters: Azurite for the alerts and quarantine containers, and the real
 * ACS `EmailClient` against the loopback ACS stand-in, which verifies the HMAC signature of every request.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAcsEmailSender } from '../../src/lib/alerts/acsEmailSender.js';
import { parseAlertsConfig, type AlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices, type AlertServices } from '../../src/lib/alerts/alertServices.js';
import { emailOperationId, type EmailSender } from '../../src/lib/alerts/email.js';
import { ledgerBlobName, type LedgerRecord } from '../../src/lib/alerts/ledger.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { ManualClock, type BlobStore } from '../../src/lib/ports.js';
import type { Services } from '../../src/lib/runtime.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { createQuarantine, digestRecordName, type QuarantinedDigest, type QuarantinedMessage } from '../../src/lib/storage/quarantine.js';
import { acs, startAcsEmailStandIn, type AcsEmailStandIn } from '../support/acsEmailStandIn.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { faultyStore } from '../support/faultyStore.js';
import { routingRejection } from '../support/rejections.js';

const azurite = useAzurite();
const T0 = Date.parse('2026-11-22T10:00:00Z');

let standIn: AcsEmailStandIn;
let alertsContainer: string;
let quarantineContainer: string;

beforeEach(async () => {
  standIn = await startAcsEmailStandIn();
  alertsContainer = uniqueContainerName('alerts');
  quarantineContainer = uniqueContainerName('quarantine');
});

afterEach(async () => {
  await standIn.stop();
});

function config(): AlertsConfig {
  const result = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example', 'oncall@contoso.example'] } });
  if ('errors' in result) throw new Error(result.errors.join('\n'));
  return result.value;
}

function azureStore(): AzureBlobStore {
  return new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString }));
}

/** The real EmailClient, made to reach the plain-HTTP stand-in, polling fast, and without SDK retries. */
function acsSender(connectionString = standIn.connectionString): EmailSender {
  return createAcsEmailSender(
    { connectionString },
    { pollIntervalMs: 5, maxWaitMs: 5_000, clientOptions: { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } } },
  );
}

function alertServices(store: BlobStore, clock: ManualClock, sender: EmailSender = acsSender(), sleep?: (ms: number) => Promise<void>): AlertServices {
  const env = {
    AzureWebJobsStorage: azurite().connectionString,
    ALERTS_CONTAINER: alertsContainer,
    ACS_CONNECTION_STRING: standIn.connectionString,
  };
  const app = buildAppConfig(env, {});
  const quarantine = createQuarantine(store, quarantineContainer, clock);
  const services: Services = {
    env,
    config: app,
    clock,
    store,
    quarantine,
    twins: undefined,
    admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() },
  };
  return createAlertServices(services, { alerts: config(), sender, busyWait: { attempts: 400, intervalMs: 5 }, ...(sleep === undefined ? {} : { sleep }) });
}

function message(deviceId = 'Contoso-Test-Device', messageId = '4d3c2b1a-0f9e-4d8c-b7a6-5e4f3d2c1b0a'): RoutedMessage {
  return decodeServiceBusMessage(
    Buffer.from('{"deviceId":"Contoso-Test-Device","temperature":30.1,"humidity":77.2,"pointInfo":"This is a critical message."}'),
    {
      messageId,
      contentType: 'application/json',
      enqueuedTimeUtc: '2026-11-22T09:59:30.000',
      deliveryCount: 1,
      applicationProperties: { 'iothub-connection-device-id': deviceId, level: 'critical', deviceLocation: 'Building 43' },
    },
    'critical',
  );
}

async function ledgerRecord(store: BlobStore, key: string): Promise<LedgerRecord | undefined> {
  const doc = await store.get(alertsContainer, ledgerBlobName(key));
  return doc === null ? undefined : (JSON.parse(doc.body.toString('utf8')) as LedgerRecord);
}

async function quarantined(store: BlobStore): Promise<QuarantinedMessage[]> {
  const out: QuarantinedMessage[] = [];
  for await (const item of store.list(quarantineContainer)) {
    out.push(JSON.parse((await store.get(quarantineContainer, item.name))!.body.toString('utf8')) as QuarantinedMessage);
  }
  return out;
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('criticalAlerts → ACS EmailClient → loopback ACS (HMAC verified), ledger in Azurite', () => {
  it('sends the alert, signed, under the operation id derived from the alert key', async () => {
    const store = azureStore();
    const alerts = alertServices(store, new ManualClock(T0));
    const m = message();
    const key = messageIdentity(m);
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', alertKey: key });
    expect(standIn.sent).toEqual([
      expect.objectContaining({
        operationId: emailOperationId(key),
        from: 'alerts@contoso.example',
        to: ['ops@contoso.example', 'oncall@contoso.example'],
        subject: '[critical] Contoso-Test-Device: critical alert at 2026-11-22T09:59:30.000Z',
        status: 'Succeeded',
        headers: { 'X-Alert-Id': key },
      }),
    ]);
    expect(standIn.sent[0]?.text).toContain('temperature: 30.1');
    expect(standIn.requests.every((r) => r.authenticated)).toBe(true);
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'sent', providerId: emailOperationId(key), recipients: 2 });
  });

  it('429 with Retry-After: thrown as transient, every instance pauses, and a later redelivery sends exactly one', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const alerts = alertServices(store, clock);
    standIn.script(acs.throttled('7'));
    const m = message();
    const error = await routingRejection(alerts.handler.handle(m));
    expect(error).toMatchObject({ code: 'EmailThrottled', kind: 'transient', retryAfterSeconds: 7 });
    expect(alerts.stores.gate.peek()?.pausedUntil).toBe(T0 + 7_000);
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'in-progress', expiresAt: new Date(T0).toISOString() });
    expect(standIn.sent).toHaveLength(0);

    clock.advance(7_000);
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'duplicate' });
    expect(standIn.sent.map((s) => s.operationId)).toEqual([emailOperationId(messageIdentity(m))]);
  });

  it('429: a redelivery during the pause joins the digest, which sends exactly one e-mail when the pause ends', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const alerts = alertServices(store, clock);
    standIn.script(acs.throttled({ ms: 20_000 }));
    const m = message();
    await routingRejection(alerts.handler.handle(m));
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'digested', reason: 'paused', dueAt: new Date(T0 + 20_000).toISOString() });
    expect(await alerts.digests.run()).toMatchObject({ due: 0 });
    clock.advance(20_000);
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 1 });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'duplicate', state: 'digested' });
    expect(standIn.sent).toHaveLength(1);
    expect(standIn.sent[0]?.subject).toContain('1 alert between 2026-11-22T09:59:30.000Z and 2026-11-22T09:59:30.000Z');
  });

  it('429 on the status poll of an accepted send: no pause, a wait as asked, and the redelivery resumes it, one e-mail', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const slept: number[] = [];
    const alerts = alertServices(store, clock, acsSender(), async (ms) => {
      slept.push(ms);
      clock.advance(ms);
    });
    standIn.scriptPolls({ kind: 'respond', status: 429, headers: { 'retry-after': '20' } });
    const m = message();
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable', kind: 'transient', retryAfterSeconds: 20 });
    // Pausing here would fold the redelivery into a digest that mails the accepted alert a second time.
    expect(alerts.stores.gate.peek()?.pausedUntil ?? 0).toBeLessThanOrEqual(T0);
    expect(slept).toEqual([20_000]);
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(await alerts.digests.run()).toMatchObject({ due: 0 });
    expect(standIn.sent.map((s) => s.operationId)).toEqual([emailOperationId(messageIdentity(m))]);
  });

  /** A first delivery whose send ACS accepted and whose status poll then failed (503): thrown, the alert released. */
  async function acceptedThenPollFailed(): Promise<{ store: BlobStore; clock: ManualClock; alerts: AlertServices; m: RoutedMessage; key: string }> {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const alerts = alertServices(store, clock, acsSender(), async (ms) => {
      clock.advance(ms);
    });
    standIn.scriptPolls({ kind: 'respond', status: 503 });
    const m = message();
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable' });
    expect(standIn.count('POST')).toBe(1);
    return { store, clock, alerts, m, key: messageIdentity(m) };
  }

  it('an accepted send whose poll failed is taken over by asking ACS, even while sending is paused: one e-mail, no digest', async () => {
    const { store, clock, alerts, m, key } = await acceptedThenPollFailed();
    // Another alert met a 429 meanwhile: every instance holds new alerts back for a minute.
    await alerts.stores.gate.pause(new Date(T0 + 60_000));
    // Before, the redelivery was folded into a digest ('paused'), which mailed the alert again after the accepted send.
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    clock.advance(60_000);
    expect(await alerts.digests.run()).toMatchObject({ due: 0 });
    expect(standIn.sent.map((s) => s.operationId)).toEqual([emailOperationId(key)]);
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'sent' });
  });

  it('a release lost to a storage error: the takeover after the lease asks ACS, finds the accepted send, one e-mail', async () => {
    const clock = new ManualClock(T0);
    const m = message();
    const key = messageIdentity(m);
    let failedOnce = false;
    const store = faultyStore(azureStore(), (operation, _i, name) => {
      if (!failedOnce && operation === 'replace' && name === ledgerBlobName(key)) {
        failedOnce = true;
        return true;
      }
      return false;
    });
    const alerts = alertServices(store, clock, acsSender(), async (ms) => {
      clock.advance(ms);
    });
    standIn.scriptPolls({ kind: 'respond', status: 503 });
    await routingRejection(alerts.handler.handle(m));
    expect(failedOnce).toBe(true);
    // The lease (75 s) runs out, and sending is paused when the redelivery takes the alert over.
    clock.advance(76_000);
    await alerts.stores.gate.pause(new Date(clock.now().getTime() + 60_000));
    const second = await alerts.handler.handle(m);
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'sent' });
    clock.advance(16 * 60_000);
    await alerts.digests.run();
    expect({ second: second.outcome, sent: standIn.sent.length }).toEqual({ second: 'sent', sent: 1 });
  });

  it('a redelivery of an accepted send polls it without posting again, so a 429 on new sends cannot burn its deliveries', async () => {
    const { store, clock, alerts, m, key } = await acceptedThenPollFailed();
    // Another alert met a 429: sending is paused for a minute, and ACS keeps answering POSTs 429 meanwhile.
    await alerts.stores.gate.pause(new Date(T0 + 60_000));
    for (let i = 0; i < 10; i += 1) standIn.script(acs.throttled('60'));
    const outcomes: string[] = [];
    // Service Bus redelivers an abandoned message at once; ten deliveries (maxDeliveryCount) then dead-letter.
    for (let delivery = 2; delivery <= 10; delivery += 1) {
      try {
        outcomes.push((await alerts.handler.handle(m)).outcome);
        break;
      } catch (error) {
        outcomes.push((error as { code?: string }).code ?? String(error));
      }
    }
    const record = await ledgerRecord(store, key);
    const posts = standIn.count('POST');
    // The accepted operation exists: resuming it needs no new send. Expected: an outcome within the deliveries,
    // no POSTs while sending is paused.
    expect({ last: outcomes.at(-1), state: record?.state, posts, clockAdvancedMs: clock.now().getTime() - T0 }).toEqual({
      last: 'sent',
      state: 'sent',
      posts: 1,
      clockAdvancedMs: expect.any(Number),
    });
  });

  it('a duplicate that takes the alert over while the first send still runs asks ACS instead of folding it: one e-mail', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const m = message();
    const inner = acsSender();
    const built: { alerts?: AlertServices } = {};
    let second: string | undefined;
    const sender: EmailSender = {
      lookup: (email) => inner.lookup(email),
      async send(email) {
        // The send outlives the lease (alerts.leaseSeconds may be as low as 10, the adapter waits up to 60 s), and
        // sending was paused meanwhile; a duplicate delivery takes the alert over.
        try {
          return await inner.send(email);
        } catch (error) {
          // ACS accepted the POST; its polls failed after the lease had run out. Meanwhile the duplicate took over.
          clock.advance(76_000);
          await built.alerts!.stores.gate.pause(new Date(clock.now().getTime() + 60_000));
          if (second === undefined) second = (await built.alerts!.handler.handle(m)).outcome;
          throw error;
        }
      },
    };
    const alerts = alertServices(store, clock, sender, async (ms) => {
      clock.advance(ms);
    });
    built.alerts = alerts;
    standIn.scriptPolls({ kind: 'respond', status: 503 });
    await routingRejection(alerts.handler.handle(m));
    clock.advance(16 * 60_000);
    await alerts.digests.run();
    expect({ second, sent: standIn.sent.length }).toEqual({ second: expect.any(String), sent: 1 });
    // The duplicate found the send at ACS (or handed the alert back); it never folded it into a digest.
    expect(second).not.toBe('digested');
  });
  it('503: thrown as transient, and the redelivery sends exactly one', async () => {
    const store = azureStore();
    const alerts = alertServices(store, new ManualClock(T0));
    standIn.script(acs.unavailable());
    const m = message();
    expect(await routingRejection(alerts.handler.handle(m))).toMatchObject({ code: 'EmailUnavailable', kind: 'transient' });
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    expect(standIn.sent).toHaveLength(1);
  });

  it.each([
    ['400 InvalidRecipient', () => acs.badRequest(), 'InvalidRecipient'],
    ['a Failed send operation', () => acs.failOperation('EmailDropped'), 'EmailDropped'],
  ])('%s: ledger failed, message quarantined, nothing thrown, never retried', async (_label, behaviour, code) => {
    const store = azureStore();
    const alerts = alertServices(store, new ManualClock(T0));
    standIn.script(behaviour());
    const m = message();
    const outcome = await alerts.handler.handle(m);
    expect(outcome).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'failed', providerCode: code });
    const entries = await quarantined(store);
    expect(entries).toEqual([expect.objectContaining({ identity: messageIdentity(m), endpoint: 'criticalQueue', deviceId: 'Contoso-Test-Device' })]);
    expect(entries[0]?.reasons).toEqual([expect.objectContaining({ code: 'EmailRejected', detail: expect.stringContaining(code) })]);
    const posts = standIn.count('POST');
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'duplicate', state: 'failed' });
    expect(standIn.count('POST')).toBe(posts);
  });

  it('401 (a wrong access key): ledger failed and quarantined rather than redelivered into the same wall', async () => {
    const store = azureStore();
    const alerts = alertServices(store, new ManualClock(T0), acsSender(standIn.wrongKeyConnectionString));
    const m = message();
    expect(await alerts.handler.handle(m)).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    expect(await ledgerRecord(store, messageIdentity(m))).toMatchObject({ state: 'failed', httpStatus: 401 });
    expect(standIn.requests.every((r) => !r.authenticated)).toBe(true);
  });

  it('two instances handling the same message at the same time send one e-mail', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    // Separate services: separate caches, as on two hosts.
    const [a, b] = [alertServices(store, clock), alertServices(store, clock)];
    const m = message();
    const outcomes = await Promise.all([a.handler.handle(m), b.handler.handle(m), a.handler.handle(m), b.handler.handle(m)]);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['duplicate', 'duplicate', 'duplicate', 'sent']);
    expect(standIn.sent).toHaveLength(1);
    expect(standIn.count('POST')).toBe(1);
  });

  it('a crash between the send and the ledger update: the redelivery finds the operation at ACS, one e-mail', async () => {
    let failAfterSend = true;
    const store = faultyStore(azureStore(), (operation, _i, name) => {
      if (failAfterSend && operation === 'replace' && name.startsWith('ledger/') && standIn.sent.length > 0) {
        failAfterSend = false;
        return true;
      }
      return false;
    });
    const clock = new ManualClock(T0);
    const m = message();
    const key = messageIdentity(m);
    expect(await routingRejection(alertServices(store, clock).handler.handle(m))).toMatchObject({ code: 'StorageUnavailable' });
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'in-progress', attempts: 1 });

    // A new instance (the crashed one is gone) gets the message once its lock and the alert's lease have expired.
    clock.advance(config().leaseSeconds * 1000);
    expect(await alertServices(store, clock).handler.handle(m)).toMatchObject({ outcome: 'sent', takeover: true });
    // The takeover polled the existing operation (no second POST) and recorded its outcome.
    expect(standIn.requests.filter((r) => r.method === 'POST').map((r) => [r.operationId, r.status])).toEqual([[emailOperationId(key), 202]]);
    expect(standIn.sent).toHaveLength(1);
    expect(await ledgerRecord(store, key)).toMatchObject({ state: 'sent', attempts: 2 });
  });

  it('a digest whose accepted send lost its poll is found at ACS by the next run, even while sending is paused: one e-mail', async () => {
    const store = azureStore();
    const clock = new ManualClock(T0);
    const alerts = alertServices(store, clock);
    expect(await alerts.handler.handle(message('device-d', 'd-1'))).toMatchObject({ outcome: 'sent' });
    expect(await alerts.handler.handle(message('device-d', 'd-2'))).toMatchObject({ outcome: 'digested' });
    clock.advance(15 * 60_000);
    standIn.scriptPolls({ kind: 'respond', status: 503 });
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 0, interrupted: { code: 'EmailUnavailable' } });
    // Another alert met a 429 meanwhile: a re-POST of the digest would be held (or meet the same 429).
    await alerts.stores.gate.pause(new Date(clock.now().getTime() + 60_000));
    expect(await alerts.digests.run()).toMatchObject({ due: 1, sent: 1 });
    expect(standIn.count('POST')).toBe(2); // the alert and the digest, each once
    expect(standIn.sent).toHaveLength(2);
  });

  describe('a refused digest taken over after midnight UTC (the first run refused it, then lost its ledger update)', () => {
    const BEFORE_MIDNIGHT = Date.parse('2026-11-22T23:40:00Z');

    /** Refuses the digest of device-m and fails the ledger update that would record it, as a crash there would. */
    async function refuseThenCrash(): Promise<{ store: BlobStore; clock: ManualClock; refusedAt: string }> {
      let crash = true;
      const store = faultyStore(azureStore(), (operation, _i, name) => {
        if (crash && operation === 'replace' && name.startsWith('ledger/digest-')) {
          crash = false;
          return true;
        }
        return false;
      });
      const clock = new ManualClock(BEFORE_MIDNIGHT);
      const alerts = alertServices(store, clock);
      expect(await alerts.handler.handle(message('device-m', 'm-1'))).toMatchObject({ outcome: 'sent' });
      expect(await alerts.handler.handle(message('device-m', 'm-2'))).toMatchObject({ outcome: 'digested' });
      clock.advance(15 * 60_000);
      standIn.script(acs.failOperation('EmailDropped'));
      const refusedAt = clock.now().toISOString();
      expect(await routingRejection(alerts.digests.run())).toMatchObject({ code: 'StorageUnavailable' });
      expect(await quarantined(store)).toEqual([expect.objectContaining({ kind: 'digest', quarantinedAt: refusedAt })]);
      return { store, clock, refusedAt };
    }

    /** The next run, on a new instance once the lease has run out: past midnight, on the next UTC day. */
    async function takeOver(store: BlobStore, clock: ManualClock): Promise<void> {
      clock.advance(config().leaseSeconds * 1000 + 5 * 60_000);
      expect(clock.now().toISOString().slice(0, 10)).toBe('2026-11-23');
      const summary = await alertServices(store, clock).digests.run();
      expect(summary).toMatchObject({ due: 1, sent: 0, failed: [expect.objectContaining({ deviceId: 'device-m', error: expect.stringContaining('dropped') })] });
      // The takeover asked ACS for the operation (no second POST) and got the same verdict.
      expect(standIn.count('POST')).toBe(2);
    }

    it('keeps one quarantine record, named by the digest key, with the first refusal time', async () => {
      const { store, clock, refusedAt } = await refuseThenCrash();
      await takeOver(store, clock);
      const records = await quarantined(store);
      expect(records).toEqual([expect.objectContaining({ kind: 'digest', deviceId: 'device-m', quarantinedAt: refusedAt })]);
      const [item] = await all(store.list(quarantineContainer));
      const digest = records[0] as unknown as QuarantinedDigest;
      // Named by the digest's first alert's day, not the refusal's: the takeover ran after midnight and found it.
      expect(item?.name).toBe(digestRecordName(digest.identity, digest.digest.firstTime));
      expect(item?.name).toMatch(new RegExp(`^digests/criticalQueue/${digest.digest.firstTime!.slice(0, 10).replaceAll('-', '/')}/digest-`));
      expect(await ledgerRecord(store, records[0]!.identity)).toMatchObject({ kind: 'digest', state: 'failed', attempts: 2 });
    });

    it("finds the record an earlier build filed under the refusal's day instead of writing a second one", async () => {
      const { store, clock, refusedAt } = await refuseThenCrash();
      // What an earlier build wrote: the same record under messages/criticalQueue/{day refused}/.
      const [item] = await all(store.list(quarantineContainer));
      const current = (await store.get(quarantineContainer, item!.name))!;
      const identity = (JSON.parse(current.body.toString('utf8')) as { identity: string }).identity;
      const legacyName = `messages/criticalQueue/2026/11/22/${identity}.json`;
      await store.create(quarantineContainer, legacyName, current.body, { contentType: 'application/json', metadata: item!.metadata });
      await store.delete(quarantineContainer, item!.name);

      await takeOver(store, clock);
      expect((await all(store.list(quarantineContainer))).map((i) => i.name)).toEqual([legacyName]);
      expect(await quarantined(store)).toEqual([expect.objectContaining({ kind: 'digest', quarantinedAt: refusedAt })]);
      // And the quarantine's own listing still shows it as a digest of that device.
      const listed = await all(createQuarantine(store, quarantineContainer, clock).list({ endpoint: 'criticalQueue' }));
      expect(listed).toEqual([expect.objectContaining({ name: legacyName, kind: 'digest', deviceId: 'device-m', reasons: ['EmailRejected'] })]);
    });
  });

  it('costs at most 3 storage calls for the first alert of a device (measured on Azurite)', async () => {
    const counting = faultyStore(azureStore(), () => false);
    const clock = new ManualClock(T0);
    const alerts = alertServices(counting, clock);
    await alerts.handler.handle(message('warm-up-device', 'w-1')); // container creation and the first gate read
    const calls = async (m: RoutedMessage): Promise<number> => {
      const before = counting.calls;
      await alerts.handler.handle(m);
      return counting.calls - before;
    };
    expect(await calls(message('device-a', 'a-1'))).toBe(3); // ledger create, gate reserve, ledger → sent
    expect(await calls(message('device-b', 'b-1'))).toBe(3);
    expect(await calls(message('device-a', 'a-2'))).toBe(5); // ledger create, gate: mark pending, digest read + create, ledger → digested
    expect(await calls(message('device-a', 'a-3'))).toBe(4); // ledger create, digest read + replace, ledger → digested
    expect(await calls(message('device-a', 'a-3'))).toBe(2); // duplicate: ledger create (exists) + read
    expect(standIn.sent).toHaveLength(3);
    clock.advance(15 * 60_000);
    const before = counting.calls;
    expect(await alerts.digests.run()).toMatchObject({ sent: 1 });
    // device read + seal, ledger create, gate reserve, ledger → sent, device read + delete (the listing is not counted)
    expect(counting.calls - before).toBe(7);
  });
});
