/**
 * `iot-routing dlq` end to end: the command builds its own ServiceBusClient from the connection string and talks to
 * the loopback stand-in, as it would to a namespace.
 */
import { ServiceBusClient } from '@azure/service-bus';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dlqCommand, dlqUsage } from '../../src/cli/commands/dlq.js';
import { runCommand, type CliRun } from '../support/cli.js';
import { abandonUntilDeadLettered, startServiceBusStandIn, type ServiceBusStandIn } from '../support/serviceBusStandIn.js';
import { closedPort } from '../support/listening.js';

const QUEUE = 'critical-alerts';

let standIn: ServiceBusStandIn;
let client: ServiceBusClient;

function dlq(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runCommand(dlqCommand, args, env);
}

/** `--connection-string` plus a short wait for selected messages that are not there, so the suite stays fast. */
function target(): string[] {
  return ['--queue', QUEUE, '--connection-string', standIn.connectionString, '--wait-ms', '300'];
}

describe('iot-routing dlq', () => {
  beforeEach(async () => {
    standIn = await startServiceBusStandIn({ queues: [QUEUE], maxDeliveryCount: 10 });
    client = new ServiceBusClient(standIn.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 3_000 } });
    const sender = client.createSender(QUEUE);
    await sender.sendMessages(
      [1, 2].map((n) => ({
        body: Buffer.from(JSON.stringify({ level: 'critical', n })),
        contentType: 'application/json',
        messageId: `alert-${n}`,
        applicationProperties: { 'iothub-connection-device-id': `pump-${n}`, level: 'critical' },
      })),
    );
    await sender.close();
    await abandonUntilDeadLettered(standIn, client, QUEUE);
  });

  afterEach(async () => {
    await client.close();
    await standIn.stop();
  });

  it('lists dead letters as a table with reason, device, enqueued time and counts', async () => {
    const run = await dlq(['list', ...target()]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SEQ\s+ENQUEUED\s+DEVICE\s+REASON\s+DELIVERIES\s+RESUBMITS\s+MESSAGE ID\s+DESCRIPTION$/);
    expect(lines[1]).toMatch(/^1\s+\d{4}-\d\d-\d\dT\S+Z\s+pump-1\s+MaxDeliveryCountExceeded\s+10\s+0\s+alert-1\s+Message could not be consumed after 10 delivery attempts\.$/);
    expect(lines[2]).toMatch(/^2\s.*pump-2\s+MaxDeliveryCountExceeded/);
    expect(lines.at(-1)).toBe(`2 dead letters in ${QUEUE}/$DeadLetterQueue`);
  });

  it('lists as JSON with sequence numbers as strings', async () => {
    const run = await dlq(['list', ...target(), '--format', 'json', '--max', '1']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([
      expect.objectContaining({ sequenceNumber: '1', messageId: 'alert-1', deviceId: 'pump-1', deadLetterReason: 'MaxDeliveryCountExceeded', resubmitCount: 0 }),
    ]);
  });

  it('shows one dead letter with its properties and body, and says when there is none', async () => {
    const run = await dlq(['show', ...target(), '--sequence', '2']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('dead-letter reason:       MaxDeliveryCountExceeded');
    expect(run.stdout).toContain('  iothub-connection-device-id = pump-2');
    expect(run.stdout).toMatch(/body \(data, \d+ bytes, utf8\):\n\{"level":"critical","n":2\}\n$/);

    const missing = await dlq(['show', ...target(), '--sequence', '7']);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toContain(`no message with sequence number 7 in ${QUEUE}/$DeadLetterQueue`);
  });

  it('resubmits selected dead letters, which are then delivered again from the main queue with a resubmit count', async () => {
    const run = await dlq(['resubmit', ...target(), '--sequence', '1']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain(`resubmitted 1 dead letter from ${QUEUE}/$DeadLetterQueue to ${QUEUE}`);
    expect(run.stdout).toMatch(/^1\s+alert-1\s+1$/m);
    expect(standIn.queues.deadLetters(QUEUE).map((m) => m.messageId)).toEqual(['alert-2']);

    const receiver = client.createReceiver(QUEUE);
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(again).toMatchObject({ messageId: 'alert-1', body: { level: 'critical', n: 1 } });
    expect(again?.applicationProperties).toMatchObject({ 'iothub-connection-device-id': 'pump-1', 'iot-routing-resubmit-count': 1 });
    await receiver.completeMessage(again!);
    await receiver.close();
  });

  it('resubmits --all, taking the connection string from SERVICEBUS_CONNECTION', async () => {
    const run = await dlq(['resubmit', '--queue', QUEUE, '--all', '--format', 'json'], { SERVICEBUS_CONNECTION: standIn.connectionString });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      resubmitted: [
        { sequenceNumber: '1', messageId: 'alert-1', resubmitCount: 1 },
        { sequenceNumber: '2', messageId: 'alert-2', resubmitCount: 1 },
      ],
      missing: [],
    });
    expect(standIn.queues.deadLetters(QUEUE)).toEqual([]);
    expect(standIn.queues.active(QUEUE).map((m) => m.applicationProperties['iot-routing-resubmit-count'])).toEqual([1, 1]);
  });

  it('exits 1 and names selected sequence numbers that are not in the dead-letter queue', async () => {
    const run = await dlq(['resubmit', ...target(), '--sequence', '2', '--sequence', '99']);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('resubmitted 1 dead letter');
    expect(run.stderr).toContain('sequence number 99');
  });

  it('refuses to purge without --yes, saying what it would delete, and purges with it', async () => {
    const refused = await dlq(['purge', ...target()]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toContain(
      `purge would permanently delete 2 dead-lettered messages from ${QUEUE}/$DeadLetterQueue (sequence numbers 1, 2). Nothing was deleted; run again with --yes`,
    );
    expect(standIn.queues.deadLetters(QUEUE)).toHaveLength(2);

    const done = await dlq(['purge', ...target(), '--yes']);
    expect(done).toMatchObject({ code: 0, stderr: '', stdout: `purged 2 dead letters from ${QUEUE}/$DeadLetterQueue\n` });
    expect(standIn.queues.deadLetters(QUEUE)).toEqual([]);
    expect(standIn.queues.active(QUEUE)).toEqual([]);
  });

  it('purges only the selected sequence numbers', async () => {
    const done = await dlq(['purge', ...target(), '--sequence', '2', '--yes']);
    expect(done.code).toBe(0);
    expect(standIn.queues.deadLetters(QUEUE).map((m) => m.messageId)).toEqual(['alert-1']);
  });

  it('reports Service Bus errors in one line', async () => {
    const run = await dlq(['list', '--queue', 'no-such-queue', '--connection-string', standIn.connectionString]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^iot-routing dlq: Service Bus MessagingEntityNotFound: .*no-such-queue/);
  });

  it('reports a namespace it cannot reach in one line too (a connection failure is not a ServiceBusError)', async () => {
    const closed = await closedPort();
    const connectionString = `Endpoint=sb://127.0.0.1:${closed};SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true`;
    const run = await dlq(['list', '--queue', 'critical-alerts', '--connection-string', connectionString]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^iot-routing dlq: Service Bus \\w+: .*ECONNREFUSED.*${closed}\\n$`));
  });
});

describe('iot-routing dlq usage', () => {
  it.each([
    [[], /dlq takes one of list, show, resubmit, purge/],
    [['drop', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/'], /not "drop"/],
    [['list', '--connection-string', 'Endpoint=sb://x/'], /--queue NAME is required/],
    [['list', '--queue', 'q'], /give --connection-string CS or --namespace NS, or set SERVICEBUS_CONNECTION/],
    [['list', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/', '--namespace', 'ns'], /not both/],
    [['show', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/'], /show takes exactly one --sequence N/],
    [['resubmit', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/'], /resubmit needs --sequence N \(repeatable\) or --all/],
    [['resubmit', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/', '--all', '--sequence', '1'], /--sequence N or --all, not both/],
    [['show', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/', '--sequence', 'abc'], /--sequence must be a sequence number/],
    [['list', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/', '--max', '0'], /--max must be a positive integer/],
    [['list', '--queue', 'q', '--connection-string', 'Endpoint=sb://x/', '--format', 'xml'], /--format must be table or json/],
  ])('dlq %j is a usage error', async (args, message) => {
    await expect(dlq(args)).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(message) });
  });

  it('documents every action and flag', () => {
    for (const word of ['list', 'show', 'resubmit', 'purge', '--queue', '--connection-string', '--namespace', '--sequence', '--all', '--max', '--yes', '--format', 'SERVICEBUS_CONNECTION']) {
      expect(dlqUsage).toContain(word);
    }
  });
});
