import { RoutingError } from '../errors.js';
import {
  systemClock,
  type BlobDocument,
  type BlobItem,
  type BlobPrefix,
  type BlobReadStream,
  type BlobStore,
  type BlobWriteOptions,
  type Clock,
  type CreateResult,
  type DeleteResult,
  type ETag,
  type HierarchyListOptions,
  type ListOptions,
  type ReplaceResult,
} from '../ports.js';

export interface MemoryBlobStoreOptions {
  /** Stamps `lastModified`. */
  clock?: Clock;
  /** Chunk size of {@link MemoryBlobStore.openRead}; small values make multi-chunk reads easy to test. */
  readChunkBytes?: number;
}

interface StoredBlob {
  body: Buffer;
  etag: ETag;
  metadata: Record<string, string>;
  contentType: string;
  lastModified: Date;
}

/** Azure's rule: 3-63 characters, lower-case letters, digits and single hyphens, starting and ending alphanumeric. */
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const AZURE_MAX_PAGE_SIZE = 5000;

/**
 * The {@link BlobStore} contract in memory, for unit tests and the CLI's offline commands. It is held to the same
 * contract suite as the Azure adapter (test/storage/blobStore.contract.test.ts), so a test that passes here
 * exercises the same conditional-write outcomes Azure produces: ETags change on every write, a missing container
 * rejects writes and reads as empty, conditions fail as results rather than errors.
 *
 * Every operation yields to the event loop before touching state, so concurrent callers interleave the way they
 * would against a remote service and lost-update races are actually exercised.
 */
export class MemoryBlobStore implements BlobStore {
  readonly #containers = new Map<string, Map<string, StoredBlob>>();
  readonly #clock: Clock;
  readonly #readChunkBytes: number;
  /** Deterministic, strictly increasing ETags in Azure's quoted hex shape. */
  #version = 0;

  constructor(options: MemoryBlobStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#readChunkBytes = options.readChunkBytes ?? 64 * 1024;
    if (!(this.#readChunkBytes > 0)) throw new RangeError('readChunkBytes must be positive');
  }

  async ensureContainer(container: string): Promise<void> {
    await tick();
    assertContainerName(container);
    if (!this.#containers.has(container)) this.#containers.set(container, new Map());
  }

  async get(container: string, name: string): Promise<BlobDocument | null> {
    await tick();
    const blob = this.#containers.get(container)?.get(name);
    if (blob === undefined) return null;
    return {
      body: Buffer.from(blob.body),
      etag: blob.etag,
      metadata: { ...blob.metadata },
      contentType: blob.contentType,
      lastModified: new Date(blob.lastModified),
    };
  }

  async create(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<CreateResult> {
    await tick();
    const blobs = this.#writableContainer(container, name);
    const existing = blobs.get(name);
    // If-None-Match: * — the first writer wins; a replay sees the winner's version and writes nothing.
    if (existing !== undefined) return { created: false, etag: existing.etag };
    const stored = this.#store(blobs, name, body, options);
    return { created: true, etag: stored.etag };
  }

  async replace(
    container: string,
    name: string,
    body: Uint8Array,
    etag: ETag,
    options?: BlobWriteOptions,
  ): Promise<ReplaceResult> {
    await tick();
    const blobs = this.#writableContainer(container, name);
    const existing = blobs.get(name);
    // If-Match: etag — only the version the caller read may be overwritten; anything newer (or a deletion) wins.
    if (existing === undefined || existing.etag !== etag) return { ok: false };
    const stored = this.#store(blobs, name, body, options);
    return { ok: true, etag: stored.etag };
  }

  async put(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<{ etag: ETag }> {
    await tick();
    const blobs = this.#writableContainer(container, name);
    return { etag: this.#store(blobs, name, body, options).etag };
  }

  async delete(container: string, name: string, etag?: ETag): Promise<DeleteResult> {
    await tick();
    const blobs = this.#containers.get(container);
    const existing = blobs?.get(name);
    if (blobs === undefined || existing === undefined) return { deleted: false, reason: 'notFound' };
    // If-Match: etag — a delete never removes a version the caller has not seen.
    if (etag !== undefined && existing.etag !== etag) return { deleted: false, reason: 'conditionNotMet' };
    blobs.delete(name);
    return { deleted: true };
  }

  async *list(container: string, prefix = '', options: ListOptions = {}): AsyncIterable<BlobItem> {
    const pageSize = clampPageSize(options.pageSize);
    let after: string | undefined;
    for (;;) {
      // Page by continuation name, like the service's marker, so writes between pages behave the same way.
      await tick();
      const page = this.#sortedNames(container, prefix, after).slice(0, pageSize);
      for (const name of page) {
        const item = this.#item(container, name);
        if (item !== undefined) yield item;
      }
      if (page.length < pageSize) return;
      after = page[page.length - 1];
    }
  }

  async *listHierarchy(
    container: string,
    prefix: string,
    options: HierarchyListOptions,
  ): AsyncIterable<BlobItem | BlobPrefix> {
    const { delimiter } = options;
    if (delimiter === '') throw new RangeError('delimiter must not be empty');
    const pageSize = clampPageSize(options.pageSize);
    let after: string | undefined;
    for (;;) {
      await tick();
      const entries: (BlobItem | BlobPrefix)[] = [];
      let lastName: string | undefined;
      for (const name of this.#sortedNames(container, prefix, after)) {
        const cut = name.indexOf(delimiter, prefix.length);
        if (cut >= 0) {
          const virtualDir = name.slice(0, cut + delimiter.length);
          const previous = entries[entries.length - 1];
          if (previous?.kind === 'prefix' && previous.name === virtualDir) {
            lastName = name;
            continue;
          }
          if (entries.length === pageSize) break;
          entries.push({ kind: 'prefix', name: virtualDir });
        } else {
          if (entries.length === pageSize) break;
          const item = this.#item(container, name);
          if (item !== undefined) entries.push(item);
        }
        lastName = name;
      }
      yield* entries;
      if (entries.length < pageSize || lastName === undefined) return;
      after = lastName;
    }
  }

  async openRead(container: string, name: string): Promise<BlobReadStream | null> {
    await tick();
    const blob = this.#containers.get(container)?.get(name);
    if (blob === undefined) return null;
    // Stored bodies are never mutated (every write stores a new Buffer), so holding this one pins the version
    // that was opened, like a download that keeps If-Match on its retries.
    const body = blob.body;
    const chunkBytes = this.#readChunkBytes;
    return {
      etag: blob.etag,
      size: body.length,
      contentType: blob.contentType,
      metadata: { ...blob.metadata },
      chunks: (async function* () {
        for (let offset = 0; offset < body.length; offset += chunkBytes) {
          await tick();
          yield new Uint8Array(body.subarray(offset, offset + chunkBytes));
        }
      })(),
    };
  }

  #writableContainer(container: string, name: string): Map<string, StoredBlob> {
    assertBlobName(name);
    const blobs = this.#containers.get(container);
    if (blobs === undefined) {
      throw new RoutingError('StorageRejected', `Blob container '${container}' does not exist (ContainerNotFound)`);
    }
    return blobs;
  }

  #store(blobs: Map<string, StoredBlob>, name: string, body: Uint8Array, options: BlobWriteOptions = {}): StoredBlob {
    this.#version += 1;
    const stored: StoredBlob = {
      body: Buffer.from(body),
      etag: `"0x8DC${this.#version.toString(16).toUpperCase().padStart(12, '0')}"`,
      metadata: lowerCaseKeys(options.metadata ?? {}),
      contentType: options.contentType ?? DEFAULT_CONTENT_TYPE,
      lastModified: this.#clock.now(),
    };
    blobs.set(name, stored);
    return stored;
  }

  #sortedNames(container: string, prefix: string, after: string | undefined): string[] {
    const blobs = this.#containers.get(container);
    if (blobs === undefined) return [];
    return [...blobs.keys()]
      .filter((name) => name.startsWith(prefix) && (after === undefined || name > after))
      .sort(compareNames);
  }

  #item(container: string, name: string): BlobItem | undefined {
    const blob = this.#containers.get(container)?.get(name);
    if (blob === undefined) return undefined;
    return {
      kind: 'blob',
      name,
      etag: blob.etag,
      size: blob.body.length,
      lastModified: new Date(blob.lastModified),
      metadata: { ...blob.metadata },
    };
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function clampPageSize(pageSize: number | undefined): number {
  if (pageSize === undefined) return AZURE_MAX_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer`);
  return Math.min(pageSize, AZURE_MAX_PAGE_SIZE);
}

function lowerCaseKeys(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) result[key.toLowerCase()] = value;
  return result;
}

function assertContainerName(container: string): void {
  if (!CONTAINER_NAME.test(container)) {
    throw new RoutingError('StorageRejected', `Invalid blob container name '${container}' (InvalidResourceName)`);
  }
}

function assertBlobName(name: string): void {
  if (name.length === 0 || name.length > 1024) {
    throw new RoutingError('StorageRejected', `Invalid blob name of length ${name.length} (InvalidResourceName)`);
  }
}
