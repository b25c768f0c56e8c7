/**
 * The critical-alerts Service Bus queue, in memory, with the peek-lock semantics the Functions host relies on:
 *
 * - a receiver locks the first available message (delivery count + 1) and hands it to the function;
 * - the function returns: the host completes the message (gone);
 * - the function throws: the host abandons it, the lock is released and the message is delivered again at once;
 * - when a delivery would exceed the queue's maximum delivery count (Service Bus default 10), the message moves to
 *   the dead-letter list with reason `MaxDeliveryCountExceeded` instead, and stays there for a person to look at.
 *
 * The host renews locks while a function runs (maxAutoLockRenewalDuration), so locks do not expire here. Receivers
 * run concurrently (host.json `maxConcurrentCalls`; 1-4 locally), so completion order is not delivery order.
 *
 * What IoT Hub puts on a routed message: the body is the device's bytes; the application properties are IoT Hub's
 * `iothub-*` ones (without `iothub-enqueuedtime`), the device's and the endpoint's enrichments; the device's
 * message id, correlation id and content type become the Service Bus message's own.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { SimulatedClock } from './clock.js';
import type { HubEndpoint, HubMessage } from './hub.js';
import { Signal } from './signal.js';

export interface QueuedMessage {
  sequenceNumber: number;
  messageId: string;
  correlationId?: string;
  contentType?: string;
  applicationProperties: Record<string, string>;
  body: Uint8Array;
  enqueuedTime: Date;
  expiresAt: Date;
  deliveryCount: number;
  /** Set while locked by a receiver. */
  lockToken?: string;
  /** The hub delivery this message came from. */
  source: HubMessage;
}

export interface DeadLetter {
  message: QueuedMessage;
  reason: 'MaxDeliveryCountExceeded';
  description: string;
  deadLetteredAt: Date;
}

export interface PeekLockQueueOptions {
  queueName: string;
  clock: SimulatedClock;
  /** Receivers running at once. Default 4. */
  concurrency?: number;
  /** Service Bus's MaxDeliveryCount. Default 10. */
  maxDeliveryCount?: number;
  /** Message time to live, for `expiresAtUtc`. Default 14 days (the Standard tier's default). */
  timeToLiveMs?: number;
  /** Runs one delivery; throwing abandons it. */
  process(message: QueuedMessage): Promise<void>;
  onDeadLetter?(entry: DeadLetter): void;
}

export interface QueueStats {
  enqueued: number;
  deliveries: number;
  completed: number;
  abandoned: number;
  deadLettered: number;
}

const TTL_MS = 14 * 86_400_000;

/** The Service Bus message id IoT Hub uses: the device's, else one derived from the message so re-sends share it. */
export function serviceBusMessageIdOf(message: HubMessage): string {
  if (message.messageId !== undefined && message.messageId !== '') return message.messageId;
  const hex = createHash('sha256')
    .update(message.deviceId)
    .update('\u0000')
    .update(message.enqueuedTime.toISOString())
    .update('\u0000')
    .update(message.body)
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Application properties of a message IoT Hub routes to Service Bus. */
export function serviceBusApplicationProperties(message: HubMessage): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(message.systemProperties)) {
    if (key.startsWith('iothub-') && key !== 'iothub-enqueuedtime') properties[key] = value;
  }
  return { ...properties, ...message.properties };
}

export class PeekLockQueue implements HubEndpoint {
  readonly stats: QueueStats = { enqueued: 0, deliveries: 0, completed: 0, abandoned: 0, deadLettered: 0 };
  readonly deadLetters: DeadLetter[] = [];
  readonly #options: PeekLockQueueOptions;
  readonly #available: QueuedMessage[] = [];
  readonly #locked = new Set<QueuedMessage>();
  readonly #input = new Signal();
  readonly #progress = new Signal();
  readonly #stop = new AbortController();
  #nextSequenceNumber = 1;
  #receivers: Promise<void>[] = [];

  constructor(options: PeekLockQueueOptions) {
    this.#options = options;
  }

  get name(): string {
    return this.#options.queueName;
  }

  get maxDeliveryCount(): number {
    return this.#options.maxDeliveryCount ?? 10;
  }

  start(): void {
    const concurrency = this.#options.concurrency ?? 4;
    this.#receivers = Array.from({ length: Math.max(1, concurrency) }, () => this.#receive());
  }

  deliver(message: HubMessage): void {
    const enqueuedTime = this.#options.clock.now();
    this.#available.push({
      sequenceNumber: this.#nextSequenceNumber++,
      messageId: serviceBusMessageIdOf(message),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
      applicationProperties: serviceBusApplicationProperties(message),
      body: message.body,
      enqueuedTime,
      expiresAt: new Date(enqueuedTime.getTime() + (this.#options.timeToLiveMs ?? TTL_MS)),
      deliveryCount: 0,
      source: message,
    });
    this.stats.enqueued++;
    this.#input.notify();
  }

  /** Active messages: available or locked. */
  get activeCount(): number {
    return this.#available.length + this.#locked.size;
  }

  async drain(): Promise<void> {
    while (this.activeCount > 0) await this.#progress.wait();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#input.notify();
    await Promise.all(this.#receivers);
  }

  async #receive(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const message = this.#available.shift();
      if (message === undefined) {
        await this.#input.wait(signal);
        continue;
      }
      message.deliveryCount++;
      message.lockToken = randomUUID();
      this.#locked.add(message);
      this.stats.deliveries++;
      try {
        await this.#options.process(message);
        this.stats.completed++;
      } catch (error) {
        this.stats.abandoned++;
        this.#abandon(message, error);
      } finally {
        this.#locked.delete(message);
        delete message.lockToken;
        this.#progress.notify();
      }
    }
  }

  #abandon(message: QueuedMessage, error: unknown): void {
    if (message.deliveryCount >= this.maxDeliveryCount) {
      const entry: DeadLetter = {
        message,
        reason: 'MaxDeliveryCountExceeded',
        description: `delivered ${message.deliveryCount} times; last error: ${error instanceof Error ? error.message : String(error)}`,
        deadLetteredAt: this.#options.clock.now(),
      };
      this.deadLetters.push(entry);
      this.stats.deadLettered++;
      this.#options.onDeadLetter?.(entry);
      return;
    }
    // Abandon releases the lock: the message is the oldest available one again.
    this.#available.unshift(message);
    this.#input.notify();
  }
}
