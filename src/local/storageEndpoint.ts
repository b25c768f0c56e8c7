/**
 * IoT Hub's storage (blob container) endpoint: messages are batched per hub partition and, every batch frequency,
 * each partition's batch is written as one blob named by the endpoint's file name format (default
 * `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}`, the minute the batch started), in Avro (record
 * `Microsoft.Azure.Devices.Message`) or IoT Hub's JSON lines. A partition with no messages in a period still gets
 * a blob, an empty one, as IoT Hub writes.
 *
 * Encodings, as IoT Hub writes them:
 * - Avro: `EnqueuedTimeUtc` as ISO-8601 with seven fractional digits, `Properties` (application properties and
 *   enrichments) and `SystemProperties` (`connectionDeviceId`, `connectionAuthMethod`,
 *   `connectionDeviceGenerationId`, `contentType`, `contentEncoding`, `enqueuedTime`, `messageId`, ...) as string
 *   maps, `Body` as bytes;
 * - JSON: one object per line with the same fields; `Body` is the JSON value itself when the message declared
 *   `contentType=application/json` and `contentEncoding=UTF-8`, base64 of the bytes otherwise.
 *
 * After each write the runtime is told, as the blob trigger would notice the new blob.
 */
import { createHash } from 'node:crypto';
import avro from 'avsc';
import type { ArchiveEncoding } from '../lib/archive/config.js';
import type { FileNameFormat } from '../lib/archive/fileNameFormat.js';
import type { BlobStore } from '../lib/ports.js';
import type { SimulatedClock } from './clock.js';
import { partitionOf } from './eventStream.js';
import type { HubEndpoint, HubMessage } from './hub.js';

export const IOTHUB_AVRO_SCHEMA = {
  type: 'record',
  name: 'Message',
  namespace: 'Microsoft.Azure.Devices',
  fields: [
    { name: 'EnqueuedTimeUtc', type: 'string' },
    { name: 'Properties', type: { type: 'map', values: 'string' } },
    { name: 'SystemProperties', type: { type: 'map', values: 'string' } },
    { name: 'Body', type: ['null', 'bytes'] },
  ],
};

export interface WrittenBlob {
  container: string;
  name: string;
  etag: string;
  body: Buffer;
  records: number;
  partition: string;
  /** The hub deliveries it holds, in order. */
  messages: readonly HubMessage[];
}

export interface StorageEndpointOptions {
  store: BlobStore;
  clock: SimulatedClock;
  container: string;
  iotHubName: string;
  format: FileNameFormat;
  encoding: ArchiveEncoding;
  batchFrequencySeconds: number;
  partitionCount: number;
  /**
   * How far the hub has got in simulated time: every message due before it has been delivered. The period timer
   * closes periods up to here only, so a process running behind its clock never closes a period early. Default:
   * the clock.
   */
  progressMs?(): number;
  /** Called after each blob is written (the blob trigger's cue). */
  onBlob(blob: WrittenBlob): void;
  onWriteError?(partition: string, error: unknown): void;
}

export interface StorageEndpointStats {
  blobs: number;
  emptyBlobs: number;
  records: number;
  bytes: number;
}

/** `2024-05-01T12:00:00.1230000Z`: IoT Hub's seven fractional digits (the last four are always zero here). */
export function iotHubTime(date: Date): string {
  return `${date.toISOString().slice(0, 23)}0000Z`;
}

/** The system properties map IoT Hub writes to storage, under its storage names. */
export function storageSystemProperties(message: HubMessage): Record<string, string> {
  const system = message.systemProperties;
  const out: Record<string, string> = {
    connectionDeviceId: message.deviceId,
    connectionAuthMethod: system['iothub-connection-auth-method'] ?? '',
    connectionDeviceGenerationId: system['iothub-connection-auth-generation-id'] ?? '',
  };
  if (message.moduleId !== undefined) out['connectionModuleId'] = message.moduleId;
  if (message.contentType !== undefined) out['contentType'] = message.contentType;
  if (message.contentEncoding !== undefined) out['contentEncoding'] = message.contentEncoding;
  out['enqueuedTime'] = iotHubTime(message.enqueuedTime);
  if (message.messageId !== undefined) out['messageId'] = message.messageId;
  if (message.correlationId !== undefined) out['correlationId'] = message.correlationId;
  return out;
}

export async function encodeAvro(messages: readonly HubMessage[], syncMarker: Buffer): Promise<Buffer> {
  const encoder = new avro.streams.BlockEncoder(IOTHUB_AVRO_SCHEMA as unknown as avro.Schema, {
    codec: 'null',
    syncMarker,
    writeHeader: 'always',
  });
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
    encoder.on('end', resolve);
    encoder.on('error', reject);
  });
  for (const message of messages) {
    encoder.write({
      EnqueuedTimeUtc: iotHubTime(message.enqueuedTime),
      Properties: message.properties,
      SystemProperties: storageSystemProperties(message),
      Body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength),
    });
  }
  encoder.end();
  await done;
  return Buffer.concat(chunks);
}

function declaresUtf8Json(message: HubMessage): boolean {
  const type = message.contentType?.split(';')[0]?.trim().toLowerCase();
  const encoding = message.contentEncoding?.trim().toLowerCase();
  return type === 'application/json' && (encoding === 'utf-8' || encoding === 'utf8');
}

export function encodeJsonLines(messages: readonly HubMessage[]): Buffer {
  const lines = messages.map((message) => {
    const bytes = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    let body: unknown = bytes.toString('base64');
    if (declaresUtf8Json(message)) {
      try {
        body = JSON.parse(bytes.toString('utf8')) as unknown;
      } catch {
        // Declared JSON that does not parse cannot be written as a JSON value; its bytes are kept instead.
      }
    }
    return JSON.stringify({
      EnqueuedTimeUtc: iotHubTime(message.enqueuedTime),
      Properties: message.properties,
      SystemProperties: storageSystemProperties(message),
      Body: body,
    });
  });
  return Buffer.from(lines.length === 0 ? '' : `${lines.join('\n')}\n`, 'utf8');
}

interface Batch {
  startMs: number;
  messages: HubMessage[];
}

const MINUTE_MS = 60_000;
/** Minutes a batch name may move forward when a previous run already used its minute. */
const NAME_ATTEMPTS = 5;

/**
 * Periods are global and follow simulated time: a copy that reaches the endpoint at or after the current period's
 * end closes the period (every partition's batch is written, empty ones included) before it joins the next one. A
 * timer closes periods in which nothing arrived. Going by arrival time rather than by when a timer fires keeps the
 * blobs the same at any speed-up, even when a busy process runs its timers late.
 */
export class StorageEndpoint implements HubEndpoint {
  readonly stats: StorageEndpointStats = { blobs: 0, emptyBlobs: 0, records: 0, bytes: 0 };
  readonly #options: StorageEndpointOptions;
  readonly #batches: HubMessage[][];
  readonly #periodMs: number;
  #periodStartMs: number;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: StorageEndpointOptions) {
    this.#options = options;
    this.#periodMs = options.batchFrequencySeconds * 1000;
    this.#periodStartMs = options.clock.nowMs();
    this.#batches = Array.from({ length: options.partitionCount }, () => []);
  }

  start(): void {
    this.#loop = this.#run();
  }

  deliver(message: HubMessage): void {
    this.#rollTo(message.deliveredAt.getTime());
    this.#batches[partitionOf(message.deviceId, this.#batches.length)]!.push(message);
  }

  /** Messages waiting for their batch to be written. */
  get pending(): number {
    return this.#batches.reduce((n, b) => n + b.length, 0);
  }

  /** Resolves when every closed batch has been written (and its blob trigger cued). */
  flushed(): Promise<void> {
    return this.#writing;
  }

  /** Stops the period timer and writes the batches of the open period that hold messages. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#close(false);
    await this.#writing;
  }

  /** Closes every period that ends at or before `ms`. */
  #rollTo(ms: number): void {
    while (ms >= this.#periodStartMs + this.#periodMs) {
      this.#close(true);
      this.#periodStartMs += this.#periodMs;
    }
  }

  #close(includeEmpty: boolean): void {
    const startMs = this.#periodStartMs;
    const due = this.#batches.map((messages, i) => ({ batch: { startMs, messages: [...messages] }, partition: String(i) }));
    for (const messages of this.#batches) messages.length = 0;
    const write = async () => {
      for (const { batch, partition } of due) {
        if (batch.messages.length === 0 && !includeEmpty) continue;
        await this.#write(partition, batch);
      }
    };
    // Writes are serialised so that blob names and trigger cues keep the order batches were closed in.
    this.#writing = this.#writing.then(write, write);
  }

  async #run(): Promise<void> {
    const { clock } = this.#options;
    while (!this.#stop.signal.aborted) {
      await clock.sleepUntil(this.#periodStartMs + this.#periodMs, this.#stop.signal);
      if (this.#stop.signal.aborted) break;
      this.#rollTo(Math.min(clock.nowMs(), this.#options.progressMs?.() ?? Number.POSITIVE_INFINITY));
      await this.#writing;
      // Behind the clock: wait for the hub to catch up rather than spin.
      if (clock.nowMs() >= this.#periodStartMs + this.#periodMs) await clock.sleep(this.#periodMs / 10, this.#stop.signal);
    }
  }

  async #write(partition: string, batch: Batch): Promise<void> {
    const { store, container, format, iotHubName, encoding } = this.#options;
    try {
      for (let attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        const name = format.format({ iothub: iotHubName, partition, minute: batch.startMs + attempt * MINUTE_MS });
        const body =
          batch.messages.length === 0
            ? Buffer.alloc(0)
            : encoding === 'avro'
              ? await encodeAvro(batch.messages, createHash('sha256').update(name).digest().subarray(0, 16))
              : encodeJsonLines(batch.messages);
        // IoT Hub never rewrites a batch blob; a name taken by an earlier run (a restart within the same minute)
        // moves this batch to the next minute rather than overwrite what was archived.
        const created = await store.create(container, name, body, {
          contentType: encoding === 'avro' ? 'application/octet-stream' : 'application/json',
        });
        if (!created.created) continue;
        this.stats.blobs++;
        if (batch.messages.length === 0) this.stats.emptyBlobs++;
        this.stats.records += batch.messages.length;
        this.stats.bytes += body.byteLength;
        this.#options.onBlob({
          container,
          name,
          etag: created.etag,
          body,
          records: batch.messages.length,
          partition,
          messages: batch.messages,
        });
        return;
      }
      throw new Error(`no free blob name for partition ${partition} within ${NAME_ATTEMPTS} minutes of the batch start`);
    } catch (error) {
      this.#options.onWriteError?.(partition, error);
    }
  }
}
