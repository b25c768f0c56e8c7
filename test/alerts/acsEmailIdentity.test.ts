/**
 * The ACS e-mail sender on an identity-based connection, end to end: the app's own composition (createAlertServices)
 * builds the real `EmailClient` from `ACS_ENDPOINT` and the credential `ACS_ENDPOINT__credential` / `__clientId`
 * choose; the real `ManagedIdentityCredential` fetches its token from a loopback managed identity endpoint; the
 * client presents it, over TLS with a test certificate trusted for the stand-in's port only, to the loopback ACS
 * stand-in, which accepts only the tokens the test names.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAlertsConfig } from '../../src/lib/alerts/alertsConfig.js';
import { createAlertServices, type AlertServices } from '../../src/lib/alerts/alertServices.js';
import { emailOperationId } from '../../src/lib/alerts/email.js';
import { buildAppConfig } from '../../src/lib/config.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { ManualClock } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import { acs, startAcsEmailStandIn, type AcsEmailStandIn } from '../support/acsEmailStandIn.js';
import { createLoopbackCertificate, hasOpenssl, type TestCertificate } from '../support/loopbackTls.js';
import { identityToken, installManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../support/managedIdentityEndpoint.js';

const CLIENT_ID = '3b9e7c1d-5a2f-4e8b-9c6d-0f1a2b3c4d5e';
const OTHER_CLIENT_ID = 'a7d4f2e1-8c3b-4d6a-b5e9-1f0c2d3e4a5b';
/** The resource the SDK asks a token for: its scope `https://communication.azure.com//.default` less `/.default`. */
const ACS_RESOURCE = 'https://communication.azure.com/';

let certificate: TestCertificate;
// MSAL picks the managed identity source once per process and keeps its address: one endpoint for the whole file.
let identity: ManagedIdentityEndpoint;
const opened: AcsEmailStandIn[] = [];

beforeAll(async () => {
  if (!hasOpenssl()) return;
  certificate = createLoopbackCertificate();
  identity = await installManagedIdentityEndpoint();
});

afterAll(async () => {
  await identity?.close();
});

afterEach(async () => {
  for (const standIn of opened.splice(0)) await standIn.stop();
});

async function acsAccepting(tokens: string[]): Promise<AcsEmailStandIn> {
  const standIn = await startAcsEmailStandIn({ certificate, bearerTokens: tokens });
  opened.push(standIn);
  return standIn;
}

/** The alert services as the Functions host builds them from app settings: nothing handed in but the configuration. */
function alertServicesFrom(env: Record<string, string>): AlertServices {
  const app = buildAppConfig(env, {});
  const store = new MemoryBlobStore();
  const clock = new ManualClock('2026-11-22T10:00:00Z');
  const quarantine = createQuarantine(store, 'quarantine', clock);
  const parsed = parseAlertsConfig({ from: 'alerts@contoso.example', recipients: { default: ['ops@contoso.example'] } });
  if ('errors' in parsed) throw new Error(parsed.errors.join('\n'));
  return createAlertServices(
    { env, config: app, clock, store, quarantine, twins: undefined, admitDeps: { checks: app.routing.checks, quarantine, twins: undefined, now: () => clock.now() } },
    { alerts: parsed.value },
  );
}

function identitySettings(standIn: AcsEmailStandIn): Record<string, string> {
  return {
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    ACS_ENDPOINT: standIn.endpoint,
    ACS_ENDPOINT__credential: 'managedidentity',
    ACS_ENDPOINT__clientId: CLIENT_ID,
  };
}

function criticalMessage(): RoutedMessage {
  return decodeServiceBusMessage(
    Buffer.from('{"temperature":97.5}'),
    {
      messageId: 'a1b2c3d4-0000-4000-8000-000000000001',
      contentType: 'application/json',
      enqueuedTimeUtc: '2026-11-22T09:59:30.000',
      applicationProperties: { 'iothub-connection-device-id': 'Contoso-Test-Device', level: 'critical' },
    },
    'critical',
  );
}

describe.runIf(hasOpenssl())('ACS e-mail on an identity-based connection (real EmailClient, managed identity, loopback HTTPS)', () => {
  it('sends the alert as the user-assigned identity ACS_ENDPOINT__clientId names, with a token for ACS', async () => {
    // The stand-in accepts this identity's tokens only: the system-assigned identity's would be refused.
    const standIn = await acsAccepting([identityToken({ clientId: CLIENT_ID })]);
    standIn.script(acs.accept(0));
    const alerts = alertServicesFrom(identitySettings(standIn));
    const asked = identity.requests.length;
    const message = criticalMessage();
    const key = messageIdentity(message);

    expect(await alerts.handler.handle(message)).toMatchObject({ outcome: 'sent', alertKey: key });
    expect(identity.requests.slice(asked)).toEqual([{ clientId: CLIENT_ID, resourceId: undefined, resource: ACS_RESOURCE }]);
    expect(standIn.sent).toEqual([
      expect.objectContaining({ operationId: emailOperationId(key), to: ['ops@contoso.example'], status: 'Succeeded', headers: { 'X-Alert-Id': key } }),
    ]);
    expect(standIn.requests.map((r) => [r.method, r.status, r.authentication, r.bearerToken])).toEqual([
      ['POST', 202, 'bearer', identityToken({ clientId: CLIENT_ID })],
      ['GET', 200, 'bearer', identityToken({ clientId: CLIENT_ID })],
    ]);
  });

  it("a token ACS refuses (another identity's) is a permanent failure with the service's 401, not a retry", async () => {
    const standIn = await acsAccepting([identityToken({ clientId: OTHER_CLIENT_ID })]);
    const alerts = alertServicesFrom(identitySettings(standIn));
    const message = criticalMessage();

    const result = await alerts.sender.send({
      operationId: emailOperationId(messageIdentity(message)),
      from: 'alerts@contoso.example',
      to: ['ops@contoso.example'],
      subject: '[critical] Contoso-Test-Device',
      text: 'critical',
      html: '<p>critical</p>',
    });
    expect(result).toMatchObject({ status: 'failed', httpStatus: 401, providerCode: 'Denied' });
    expect(standIn.sent).toEqual([]);
    // Refused although it was the configured identity's token: this stand-in accepts another identity only.
    expect(standIn.requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        status: 401,
        authentication: 'bearer',
        bearerToken: identityToken({ clientId: CLIENT_ID }),
        authenticated: false,
        authProblem: 'unknown bearer token',
      }),
    ]);
  });
});
