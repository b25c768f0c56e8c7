/**
 * `iot-routing dlq` on an identity-based connection, end to end: the command reads
 * `SERVICEBUS_CONNECTION__fullyQualifiedNamespace`, `__credential` and `__clientId` as the Functions host would,
 * the real `ManagedIdentityCredential` fetches its token from a loopback managed identity endpoint, and the real
 * `ServiceBusClient` connects with TLS (a test certificate trusted for the stand-in's port only) and puts that token
 * through CBS to the loopback Service Bus stand-in, which accepts only the tokens the test names.
 */
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dlqCommand } from '../../src/cli/commands/dlq.js';
import { runCommand, type CliRun } from '../support/cli.js';
import { createLoopbackCertificate, hasOpenssl, type TestCertificate } from '../support/loopbackTls.js';
import { identityToken, installManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../support/managedIdentityEndpoint.js';
import { abandonUntilDeadLettered, startServiceBusStandIn, type ServiceBusStandIn } from '../support/serviceBusStandIn.js';

const QUEUE = 'critical-alerts';
const CLIENT_ID = '9c2e4f6a-1b3d-4e5f-8a7b-6c5d4e3f2a1b';
const OTHER_CLIENT_ID = 'd1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a';
/** The resource the SDK asks a token for: its scope `https://servicebus.azure.net//.default` less `/.default`. */
const SERVICE_BUS_RESOURCE = 'https://servicebus.azure.net/';

let certificate: TestCertificate;
// MSAL picks the managed identity source once per process and keeps its address: one endpoint for the whole file.
let identity: ManagedIdentityEndpoint;
const opened: Array<{ close(): Promise<unknown> } | ServiceBusStandIn> = [];

beforeAll(async () => {
  if (!hasOpenssl()) return;
  certificate = createLoopbackCertificate();
  identity = await installManagedIdentityEndpoint();
});

afterAll(async () => {
  await identity?.close();
});

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await ('stop' in item ? item.stop() : item.close());
});

/** A TLS namespace accepting `tokens`, whose queue holds two dead letters (put there over SAS, which it accepts). */
async function namespaceWithDeadLetters(tokens: string[]): Promise<ServiceBusStandIn> {
  const standIn = await startServiceBusStandIn({ queues: [QUEUE], maxDeliveryCount: 2, certificate, jwtTokens: tokens });
  opened.push(standIn);
  const client = new ServiceBusClient(standIn.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 3_000 } });
  opened.push(client);
  const sender = client.createSender(QUEUE);
  await sender.sendMessages(
    [1, 2].map((n) => ({
      body: Buffer.from(JSON.stringify({ level: 'critical', n })),
      messageId: `alert-${n}`,
      applicationProperties: { 'iothub-connection-device-id': `pump-${n}`, level: 'critical' },
    })),
  );
  await sender.close();
  await abandonUntilDeadLettered(standIn, client, QUEUE);
  await client.close();
  return standIn;
}

/** `iot-routing dlq list` with nothing on the command line but the queue: the namespace and identity come from env. */
function dlqList(standIn: ServiceBusStandIn): Promise<CliRun> {
  return runCommand(dlqCommand, ['list', '--queue', QUEUE, '--format', 'json'], {
    SERVICEBUS_CONNECTION__fullyQualifiedNamespace: standIn.fullyQualifiedNamespace,
    SERVICEBUS_CONNECTION__credential: 'managedidentity',
    SERVICEBUS_CONNECTION__clientId: CLIENT_ID,
  });
}

describe.runIf(hasOpenssl())('iot-routing dlq on an identity-based connection (real ServiceBusClient, managed identity, loopback AMQPS)', () => {
  it('lists the dead-letter queue as the user-assigned identity SERVICEBUS_CONNECTION__clientId names', async () => {
    // The namespace accepts this identity's tokens only: the system-assigned identity's would be refused.
    const standIn = await namespaceWithDeadLetters([identityToken({ clientId: CLIENT_ID })]);
    const sasPuts = standIn.cbs.length;
    const asked = identity.requests.length;

    const run = await dlqList(standIn);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(run.stdout) as Array<{ messageId: string }>).map((d) => d.messageId)).toEqual(['alert-1', 'alert-2']);
    expect(identity.requests.slice(asked)).toEqual([{ clientId: CLIENT_ID, resourceId: undefined, resource: SERVICE_BUS_RESOURCE }]);
    const puts = standIn.cbs.slice(sasPuts);
    expect(puts.length).toBeGreaterThan(0);
    for (const put of puts) {
      expect(put).toEqual({ audience: expect.stringMatching(`^sb://${standIn.fullyQualifiedNamespace}/${QUEUE}/`), tokenType: 'jwt', statusCode: 202 });
    }
    // Listing peeks: nothing was received or removed.
    expect(standIn.queues.deadLetters(QUEUE).map((m) => [m.messageId, m.locked])).toEqual([['alert-1', false], ['alert-2', false]]);
  });

  it("exits 1 promptly, with Service Bus's refusal in one line, when the namespace does not accept the identity's token", async () => {
    const standIn = await namespaceWithDeadLetters([identityToken({ clientId: OTHER_CLIENT_ID })]);
    const sasPuts = standIn.cbs.length;
    const peeksBefore = standIn.requests.filter((r) => r.operation === 'com.microsoft:peek-message').length;

    const started = Date.now();
    const run = await dlqList(standIn);
    // The SDK retries UnauthorizedAccess (credentials may have been rotated); with its service defaults (30 s apart,
    // three times) an operator would wait a minute and a half to learn the identity is refused.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(/^iot-routing dlq: Service Bus UnauthorizedAccess: Unauthorized: unknown jwt token\.[^\n]*\n$/);
    const puts = standIn.cbs.slice(sasPuts);
    expect(puts.length).toBeGreaterThan(0);
    for (const put of puts) expect(put).toMatchObject({ tokenType: 'jwt', statusCode: 401, problem: 'unknown jwt token' });
    // The refused identity got no peek through.
    expect(standIn.requests.filter((r) => r.operation === 'com.microsoft:peek-message')).toHaveLength(peeksBefore);
  });
});
