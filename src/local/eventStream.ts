/**
 * IoT Hub's built-in endpoint (Event Hub-compatible) and the Functions host's Event Hubs trigger in front of it.
 *
 * Stream: N partitions (IoT Hub's default is 4); a message goes to the partition of its device id, so each device's
 * messages stay in order. Every event gets the partition's next sequence number and offset, and an Event Hubs
 * enqueued time a few milliseconds after IoT Hub's.
 *
 * Consumer, as the host runs it: one batch at a time per partition, at most `maxBatchSize` events (host.json
 * `maxEventBatchSize`, default 100). A batch that throws is retried under the function's retry policy; when the
 * retries are exhausted (or there is no policy) the host checkpoints anyway and moves on, so the batch is lost to
 * the stream — which is why the handlers quarantine bad input instead of throwing. Checkpoints are written where the
 * host's blob checkpoint store writes them (container `azure-webjobs-eventhub`, one blob per partition with
 * `offset` and `sequencenumber` metadata), so a restarted local runtime continues the sequence numbers.
 */
import { createHash } from 'node:crypto';
import type { BlobStore } from '../lib/ports.js';
import type { SimulatedClock } from './clock.js';
import type { HubEndpoint, HubMessage } from './hub.js';
import type { RetryPolicy } from './invoke.js';
import { Signal } from './signal.js';

export interface StreamEvent {
  partitionId: string;
  sequenceNumber: number;
  /** Byte position in the partition, as Event Hubs reports it (a decimal string). */
  offset: string;
  /** The Event Hubs enqueued time (`x-opt-enqueued-time`), just after IoT Hub's. */
  enqueuedTime: Date;
  message: HubMessage;
}

export interface PartitionContext {
  fullyQualifiedNamespace: string;
  eventHubName: string;
  consumerGroup: string;
  partitionId: string;
}

export interface EventStreamOptions {
  store: BlobStore;
  clock: SimulatedClock;
  partitionCount?: number;
  fullyQualifiedNamespace: string;
  eventHubName: string;
  consumerGroup: string;
  maxBatchSize?: number;
  /** Runs one batch; throws when the function threw. */
  process(context: PartitionContext, events: readonly StreamEvent[], retryCount: number, lastError: unknown): Promise<void>;
  retry: RetryPolicy | null;
  /** Told about each batch given up after its retries; the events are then checkpointed past. */
  onBatchLost?(context: PartitionContext, events: readonly StreamEvent[], error: unknown): void;
  onCheckpointError?(partitionId: string, error: unknown): void;
}

export interface EventStreamStats {
  events: number;
  batches: number;
  retries: number;
  /** Events in batches the host gave up on (checkpointed past without success). */
  lostEvents: number;
  checkpointed: number;
}

export const CHECKPOINT_CONTAINER = 'azure-webjobs-eventhub';
/** Milliseconds between IoT Hub's enqueued time and the Event Hubs one. */
const EVENT_HUB_LATENCY_MS = 5;

/** Partition of a device: a stable hash of the device id, so a device's messages always share one partition. */
export function partitionOf(deviceId: string, partitionCount: number): number {
  return createHash('sha256').update(deviceId).digest().readUInt32BE(0) % partitionCount;
}

export function checkpointBlobName(context: Omit<PartitionContext, 'partitionId'>, partitionId: string): string {
  return `${context.fullyQualifiedNamespace}/${context.eventHubName}/${context.consumerGroup}/checkpoint/${partitionId}`.toLowerCase();
}

interface Partition {
  context: PartitionContext;
  /** Not yet handed to the function, in order. */
  queue: StreamEvent[];
  nextSequenceNumber: number;
  nextOffset: number;
  busy: boolean;
}

export class EventStream implements HubEndpoint {
  readonly stats: EventStreamStats = { events: 0, batches: 0, retries: 0, lostEvents: 0, checkpointed: 0 };
  readonly partitions: readonly Partition[];
  readonly #options: EventStreamOptions;
  readonly #input = new Signal();
  readonly #progress = new Signal();
  readonly #stop = new AbortController();
  #pumps: Promise<void>[] = [];

  constructor(options: EventStreamOptions) {
    this.#options = options;
    const count = options.partitionCount ?? 4;
    if (!Number.isInteger(count) || count < 1 || count > 32) throw new RangeError(`partitionCount must be 1-32, got ${count}`);
    this.partitions = Array.from({ length: count }, (_, i) => ({
      context: {
        fullyQualifiedNamespace: options.fullyQualifiedNamespace,
        eventHubName: options.eventHubName,
        consumerGroup: options.consumerGroup,
        partitionId: String(i),
      },
      queue: [],
      nextSequenceNumber: 0,
      nextOffset: 0,
      busy: false,
    }));
  }

  /** Reads the checkpoints a previous run left, then starts one pump per partition. */
  async start(): Promise<void> {
    const { store } = this.#options;
    await store.ensureContainer(CHECKPOINT_CONTAINER);
    for (const partition of this.partitions) {
      const blob = await store.get(CHECKPOINT_CONTAINER, checkpointBlobName(partition.context, partition.context.partitionId));
      const sequence = Number(blob?.metadata['sequencenumber']);
      const offset = Number(blob?.metadata['offset']);
      if (Number.isSafeInteger(sequence) && sequence >= 0) partition.nextSequenceNumber = sequence + 1;
      if (Number.isSafeInteger(offset) && offset >= 0) partition.nextOffset = offset + 1;
    }
    this.#pumps = this.partitions.map((p) => this.#pump(p));
  }

  deliver(message: HubMessage): void {
    const partition = this.partitions[partitionOf(message.deviceId, this.partitions.length)]!;
    const size = message.body.byteLength + 256;
    partition.queue.push({
      partitionId: partition.context.partitionId,
      sequenceNumber: partition.nextSequenceNumber++,
      offset: String(partition.nextOffset),
      enqueuedTime: new Date(message.enqueuedTime.getTime() + EVENT_HUB_LATENCY_MS),
      message,
    });
    partition.nextOffset += size;
    this.stats.events++;
    this.#input.notify();
  }

  /** Events delivered but not yet checkpointed past. */
  get backlog(): number {
    return this.partitions.reduce((n, p) => n + p.queue.length + (p.busy ? 1 : 0), 0);
  }

  /** Resolves once every delivered event has been processed and checkpointed. */
  async drain(): Promise<void> {
    while (this.partitions.some((p) => p.queue.length > 0 || p.busy)) await this.#progress.wait();
  }

  /** Stops the pumps after their current batch; undelivered events stay unprocessed (and uncheckpointed). */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#input.notify();
    await Promise.all(this.#pumps);
  }

  async #pump(partition: Partition): Promise<void> {
    const signal = this.#stop.signal;
    const max = this.#options.maxBatchSize ?? 100;
    while (!signal.aborted) {
      if (partition.queue.length === 0) {
        await this.#input.wait(signal);
        continue;
      }
      partition.busy = true;
      const batch = partition.queue.splice(0, max);
      try {
        await this.#runWithRetries(partition, batch, signal);
        await this.#checkpoint(partition, batch);
      } finally {
        partition.busy = false;
        this.#progress.notify();
      }
    }
  }

  async #runWithRetries(partition: Partition, batch: StreamEvent[], signal: AbortSignal): Promise<void> {
    const { retry, clock } = this.#options;
    this.stats.batches++;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#options.process(partition.context, batch, attempt, lastError);
        return;
      } catch (error) {
        lastError = error;
        const canRetry = retry !== null && (retry.maxRetryCount < 0 || attempt < retry.maxRetryCount) && !signal.aborted;
        if (!canRetry) {
          this.stats.lostEvents += batch.length;
          this.#options.onBatchLost?.(partition.context, batch, error);
          return;
        }
        this.stats.retries++;
        await clock.sleep(retry.delayMs(attempt + 1), signal);
      }
    }
  }

  async #checkpoint(partition: Partition, batch: readonly StreamEvent[]): Promise<void> {
    const last = batch[batch.length - 1]!;
    try {
      // The host's checkpoint store overwrites the partition's blob: last writer wins by design (one owner).
      await this.#options.store.put(CHECKPOINT_CONTAINER, checkpointBlobName(partition.context, partition.context.partitionId), new Uint8Array(0), {
        metadata: { offset: last.offset, sequencenumber: String(last.sequenceNumber) },
      });
      this.stats.checkpointed += batch.length;
    } catch (error) {
      this.#options.onCheckpointError?.(partition.context.partitionId, error);
    }
  }
}
