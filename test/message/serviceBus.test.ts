import { describe, expect, it } from 'vitest';
import { messageIdentity } from '../../src/lib/message/identity.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { serviceBusMessage, serviceBusTriggerMetadata } from '../fixtures/triggers/serviceBusIotHubMessage.js';

describe('decodeServiceBusMessage: a critical message IoT Hub routed to the queue', () => {
  const message = decodeServiceBusMessage(serviceBusMessage, serviceBusTriggerMetadata, 'critical-alerts');

  it('takes the device id from iothub-connection-device-id', () => {
    expect(message.deviceId).toBe('Contoso-Test-Device');
  });

  it("uses the queue's enqueued time when IoT Hub sent no iothub-enqueuedtime", () => {
    expect(message.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:31.204Z');
  });

  it('splits iothub-* application properties from the device properties and enrichments', () => {
    expect(message.properties).toEqual({ level: 'critical', iotHubName: 'ContosoHub', deviceLocation: 'Building 43' });
    expect(message.systemProperties).toEqual({
      'iothub-connection-device-id': 'Contoso-Test-Device',
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
      'iothub-connection-auth-generation-id': '638447109012349999',
      'iothub-message-source': 'Telemetry',
      'message-id': '4d3c2b1a-0f9e-4d8c-b7a6-5e4f3d2c1b0a',
      'content-type': 'application/json',
    });
  });

  it("carries the device's message id and content type, and decodes the body", () => {
    expect(message).toMatchObject({
      messageId: '4d3c2b1a-0f9e-4d8c-b7a6-5e4f3d2c1b0a',
      contentType: 'application/json',
      decoded: { kind: 'json', value: { deviceId: 'Contoso-Test-Device', pointInfo: 'This is a critical message.' } },
    });
    expect(message.decoded.decodedFrom).toMatchObject({ charset: 'utf-8', declared: true });
    expect(message.body).toBe(serviceBusMessage);
  });

  it('records queue, sequence number and delivery count as provenance', () => {
    expect(message.source).toEqual({ kind: 'serviceBus', queue: 'critical-alerts', sequenceNumber: 58, deliveryCount: 1 });
  });
});

describe('decodeServiceBusMessage: other shapes', () => {
  it('prefers iothub-enqueuedtime when IoT Hub did send it', () => {
    const message = decodeServiceBusMessage(Buffer.from('{}'), {
      applicationProperties: { 'iothub-connection-device-id': 'dev', 'iothub-enqueuedtime': '2024-03-01T10:15:30.118Z' },
      enqueuedTimeUtc: '2024-03-01T10:15:31.204',
    });
    expect(message.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.118Z');
  });

  it('reads the older userProperties map and the host spelling of keys', () => {
    const message = decodeServiceBusMessage(Buffer.from('door open'), {
      UserProperties: { 'iothub-connection-device-id': 'dev', level: 'critical' },
      SequenceNumber: 3,
      DeliveryCount: 2,
      EnqueuedTime: '2024-03-01T10:15:31.204+00:00',
    });
    expect(message).toMatchObject({
      deviceId: 'dev',
      properties: { level: 'critical' },
      decoded: { kind: 'text', value: 'door open' },
      source: { kind: 'serviceBus', queue: null, sequenceNumber: 3, deliveryCount: 2 },
    });
    expect(message.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:31.204Z');
  });

  it('restores a message id the Node library parsed into a number', () => {
    const message = decodeServiceBusMessage(Buffer.from('{}'), { messageId: 12345, correlationId: 'c-1' });
    expect(message.messageId).toBe('12345');
    expect(message.systemProperties).toEqual({ 'message-id': '12345', 'correlation-id': 'c-1' });
  });

  it('drops a numeric message id the Node library could not parse exactly, so distinct messages keep distinct identities', () => {
    // "12345678901234567890" and "12345678901234567891" both arrive as this number; "1.50" as 1.5; "-0" as -0.
    const at = (enqueuedTimeUtc: string, messageId: unknown) =>
      decodeServiceBusMessage(Buffer.from('{"t":1}'), { messageId, enqueuedTimeUtc, applicationProperties: { 'iothub-connection-device-id': 'd' } });
    for (const lossy of [12345678901234567000, 1.5, -0]) expect(at('2024-03-01T10:00:00', lossy).messageId).toBeUndefined();
    const first = at('2024-03-01T10:00:00', 12345678901234567000);
    const second = at('2024-03-01T10:00:01', 12345678901234567000);
    expect(messageIdentity(first)).not.toBe(messageIdentity(second));
  });

  it('accepts string and JSON-parsed bodies (dataType string)', () => {
    const parsed = decodeServiceBusMessage({ level: 'critical' }, { contentType: 'application/json' });
    expect(Buffer.from(parsed.body).toString()).toBe('{"level":"critical"}');
    expect(parsed.decoded).toMatchObject({ kind: 'json', value: { level: 'critical' } });
  });

  it('falls back to iothub-content-type / iothub-content-encoding application properties', () => {
    const utf16 = Buffer.from('{"a":1}', 'utf16le');
    const message = decodeServiceBusMessage(utf16, {
      applicationProperties: { 'iothub-content-type': 'application/json', 'iothub-content-encoding': 'utf-16le' },
    });
    expect(message).toMatchObject({
      contentType: 'application/json',
      contentEncoding: 'utf-16le',
      decoded: { kind: 'json', value: { a: 1 }, decodedFrom: { charset: 'utf-16le', declared: true } },
    });
  });

  it('never throws on missing or malformed metadata', () => {
    const message = decodeServiceBusMessage(undefined, { applicationProperties: 'nope', sequenceNumber: 'x' });
    expect(message).toMatchObject({
      deviceId: null,
      enqueuedTime: null,
      properties: {},
      systemProperties: {},
      source: { kind: 'serviceBus', queue: null, sequenceNumber: null, deliveryCount: null },
    });
    expect(decodeServiceBusMessage(Buffer.from('x'), null as unknown as Record<string, unknown>).deviceId).toBeNull();
  });
});
