/**
 * Dead-letter operations with the real ServiceBusClient against the stand-in: an outage dead-letters critical
 * alerts, the operator lists and inspects them, resubmits them once the e-mail service is back, and they are
 * delivered again from the main queue; purge deletes only with explicit confirmation.
 */
import type { ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectionCredential } from '../../src/lib/connectionCredential.js';
import { isRoutingError } from '../../src/lib/errors.js';
import {
  ENQUEUED_TIME_PROPERTY,
  listDeadLetters,
  previewBody,
  purge,
  RESUBMIT_COUNT_PROPERTY,
  resubmissionOf,
  resubmit,
  showDeadLetter,
} from '../../src/lib/servicebus/deadLetters.js';
import { normalizeNamespace, serviceBusClientFromSettings } from '../../src/lib/servicebus/serviceBusClientFromSettings.js';
import { abandonUntilDeadLettered, startServiceBusStandIn, type ServiceBusStandIn } from '../support/serviceBusStandIn.js';

const QUEUE = 'critical-alerts';
const WAIT = { receiveWaitMs: 300 };

let standIn: ServiceBusStandIn;
let client: ServiceBusClient;

/** Three critical alerts as IoT Hub routes them to Service Bus: JSON bytes, device message ids, iothub-* properties. */
function routedAlert(n: number): ServiceBusMessage {
  return {
    body: Buffer.from(JSON.stringify({ level: 'critical', temperature: 90 + n })),
    contentType: 'application/json',
    messageId: `alert-${n}`,
    correlationId: `corr-${n}`,
    applicationProperties: {
      'iothub-connection-device-id': `pump-${n}`,
      'iothub-message-source': 'Telemetry',
      level: 'critical',
      location: 'plant-1',
      raisedAt: new Date('2025-03-01T12:00:00.000Z'),
    },
  };
}

async function receiveAll(queue: string, count: number): Promise<ServiceBusReceivedMessage[]> {
  const receiver = client.createReceiver(queue, { skipParsingBodyAsJson: true, skipConvertingDate: true });
  try {
    const messages = await receiver.receiveMessages(count, { maxWaitTimeInMs: 2_000 });
    for (const message of messages) await receiver.completeMessage(message);
    return messages;
  } finally {
    await receiver.close();
  }
}

describe('against the stand-in, after an outage dead-lettered three alerts', () => {
  beforeEach(async () => {
    standIn = await startServiceBusStandIn({ queues: [QUEUE] });
    client = serviceBusClientFromSettings(
      { connectionString: standIn.connectionString },
      { retryOptions: { maxRetries: 0, timeoutInMs: 3_000 } },
    );
    const sender = client.createSender(QUEUE);
    await sender.sendMessages([1, 2, 3].map(routedAlert));
    await sender.close();
    // The e-mail service is down: every delivery is abandoned until Service Bus gives up on the message.
    await abandonUntilDeadLettered(standIn, client, QUEUE);
  });

  afterEach(async () => {
    await client.close();
    await standIn.stop();
  });

  describe('listDeadLetters and showDeadLetter', () => {
    it('lists why each alert was dead-lettered, for which device and when, without touching the messages', async () => {
      const listed = await listDeadLetters(client, QUEUE);
      expect(listed).toHaveLength(3);
      expect(listed[0]).toMatchObject({
        sequenceNumber: 1n,
        messageId: 'alert-1',
        deadLetterReason: 'MaxDeliveryCountExceeded',
        deadLetterErrorDescription: 'Message could not be consumed after 10 delivery attempts.',
        deviceId: 'pump-1',
        deliveryCount: 10,
        resubmitCount: 0,
      });
      expect(listed[0]?.enqueuedTime).toEqual(standIn.queues.deadLetters(QUEUE)[0]?.enqueuedTime);
      expect(listed.map((d) => d.deviceId)).toEqual(['pump-1', 'pump-2', 'pump-3']);

      // Peeking again sees the same: nothing was received, locked or removed.
      expect(await listDeadLetters(client, QUEUE)).toEqual(listed);
      expect(standIn.queues.deadLetters(QUEUE).map((m) => m.locked)).toEqual([false, false, false]);
      expect(await listDeadLetters(client, QUEUE, { max: 2 })).toEqual(listed.slice(0, 2));
    });

    it('shows one dead letter with every property and a body preview', async () => {
      const shown = await showDeadLetter(client, QUEUE, 2n);
      expect(shown).toMatchObject({
        sequenceNumber: 2n,
        messageId: 'alert-2',
        correlationId: 'corr-2',
        contentType: 'application/json',
        deadLetterSource: QUEUE,
        body: { bodyType: 'data', encoding: 'utf8', preview: '{"level":"critical","temperature":92}', truncated: false },
      });
      expect(shown?.applicationProperties).toMatchObject({
        'iothub-connection-device-id': 'pump-2',
        location: 'plant-1',
        raisedAt: new Date('2025-03-01T12:00:00.000Z'),
        DeadLetterReason: 'MaxDeliveryCountExceeded',
      });
      expect(await showDeadLetter(client, QUEUE, 99n)).toBeUndefined();
    });

  });

  describe('resubmit', () => {
    it('sends selected dead letters back to the main queue intact, with a resubmit count, and removes them from the DLQ', async () => {
      const result = await resubmit(client, QUEUE, { sequenceNumbers: [2n] }, WAIT);
      expect(result).toEqual({ resubmitted: [{ sequenceNumber: 2n, messageId: 'alert-2', resubmitCount: 1 }], missing: [] });
      // The others are back in the DLQ unlocked, not held until their locks expire.
      expect(standIn.queues.deadLetters(QUEUE).map((m) => [m.messageId, m.locked])).toEqual([
        ['alert-1', false],
        ['alert-3', false],
      ]);

      const [copy] = await receiveAll(QUEUE, 1);
      expect(copy?.messageId).toBe('alert-2');
      expect(copy?.correlationId).toBe('corr-2');
      expect(copy?.contentType).toBe('application/json');
      expect(copy?.body).toEqual(Buffer.from(JSON.stringify({ level: 'critical', temperature: 92 })));
      expect(copy?.applicationProperties).toEqual({
        'iothub-connection-device-id': 'pump-2',
        'iothub-message-source': 'Telemetry',
        level: 'critical',
        location: 'plant-1',
        raisedAt: new Date('2025-03-01T12:00:00.000Z'),
        [RESUBMIT_COUNT_PROPERTY]: 1,
        // The original's Service Bus enqueued time, so the alert identity of the copy is the original's.
        [ENQUEUED_TIME_PROPERTY]: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      expect(copy?.deadLetterReason).toBeUndefined();
    });

    it('resubmits all of them, and they are delivered again', async () => {
      const result = await resubmit(client, QUEUE, { all: true }, WAIT);
      expect(result.resubmitted.map((r) => r.messageId)).toEqual(['alert-1', 'alert-2', 'alert-3']);
      expect(standIn.queues.deadLetters(QUEUE)).toEqual([]);
      const delivered = await receiveAll(QUEUE, 3);
      expect(delivered.map((m) => [m.messageId, m.applicationProperties?.[RESUBMIT_COUNT_PROPERTY]])).toEqual([
        ['alert-1', 1],
        ['alert-2', 1],
        ['alert-3', 1],
      ]);
    });

    it('makes a loop visible: a copy that dead-letters again shows its resubmit count, and the next resubmit raises it', async () => {
      await resubmit(client, QUEUE, { sequenceNumbers: [1n] }, WAIT);
      await abandonUntilDeadLettered(standIn, client, QUEUE);
      const listed = await listDeadLetters(client, QUEUE);
      const again = listed.find((d) => d.messageId === 'alert-1');
      expect(again).toMatchObject({ resubmitCount: 1, deadLetterReason: 'MaxDeliveryCountExceeded' });
      const second = await resubmit(client, QUEUE, { sequenceNumbers: [again!.sequenceNumber] }, WAIT);
      expect(second.resubmitted).toEqual([{ sequenceNumber: again!.sequenceNumber, messageId: 'alert-1', resubmitCount: 2 }]);
    });

    it('reports selected sequence numbers that are not in the DLQ and changes nothing for them', async () => {
      const result = await resubmit(client, QUEUE, { sequenceNumbers: [3n, 42n] }, WAIT);
      expect(result).toEqual({ resubmitted: [{ sequenceNumber: 3n, messageId: 'alert-3', resubmitCount: 1 }], missing: [42n] });
      expect(standIn.queues.deadLetters(QUEUE).map((m) => m.messageId)).toEqual(['alert-1', 'alert-2']);
    });

    it('completes a dead letter only after its copy was sent: a failed send leaves the DLQ as it was', async () => {
      standIn.queues.rejectSends(QUEUE, true);
      await expect(resubmit(client, QUEUE, { all: true }, WAIT)).rejects.toMatchObject({ code: 'ServiceBusy' });
      expect(standIn.queues.deadLetters(QUEUE).map((m) => [m.messageId, m.locked])).toEqual([
        ['alert-1', false],
        ['alert-2', false],
        ['alert-3', false],
      ]);
      expect(standIn.queues.active(QUEUE)).toEqual([]);
    });

  });

  describe('purge', () => {
    it('refuses without confirmation and deletes with it', async () => {
      const refused = await purge(client, QUEUE, {} as Parameters<typeof purge>[2]).catch((error: unknown) => error);
      expect(isRoutingError(refused) && refused.code).toBe('UsageInvalid');
      expect(standIn.queues.deadLetters(QUEUE)).toHaveLength(3);

      const some = await purge(client, QUEUE, { confirm: true, sequenceNumbers: [1n], ...WAIT });
      expect(some).toEqual({ purged: [{ sequenceNumber: 1n, messageId: 'alert-1' }], missing: [] });
      const rest = await purge(client, QUEUE, { confirm: true, ...WAIT });
      expect(rest.purged.map((p) => p.messageId)).toEqual(['alert-2', 'alert-3']);
      expect(standIn.queues.deadLetters(QUEUE)).toEqual([]);
      expect(standIn.queues.active(QUEUE)).toEqual([]);
    });
  });
});

describe('building the copy and the preview', () => {
  it('previews binary bodies as base64 and long ones truncated', () => {
    const raw = { bodyType: 'data' } as ServiceBusReceivedMessage['_rawAmqpMessage'];
    expect(previewBody({ body: Buffer.from([0, 1, 2, 255]), _rawAmqpMessage: raw }, 100)).toMatchObject({ encoding: 'base64', preview: 'AAEC/w==', sizeInBytes: 4 });
    expect(previewBody({ body: Buffer.from('x'.repeat(50)), _rawAmqpMessage: raw }, 10)).toMatchObject({ preview: 'x'.repeat(10), truncated: true });
  });
  it('builds the copy from the raw AMQP message without broker annotations or stale dead-letter properties', () => {
    const copy = resubmissionOf({
      body: Buffer.from('x'),
      messageId: 'm',
      enqueuedTimeUtc: new Date('2025-01-01T00:00:00Z'),
      applicationProperties: { DeadLetterReason: 'r', DeadLetterErrorDescription: 'd', [RESUBMIT_COUNT_PROPERTY]: 4, [ENQUEUED_TIME_PROPERTY]: 'kept' },
      _rawAmqpMessage: {
        body: undefined,
        bodyType: 'data',
        properties: { messageId: 'm', absoluteExpiryTime: 1, creationTime: 0 },
        messageAnnotations: { 'x-opt-sequence-number': 5 },
      },
    } as unknown as ServiceBusReceivedMessage);
    expect(copy).toEqual({
      body: Buffer.from('x'),
      bodyType: 'data',
      properties: { messageId: 'm' },
      applicationProperties: { [RESUBMIT_COUNT_PROPERTY]: 5, [ENQUEUED_TIME_PROPERTY]: 'kept' },
    });
  });
});

describe('serviceBusClientFromSettings', () => {
  it('accepts the namespace forms the portal shows', () => {
    expect(normalizeNamespace('contoso-iot')).toBe('contoso-iot.servicebus.windows.net');
    expect(normalizeNamespace('sb://contoso-iot.servicebus.windows.net/')).toBe('contoso-iot.servicebus.windows.net');
    expect(() => normalizeNamespace('not a namespace')).toThrow(/not a namespace name/);
  });

  it('rejects a connection string without an endpoint without echoing it', () => {
    const attempt = (): unknown => serviceBusClientFromSettings({ connectionString: 'SharedAccessKey=secret' });
    expect(attempt).toThrow(/has no Endpoint/);
    expect(attempt).not.toThrow(/secret/);
  });

  it('builds a credential-based client for a namespace', async () => {
    const namespaced = serviceBusClientFromSettings({
      fullyQualifiedNamespace: 'contoso-iot',
      credential: connectionCredential({}, 'SERVICEBUS_CONNECTION'),
    });
    expect(namespaced.fullyQualifiedNamespace).toBe('contoso-iot.servicebus.windows.net');
    await namespaced.close();
  });
});
