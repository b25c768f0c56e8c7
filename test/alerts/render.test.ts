import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alertFactsOf, recipientsFor, readingsOf, FACT_LIMITS } from '../../src/lib/alerts/alertPolicy.js';
import { parseAlertsConfig, type AlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { checkEmailMessage, emailOperationId, EMAIL_LIMITS } from '../../src/lib/alerts/email.js';
import { dashboardLink, MAX_SUBJECT_CHARS, renderAlertEmail, renderDigestEmail } from '../../src/lib/alerts/render.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';

function config(extra: Record<string, unknown> = {}): AlertsConfig {
  const result = parseAlertsConfig({
    from: 'alerts@contoso.example',
    recipients: {
      default: ['ops@contoso.example'],
      bySeverity: { emergency: ['oncall@contoso.example'] },
      byGroup: { property: 'DeviceLocation', groups: { 'Building 43': ['b43@contoso.example', 'ops@contoso.example'] } },
    },
    severity: { default: 'critical', rules: [{ when: { alarm: 'fire' }, severity: 'emergency' }] },
    ...extra,
  });
  if ('errors' in result) throw new Error(result.errors.join('\n'));
  return result.value;
}

/** A message as the Functions host hands it over (first letters of property keys lower-cased). */
function message(body: unknown, properties: Record<string, unknown> = {}, deviceId = 'Contoso-Test-Device'): RoutedMessage {
  return decodeServiceBusMessage(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), {
    messageId: 'm-1',
    contentType: 'application/json',
    enqueuedTimeUtc: '2026-11-22T09:59:00.123',
    applicationProperties: { 'iothub-connection-device-id': deviceId, level: 'critical', deviceLocation: 'Building 43', ...properties },
  });
}

const context = (c = config()) => ({ config: c, dashboardUrl: 'https://dash.contoso.example/app?tab=devices' });

describe('alert policy', () => {
  it('matches property names ignoring case (the host sends DeviceLocation as deviceLocation) and values exactly', () => {
    const c = config();
    const facts = alertFactsOf(message({ t: 1 }), c);
    expect(facts.group).toBe('Building 43');
    expect(facts.recipients).toEqual(['b43@contoso.example', 'ops@contoso.example']);
    expect(alertFactsOf(message({ t: 1 }, { deviceLocation: 'building 43' }), c).recipients).toEqual(['ops@contoso.example']);
  });

  it('adds severity recipients to group recipients, and falls back to the default list', () => {
    const c = config();
    expect(recipientsFor('emergency', 'Building 43', c)).toEqual(['oncall@contoso.example', 'b43@contoso.example', 'ops@contoso.example']);
    expect(recipientsFor('critical', 'Lyon', c)).toEqual(['ops@contoso.example']);
    expect(alertFactsOf(message({}, { alarm: 'fire' }), c).severity).toBe('emergency');
  });

  it('reads the body as bounded readings: primitives, nested objects flattened, long values cut', () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`r${i}`, i]));
    // Cut at the limit, and the cut said: the reading that raised the alert may be one of those left out.
    const bounded = readingsOf(message(many));
    expect(bounded).toHaveLength(FACT_LIMITS.readings + 1);
    expect(bounded.at(-1)).toEqual({ name: '\u2026', value: '20 more readings not shown' });
    expect(readingsOf(message({ ...many, nested: { a: 1, b: 2 } })).at(-1)).toEqual({ name: '\u2026', value: '22 more readings not shown' });
    expect(readingsOf(message({ temperature: 30.1, gps: { lat: 45.7, lon: 4.8 }, tags: ['a'], note: 'x'.repeat(500) }))).toEqual([
      { name: 'temperature', value: 30.1 },
      { name: 'gps.lat', value: 45.7 },
      { name: 'gps.lon', value: 4.8 },
      { name: 'tags', value: '["a"]' },
      { name: 'note', value: `${'x'.repeat(FACT_LIMITS.valueChars - 1)}…` },
    ]);
    expect(readingsOf(message('plain text, not JSON'))).toEqual([{ name: 'body', value: 'plain text, not JSON' }]);
  });
});

describe('rendering', () => {
  it('fills every placeholder and links the dashboard for the device', () => {
    const email = renderAlertEmail(alertFactsOf(message({ temperature: 30.1 }), config()), context());
    expect(email.operationId).toBe(emailOperationId(alertFactsOf(message({ temperature: 30.1 }), config()).alertKey));
    expect(email.subject).toBe('[critical] Contoso-Test-Device: critical alert at 2026-11-22T09:59:00.123Z');
    expect(email.text).toContain('temperature: 30.1');
    expect(email.text).toContain('deviceLocation: Building 43');
    // The link opens the half hour either side of the alert, however much later it is followed.
    expect(email.text).toContain(
      'Dashboard: https://dash.contoso.example/app?tab=devices&deviceId=Contoso-Test-Device&from=2026-11-22T09%3A29%3A00.123Z&to=2026-11-22T10%3A29%3A00.123Z',
    );
    expect(email.html).toContain('<tr><th align="left">temperature</th><td>30.1</td></tr>');
    expect(email.html).toContain('href="https://dash.contoso.example/app?tab=devices&amp;deviceId=Contoso-Test-Device&amp;from=2026-11-22T09%3A29%3A00.123Z&amp;to=2026-11-22T10%3A29%3A00.123Z"');
    expect(email.to).toEqual(['b43@contoso.example', 'ops@contoso.example']);
    expect(checkEmailMessage(email).ok).toBe(true);
  });

  it('is deterministic: the same message renders byte-identically (a retried send is the same ACS operation)', () => {
    const a = renderAlertEmail(alertFactsOf(message({ temperature: 30.1 }), config()), context());
    const b = renderAlertEmail(alertFactsOf(message({ temperature: 30.1 }), config()), context());
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('escapes device data in HTML and strips CR/LF from the subject', () => {
    const hostile = message(
      { note: '<script>alert(1)</script>', 'x"><img src=x onerror=alert(1)>': 1 },
      { deviceLocation: 'B43\r\nBcc: attacker@evil.example' },
      'dev<b>&\r\nBcc: x@evil.example',
    );
    const email = renderAlertEmail(alertFactsOf(hostile, config()), context());
    expect(email.html).not.toContain('<script>');
    expect(email.html).not.toContain('<img');
    expect(email.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(email.html).toContain('dev&lt;b&gt;&amp;');
    expect(email.subject).not.toMatch(/[\r\n]/);
    expect(email.subject).toContain('dev<b>& Bcc: x@evil.example');
    expect(email.text.split('\n')).toContain('deviceLocation: B43 Bcc: attacker@evil.example');
  });

  it('never lets device data open HTML, add a text line or break a header, whatever it is (property)', () => {
    const c = config();
    // Control characters (CR, LF, NEL, the Unicode separators), markup characters and any ASCII.
    const unit = fc.oneof(
      fc.constantFrom('\r', '\n', '\u0085', '\u2028', '\u2029', '<', '>', '&', '"', "'"),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }),
    );
    const hostile = (maxLength: number, minLength = 0) => fc.string({ unit, minLength, maxLength });
    fc.assert(
      fc.property(hostile(300), hostile(300), hostile(100, 1), (value, key, deviceId) => {
        const email = renderAlertEmail(alertFactsOf(message({ [key]: value }, { note: value }, deviceId), c), context(c));
        // The default HTML template's own tags are the only ones: device text never adds a '<'.
        const tags = email.html.match(/</g)?.length ?? 0;
        const withoutDeviceData = renderAlertEmail(alertFactsOf(message({ k: 'v' }, { note: 'v' }, 'd'), c), context(c));
        expect(tags).toBe(withoutDeviceData.html.match(/</g)?.length ?? 0);
        // Nor a line to the text part: each value stays on its own `name: value` line.
        expect(email.text.split('\n')).toHaveLength(withoutDeviceData.text.split('\n').length);
        expect(email.subject).not.toMatch(/[\r\n\u2028\u2029\u0085]/);
        expect([...email.subject].length).toBeLessThanOrEqual(MAX_SUBJECT_CHARS);
        expect(Buffer.byteLength(email.html)).toBeLessThan(EMAIL_LIMITS.bodyBytes);
      }),
      { numRuns: 200 },
    );
  });

  it('renders a digest with the count, the time span and the reading ranges', () => {
    const email = renderDigestEmail(
      {
        digestKey: 'digest-abc',
        deviceId: 'dev-1',
        count: 99,
        firstTime: '2026-11-22T10:00:01.000Z',
        lastTime: '2026-11-22T10:00:59.000Z',
        readings: [
          { name: 'temperature', min: 20.5, max: 97.5 },
          { name: 'pointInfo', latest: 'overheating' },
        ],
        properties: [['level', 'critical']],
        severities: ['critical', 'emergency'],
        group: null,
        recipients: ['ops@contoso.example'],
      },
      context(),
    );
    expect(email.operationId).toBe(emailOperationId('digest-abc'));
    expect(email.subject).toBe('[critical, emergency] dev-1: 99 alerts between 2026-11-22T10:00:01.000Z and 2026-11-22T10:00:59.000Z');
    expect(email.text).toContain('temperature: 20.5 .. 97.5');
    expect(email.text).toContain('pointInfo: overheating');
    // Why they were held: a quiet period is one reason of three, not the only one.
    expect(email.text).toContain('the device was in its quiet period after an alert e-mail, the send budget was\nspent, or the e-mail service asked to wait.');
    // The link spans the digest's alerts, half an hour either side.
    expect(email.text).toContain('deviceId=dev-1&from=2026-11-22T09%3A30%3A01.000Z&to=2026-11-22T10%3A30%3A59.000Z');
  });

  it('says how many properties it left out, and marks an enrichment IoT Hub could not resolve', () => {
    const properties = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`p${String(i).padStart(2, '0')}`, 'v']));
    const facts = alertFactsOf(message({ temperature: 30.1 }, { ...properties, deviceLocation: '$twin.tags.location' }), config());
    expect(facts.properties.at(-1)).toEqual(['\u2026', '12 more properties not shown']);
    expect(facts.properties).toContainEqual(['deviceLocation', '$twin.tags.location (not resolved: the device twin has no such value)']);
    const email = renderAlertEmail(facts, context());
    expect(email.text).toContain('\u2026: 12 more properties not shown');
    // A module's message is enriched from its module twin, which inherits nothing from the device twin.
    const fromModule = alertFactsOf({ ...message({ temperature: 30.1 }, { deviceLocation: '$twin.tags.location' }), moduleId: 'filter' }, config());
    expect(fromModule.properties).toContainEqual(['deviceLocation', '$twin.tags.location (not resolved: the module twin has no such value)']);
  });

  it('says "(none)" in the text part where a list is empty, as the HTML part does', () => {
    const email = renderAlertEmail(alertFactsOf(message({}), config()), context());
    expect(email.text).toContain('Readings\n(none)\n');
  });

  it('adds the device to the dashboard URL without losing its own query', () => {
    expect(dashboardLink('https://d.example/x?a=1', 'dev 1/2')).toBe('https://d.example/x?a=1&deviceId=dev+1%2F2');
  });
});
