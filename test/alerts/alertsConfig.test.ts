import { describe, expect, it } from 'vitest';
import {
  ALERT_DEFAULTS,
  defaultAlertsConfig,
  deploymentProblems,
  parseAlertSettings,
  parseAlertsConfig,
  type AlertsConfig,
} from '../../src/lib/alerts/alertsConfig.js';
import { DEFAULT_TEMPLATES } from '../../src/lib/alerts/templates.js';

const minimal = { from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] } };

function parsed(raw: unknown): AlertsConfig {
  const result = parseAlertsConfig(raw, 'alerts');
  if ('errors' in result) throw new Error(result.errors.join('\n'));
  return result.value;
}

function errorsOf(raw: unknown): string[] {
  const result = parseAlertsConfig(raw, 'alerts');
  if ('value' in result) throw new Error('expected errors');
  return result.errors;
}

describe('parseAlertsConfig', () => {
  it('gives the issue\'s defaults: level = critical, 15-minute quiet period, 25 a minute and 90 an hour, ACS', () => {
    const config = parsed(minimal);
    expect(config.configured).toBe(true);
    expect(config.when).toEqual([{ property: 'level', values: ['critical'] }]);
    expect(config.severity).toEqual({ default: 'critical', rules: [] });
    expect(config.quietPeriodMinutes).toBe(15);
    expect(config.budget).toEqual({ perMinute: 25, perHour: 90 });
    expect(config.sender).toBe('acs');
    expect(config.notifyDevice).toBe(false);
    expect(config.leaseSeconds).toBe(ALERT_DEFAULTS.leaseSeconds);
    expect(config.templates.subject.source).toBe(DEFAULT_TEMPLATES.subject);
  });

  it('reads a full section: rules, groups, severities, templates', () => {
    const config = parsed({
      when: { level: ['critical', 'emergency'], customerID: '6ce345b8' },
      severity: { default: 'high', rules: [{ when: { alarm: 'fire' }, severity: 'emergency' }] },
      recipients: {
        default: ['ops@contoso.example'],
        bySeverity: { emergency: ['oncall@contoso.example'] },
        byGroup: { property: 'DeviceLocation', groups: { 'Building 43': ['b43@contoso.example'] } },
      },
      from: 'alerts@contoso.example',
      templates: { subject: '{{ deviceId }} at {{enqueuedTime}}' },
      quietPeriodMinutes: 5,
      budget: { perMinute: 4, perHour: 9 },
      sender: 'outbox',
      outboxDirectory: 'out',
      notifyDevice: true,
    });
    expect(config.when).toEqual([
      { property: 'level', values: ['critical', 'emergency'] },
      { property: 'customerID', values: ['6ce345b8'] },
    ]);
    expect(config.severity.rules).toEqual([{ when: [{ property: 'alarm', values: ['fire'] }], severity: 'emergency' }]);
    expect(config.recipients.byGroup).toEqual({ property: 'DeviceLocation', groups: { 'Building 43': ['b43@contoso.example'] } });
    expect(config.templates.subject.parts).toEqual([
      { kind: 'slot', name: 'deviceId' },
      { kind: 'text', text: ' at ' },
      { kind: 'slot', name: 'enqueuedTime' },
    ]);
    expect(config).toMatchObject({ quietPeriodMinutes: 5, budget: { perMinute: 4, perHour: 9 }, sender: 'outbox', notifyDevice: true });
  });

  it('reports every problem in one pass, each with its path', () => {
    const errors = errorsOf({
      recipients: { default: ['ops@contoso.example', 'Ops <ops@contoso.example>'], bySeverity: { urgent: ['x@y.example'] } },
      from: 'not an address',
      templates: { html: '<p>{{deviceID}}</p>', digestSubject: '{{count}} {{level}}' },
      budget: { perMinute: 100, perHour: 90 },
      quietPeriodMinutes: -1,
      sender: 'smtp',
      colour: 'red',
    });
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^alerts\.recipients\.default\[1\]: "Ops <ops@contoso\.example>" is not a plain e-mail address/),
        expect.stringMatching(/^alerts\.recipients\.bySeverity\.urgent: no rule gives this severity/),
        expect.stringMatching(/^alerts\.from: /),
        expect.stringMatching(/^alerts\.templates\.html: unknown placeholder \{\{deviceID\}\}/),
        expect.stringMatching(/^alerts\.templates\.digestSubject: unknown placeholder \{\{level\}\}/),
        expect.stringMatching(/^alerts\.budget: perMinute \(100\) is more than perHour \(90\)/),
        expect.stringMatching(/^alerts\.quietPeriodMinutes: /),
        expect.stringMatching(/^alerts\.sender: /),
        expect.stringMatching(/^alerts\.colour: unknown setting/),
      ]),
    );
    expect(errors).toHaveLength(9);
  });

  it('requires from and default recipients once the section exists, so every alert reaches someone', () => {
    expect(errorsOf({})).toEqual([
      expect.stringMatching(/^alerts\.recipients\.default: expected a non-empty array/),
      expect.stringMatching(/^alerts\.from: /),
    ]);
  });

  it('accepts a missing section as "not configured", which deploymentProblems reports', () => {
    const config = defaultAlertsConfig();
    expect(config.configured).toBe(false);
    const settings = parseAlertSettings({});
    if ('errors' in settings) throw new Error(settings.errors.join());
    expect(deploymentProblems(config, settings.value, { iotHubService: false })).toEqual([
      expect.stringMatching(/no "alerts" section/),
      expect.stringMatching(/neither ACS_CONNECTION_STRING nor ACS_ENDPOINT/),
    ]);
    const notifying = parsed({ ...minimal, notifyDevice: true });
    expect(deploymentProblems(notifying, settings.value, { iotHubService: false, senderGiven: true })).toEqual([
      expect.stringMatching(/^alerts\.notifyDevice is true but IOTHUB_SERVICE_CONNECTION is not set/),
    ]);
    expect(deploymentProblems(notifying, settings.value, { iotHubService: true, senderGiven: true })).toEqual([]);
  });
});

describe('parseAlertSettings', () => {
  it('defaults the container and the dashboard, reads the queue, ACS and the sender override', () => {
    const settings = parseAlertSettings({
      CRITICAL_QUEUE_NAME: 'critical',
      ACS_CONNECTION_STRING: 'endpoint=https://contoso.communication.azure.com/;accesskey=a2V5',
      ALERT_SENDER: 'outbox',
    });
    expect(settings).toEqual({
      value: {
        container: 'alerts',
        queueName: 'critical',
        dashboardUrl: 'http://localhost:7071/api/dashboard',
        acs: { kind: 'connectionString', value: 'endpoint=https://contoso.communication.azure.com/;accesskey=a2V5' },
        sender: 'outbox',
      },
    });
    expect(parseAlertSettings({ ACS_ENDPOINT: 'https://contoso.communication.azure.com' })).toMatchObject({
      value: { acs: { kind: 'endpoint', endpoint: 'https://contoso.communication.azure.com' } },
    });
  });

  it('names the settings that are wrong and never echoes a secret', () => {
    const result = parseAlertSettings({
      ALERTS_CONTAINER: 'Alerts_1',
      DASHBOARD_URL: 'javascript:alert(1)',
      ACS_CONNECTION_STRING: 'accesskey=c2VjcmV0',
      ACS_ENDPOINT: 'https://contoso.communication.azure.com',
      ALERT_SENDER: 'smtp',
    });
    if ('value' in result) throw new Error('expected errors');
    expect(result.errors.map((e) => e.split(':')[0])).toEqual([
      'ALERTS_CONTAINER',
      'DASHBOARD_URL',
      'ACS_CONNECTION_STRING',
      'ACS_CONNECTION_STRING and ACS_ENDPOINT are both set',
      'ALERT_SENDER',
    ]);
    expect(result.errors.join('\n')).not.toContain('c2VjcmV0');
  });

  it('refuses an ACS connection string whose endpoint is not a URL, which would fail every send', () => {
    const result = parseAlertSettings({ ACS_CONNECTION_STRING: 'endpoint=notaurl;accesskey=c2VjcmV0' });
    expect(result).toEqual({ errors: [expect.stringMatching(/^ACS_CONNECTION_STRING: expected endpoint=https:/)] });
    expect(JSON.stringify(result)).not.toContain('c2VjcmV0');
  });
});
