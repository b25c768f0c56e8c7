import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Registration } from '../../src/local/registrations.js';
import { displayValue, installEnvironment, localSettings, settingsReferencedBy } from '../../src/local/settings.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

let root: string;
beforeAll(async () => {
  root = await tempDir('local-settings-');
  const values = (v: Record<string, string>) => JSON.stringify({ IsEncrypted: false, Values: v });
  await writeFile(
    path.join(root, 'local.settings.sample.json'),
    values({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', CRITICAL_QUEUE_NAME: 'from-sample', DASHBOARD_URL: 'http://localhost:7071/api/dashboard', ACS_CONNECTION_STRING: '' }),
  );
  await writeFile(path.join(root, 'local.settings.json'), values({ CRITICAL_QUEUE_NAME: 'from-local', ACS_CONNECTION_STRING: 'endpoint=https://x.communication.azure.com/;accesskey=k' }));
});

const input = {
  storageConnectionString: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;',
  iotHubName: 'Contoso Hub',
  archiveContainer: null,
  dashboardUrl: 'http://localhost:8080/api/dashboard',
};

describe('local settings', () => {
  it('layer defaults < sample < local.settings.json < environment, and always use the local Azurite', async () => {
    const settings = await localSettings({
      ...input,
      root,
      processEnv: { CRITICAL_QUEUE_NAME: 'from-env', AzureWebJobsStorage__accountName: 'real', UNRELATED: 'x' },
      registrationsSettings: ['MY_SETTING', 'SOME_CONNECTION'],
    });
    expect(settings.env['CRITICAL_QUEUE_NAME']).toBe('from-env');
    expect(settings.origins.get('CRITICAL_QUEUE_NAME')).toBe('environment');
    expect(settings.env['AzureWebJobsStorage']).toBe(input.storageConnectionString);
    expect(settings.env['AzureWebJobsStorage__accountName']).toBeUndefined();
    expect(settings.env['UNRELATED']).toBeUndefined();
    expect(settings.env['IOTHUB_EVENTS_NAME']).toBe('iothub-ehub-contoso-hub-local');
    expect(settings.env['MY_SETTING']).toBe('my-setting');
    expect(settings.env['SOME_CONNECTION']).toBeUndefined();
    // ACS configured in local.settings.json: e-mails go there, not to the outbox.
    expect(settings.alertSender).toBe('acs');
    expect(settings.env['DASHBOARD_URL']).toBe('http://localhost:8080/api/dashboard');
  });

  it('poll for archive blobs even when the shared settings choose Event Grid, which does not deliver locally', async () => {
    const settings = await localSettings({ ...input, root, processEnv: { ARCHIVE_TRIGGER_SOURCE: 'EventGrid' }, registrationsSettings: [] });
    expect(settings.env['ARCHIVE_TRIGGER_SOURCE']).toBe('LogsAndContainerScan');
    expect(settings.origins.get('ARCHIVE_TRIGGER_SOURCE')).toBe('local runtime (no Event Grid locally)');
  });

  it('read only the defaults and the sample when asked (tests), sending e-mail to the outbox', async () => {
    const settings = await localSettings({ ...input, root, processEnv: { CRITICAL_QUEUE_NAME: 'from-env' }, registrationsSettings: [], sampleOnly: true });
    expect(settings.env['CRITICAL_QUEUE_NAME']).toBe('from-sample');
    expect(settings.alertSender).toBe('outbox');
    expect(settings.env['ALERT_SENDER']).toBe('outbox');
  });

  it("send through ACS when it is configured, whatever the sample's ALERT_SENDER=outbox says, unless outbox is chosen", async () => {
    const sampleRoot = await tempDir('local-settings-sender-');
    const values = (v: Record<string, string>) => JSON.stringify({ IsEncrypted: false, Values: v });
    await writeFile(path.join(sampleRoot, 'local.settings.sample.json'), values({ ALERT_SENDER: 'outbox', ACS_CONNECTION_STRING: '' }));
    const acs = 'endpoint=https://x.communication.azure.com/;accesskey=k';
    const configured = await localSettings({ ...input, root: sampleRoot, processEnv: { ACS_CONNECTION_STRING: acs }, registrationsSettings: [] });
    expect(configured.alertSender).toBe('acs');
    expect(configured.env['ALERT_SENDER']).toBe('acs');
    const chosen = await localSettings({ ...input, root: sampleRoot, processEnv: { ACS_CONNECTION_STRING: acs, ALERT_SENDER: 'outbox' }, registrationsSettings: [] });
    expect(chosen.alertSender).toBe('outbox');
    const none = await localSettings({ ...input, root: sampleRoot, processEnv: {}, registrationsSettings: [] });
    expect(none.alertSender).toBe('outbox');
  });

  it('find the settings registrations name in %...% and connection', () => {
    const registration = (options: Record<string, unknown>): Registration => ({ kind: 'x', name: 'x', file: 'x.js', options: { handler: () => undefined, ...options } });
    expect(settingsReferencedBy([registration({ connection: 'BUS', queueName: '%QUEUE%' }), registration({ path: '%A%/%B%/{name}' })])).toEqual(['A', 'B', 'BUS', 'QUEUE']);
  });

  it('never print secrets', () => {
    expect(displayValue('ACS_CONNECTION_STRING', 'endpoint=...;accesskey=k')).toBe('(set, not shown)');
    expect(displayValue('IOTHUB_SERVICE_CONNECTION', 'HostName=h;SharedAccessKey=k')).toBe('(set, not shown)');
    expect(displayValue('CRITICAL_QUEUE_NAME', 'critical-alerts')).toBe('critical-alerts');
    expect(displayValue('X', undefined)).toBe('(not set)');
  });

  it('install into process.env and put back what was there', () => {
    process.env['LOCAL_SETTINGS_TEST_A'] = 'before';
    const restore = installEnvironment({ LOCAL_SETTINGS_TEST_A: 'during', LOCAL_SETTINGS_TEST_B: 'new' });
    expect([process.env['LOCAL_SETTINGS_TEST_A'], process.env['LOCAL_SETTINGS_TEST_B']]).toEqual(['during', 'new']);
    restore();
    expect([process.env['LOCAL_SETTINGS_TEST_A'], process.env['LOCAL_SETTINGS_TEST_B']]).toEqual(['before', undefined]);
    delete process.env['LOCAL_SETTINGS_TEST_A'];
  });
});
