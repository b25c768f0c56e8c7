import { createHash } from 'node:crypto';
import type { RoutedMessage } from './RoutedMessage.js';

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
 */
export function messageIdentity(message: Pick<RoutedMessage, 'deviceId' | 'messageId' | 'enqueuedTime' | 'body'>): string {
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
  // 128 bits: collisions are not a practical concern and the names stay short in blob paths.
  return hash.digest('hex').slice(0, 32);
}
