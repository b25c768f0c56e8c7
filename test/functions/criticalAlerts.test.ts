/**
 * The registered criticalAlerts and alertDigests functions, called as the host calls them: a real InvocationContext
 * carrying the Service Bus trigger metadata of a message IoT Hub routed to the critical queue, the body as a Buffer
 * (dataType binary). Only the registration is intercepted, to get hold of the options.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvocationContext, type ServiceBusQueueFunctionOptions, type Timer, type TimerFunctionOptions } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseAlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices, type AlertServices } from '../../src/lib/alerts/alertServices.js';
import type { EmailMessage, EmailSender } from '../../src/lib/alerts/email.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import type { alertDigestsHandler as AlertDigestsHandlerFactory } from '../../src/functions/alertDigests.js';
import type { criticalAlertsHandler as CriticalAlertsHandlerFactory } from '../../src/functions/criticalAlerts.js';
import { serviceBusMessage, serviceBusTriggerMetadata } from '../fixtures/triggers/serviceBusIotHubMessage.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';

const saved = { ...process.env };
let root: string;
let registrations: Registration[];
let criticalAlertsHandler: typeof CriticalAlertsHandlerFactory;
let alertDigestsHandler: typeof AlertDigestsHandlerFactory;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'critical-alerts-fn-'));
  // A routing.config.json without an alerts section, whatever the repository's says.
  await writeFile(join(root, 'routing.config.json'), '{}');
  process.env['AzureWebJobsStorage'] = 'UseDevelopmentStorage=true';
  process.env['ROUTING_CONFIG_PATH'] = join(root, 'routing.config.json');
  registrations = (await captureRegistrations()).registrations;
  ({ criticalAlertsHandler } = await import('../../src/functions/criticalAlerts.js'));
  ({ alertDigestsHandler } = await import('../../src/functions/alertDigests.js'));
});

afterAll(async () => {
  process.env = saved;
  await rm(root, { recursive: true, force: true });
});

const clock = new ManualClock('2024-03-01T10:16:00Z');

function alerts(sent: EmailMessage[], result: 'sent' | 'failed' = 'sent'): AlertServices {
  const store = new MemoryBlobStore();
  const env = { AzureWebJobsStorage: 'UseDevelopmentStorage=true', CRITICAL_QUEUE_NAME: 'critical-alerts' };
  const app = buildAppConfig(env, {});
  const quarantine = createQuarantine(store, 'quarantine', clock);
  const parsed = parseAlertsConfig({
    from: 'alerts@contoso.example',
    recipients: { default: ['ops@contoso.example'], byGroup: { property: 'DeviceLocation', groups: { 'Building 43': ['b43@contoso.example'] } } },
  });
  if ('errors' in parsed) throw new Error(parsed.errors.join());
  const sender: EmailSender = {
    send: async (m) => {
      sent.push(m);
      return result === 'sent' ? { status: 'sent', operationId: m.operationId } : { status: 'failed', operationId: m.operationId, error: 'Denied', httpStatus: 403 };
    },
    lookup: async () => null,
  };
  return createAlertServices(
    { env, config: app, clock, store, quarantine, twins: undefined, admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() } },
    { alerts: parsed.value, sender },
  );
}

function context(metadata: Record<string, unknown> = serviceBusTriggerMetadata) {
  const ctx = new InvocationContext({ functionName: 'criticalAlerts', triggerMetadata: metadata });
  const logged: string[] = [];
  const warned: string[] = [];
  vi.spyOn(ctx, 'log').mockImplementation((...args: unknown[]) => void logged.push(args.join(' ')));
  vi.spyOn(ctx, 'warn').mockImplementation((...args: unknown[]) => void warned.push(args.join(' ')));
  return { ctx, logged, warned };
}

describe('criticalAlerts function', () => {
  it('registers a Service Bus queue trigger on %CRITICAL_QUEUE_NAME% that receives the body as bytes', () => {
    const options = registration(registrations, 'criticalAlerts').options as unknown as ServiceBusQueueFunctionOptions & { dataType?: string };
    expect(options).toMatchObject({ connection: 'SERVICEBUS_CONNECTION', queueName: '%CRITICAL_QUEUE_NAME%', dataType: 'binary' });
    expect(options.cardinality).toBeUndefined();
  });

  it('decodes the host\'s payload (body bytes, application properties) and e-mails the alert once', async () => {
    const sent: EmailMessage[] = [];
    const services = alerts(sent);
    const handle = criticalAlertsHandler(async () => services);
    const first = context();
    expect(await handle(serviceBusMessage, first.ctx)).toMatchObject({ outcome: 'sent', deviceId: 'Contoso-Test-Device' });
    expect(first.logged).toEqual([expect.stringMatching(/^criticalAlerts: sent /)]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ to: ['b43@contoso.example'], subject: '[critical] Contoso-Test-Device: critical alert at 2024-03-01T10:15:31.204Z' });
    expect(sent[0]?.text).toContain('humidity: 77.2');
    expect(sent[0]?.text).toContain('iotHubName: ContosoHub');

    const redelivery = context({ ...serviceBusTriggerMetadata, deliveryCount: 2, lockToken: '0a1b2c3d-0000-4000-8000-000000000000' });
    expect(await handle(Buffer.from(serviceBusMessage), redelivery.ctx)).toMatchObject({ outcome: 'duplicate' });
    expect(sent).toHaveLength(1);
  });

  it('completes a message whose e-mail is rejected (a warning, not a failed invocation)', async () => {
    const handle = criticalAlertsHandler(async () => alerts([], 'failed'));
    const { ctx, warned } = context();
    expect(await handle(serviceBusMessage, ctx)).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    expect(warned).toEqual([expect.stringContaining('HTTP 403')]);
  });

  it('fails the invocation with every configuration problem when the alert section is missing', async () => {
    const options = registration(registrations, 'criticalAlerts').options as unknown as ServiceBusQueueFunctionOptions;
    const { ctx } = context();
    await expect(options.handler(serviceBusMessage, ctx)).rejects.toThrow(/no "alerts" section[\s\S]*neither ACS_CONNECTION_STRING nor ACS_ENDPOINT/);
  });
});

describe('alertDigests function', () => {
  it('runs every minute and sends what is due', async () => {
    const options = registration(registrations, 'alertDigests').options as unknown as TimerFunctionOptions;
    expect(options.schedule).toBe('0 * * * * *');

    const sent: EmailMessage[] = [];
    const services = alerts(sent);
    const handle = criticalAlertsHandler(async () => services);
    await handle(serviceBusMessage, context().ctx);
    await handle(serviceBusMessage, context({ ...serviceBusTriggerMetadata, messageId: 'second-message' }).ctx);
    clock.advance(15 * 60_000);
    const ctx = new InvocationContext({ functionName: 'alertDigests' });
    const logged: string[] = [];
    vi.spyOn(ctx, 'log').mockImplementation((...args: unknown[]) => void logged.push(args.join(' ')));
    const timer: Timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
    expect(await alertDigestsHandler(async () => services)(timer, ctx)).toMatchObject({ due: 1, sent: 1 });
    expect(logged).toEqual([expect.stringMatching(/^alertDigests: \{"due":1,"sent":1/)]);
    expect(sent.map((m) => m.subject)).toEqual([
      '[critical] Contoso-Test-Device: critical alert at 2024-03-01T10:15:31.204Z',
      '[critical] Contoso-Test-Device: 1 alert between 2024-03-01T10:15:31.204Z and 2024-03-01T10:15:31.204Z',
    ]);
  });
});
