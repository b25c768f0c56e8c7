import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { lookupProperty, toPropertyMap } from '../../src/lib/message/normalize.js';
import { eventHubMessages, eventHubTriggerMetadata } from '../fixtures/triggers/eventHubIotHubBatch.js';

describe('decodeEventHubBatch: an IoT Hub batch as the Node library hands it over', () => {
  const [declared, tutorial, wrapped] = decodeEventHubBatch(eventHubMessages, eventHubTriggerMetadata);

  it('decodes one message per event, in order', () => {
    expect(decodeEventHubBatch(eventHubMessages, eventHubTriggerMetadata)).toHaveLength(3);
    expect([declared, tutorial, wrapped].map((m) => m?.deviceId)).toEqual(['thermostat-17', 'Contoso-Test-Device', 'edge-gateway-2']);
  });

  it('reads identity, declaration and IoT Hub enqueued time from the system properties', () => {
    expect(declared).toMatchObject({
      deviceId: 'thermostat-17',
      messageId: 'b8c5f0a2-7d1e-4c3b-9a6f-1e2d3c4b5a69',
      contentType: 'application/json',
      contentEncoding: 'UTF-8',
      decoded: {
        kind: 'json',
        value: { temperature: 21.5, humidity: 60, level: 'storage' },
        decodedFrom: { base64: null, charset: 'utf-8', declared: true },
      },
    });
    // iothub-enqueuedtime (the hub's clock) wins over the Event Hub's own enqueued time.
    expect(declared?.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.118Z');
    expect(wrapped?.moduleId).toBe('sensorModule');
  });

  it('keeps the lower-cased application properties, enrichments included, apart from system properties', () => {
    expect(declared?.properties).toEqual({ level: 'storage', iotHubName: 'ContosoHub', deviceLocation: 'Building 43' });
    expect(declared?.systemProperties['iothub-message-source']).toBe('Telemetry');
    expect(declared?.systemProperties['x-opt-sequence-number']).toBe(1201);
    expect(declared?.systemProperties).not.toHaveProperty('level');
  });

  it('records partition, sequence number and offset as provenance', () => {
    expect([declared, tutorial, wrapped].map((m) => m?.source)).toEqual([
      { kind: 'eventHub', partitionId: '3', sequenceNumber: 1201, offset: '8589937000' },
      { kind: 'eventHub', partitionId: '3', sequenceNumber: 1202, offset: '8589937512' },
      { kind: 'eventHub', partitionId: '3', sequenceNumber: 1203, offset: '8589938240' },
    ]);
  });

  it("decodes the tutorial device's undeclared BOM-less UTF-32LE body", () => {
    expect(tutorial?.decoded).toMatchObject({
      kind: 'json',
      value: { deviceId: 'Contoso-Test-Device', temperature: 30.1 },
      decodedFrom: { charset: 'utf-32le', declared: false, bom: false },
    });
    expect(tutorial?.body).toBe(eventHubMessages[1]);
  });

  it('unwraps a body the device base64-encoded itself', () => {
    expect(wrapped?.decoded).toMatchObject({
      kind: 'json',
      value: { temperature: 19.25, level: 'critical' },
      decodedFrom: { base64: 'detected' },
    });
  });
});

describe('decodeEventHubBatch: other shapes the host can send', () => {
  const sys = (deviceId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    'iothub-connection-device-id': deviceId,
    ...extra,
  });

  it('accepts string and JSON-parsed bodies (dataType string) by re-serialising them', () => {
    const [text, parsed, number] = decodeEventHubBatch(['door open', { level: 'critical', t: 1 }, 42], {
      systemPropertiesArray: [sys('a'), sys('b'), sys('c')],
    });
    expect(text?.decoded).toMatchObject({ kind: 'text', value: 'door open' });
    expect(Buffer.from(parsed!.body).toString()).toBe('{"level":"critical","t":1}');
    expect(parsed?.decoded).toMatchObject({ kind: 'json', value: { level: 'critical', t: 1 } });
    expect(number?.decoded).toMatchObject({ kind: 'json', value: 42 });
  });

  it('accepts the host spelling of the metadata keys', () => {
    const [message] = decodeEventHubBatch([Buffer.from('{}')], {
      PartitionContext: { PartitionId: '7' },
      SystemPropertiesArray: [sys('dev')],
      SequenceNumberArray: [5],
      OffsetArray: ['640'],
      EnqueuedTimeUtcArray: ['2024-03-01T10:15:30.123Z'],
    });
    expect(message).toMatchObject({ deviceId: 'dev', source: { partitionId: '7', sequenceNumber: 5, offset: '640' } });
    expect(message?.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.123Z');
  });

  it('falls back to the x-opt annotations when the arrays are missing', () => {
    const [message] = decodeEventHubBatch([Buffer.from('{}')], {
      systemPropertiesArray: [
        sys('dev', { 'x-opt-sequence-number': 9, 'x-opt-offset': '1024', 'x-opt-enqueued-time': '2024-03-01T10:15:30.123+00:00' }),
      ],
    });
    expect(message?.source).toEqual({ kind: 'eventHub', partitionId: null, sequenceNumber: 9, offset: '1024' });
    expect(message?.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.123Z');
  });

  it('gives the OffsetArray number as String does, whatever the x-opt-offset annotation beside it says', () => {
    const offsets = [0, -0, 512, 8589937512, 123456789012345, 1234567890123456, 1.5, -512, 2 ** 53 + 2, 1e21];
    const annotations = ['0', '00', '0512', '512', '+512', '512.0', '5.12e2', ' 512', '', '8589937512', '123456789012345'];
    annotations.push('1234567890123456', '1.5', '-512', String(2 ** 53 + 2), '1e+21', '١٢', '12\u0000');
    for (const offset of offsets) {
      for (const annotation of annotations) {
        const [message] = decodeEventHubBatch([Buffer.from('{}')], {
          systemPropertiesArray: [sys('dev', { 'x-opt-offset': annotation })],
          offsetArray: [offset],
        });
        expect(message?.source).toMatchObject({ offset: String(offset) });
      }
    }
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(), fc.maxSafeNat(), fc.double()),
        fc.string({ unit: fc.constantFrom(...'0123456789.-+e ') }),
        (offset, annotation) => {
          const [message] = decodeEventHubBatch([Buffer.from('{}')], {
            systemPropertiesArray: [sys('dev', { 'x-opt-offset': annotation })],
            offsetArray: [offset],
          });
          expect(message?.source).toMatchObject({ offset: Number.isFinite(offset) ? String(offset) : null });
        },
      ),
    );
  });

  it('turns Date and structured property values into property values', () => {
    const [message] = decodeEventHubBatch([Buffer.from('{}')], {
      systemPropertiesArray: [sys('dev', { 'iothub-enqueuedtime': new Date('2024-03-01T10:15:30.118Z') })],
      propertiesArray: [{ level: 'critical', reading: { t: 1 }, count: 3, at: new Date('2024-01-01T00:00:00Z') }],
    });
    expect(message?.properties).toEqual({ level: 'critical', reading: '{"t":1}', count: 3, at: '2024-01-01T00:00:00.000Z' });
    expect(message?.systemProperties['iothub-enqueuedtime']).toBe('2024-03-01T10:15:30.118Z');
    expect(message?.enqueuedTime?.toISOString()).toBe('2024-03-01T10:15:30.118Z');
  });

  it('turns malformed entries into messages with what could be read', () => {
    const messages = decodeEventHubBatch([undefined, null, Buffer.from('ok')], {
      systemPropertiesArray: ['not a map', null],
      propertiesArray: 'oops',
      sequenceNumberArray: [1.5],
      enqueuedTimeUtcArray: ['never'],
      partitionContext: 'p0',
    });
    expect(messages).toHaveLength(3);
    expect(messages[0]).toMatchObject({
      deviceId: null,
      enqueuedTime: null,
      properties: {},
      systemProperties: {},
      source: { kind: 'eventHub', partitionId: null, sequenceNumber: null, offset: null },
    });
    expect(messages[0]?.body.byteLength).toBe(0);
    expect(Buffer.from(messages[1]!.body).toString()).toBe('null');
    expect(messages[2]?.decoded).toMatchObject({ kind: 'text', value: 'ok' });
  });

  it('builds property maps exactly as toPropertyMap does: same keys, same order, same values, __proto__ as data', () => {
    const value = fc.oneof(
      fc.string(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.bigInt(),
      fc.date(),
      fc.uint8Array({ maxLength: 4 }),
      fc.jsonValue(),
    );
    const key = fc.oneof(fc.string(), fc.constantFrom('__proto__', 'level', '0', '17', 'iothub-connection-device-id'));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 12 }), (entries) => {
        // defineProperty, as the host's JSON does, so that a key `__proto__` is an own property of the input too.
        const map: Record<string, unknown> = {};
        for (const [k, v] of entries) Object.defineProperty(map, k, { value: v, enumerable: true, writable: true, configurable: true });
        const [message] = decodeEventHubBatch([Buffer.from('{}')], { systemPropertiesArray: [map], propertiesArray: [map] });
        for (const decoded of [message!.systemProperties, message!.properties]) {
          expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
          expect(Object.entries(decoded)).toEqual(Object.entries(toPropertyMap(map)));
        }
      }),
    );
  });

  it('uses a plain map of plain values as it is, without changing it', () => {
    const system = Object.freeze({ 'iothub-connection-device-id': 'd1', 'x-opt-sequence-number': 4, partitionKey: null });
    const [message] = decodeEventHubBatch([Buffer.from('{}')], { systemPropertiesArray: [system] });
    expect(message?.systemProperties).toBe(system);
    expect(message?.deviceId).toBe('d1');
  });

  it('leaves inherited properties out of the property maps, and a symbol-keyed one changes nothing read from them', () => {
    const inherited = Object.assign(Object.create({ level: 'inherited' }) as Record<string, unknown>, { own: 1 });
    const withSymbol = { level: 'critical', [Symbol('x')]: 'hidden' };
    const [message] = decodeEventHubBatch([Buffer.from('{}')], { systemPropertiesArray: [inherited], propertiesArray: [withSymbol] });
    expect(message?.systemProperties).toEqual({ own: 1 });
    expect(Object.keys(message!.properties)).toEqual(['level']);
    expect(JSON.stringify(message?.properties)).toBe('{"level":"critical"}');
    expect(lookupProperty(message!.properties, ['level'])).toBe('critical');
  });


  it('returns nothing for an empty batch, and never throws on metadata of any shape', () => {
    expect(decodeEventHubBatch([], eventHubTriggerMetadata)).toEqual([]);
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array(), fc.string(), fc.jsonValue())), fc.object(), (messages, metadata) => {
        expect(decodeEventHubBatch(messages, metadata)).toHaveLength(messages.length);
      }),
    );
    expect(decodeEventHubBatch([Buffer.from('x')], null as unknown as Record<string, unknown>)).toHaveLength(1);
  });
});
