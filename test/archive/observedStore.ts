import type { BlobDocument, BlobItem, BlobReadStream, BlobStore, ListOptions } from '../../src/lib/ports.js';

/**
 * A real store, observed: counts downloads and document reads by name, and lets a test act at the moment one
 * happens (a rewrite racing an ingest, a redelivery arriving while a download is being read).
 */
export class ObservedStore {
  /** Downloads opened (openRead answered), all names. */
  opened = 0;
  /** `container/name` of every openRead and get that has answered, in order. */
  readonly downloads: string[] = [];
  readonly reads: string[] = [];
  /** `container/prefix` of every listing started, in order. */
  readonly listings: string[] = [];
  /** Runs once, right after the next openRead has answered and before its stream is handed over. */
  afterOpen: (() => Promise<void>) | undefined;
  /** Runs after every get has answered and before its document is handed over. */
  afterGet: ((container: string, name: string) => Promise<void>) | undefined;
  #hold: Promise<void> | undefined;

  constructor(readonly inner: BlobStore) {}

  /** The next download's bytes are not handed over until `release` is called: its ingest stays under way. */
  holdNextDownload(): () => void {
    let release!: () => void;
    this.#hold = new Promise<void>((resolve) => (release = resolve));
    return release;
  }

  count(list: readonly string[], container: string, name: string): number {
    return list.filter((entry) => entry === `${container}/${name}`).length;
  }

  wrap(): BlobStore {
    return new Proxy(this.inner, {
      get: (target, key, receiver) => {
        if (key === 'openRead') {
          return async (container: string, name: string): Promise<BlobReadStream | null> => {
            const stream = await target.openRead(container, name);
            this.opened++;
            this.downloads.push(`${container}/${name}`);
            const hook = this.afterOpen;
            this.afterOpen = undefined;
            await hook?.();
            const hold = this.#hold;
            this.#hold = undefined;
            if (stream === null || hold === undefined) return stream;
            return { ...stream, chunks: held(stream.chunks, hold) };
          };
        }
        if (key === 'get') {
          return async (container: string, name: string): Promise<BlobDocument | null> => {
            const document = await target.get(container, name);
            this.reads.push(`${container}/${name}`);
            await this.afterGet?.(container, name);
            return document;
          };
        }
        if (key === 'list') {
          return (container: string, prefix?: string, options?: ListOptions): AsyncIterable<BlobItem> => {
            this.listings.push(`${container}/${prefix ?? ''}`);
            return target.list(container, prefix, options);
          };
        }
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

async function* held(chunks: AsyncIterable<Uint8Array>, hold: Promise<void>): AsyncGenerator<Uint8Array> {
  await hold;
  yield* chunks;
}
