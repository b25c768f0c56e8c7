/**
 * The device notifier on the real azure-iothub service `Client`, over AMQPS to a loopback IoT Hub stand-in
 * (HostName=127.0.0.1:PORT, a rhea peer with a test certificate), with the SDK's NoRetry policy so that each
 * scripted answer is seen exactly once.
 */
import type { TokenCredential } from '@azure/identity';
import { NoRetry } from 'azure-iothub/dist/common-core/retry_policy.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { createIotHubDeviceNotifier, type IotHubDeviceNotifier } from '../../src/lib/alerts/deviceNotifier.js';
import { emailOperationId, type EmailMessage, type EmailSender } from '../../src/lib/alerts/email.js';
import { ledgerBlobName } from '../../src/lib/alerts/ledger.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { isRoutingError } from '../../src/lib/errors.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import type { TestCertificate } from '../support/iotHubTwinApi.js';
import { identityToken, installManagedIdentityEndpoint } from '../support/managedIdentityEndpoint.js';
import {
  createLoopbackCertificate,
  hasOpenssl,
  MAX_QUEUE_DEPTH,
  startIotHubAmqpStandIn,
  type IotHubAmqpStandIn,
} from '../support/iotHubAmqpStandIn.js';

const opened: Array<{ close(): Promise<unknown> }> = [];
let certificate: TestCertificate;

beforeAll(() => {
  if (hasOpenssl()) certificate = createLoopbackCertificate();
});

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

async function hub(options: { devices?: string[]; bearerTokens?: string[] } = {}): Promise<IotHubAmqpStandIn> {
  const standIn = await startIotHubAmqpStandIn({ devices: options.devices ?? ['dev-1'], certificate, bearerTokens: options.bearerTokens ?? [] });
  opened.push(standIn);
  return standIn;
}

function notifierFor(connection: Parameters<typeof createIotHubDeviceNotifier>[0]): IotHubDeviceNotifier {
  const notifier = createIotHubDeviceNotifier(connection, { retryPolicy: new NoRetry() });
  opened.push(notifier);
  return notifier;
}

const notification = (deviceId = 'dev-1') => ({
  deviceId,
  alertId: '0123456789abcdef0123456789abcdef',
  messageId: emailOperationId('device-notification/0123456789abcdef0123456789abcdef'),
  severity: 'critical',
  enqueuedTime: '2026-11-22T09:59:30.000Z',
  summary: '[critical] dev-1: critical alert',
});

describe.runIf(hasOpenssl())('IoT Hub device notifier (real service Client, loopback AMQPS)', () => {
  it('sends a cloud-to-device message with full acknowledgement, the alert id and a message id derived from it', async () => {
    const standIn = await hub();
    const result = await notifierFor({ connectionString: standIn.connectionString() }).notify(notification());
    expect(result).toEqual({ status: 'sent' });
    expect(standIn.cbs).toEqual([{ audience: standIn.hostName, statusCode: 200 }]);
    expect(standIn.accepted()).toEqual([
      expect.objectContaining({
        deviceId: 'dev-1',
        messageId: notification().messageId,
        ack: 'full',
        properties: { alertId: notification().alertId, severity: 'critical' },
        contentType: 'application/json',
        contentEncoding: 'utf-8',
      }),
    ]);
    expect(JSON.parse(standIn.accepted()[0]!.body.toString('utf8'))).toEqual({
      alertId: notification().alertId,
      severity: 'critical',
      enqueuedTime: '2026-11-22T09:59:30.000Z',
      summary: '[critical] dev-1: critical alert',
    });
  });

  it('reuses one connection for many notifications', async () => {
    const standIn = await hub({ devices: ['dev-1', 'dev-2'] });
    const notifier = notifierFor({ connectionString: standIn.connectionString() });
    for (const deviceId of ['dev-1', 'dev-2', 'dev-1']) expect(await notifier.notify(notification(deviceId))).toEqual({ status: 'sent' });
    expect(standIn.cbs).toHaveLength(1);
    expect(standIn.openConnections()).toBe(1);
  });

  it('reports permanent refusals as failed: unknown device, full device queue, refused credentials', async () => {
    const standIn = await hub();
    const notifier = notifierFor({ connectionString: standIn.connectionString() });
    expect(await notifier.notify(notification('ghost'))).toMatchObject({ status: 'failed', providerCode: 'DeviceNotFoundError' });
    for (let i = 0; i < MAX_QUEUE_DEPTH; i += 1) await notifier.notify(notification());
    expect(await notifier.notify(notification())).toMatchObject({ status: 'failed', providerCode: 'DeviceMaximumQueueDepthExceededError' });

    const wrongKey = notifierFor({ connectionString: standIn.connectionString({ key: Buffer.alloc(32, 7).toString('base64') }) });
    expect(await wrongKey.notify(notification())).toMatchObject({ status: 'failed', providerCode: 'UnauthorizedError' });
    expect(standIn.cbs.at(-1)).toMatchObject({ statusCode: 401, problem: 'signature mismatch' });
  });

  it('throws a transient DeviceNotificationFailed when IoT Hub has an internal error', async () => {
    const standIn = await hub();
    const notifier = notifierFor({ connectionString: standIn.connectionString() });
    standIn.rejectNext('amqp:internal-error');
    const error = await notifier.notify(notification()).then(() => undefined, (e: unknown) => e);
    expect(isRoutingError(error) && error.code === 'DeviceNotificationFailed' && error.kind === 'transient').toBe(true);
    expect(await notifier.notify(notification())).toEqual({ status: 'sent' });
  });

  it('authenticates with a Microsoft Entra token (fromTokenCredential) for identity-based connections', async () => {
    const standIn = await hub({ bearerTokens: ['entra-token-1'] });
    const credential: TokenCredential = { getToken: async () => ({ token: 'entra-token-1', expiresOnTimestamp: Date.now() + 3_600_000 }) };
    expect(await notifierFor({ hostName: standIn.hostName, credential }).notify(notification())).toEqual({ status: 'sent' });
    expect(standIn.cbs).toEqual([{ audience: 'https://iothubs.azure.net/.default', statusCode: 200 }]);
  });

  it('signs in as the user-assigned identity IOTHUB_SERVICE_CONNECTION__clientId names, as the host would', async () => {
    const clientId = '6f1c2a4e-0b7d-4c1e-9a35-2d8f0e7b9c41';
    const identity = await installManagedIdentityEndpoint();
    opened.push(identity);
    // The hub accepts this identity's tokens only: the system-assigned identity's would be refused.
    const standIn = await hub({ bearerTokens: [identityToken({ clientId })] });
    const env = {
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      IOTHUB_SERVICE_CONNECTION__hostName: standIn.hostName,
      IOTHUB_SERVICE_CONNECTION__credential: 'managedidentity',
      IOTHUB_SERVICE_CONNECTION__clientId: clientId,
    };
    const app = buildAppConfig(env, {});
    const store = new MemoryBlobStore();
    const clock = new ManualClock('2026-11-22T10:00:00Z');
    const quarantine = createQuarantine(store, 'quarantine', clock);
    const sender: EmailSender = { send: async (m) => ({ status: 'sent', operationId: m.operationId }), lookup: async () => null };
    const parsed = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] }, notifyDevice: true });
    if ('errors' in parsed) throw new Error(parsed.errors.join());
    const { notifier } = createAlertServices(
      { env, config: app, clock, store, quarantine, twins: undefined, admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() } },
      { alerts: parsed.value, sender },
    );
    opened.push(notifier as IotHubDeviceNotifier);

    expect(await notifier?.notify(notification())).toEqual({ status: 'sent' });
    expect(identity.requests).toEqual([{ clientId, resourceId: undefined, resource: 'https://iothubs.azure.net' }]);
    expect(standIn.cbs).toEqual([{ audience: 'https://iothubs.azure.net/.default', statusCode: 200 }]);
  });

  it('notifies the alerting device from the criticalAlerts handler, and records it in the ledger', async () => {
    const standIn = await hub({ devices: ['Contoso-Test-Device'] });
    const store = new MemoryBlobStore();
    const clock = new ManualClock('2026-11-22T10:00:00Z');
    const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', IOTHUB_SERVICE_CONNECTION: standIn.connectionString() };
    const app = buildAppConfig(env, {});
    const quarantine = createQuarantine(store, 'quarantine', clock);
    const sent: EmailMessage[] = [];
    const sender: EmailSender = { send: async (m) => (sent.push(m), { status: 'sent', operationId: m.operationId }), lookup: async () => null };
    const parsed = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] }, notifyDevice: true });
    if ('errors' in parsed) throw new Error(parsed.errors.join());
    const alerts = createAlertServices(
      { env, config: app, clock, store, quarantine, twins: undefined, admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() } },
      { alerts: parsed.value, sender, notifier: notifierFor({ connectionString: standIn.connectionString() }) },
    );
    const message = decodeServiceBusMessage(Buffer.from('{"temperature":97.5}'), {
      messageId: 'msg-1',
      enqueuedTimeUtc: '2026-11-22T09:59:30.000',
      applicationProperties: { 'iothub-connection-device-id': 'Contoso-Test-Device', level: 'critical' },
    });
    const key = messageIdentity(message);
    expect(await alerts.handler.handle(message)).toMatchObject({ outcome: 'sent', deviceNotification: 'sent' });
    expect(await alerts.handler.handle(message)).toMatchObject({ outcome: 'duplicate' });
    expect(standIn.accepted()).toEqual([
      expect.objectContaining({
        deviceId: 'Contoso-Test-Device',
        messageId: emailOperationId(`device-notification/${key}`),
        ack: 'full',
        properties: { alertId: key, severity: 'critical' },
      }),
    ]);
    expect(JSON.parse(standIn.accepted()[0]!.body.toString('utf8'))).toMatchObject({ alertId: key, summary: sent[0]?.subject });
    const record = JSON.parse((await store.get('alerts', ledgerBlobName(key)))!.body.toString('utf8')) as { deviceNotification: string };
    expect(record.deviceNotification).toBe('sent');
  });
});
