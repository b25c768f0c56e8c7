import { decodeDeclaredBody, plainBody } from './body.js';
import type { DecodedBody, MessageSource, PropertyValue, RoutedMessage } from './RoutedMessage.js';

/** The normalized message as printed by the CLI and returned by queries: plain JSON, times in ISO-8601 UTC. */
export interface MessageRecord {
  deviceId: string | null;
  moduleId?: string;
  messageId?: string;
  enqueuedTime: string | null;
  contentType?: string;
  contentEncoding?: string;
  properties: Record<string, PropertyValue>;
  systemProperties: Record<string, PropertyValue>;
  body: DecodedBody;
  source: MessageSource;
}

export function toMessageRecord(message: RoutedMessage): MessageRecord {
  const { source, ...fields } = messageFields(message);
  // `body` before `source`, as it has always been printed.
  return { ...fields, body: plainBody(message.decoded), source };
}

/** The record without its decoded body (the quarantine keeps the bytes instead, so a lazy body is not parsed). */
export function messageFields(message: RoutedMessage): Omit<MessageRecord, 'body'> {
  // Spelled out field by field so the printed key order is stable and optional fields are absent, not undefined.
  return {
    deviceId: message.deviceId,
    ...(message.moduleId !== undefined ? { moduleId: message.moduleId } : {}),
    ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
    enqueuedTime: message.enqueuedTime === null ? null : message.enqueuedTime.toISOString(),
    ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
    ...(message.contentEncoding !== undefined ? { contentEncoding: message.contentEncoding } : {}),
    properties: message.properties,
    systemProperties: message.systemProperties,
    source: message.source,
  };
}

/**
 * The message `messageFields` was taken from, with its body decoded again from `body` with today's rules: the
 * inverse that a quarantine replay needs. Bytes as the Event Hubs and Service Bus paths hand them over (no storage
 * base64 layer to restore).
 */
export function messageFromFields(fields: Omit<MessageRecord, 'body'>, body: Uint8Array): RoutedMessage {
  const message: RoutedMessage = {
    deviceId: fields.deviceId,
    enqueuedTime: fields.enqueuedTime === null ? null : new Date(fields.enqueuedTime),
    properties: fields.properties,
    systemProperties: fields.systemProperties,
    body,
    decoded: decodeDeclaredBody(body, fields.contentType, fields.contentEncoding, false),
    source: fields.source,
  };
  if (fields.moduleId !== undefined) message.moduleId = fields.moduleId;
  if (fields.messageId !== undefined) message.messageId = fields.messageId;
  if (fields.contentType !== undefined) message.contentType = fields.contentType;
  if (fields.contentEncoding !== undefined) message.contentEncoding = fields.contentEncoding;
  return message;
}
