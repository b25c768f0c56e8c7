/**
 * `messageFields` and `messageFromFields` are inverses for the messages a quarantine keeps (Event Hubs and Service
 * Bus paths): a replay rebuilds the same message, identity included.
 */
import { describe, expect, it } from 'vitest';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { messageFields, messageFromFields } from '../../src/lib/message/serialize.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';

describe('messageFromFields', () => {
  const fromEventHub = decodeEventHubBatch([Buffer.from('{"temperature":21.5}'), Buffer.from('not json')], {
    partitionContext: { partitionId: '3' },
    systemPropertiesArray: [
      { 'iothub-connection-device-id': 'edge-1', 'iothub-connection-module-id': 'sensor', 'iothub-enqueuedtime': '2024-05-01T12:00:01.123Z', 'message-id': 'm1', 'content-type': 'application/json', 'content-encoding': 'utf-8' },
      { 'iothub-connection-device-id': 'pump-7' },
    ],
    propertiesArray: [{ level: 'normal', site: '$twin.tags.site' }, {}],
    sequenceNumberArray: [41, 42],
  });
  const fromServiceBus = decodeServiceBusMessage(Buffer.from('{"temperature":91.5}'), {
    messageId: 'alarm-1',
    contentType: 'application/json',
    enqueuedTimeUtc: '2024-05-01T12:00:30.000',
    applicationProperties: { 'iothub-connection-device-id': 'pump-9', level: 'critical' },
  });

  it.each([...fromEventHub, fromServiceBus].map((m, i) => [i, m] as const))('rebuilds message %i as it was decoded', (_i, message) => {
    // Through JSON, as the quarantine stores it.
    const fields = JSON.parse(JSON.stringify(messageFields(message))) as ReturnType<typeof messageFields>;
    const rebuilt = messageFromFields(fields, message.body);
    expect(rebuilt).toEqual(message);
    expect(messageIdentity(rebuilt)).toBe(messageIdentity(message));
  });
});
