import * as crypto from 'node:crypto';
import type { RoutedMessage } from './RoutedMessage.js';

type OneShotHash = (algorithm: string, data: string | Uint8Array, outputEncoding: 'hex') => string;

/**
 * `crypto.hash` (Node 20.12+) hashes in one native call, without the Hash object `createHash` builds and the
 * native round trip each `update` costs: a third of the time on the telemetry path, where every message is hashed.
 * Read from the namespace so that an older Node 20 falls back instead of failing to link.
 */
const oneShot = (crypto as { hash?: OneShotHash }).hash;

function sha256Hex(data: string | Uint8Array): string {
  return oneShot !== undefined ? oneShot('sha256', data, 'hex') : crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * The identity every effectively-once side effect is keyed by (DESIGN.md section 4).
 *
 * - With a device `message-id`: hash of device id and message id. Message ids are only unique per device
 *   (many devices count from 1), so the device id is part of it.
 * - Without one: hash of device id, enqueued time and body. IoT Hub stamps the enqueued time once at ingestion,
 *   so its re-sends and every endpoint's replays carry the same value.
 *
 * Never random and never a partition offset or sequence number: those change on failover and on re-send, which
 * would turn every replay into a new record.
 *
 * - A module's message (IoT Edge) is its module's: `{device}/{module}` stands for the device in both forms, since
 *   modules of one device count their message ids independently. Device and module ids cannot hold `/`.
 *
 * The hashed bytes are the UTF-8 of `{device}\0id\0{message id}`, or of `{device}\0content\0{time}\0` followed by the
 * body. Every joint has an ASCII character on one side, so encoding the joined text gives the same bytes as encoding
 * the pieces one by one (a lone surrogate cannot pair up across a joint): identities stored before are unchanged.
 */
export function messageIdentity(message: Pick<RoutedMessage, 'deviceId' | 'messageId' | 'enqueuedTime' | 'body'> & { moduleId?: string | undefined }): string {
  const device = senderKey(message.deviceId ?? '\u0000no-device', moduleOf(message));
  let digest: string;
  if (message.messageId !== undefined && message.messageId !== '') {
    digest = sha256Hex(`${device}\u0000id\u0000${message.messageId}`);
  } else {
    const time = message.enqueuedTime === null ? 'no-time' : String(message.enqueuedTime.getTime());
    const prefix = `${device}\u0000content\u0000${time}\u0000`;
    const prefixBytes = Buffer.byteLength(prefix, 'utf8');
    const data = Buffer.allocUnsafe(prefixBytes + message.body.byteLength);
    data.write(prefix, 0, 'utf8');
    data.set(message.body, prefixBytes);
    digest = sha256Hex(data);
  }
  // 128 bits: collisions are not a practical concern and the names stay short in blob paths.
  return digest.slice(0, 32);
}

/**
 * The identity of a message within documents that belong to its device (window partials): the device's
 * `message-id` itself when it set one, since the device id is implied there, else `messageIdentity`. The same
 * duplicates are recognised as with `messageIdentity`, without hashing on the hot path; the prefixes keep a
 * message id that looks like a hash from meeting one.
 */
export function deviceScopedIdentity(message: Pick<RoutedMessage, 'deviceId' | 'moduleId' | 'messageId' | 'enqueuedTime' | 'body'>): string {
  const id = message.messageId;
  if (id === undefined || id === '') return `h:${messageIdentity(message)}`;
  const module = moduleOf(message);
  return module === undefined ? `id:${id}` : `mid:${module}/${id}`;
}

/**
 * What a module's message was scoped as before identities named the module; undefined for a device's message.
 * Readers of documents written before that change look it up too, so a message in flight across the upgrade (a
 * replayed batch, a redelivered alert) is found as the duplicate it is. In those documents two modules' message 1
 * still meet, as they did when they were written.
 */
export function legacyDeviceScopedIdentity(message: Pick<RoutedMessage, 'deviceId' | 'moduleId' | 'messageId' | 'enqueuedTime' | 'body'>): string | undefined {
  if (moduleOf(message) === undefined) return undefined;
  return deviceScopedIdentity({ deviceId: message.deviceId, messageId: message.messageId, enqueuedTime: message.enqueuedTime, body: message.body });
}

/** {@link messageIdentity} as it was before identities named the module; undefined for a device's message. */
export function legacyMessageIdentity(message: Pick<RoutedMessage, 'deviceId' | 'moduleId' | 'messageId' | 'enqueuedTime' | 'body'>): string | undefined {
  if (moduleOf(message) === undefined) return undefined;
  return messageIdentity({ deviceId: message.deviceId, messageId: message.messageId, enqueuedTime: message.enqueuedTime, body: message.body });
}

/** The `messageIdentity` of the message that `deviceId`'s documents list as `scoped` (see `deviceScopedIdentity`). */
export function identityOfDeviceScoped(deviceId: string, scoped: string): string {
  if (scoped.startsWith('h:')) return scoped.slice(2);
  const empty = { enqueuedTime: null, body: new Uint8Array(0) };
  if (scoped.startsWith('mid:')) {
    const slash = scoped.indexOf('/');
    return messageIdentity({ deviceId, moduleId: scoped.slice(4, slash), messageId: scoped.slice(slash + 1), ...empty });
  }
  const messageId = scoped.startsWith('id:') ? scoped.slice(3) : scoped;
  return messageIdentity({ deviceId, messageId, ...empty });
}

/**
 * The IoT Edge module that sent a message, or undefined for a device's own message. An empty module id is no
 * module: every rule that tells a module's message from its device's (identities, twins, hints) asks this.
 */
export function moduleOf(message: { moduleId?: string | undefined }): string | undefined {
  const module = message.moduleId;
  return module === undefined || module === '' ? undefined : module;
}

/**
 * What stands for the sender in an identity, and keys its twin: the device, or its module (as `moduleOf` gives it)
 * as `{device}/{module}`. Device and module ids cannot hold `/`, so a module never meets its device or another
 * device's module.
 */
export function senderKey(device: string, module: string | undefined): string {
  return module === undefined ? device : `${device}/${module}`;
}
