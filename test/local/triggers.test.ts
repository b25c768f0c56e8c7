import { describe, expect, it } from 'vitest';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { SimulatedClock } from '../../src/local/clock.js';
import type { StreamEvent } from '../../src/local/eventStream.js';
import type { HubMessage } from '../../src/local/hub.js';
import { stampSystemProperties } from '../../src/local/hub.js';
import { toNodeTriggerMetadata, rpc } from '../../src/local/invoke.js';
import { PeekLockQueue, type QueuedMessage } from '../../src/local/queue.js';
import type { Registration } from '../../src/local/registrations.js';
import { blobInvocation, eventHubInvocations, matchBlobPath, serviceBusInvocation, timerInput } from '../../src/local/triggers.js';
import { eventHubTriggerMetadata } from '../fixtures/triggers/eventHubIotHubBatch.js';
import { serviceBusTriggerMetadata } from '../fixtures/triggers/serviceBusIotHubMessage.js';

const T = new Date('2026-05-01T12:00:00.123Z');

function registration(kind: string, options: Record<string, unknown>): Registration {
  return { kind, name: kind, file: `${kind}.js`, options: { handler: () => undefined, ...options } };
}

function hubMessage(deviceId: string, i: number, endpoint: HubMessage['endpoint']): HubMessage {
  const device = {
    deviceId,
    body: Buffer.from(JSON.stringify({ deviceId, temperature: 20 + i })),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    properties: { level: 'critical', DeviceLocation: 'Seattle' },
    messageId: `m-${i}`,
  };
  const enqueuedTime = new Date(T.getTime() + i);
  return {
    ...device,
    sequence: i,
    endpoint,
    resend: 0,
    enqueuedTime,
    deliveredAt: enqueuedTime,
    enrichments: { DeviceLocation: 'Seattle' },
    systemProperties: stampSystemProperties(device, enqueuedTime),
  };
}

function keysOf(value: unknown): string[] {
  return Object.keys(value as object).sort();
}

describe('trigger payloads', () => {
  it("convert the host's metadata as the Node library does: JSON-parsed strings, first letters lower-cased", () => {
    expect(
      toNodeTriggerMetadata({
        MessageId: rpc.string('123'),
        LockToken: rpc.string('6f1c2b3a-9d8e'),
        OffsetArray: rpc.collectionString(['8589937000']),
        ApplicationProperties: rpc.json({ Level: 'critical', 'iothub-connection-device-id': 'd' }),
      }),
    ).toEqual({ messageId: 123, lockToken: '6f1c2b3a-9d8e', offsetArray: [8589937000], applicationProperties: { level: 'critical', 'iothub-connection-device-id': 'd' } });
  });

  it('give an Event Hubs batch the shape of the recorded IoT Hub batch, which the decoder reads back', () => {
    const events: StreamEvent[] = [0, 1].map((i) => ({
      partitionId: '2',
      sequenceNumber: 40 + i,
      offset: String(8_000 + i * 300),
      enqueuedTime: new Date(T.getTime() + i + 5),
      message: hubMessage('device-001', i, 'events'),
    }));
    const context = { fullyQualifiedNamespace: 'localhost', eventHubName: 'iothub-ehub-x', consumerGroup: '$Default', partitionId: '2' };
    const [invocation, ...more] = eventHubInvocations(registration('eventHub', { cardinality: 'many', dataType: 'binary' }), context, events);
    expect(more).toHaveLength(0);
    const metadata = invocation!.triggerMetadata;
    expect(keysOf(metadata)).toEqual(keysOf(eventHubTriggerMetadata));
    expect(keysOf((metadata['partitionContext'] as object))).toEqual(keysOf(eventHubTriggerMetadata['partitionContext']));
    const fixtureSystem = (eventHubTriggerMetadata['systemPropertiesArray'] as object[])[0]!;
    expect(keysOf((metadata['systemPropertiesArray'] as object[])[0])).toEqual(keysOf(fixtureSystem));
    expect(metadata['offsetArray']).toEqual([8000, 8300]);
    expect(metadata['enqueuedTimeUtcArray']).toEqual(['2026-05-01T12:00:00.128', '2026-05-01T12:00:00.129']);
    expect((metadata['propertiesArray'] as object[])[0]).toEqual({ level: 'critical', deviceLocation: 'Seattle' });
    expect((invocation!.input as unknown[]).every((b) => Buffer.isBuffer(b))).toBe(true);

    const decoded = decodeEventHubBatch(invocation!.input as unknown[], metadata);
    expect(decoded.map((m) => [m.deviceId, m.messageId, m.enqueuedTime?.toISOString(), m.contentType, m.source])).toEqual([
      ['device-001', 'm-0', '2026-05-01T12:00:00.123Z', 'application/json', { kind: 'eventHub', partitionId: '2', sequenceNumber: 40, offset: '8000' }],
      ['device-001', 'm-1', '2026-05-01T12:00:00.124Z', 'application/json', { kind: 'eventHub', partitionId: '2', sequenceNumber: 41, offset: '8300' }],
    ]);
    expect(decoded[0]!.decoded).toMatchObject({ kind: 'json', value: { deviceId: 'device-001', temperature: 20 } });
  });

  it('give one invocation per event with singular metadata for cardinality one, and strings for dataType string', () => {
    const events: StreamEvent[] = [{ partitionId: '0', sequenceNumber: 1, offset: '10', enqueuedTime: T, message: hubMessage('d', 0, 'events') }];
    const context = { fullyQualifiedNamespace: 'localhost', eventHubName: 'e', consumerGroup: '$Default', partitionId: '0' };
    const [one] = eventHubInvocations(registration('eventHub', { cardinality: 'one', dataType: 'string' }), context, events);
    expect(typeof one!.input).toBe('string');
    expect(keysOf(one!.triggerMetadata)).toEqual(['enqueuedTimeUtc', 'offset', 'partitionContext', 'properties', 'sequenceNumber', 'systemProperties']);
  });

  it('give a Service Bus message the shape of the recorded routed message, which the decoder reads back', async () => {
    let delivered: QueuedMessage | undefined;
    const queue = new PeekLockQueue({
      queueName: 'critical',
      clock: new SimulatedClock(T, 1),
      process: async (m) => {
        delivered = { ...m };
      },
    });
    queue.start();
    queue.deliver(hubMessage('device-001', 7, 'criticalQueue'));
    await queue.drain();
    await queue.stop();
    const invocation = serviceBusInvocation(registration('serviceBusQueue', { dataType: 'binary' }), { fullyQualifiedNamespace: 'localhost', queueName: 'critical' }, delivered!);
    expect(keysOf(invocation.triggerMetadata)).toEqual(keysOf(serviceBusTriggerMetadata));
    expect(invocation.triggerMetadata).toMatchObject({ deliveryCount: 1, messageId: 'm-7', contentType: 'application/json', sequenceNumber: 1 });
    expect(invocation.triggerMetadata['applicationProperties']).toEqual({
      'iothub-connection-device-id': 'device-001',
      'iothub-connection-auth-method': expect.any(String),
      'iothub-connection-auth-generation-id': expect.any(String),
      'iothub-message-source': 'Telemetry',
      level: 'critical',
      deviceLocation: 'Seattle',
    });
    const routed = decodeServiceBusMessage(invocation.input, invocation.triggerMetadata, 'critical');
    expect(routed).toMatchObject({ deviceId: 'device-001', messageId: 'm-7', properties: { level: 'critical', deviceLocation: 'Seattle' } });
    expect(routed.source).toEqual({ kind: 'serviceBus', queue: 'critical', sequenceNumber: 1, deliveryCount: 1 });
  });

  it('bind blob paths as the host does and hand over the blob with its binding data', () => {
    expect(matchBlobPath('archive/{name}', 'archive', 'Hub/0/2026/05/01/12/00')).toEqual({ name: 'Hub/0/2026/05/01/12/00' });
    expect(matchBlobPath('archive/{name}', 'other', 'x')).toBeNull();
    expect(matchBlobPath('archive/Hub/{partition}/{rest}.json', 'archive', 'Hub/3/2026/05.json')).toEqual({ partition: '3', rest: '2026/05' });
    expect(matchBlobPath('archive/in/{name}', 'archive', 'out/x')).toBeNull();
    const invocation = blobInvocation(
      registration('storageBlob', { path: 'archive/{name}' }),
      { container: 'archive', name: 'Hub/0/x', uri: 'http://127.0.0.1:1/devstoreaccount1/archive/Hub/0/x', body: Buffer.from('abc'), etag: '"0x1"', contentType: 'application/octet-stream', lastModified: T },
      { name: 'Hub/0/x' },
    );
    expect(invocation.triggerMetadata).toMatchObject({
      blobTrigger: 'archive/Hub/0/x',
      uri: 'http://127.0.0.1:1/devstoreaccount1/archive/Hub/0/x',
      name: 'Hub/0/x',
      properties: { contentLength: 3, eTag: '"0x1"', blobType: 'BlockBlob' },
      metadata: {},
    });
  });

  it('camel-case the timer payload as the library does for timers', () => {
    expect(timerInput(null, T, false)).toEqual({
      schedule: { adjustForDST: true },
      scheduleStatus: { last: '1970-01-01T00:00:00.000Z', next: T.toISOString(), lastUpdated: T.toISOString() },
      isPastDue: false,
    });
  });
});
