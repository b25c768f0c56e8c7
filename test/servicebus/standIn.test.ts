/**
 * The real ServiceBusClient against the loopback stand-in: if these pass, the stand-in answers the SDK the way the
 * service does for everything the dead-letter tooling relies on.
 */
import { isServiceBusError, ServiceBusClient } from '@azure/service-bus';
import Long from 'long';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { abandonUntilDeadLettered, startServiceBusStandIn, type ServiceBusStandIn } from '../support/serviceBusStandIn.js';

const QUEUE = 'critical-alerts';

let standIn: ServiceBusStandIn;
let client: ServiceBusClient;

async function start(options: Parameters<typeof startServiceBusStandIn>[0] = {}): Promise<void> {
  standIn = await startServiceBusStandIn({ queues: [QUEUE], ...options });
  client = new ServiceBusClient(standIn.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 3_000 } });
}

afterEach(async () => {
  await client.close();
  await standIn.stop();
});

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('sending and peek-lock receiving', () => {
  beforeEach(() => start());

  it('accepts single, array and batch sends, and hands them out locked with the stand-in lock tokens', async () => {
    const sender = client.createSender(QUEUE);
    await sender.sendMessages({
      body: Buffer.from('{"level":"critical","temp":97}'),
      contentType: 'application/json',
      messageId: 'alert-1',
      correlationId: 'corr-1',
      applicationProperties: { 'iothub-connection-device-id': 'pump-7', level: 'critical' },
    });
    await sender.sendMessages([{ body: 'two', messageId: 'alert-2' }, { body: { n: 3 }, messageId: 'alert-3' }]);
    const batch = await sender.createMessageBatch();
    expect(batch.tryAddMessage({ body: 'four', messageId: 'alert-4' })).toBe(true);
    expect(batch.tryAddMessage({ body: 'five', messageId: 'alert-5' })).toBe(true);
    await sender.sendMessages(batch);
    await sender.close();

    expect(standIn.queues.active(QUEUE).map((m) => [m.sequenceNumber, m.messageId])).toEqual([
      [1, 'alert-1'],
      [2, 'alert-2'],
      [3, 'alert-3'],
      [4, 'alert-4'],
      [5, 'alert-5'],
    ]);

    const receiver = client.createReceiver(QUEUE, { skipParsingBodyAsJson: true });
    const received = await receiver.receiveMessages(5, { maxWaitTimeInMs: 2_000 });
    expect(received.map((m) => m.messageId)).toEqual(['alert-1', 'alert-2', 'alert-3', 'alert-4', 'alert-5']);
    const [first] = received;
    expect(first?.body).toEqual(Buffer.from('{"level":"critical","temp":97}'));
    expect(first?.contentType).toBe('application/json');
    expect(first?.correlationId).toBe('corr-1');
    expect(first?.applicationProperties).toEqual({ 'iothub-connection-device-id': 'pump-7', level: 'critical' });
    expect(first?.sequenceNumber?.toNumber()).toBe(1);
    expect(first?.deliveryCount).toBe(0);
    expect(first?.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(first?.lockedUntilUtc?.getTime()).toBeGreaterThan(Date.now());

    const stored = standIn.queues.active(QUEUE);
    expect(stored.every((m) => m.locked)).toBe(true);
    expect(received.map((m) => m.lockToken)).toEqual(stored.map((m) => m.lockToken));
    expect(new Set(received.map((m) => m.lockToken)).size).toBe(5);

    for (const message of received) await receiver.completeMessage(message);
    expect(standIn.queues.active(QUEUE)).toEqual([]);
    await receiver.close();
  });

  it('peeks without locking or removing, from any sequence number', async () => {
    const sender = client.createSender(QUEUE);
    await sender.sendMessages([1, 2, 3].map((n) => ({ body: n, messageId: `m-${n}` })));
    const receiver = client.createReceiver(QUEUE);

    const all = await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(0) });
    expect(all.map((m) => m.messageId)).toEqual(['m-1', 'm-2', 'm-3']);
    expect(all.every((m) => m.lockToken === undefined)).toBe(true);
    const fromTwo = await receiver.peekMessages(1, { fromSequenceNumber: Long.fromNumber(2) });
    expect(fromTwo.map((m) => m.messageId)).toEqual(['m-2']);
    expect(await receiver.peekMessages(5, { fromSequenceNumber: Long.fromNumber(4) })).toEqual([]);

    expect(standIn.queues.active(QUEUE).map((m) => m.locked)).toEqual([false, false, false]);
    expect(standIn.requests.filter((r) => r.operation === 'com.microsoft:peek-message').map((r) => r.statusCode)).toEqual([200, 200, 204]);
    await receiver.close();
    await sender.close();
  });

  it('receive-and-delete removes messages as it delivers them', async () => {
    await client.createSender(QUEUE).sendMessages([{ body: 'a' }, { body: 'b' }]);
    const receiver = client.createReceiver(QUEUE, { receiveMode: 'receiveAndDelete' });
    const received = await receiver.receiveMessages(2, { maxWaitTimeInMs: 2_000 });
    expect(received.map((m) => m.body)).toEqual(['a', 'b']);
    expect(standIn.queues.active(QUEUE)).toEqual([]);
    await receiver.close();
  });
});

describe('abandon and dead-letter', () => {
  it('redelivers an abandoned message with a growing delivery count and dead-letters it after maxDeliveryCount', async () => {
    await start();
    await client.createSender(QUEUE).sendMessages({ body: 'alert', messageId: 'alert-1' });
    const receiver = client.createReceiver(QUEUE, { maxAutoLockRenewalDurationInMs: 0 });
    const counts: number[] = [];
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      expect(message?.messageId).toBe('alert-1');
      counts.push(message?.deliveryCount ?? -1);
      await receiver.abandonMessage(message!);
    }
    expect(counts).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(standIn.queues.active(QUEUE)).toEqual([]);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 100 })).toEqual([]);

    const [deadLetter] = standIn.queues.deadLetters(QUEUE);
    expect(deadLetter).toMatchObject({
      messageId: 'alert-1',
      deliveryCount: 10,
      deadLetterReason: 'MaxDeliveryCountExceeded',
      deadLetterErrorDescription: 'Message could not be consumed after 10 delivery attempts.',
    });
    const dlq = client.createReceiver(QUEUE, { subQueueType: 'deadLetter' });
    const [peeked] = await dlq.peekMessages(1, { fromSequenceNumber: Long.fromNumber(0) });
    expect(peeked).toMatchObject({
      messageId: 'alert-1',
      body: 'alert',
      deadLetterReason: 'MaxDeliveryCountExceeded',
      deadLetterSource: QUEUE,
    });
    await dlq.close();
    await receiver.close();
  });

  it('moves an explicitly dead-lettered message to <queue>/$DeadLetterQueue with its reason, where it can be received', async () => {
    await start({ maxDeliveryCount: 3 });
    await client.createSender(QUEUE).sendMessages({ body: { t: 1 }, messageId: 'bad', applicationProperties: { level: 'critical' } });
    const receiver = client.createReceiver(QUEUE);
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.deadLetterMessage(message!, { deadLetterReason: 'EmailRejected', deadLetterErrorDescription: 'recipient unknown' });
    expect(standIn.queues.active(QUEUE)).toEqual([]);

    const dlq = client.createReceiver(`${QUEUE}/$DeadLetterQueue`);
    let [deadLetter] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(deadLetter).toMatchObject({
      messageId: 'bad',
      body: { t: 1 },
      deadLetterReason: 'EmailRejected',
      deadLetterErrorDescription: 'recipient unknown',
      applicationProperties: { level: 'critical', DeadLetterReason: 'EmailRejected', DeadLetterErrorDescription: 'recipient unknown' },
    });
    // Abandoning in the dead-letter queue never dead-letters further, however often.
    for (let attempt = 0; attempt < 4; attempt += 1) {
      await dlq.abandonMessage(deadLetter!);
      [deadLetter] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    }
    expect(deadLetter?.deliveryCount).toBe(5);
    await dlq.completeMessage(deadLetter!);
    expect(standIn.queues.deadLetters(QUEUE)).toEqual([]);
    await dlq.close();
    await receiver.close();
  });

  it('abandonUntilDeadLettered plays an outage for every waiting message', async () => {
    await start({ maxDeliveryCount: 4 });
    await client.createSender(QUEUE).sendMessages([{ body: 1 }, { body: 2 }]);
    expect(await abandonUntilDeadLettered(standIn, client, QUEUE)).toBe(8);
    expect(standIn.queues.deadLetters(QUEUE).map((m) => m.deadLetterReason)).toEqual(['MaxDeliveryCountExceeded', 'MaxDeliveryCountExceeded']);
  });
});

describe('locks and the management link', () => {
  beforeEach(() => start({ lockDurationMs: 300 }));

  it('settles over $management when the receiving link is gone, and renews locks', async () => {
    await client.createSender(QUEUE).sendMessages([{ body: 'a', messageId: 'a' }, { body: 'b', messageId: 'b' }]);
    const first = client.createReceiver(QUEUE, { maxAutoLockRenewalDurationInMs: 0 });
    const [a, b] = await first.receiveMessages(2, { maxWaitTimeInMs: 2_000 });
    await first.close();

    const second = client.createReceiver(QUEUE, { maxAutoLockRenewalDurationInMs: 0 });
    const lockedUntil = await second.renewMessageLock(b!);
    expect(lockedUntil.getTime()).toBeGreaterThan(Date.now());
    await second.completeMessage(a!);
    await second.abandonMessage(b!);
    expect(standIn.queues.active(QUEUE).map((m) => [m.messageId, m.locked])).toEqual([['b', false]]);
    expect(standIn.requests.filter((r) => r.node === `${QUEUE}/$management`).map((r) => r.operation)).toEqual([
      'com.microsoft:renew-lock',
      'com.microsoft:update-disposition',
      'com.microsoft:update-disposition',
    ]);
    await second.close();
  });

  it('reports a settlement after the lock expired as MessageLockLost and makes the message available again', async () => {
    await client.createSender(QUEUE).sendMessages({ body: 'slow', messageId: 'slow' });
    const receiver = client.createReceiver(QUEUE, { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const error = await errorOf(receiver.completeMessage(message!));
    expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(again).toMatchObject({ messageId: 'slow', deliveryCount: 1 });
    await receiver.completeMessage(again!);
    await receiver.close();
  });
});

describe('protocol edges', () => {
  beforeEach(() => start());

  it('answers $cbs put-token for every link with status 202', async () => {
    await client.createSender(QUEUE).sendMessages({ body: 1 });
    const receiver = client.createReceiver(QUEUE);
    await receiver.peekMessages(1, { fromSequenceNumber: Long.fromNumber(0) });
    const cbs = standIn.requests.filter((r) => r.node === '$cbs');
    // One claim for the sender, one for the receiver's management link.
    expect(cbs.length).toBeGreaterThanOrEqual(2);
    expect(cbs.every((r) => r.operation === 'put-token' && r.statusCode === 202)).toBe(true);
    await receiver.close();
  });

  it('refuses entities that do not exist and sends to a dead-letter queue', async () => {
    const missing = await errorOf(client.createSender('no-such-queue').sendMessages({ body: 1 }));
    expect(isServiceBusError(missing) && missing.code).toBe('MessagingEntityNotFound');
    const peekMissing = await errorOf(client.createReceiver('no-such-queue', { subQueueType: 'deadLetter' }).peekMessages(1));
    expect(isServiceBusError(peekMissing) && peekMissing.code).toBe('MessagingEntityNotFound');
    const toDeadLetters = await errorOf(client.createSender(`${QUEUE}/$DeadLetterQueue`).sendMessages({ body: 1 }));
    expect((toDeadLetters as Error).message).toMatch(/dead-letter queue/);
  });

  it('returns a clear not-implemented error for management operations outside its scope', async () => {
    const receiver = client.createReceiver(QUEUE);
    const error = await errorOf(receiver.receiveDeferredMessages(Long.fromNumber(1)));
    expect((error as Error).message).toMatch(/does not implement management operation 'com.microsoft:receive-by-sequence-number'/);
    await receiver.close();
  });

  it('rejects sends while told to, as during a service incident', async () => {
    standIn.queues.rejectSends(QUEUE, true);
    const error = await errorOf(client.createSender(QUEUE).sendMessages({ body: 1 }));
    expect(isServiceBusError(error) && error.code).toBe('ServiceBusy');
    standIn.queues.rejectSends(QUEUE, false);
    await client.createSender(QUEUE).sendMessages({ body: 2 });
    expect(standIn.queues.active(QUEUE).map((m) => m.body)).toEqual([Buffer.from('2')]);
  });

  it('sees the connection close when the client closes', async () => {
    await client.createSender(QUEUE).sendMessages({ body: 1 });
    expect(standIn.openConnections()).toBe(1);
    await client.close();
    await expect.poll(() => standIn.openConnections(), { timeout: 2_000, interval: 20 }).toBe(0);
  });
});
