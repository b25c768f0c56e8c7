/**
 * Operations on a queue's dead-letter queue: list, show, resubmit to the main queue, purge.
 *
 * Critical alerts land here when the e-mail service is down long enough for a message to exceed the queue's
 * maximum delivery count (10 by default). Nothing drains a dead-letter queue on its own, so these are the operator's
 * tools to see why and to send the messages round again once the cause is fixed.
 *
 * Resubmit and purge act on the messages present when they start (found by peeking), never on whatever arrives
 * while they run: if the cause is not fixed, resubmitted copies dead-letter again, and an "everything" loop would
 * chase them for ever.
 */
import type {
  ServiceBusClient,
  ServiceBusReceivedMessage,
  ServiceBusReceiver,
  ServiceBusReceiverOptions,
} from '@azure/service-bus';
import Long from 'long';
import { RoutingError } from '../errors.js';

/** Application property on a resubmitted copy: how many times it has been sent round. A loop shows as a growing count. */
export const RESUBMIT_COUNT_PROPERTY = 'iot-routing-resubmit-count';
/** IoT Hub stamps the sending device on every routed message. */
export const DEVICE_ID_PROPERTY = 'iothub-connection-device-id';
/** Stamped on a copy when the original lacked it; see `resubmissionOf`. */
export const ENQUEUED_TIME_PROPERTY = 'iothub-enqueuedtime';
/** Where Service Bus records why it dead-lettered a message; stale on a resubmitted copy, so not copied. */
const DEAD_LETTER_PROPERTIES = new Set(['DeadLetterReason', 'DeadLetterErrorDescription']);

const PEEK_PAGE = 100;
const RECEIVE_PAGE = 50;
const DEFAULT_RECEIVE_WAIT_MS = 5_000;
const DEFAULT_PREVIEW_CHARS = 2_000;

type AmqpAnnotatedMessage = ServiceBusReceivedMessage['_rawAmqpMessage'];

export interface DeadLetterSummary {
  /** 64-bit in Service Bus, so a bigint here. */
  sequenceNumber: bigint;
  messageId: string | undefined;
  deadLetterReason: string | undefined;
  deadLetterErrorDescription: string | undefined;
  deviceId: string | undefined;
  enqueuedTime: Date | undefined;
  deliveryCount: number | undefined;
  /** 0 for a message never resubmitted by this tool. */
  resubmitCount: number;
}

export interface BodyPreview {
  /** The AMQP body section: IoT Hub always routes `data` (bytes). */
  bodyType: 'data' | 'sequence' | 'value';
  /** Bytes in a data body; undefined for value and sequence bodies. */
  sizeInBytes: number | undefined;
  /** `utf8` when the bytes are valid text, `base64` otherwise, `json` for value and sequence bodies. */
  encoding: 'utf8' | 'base64' | 'json';
  preview: string;
  truncated: boolean;
}

export interface DeadLetterDetail extends DeadLetterSummary {
  deadLetterSource: string | undefined;
  contentType: string | undefined;
  correlationId: string | undefined;
  subject: string | undefined;
  /** Every application property, IoT Hub's `iothub-*` ones and enrichments included, as Service Bus holds them. */
  applicationProperties: Record<string, unknown>;
  body: BodyPreview;
}

export interface ListOptions {
  /** Stop after this many messages. Default 100. */
  max?: number;
}

export interface ShowOptions {
  /** Characters of body shown. Default 2000. */
  previewChars?: number;
}

export type Selection = { sequenceNumbers: readonly bigint[] } | { all: true };

export interface SettleOptions {
  /**
   * How long a receive waits for the next message before the rest of the selection counts as missing (removed
   * meanwhile, or locked by another receiver). Only reached when something selected is not delivered. Default 5 s.
   */
  receiveWaitMs?: number;
  /** With `all`, act on at most this many messages. Default: all of them. */
  max?: number;
}

export interface ResubmittedMessage {
  /** The dead letter's sequence number; the copy gets a new one in the main queue. */
  sequenceNumber: bigint;
  messageId: string | undefined;
  resubmitCount: number;
}

export interface ResubmitResult {
  resubmitted: ResubmittedMessage[];
  /** Selected sequence numbers that were not delivered: no longer in the dead-letter queue, or locked elsewhere. */
  missing: bigint[];
}

export interface PurgeResult {
  purged: Array<{ sequenceNumber: bigint; messageId: string | undefined }>;
  missing: bigint[];
}

/** Dead-letter receivers see bodies and properties exactly as stored: no JSON parsing, no Date-to-number conversion. */
const DEAD_LETTER_RECEIVER: ServiceBusReceiverOptions = {
  subQueueType: 'deadLetter',
  receiveMode: 'peekLock',
  skipParsingBodyAsJson: true,
  skipConvertingDate: true,
};

export function deadLetterQueuePath(queue: string): string {
  return `${queue}/$DeadLetterQueue`;
}

/** Lists dead letters in sequence order by peeking: nothing is locked, received or changed. */
export async function listDeadLetters(client: ServiceBusClient, queue: string, options: ListOptions = {}): Promise<DeadLetterSummary[]> {
  const max = options.max ?? 100;
  const receiver = client.createReceiver(queue, DEAD_LETTER_RECEIVER);
  try {
    return (await peekAll(receiver, max)).map(summarize);
  } finally {
    await receiver.close();
  }
}

/** One dead letter with all its properties and a body preview, or undefined when no message has that number. */
export async function showDeadLetter(
  client: ServiceBusClient,
  queue: string,
  sequenceNumber: bigint,
  options: ShowOptions = {},
): Promise<DeadLetterDetail | undefined> {
  const receiver = client.createReceiver(queue, DEAD_LETTER_RECEIVER);
  try {
    // Peek returns the first message at or after the number, so a gap gives the next message: check it is this one.
    const [message] = await receiver.peekMessages(1, { fromSequenceNumber: toLong(sequenceNumber) });
    if (message === undefined || sequenceNumberOf(message) !== sequenceNumber) return undefined;
    return detail(message, options.previewChars ?? DEFAULT_PREVIEW_CHARS);
  } finally {
    await receiver.close();
  }
}

/**
 * Sends a copy of each selected dead letter to the main queue, then completes the dead letter.
 *
 * Invariant (at-least-once): a dead letter is completed only after its copy is accepted by the main queue. A crash
 * or lost lock between the two leaves the dead letter in place and the copy on the queue, and a later resubmit
 * sends it again. That duplicate is harmless: the copy keeps the original's message id (and enqueued time, see
 * `resubmissionOf`), which is what the alert ledger keys on, so the second delivery is suppressed as a duplicate
 * rather than e-mailed twice. The reverse order could lose the alert.
 */
export async function resubmit(
  client: ServiceBusClient,
  queue: string,
  selection: Selection,
  options: SettleOptions = {},
): Promise<ResubmitResult> {
  const targets = await resolveSelection(client, queue, selection, options.max);
  const sender = client.createSender(queue);
  const resubmitted: ResubmittedMessage[] = [];
  try {
    const missing = await settleSelected(client, queue, targets, options, async (message, receiver) => {
      const copy = resubmissionOf(message);
      await sender.sendMessages(copy);
      await receiver.completeMessage(message);
      resubmitted.push({
        sequenceNumber: sequenceNumberOf(message) ?? 0n,
        messageId: text(message.messageId),
        resubmitCount: Number(copy.applicationProperties?.[RESUBMIT_COUNT_PROPERTY]),
      });
    });
    return { resubmitted, missing };
  } finally {
    await sender.close();
  }
}

/** Deletes the selected dead letters (all of them by default). `confirm: true` is the caller's explicit consent. */
export async function purge(
  client: ServiceBusClient,
  queue: string,
  options: SettleOptions & { confirm: true; sequenceNumbers?: readonly bigint[] },
): Promise<PurgeResult> {
  if ((options as { confirm?: unknown }).confirm !== true) {
    throw new RoutingError('UsageInvalid', `purge of ${deadLetterQueuePath(queue)} needs explicit confirmation`);
  }
  const selection: Selection = options.sequenceNumbers === undefined ? { all: true } : { sequenceNumbers: options.sequenceNumbers };
  const targets = await resolveSelection(client, queue, selection, options.max);
  const purged: PurgeResult['purged'] = [];
  const missing = await settleSelected(client, queue, targets, options, async (message, receiver) => {
    await receiver.completeMessage(message);
    purged.push({ sequenceNumber: sequenceNumberOf(message) ?? 0n, messageId: text(message.messageId) });
  });
  return { purged, missing };
}

/**
 * The copy sent to the main queue: body and body type, message id, correlation id, content type and the other AMQP
 * properties, and every application property, as the device and IoT Hub set them. Changed: the dead-letter reason
 * and description are dropped (they describe the old failure; Service Bus sets fresh ones if it fails again),
 * `iot-routing-resubmit-count` goes up by one, and `iothub-enqueuedtime` is stamped from the original's enqueued
 * time when IoT Hub did not set it. Without a device message id the alert identity hashes the enqueued time, and
 * the copy's own enqueued time is new, so the stamp keeps the copy's identity equal to the original's.
 * Not copied: broker annotations (sequence number, locks) and the time-to-live, which would restart from now; the
 * queue's default applies.
 */
export function resubmissionOf(message: ServiceBusReceivedMessage): AmqpAnnotatedMessage {
  const raw = message._rawAmqpMessage;
  const applicationProperties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message.applicationProperties ?? {})) {
    if (!DEAD_LETTER_PROPERTIES.has(key)) applicationProperties[key] = value;
  }
  applicationProperties[RESUBMIT_COUNT_PROPERTY] = resubmitCountOf(message) + 1;
  if (applicationProperties[ENQUEUED_TIME_PROPERTY] === undefined && message.enqueuedTimeUtc !== undefined) {
    applicationProperties[ENQUEUED_TIME_PROPERTY] = message.enqueuedTimeUtc.toISOString();
  }
  const { absoluteExpiryTime: _expiry, creationTime: _created, ...properties } = raw.properties ?? {};
  return {
    body: message.body,
    bodyType: raw.bodyType ?? 'data',
    properties,
    applicationProperties: applicationProperties as AmqpAnnotatedMessage['applicationProperties'],
  };
}

// ---------------------------------------------------------------------------------------------------------------

async function peekAll(receiver: ServiceBusReceiver, max: number): Promise<ServiceBusReceivedMessage[]> {
  const messages: ServiceBusReceivedMessage[] = [];
  // An explicit starting point every time: without one the SDK continues from the last peek on this connection.
  let from = Long.fromNumber(0);
  while (messages.length < max) {
    const page = await receiver.peekMessages(Math.min(PEEK_PAGE, max - messages.length), { fromSequenceNumber: from });
    const last = page.at(-1);
    if (last?.sequenceNumber === undefined) break;
    messages.push(...page);
    from = last.sequenceNumber.add(1);
  }
  return messages;
}

async function resolveSelection(client: ServiceBusClient, queue: string, selection: Selection, max: number | undefined): Promise<Set<bigint>> {
  if ('sequenceNumbers' in selection) return new Set(selection.sequenceNumbers);
  const present = await listDeadLetters(client, queue, { max: max ?? Number.POSITIVE_INFINITY });
  return new Set(present.map((message) => message.sequenceNumber));
}

/**
 * Receives from the dead-letter queue in peek-lock until every target has been acted on, or a receive comes back
 * empty. Messages that are not targets stay locked by us until the end, so the scan never receives them twice,
 * and are then abandoned so they are available at once rather than when their locks expire.
 */
async function settleSelected(
  client: ServiceBusClient,
  queue: string,
  targets: ReadonlySet<bigint>,
  options: SettleOptions,
  act: (message: ServiceBusReceivedMessage, receiver: ServiceBusReceiver) => Promise<void>,
): Promise<bigint[]> {
  const remaining = new Set(targets);
  if (remaining.size === 0) return [];
  const receiver = client.createReceiver(queue, DEAD_LETTER_RECEIVER);
  const skipped: ServiceBusReceivedMessage[] = [];
  try {
    while (remaining.size > 0) {
      const batch = await receiver.receiveMessages(Math.min(remaining.size, RECEIVE_PAGE), {
        maxWaitTimeInMs: options.receiveWaitMs ?? DEFAULT_RECEIVE_WAIT_MS,
      });
      if (batch.length === 0) break;
      for (const [index, message] of batch.entries()) {
        const sequenceNumber = sequenceNumberOf(message);
        if (sequenceNumber === undefined || !remaining.has(sequenceNumber)) {
          skipped.push(message);
          continue;
        }
        try {
          await act(message, receiver);
        } catch (error) {
          skipped.push(...batch.slice(index));
          throw error;
        }
        remaining.delete(sequenceNumber);
      }
    }
    return [...remaining].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } finally {
    // Best effort: a lock that cannot be handed back expires on its own.
    await Promise.allSettled(skipped.map((message) => receiver.abandonMessage(message)));
    await receiver.close();
  }
}

function summarize(message: ServiceBusReceivedMessage): DeadLetterSummary {
  const deviceId = message.applicationProperties?.[DEVICE_ID_PROPERTY];
  return {
    sequenceNumber: sequenceNumberOf(message) ?? 0n,
    messageId: text(message.messageId),
    deadLetterReason: message.deadLetterReason,
    deadLetterErrorDescription: message.deadLetterErrorDescription,
    deviceId: typeof deviceId === 'string' ? deviceId : undefined,
    enqueuedTime: message.enqueuedTimeUtc,
    deliveryCount: message.deliveryCount,
    resubmitCount: resubmitCountOf(message),
  };
}

function detail(message: ServiceBusReceivedMessage, previewChars: number): DeadLetterDetail {
  return {
    ...summarize(message),
    deadLetterSource: message.deadLetterSource,
    contentType: message.contentType,
    correlationId: text(message.correlationId),
    subject: message.subject,
    applicationProperties: { ...message.applicationProperties },
    body: previewBody(message, previewChars),
  };
}

export function previewBody(message: Pick<ServiceBusReceivedMessage, 'body' | '_rawAmqpMessage'>, previewChars: number): BodyPreview {
  const bodyType = message._rawAmqpMessage.bodyType ?? 'data';
  const body: unknown = message.body;
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    const bytes = Buffer.from(body);
    const decoded = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    // Valid UTF-8 without control characters (other than whitespace) reads as text; anything else as base64.
    const isText = Buffer.from(decoded, 'utf8').equals(bytes) && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(decoded);
    const full = isText ? decoded : bytes.toString('base64');
    return { bodyType, sizeInBytes: bytes.length, encoding: isText ? 'utf8' : 'base64', ...truncate(full, previewChars) };
  }
  return { bodyType, sizeInBytes: undefined, encoding: 'json', ...truncate(JSON.stringify(body) ?? String(body), previewChars) };
}

function truncate(full: string, chars: number): { preview: string; truncated: boolean } {
  return full.length > chars ? { preview: full.slice(0, chars), truncated: true } : { preview: full, truncated: false };
}

function resubmitCountOf(message: Pick<ServiceBusReceivedMessage, 'applicationProperties'>): number {
  const value = Number(message.applicationProperties?.[RESUBMIT_COUNT_PROPERTY] ?? 0);
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}

function sequenceNumberOf(message: ServiceBusReceivedMessage): bigint | undefined {
  return message.sequenceNumber === undefined ? undefined : BigInt(message.sequenceNumber.toString());
}

function toLong(value: bigint): Long {
  return Long.fromString(value.toString());
}

function text(value: string | number | Buffer | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Buffer.isBuffer(value) ? value.toString('hex') : String(value);
}
