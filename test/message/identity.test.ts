import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deviceScopedIdentity, identityOfDeviceScoped, messageIdentity } from '../../src/lib/message/identity.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';

type IdentityInput = Pick<RoutedMessage, 'deviceId' | 'messageId' | 'enqueuedTime' | 'body'>;

/** The definition, piece by piece, as identities were first computed: what every stored identity was made with. */
function definition(message: IdentityInput): string {
  const hash = createHash('sha256');
  hash.update(message.deviceId ?? '\u0000no-device');
  hash.update('\u0000');
  if (message.messageId !== undefined && message.messageId !== '') {
    hash.update('id\u0000');
    hash.update(message.messageId);
  } else {
    hash.update('content\u0000');
    hash.update(message.enqueuedTime === null ? 'no-time' : String(message.enqueuedTime.getTime()));
    hash.update('\u0000');
    hash.update(message.body);
  }
  return hash.digest('hex').slice(0, 32);
}

/** Any UTF-16 code units, lone surrogates included: device and message ids are whatever the device sent. */
const text = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 12 });

describe('messageIdentity', () => {
  it('keeps the identities already stored: fixed values for both forms', () => {
    expect(messageIdentity({ deviceId: 'thermostat-17', messageId: 'b8c5f0a2', enqueuedTime: null, body: new Uint8Array() })).toBe(
      '29e634eb368243f10ff34af99459580d',
    );
    expect(
      messageIdentity({
        deviceId: 'thermostat-17',
        enqueuedTime: new Date('2024-03-01T10:15:30.118Z'),
        body: Buffer.from('{"temperature":21.5}'),
      }),
    ).toBe('47850a600d5c0123e0e201e73a9c1760');
    expect(messageIdentity({ deviceId: null, enqueuedTime: null, body: Buffer.from('x') })).toBe('912202bf3e901e569095d2cd2d618812');
  });

  it('hashes the joined text to the same bytes as the pieces one by one, whatever the ids hold', () => {
    fc.assert(
      fc.property(
        fc.option(text, { nil: null }),
        fc.option(text, { nil: undefined }),
        fc.option(fc.integer({ min: -8.64e15, max: 8.64e15 }), { nil: null }),
        fc.uint8Array({ maxLength: 64 }),
        (deviceId, messageId, time, body) => {
          const message: IdentityInput = { deviceId, enqueuedTime: time === null ? null : new Date(time), body };
          if (messageId !== undefined) message.messageId = messageId;
          expect(messageIdentity(message)).toBe(definition(message));
        },
      ),
    );
  });
});

describe('identities of module messages (IoT Edge)', () => {
  const base = { deviceId: 'edge-1', enqueuedTime: new Date(0), body: new Uint8Array([1]) };

  it('keep two modules of one device apart when both count message ids from 1, and device messages unchanged', () => {
    const a = messageIdentity({ ...base, moduleId: 'sensorA', messageId: '1' });
    const b = messageIdentity({ ...base, moduleId: 'sensorB', messageId: '1' });
    const device = messageIdentity({ ...base, messageId: '1' });
    expect(new Set([a, b, device]).size).toBe(3);
    expect(device).toBe(definition({ ...base, messageId: '1' }));
    // The module stands for the device: as if `edge-1/sensorA` had sent it (no device or module id holds '/').
    expect(a).toBe(definition({ ...base, deviceId: 'edge-1/sensorA', messageId: '1' }));
    expect(messageIdentity({ ...base, moduleId: 'sensorA' })).toBe(definition({ ...base, deviceId: 'edge-1/sensorA' }));
  });

  it('scope within the device documents by module, and map back', () => {
    const message = { ...base, moduleId: 'sensorA', messageId: '7/x' };
    expect(deviceScopedIdentity(message)).toBe('mid:sensorA/7/x');
    expect(deviceScopedIdentity({ ...base, messageId: '7/x' })).toBe('id:7/x');
    expect(identityOfDeviceScoped('edge-1', 'mid:sensorA/7/x')).toBe(messageIdentity(message));
  });
});

describe('deviceScopedIdentity', () => {
  const input = fc.record({
    deviceId: text,
    messageId: fc.option(text, { nil: undefined }),
    enqueuedTime: fc.option(fc.date({ noInvalidDate: true }), { nil: null }),
    body: fc.uint8Array({ maxLength: 16 }),
  });

  it('is the message id itself when there is one, else the hash; and maps back to messageIdentity', () => {
    fc.assert(
      fc.property(input, (raw) => {
        const message: IdentityInput = { ...raw, ...(raw.messageId === undefined ? {} : { messageId: raw.messageId }) };
        const scoped = deviceScopedIdentity(message);
        if (message.messageId !== undefined && message.messageId !== '') expect(scoped).toBe(`id:${message.messageId}`);
        else expect(scoped).toBe(`h:${messageIdentity(message)}`);
        expect(identityOfDeviceScoped(raw.deviceId, scoped)).toBe(messageIdentity(message));
      }),
    );
  });

  it('keeps a message id that looks like a hash apart from a hash', () => {
    const hashed = messageIdentity({ deviceId: 'd', enqueuedTime: new Date(0), body: new Uint8Array([1]) });
    expect(deviceScopedIdentity({ deviceId: 'd', messageId: hashed, enqueuedTime: null, body: new Uint8Array(0) })).not.toBe(
      deviceScopedIdentity({ deviceId: 'd', enqueuedTime: new Date(0), body: new Uint8Array([1]) }),
    );
  });
});
