/**
 * Blob triggers: every blob the storage endpoint writes is offered to each `app.storageBlob` registration whose
 * path selects it, as the host notices a new blob (immediately here, like the Event Grid source; the polling
 * source can take minutes in Azure). Invocations run one at a time per function, in the order the blobs were
 * written.
 *
 * Failures follow the host's blob trigger, which has no retry policy of its own: a throw is retried up to
 * `maxDequeueCount` times in all (host.json `queues.maxDequeueCount`, default 5), then the blob is recorded as
 * poison (the host writes it to the `webjobs-blobtrigger-poison` queue) and not tried again.
 */
import type { Registration } from './registrations.js';
import { Signal } from './signal.js';
import { matchBlobPath, type BlobInfo } from './triggers.js';

export interface BlobTriggerRun {
  registration: Registration;
  blob: BlobInfo;
  bindings: Record<string, string>;
  /** 1 on the first try. */
  dequeueCount: number;
}

export interface PoisonBlob {
  functionName: string;
  blob: string;
  dequeueCount: number;
  error: string;
}

export interface BlobTriggerDispatcherOptions {
  registrations: readonly Registration[];
  env: Readonly<Record<string, string | undefined>>;
  maxDequeueCount?: number;
  invoke(run: BlobTriggerRun): Promise<unknown>;
  onError?(run: BlobTriggerRun, error: unknown, willRetry: boolean): void;
}

interface Consumer {
  registration: Registration;
  path: string;
  queue: Array<{ blob: BlobInfo; bindings: Record<string, string> }>;
  busy: boolean;
}

export interface BlobTriggerStats {
  offered: number;
  invocations: number;
  failures: number;
}

export class BlobTriggerDispatcher {
  readonly stats: BlobTriggerStats = { offered: 0, invocations: 0, failures: 0 };
  readonly poison: PoisonBlob[] = [];
  readonly #options: BlobTriggerDispatcherOptions;
  readonly #consumers: Consumer[];
  readonly #progress = new Signal();

  constructor(options: BlobTriggerDispatcherOptions) {
    this.#options = options;
    this.#consumers = options.registrations.map((registration) => ({
      registration,
      path: String(registration.options['path'] ?? '').replace(/%([^%]+)%/g, (_, name: string) => options.env[name] ?? ''),
      queue: [],
      busy: false,
    }));
  }

  /** The resolved paths, for the start-up listing. */
  get paths(): Array<{ name: string; path: string }> {
    return this.#consumers.map((c) => ({ name: c.registration.name, path: c.path }));
  }

  /** Offers a written blob to every matching function; returns how many will be invoked. */
  offer(blob: BlobInfo): number {
    let matched = 0;
    for (const consumer of this.#consumers) {
      const bindings = matchBlobPath(consumer.path, blob.container, blob.name);
      if (bindings === null) continue;
      matched++;
      consumer.queue.push({ blob, bindings });
      this.stats.offered++;
      if (!consumer.busy) void this.#pump(consumer);
    }
    return matched;
  }

  get backlog(): number {
    return this.#consumers.reduce((n, c) => n + c.queue.length + (c.busy ? 1 : 0), 0);
  }

  async drain(): Promise<void> {
    while (this.backlog > 0) await this.#progress.wait();
  }

  async #pump(consumer: Consumer): Promise<void> {
    consumer.busy = true;
    try {
      for (let next = consumer.queue.shift(); next !== undefined; next = consumer.queue.shift()) {
        await this.#run(consumer, next.blob, next.bindings);
        this.#progress.notify();
      }
    } finally {
      consumer.busy = false;
      this.#progress.notify();
    }
  }

  async #run(consumer: Consumer, blob: BlobInfo, bindings: Record<string, string>): Promise<void> {
    const max = this.#options.maxDequeueCount ?? 5;
    for (let dequeueCount = 1; dequeueCount <= max; dequeueCount++) {
      const run: BlobTriggerRun = { registration: consumer.registration, blob, bindings, dequeueCount };
      this.stats.invocations++;
      try {
        await this.#options.invoke(run);
        return;
      } catch (error) {
        this.stats.failures++;
        const willRetry = dequeueCount < max;
        this.#options.onError?.(run, error, willRetry);
        if (!willRetry) {
          this.poison.push({
            functionName: consumer.registration.name,
            blob: `${blob.container}/${blob.name}`,
            dequeueCount,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
    }
  }
}
