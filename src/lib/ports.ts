/**
 * Ports: the only ways `src/lib` reaches time and storage. Domain folders depend on these interfaces; adapters
 * (Azure SDK clients) live in their own files and are handed in by the functions, the local runtime and the tests.
 */

/** Time comes from here so that windows, expiries and budgets are testable with a manual clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = {
  now: () => new Date(),
};

/**
 * A clock that only moves when told to. Lives here rather than in test/support because the local runtime and the
 * CLI `replay` command also need to run handlers at a chosen time.
 */
export class ManualClock implements Clock {
  #ms: number;

  constructor(start: Date | string | number = 0) {
    this.#ms = new Date(start).getTime();
    if (Number.isNaN(this.#ms)) throw new RangeError(`ManualClock: invalid start time ${String(start)}`);
  }

  now(): Date {
    return new Date(this.#ms);
  }

  set(to: Date | string | number): void {
    const ms = new Date(to).getTime();
    if (Number.isNaN(ms)) throw new RangeError(`ManualClock: invalid time ${String(to)}`);
    this.#ms = ms;
  }

  advance(ms: number): Date {
    this.#ms += ms;
    return this.now();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Blob storage
// ---------------------------------------------------------------------------------------------------------------

/** An ETag exactly as the service returns it, quotes included (`"0x8DC..."`). Opaque: compare for equality only. */
export type ETag = string;

export interface BlobWriteOptions {
  /** Stored as the blob's Content-Type. The service default is `application/octet-stream`. */
  contentType?: string;
  /**
   * User metadata. Keys must be valid C# identifiers; the service returns them lower-cased, so readers must use
   * lower-case keys.
   */
  metadata?: Readonly<Record<string, string>>;
}

export interface BlobDocument {
  body: Buffer;
  etag: ETag;
  /** Keys lower-cased (see {@link BlobWriteOptions.metadata}). Empty when the blob has none. */
  metadata: Record<string, string>;
  contentType?: string;
  lastModified: Date;
}

/**
 * Result of {@link BlobStore.create}. `created: false` is a normal outcome, not an error: it is how a replayed
 * input learns that its side effect already happened. `etag` is then the existing blob's ETag, so the caller can
 * read or replace it without a second round trip for the version.
 */
export type CreateResult = { created: true; etag: ETag } | { created: false; etag: ETag };

/** Result of {@link BlobStore.replace}. `ok: false` means someone else wrote (or deleted) the blob since the read. */
export type ReplaceResult = { ok: true; etag: ETag } | { ok: false };

export type DeleteResult = { deleted: true } | { deleted: false; reason: 'notFound' | 'conditionNotMet' };

export interface BlobItem {
  kind: 'blob';
  name: string;
  etag: ETag;
  size: number;
  lastModified: Date;
  /** User metadata, keys lower-cased; listings include it so filters need no download per blob. */
  metadata: Record<string, string>;
}

/** A virtual directory in a hierarchical listing: `name` ends with the delimiter. */
export interface BlobPrefix {
  kind: 'prefix';
  name: string;
}

export interface ListOptions {
  /** Items per service round trip. The service caps it at 5000; small values exist so tests can cross pages. */
  pageSize?: number;
}

export interface HierarchyListOptions extends ListOptions {
  /** Usually `/`. Names below the next delimiter collapse into one {@link BlobPrefix}. */
  delimiter: string;
}

export interface BlobReadStream {
  etag: ETag;
  size: number;
  contentType?: string;
  metadata: Record<string, string>;
  /** The bytes of the version identified by `etag`, in order, never buffered whole. Iterate at most once. */
  chunks: AsyncIterable<Uint8Array>;
}

/**
 * Blob storage for JSON and byte documents in one storage account, with ETags for optimistic concurrency.
 *
 * Every side effect in the product is keyed by a message identity and guarded here: {@link create} (If-None-Match
 * `*`) makes "first writer wins" the dedupe rule, {@link replace} (If-Match) makes read-modify-write safe under
 * replays and concurrent instances. See docs/adr/0001-blob-store-conditional-writes.md.
 *
 * Failures: a missing blob is `null`/`notFound`, a lost condition is a result value; everything else throws a
 * `RoutingError` with code `StorageUnavailable` (transient: network, timeouts, 5xx, 429) or `StorageRejected`
 * (permanent: authorization, a missing container on write, invalid names).
 */
export interface BlobStore {
  /** Idempotent. Writes to a container that does not exist fail with `StorageRejected`, as on Azure. */
  ensureContainer(container: string): Promise<void>;

  /** `null` when the blob (or its container) does not exist. */
  get(container: string, name: string): Promise<BlobDocument | null>;

  /** Writes only if no blob of that name exists (If-None-Match: `*`). */
  create(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<CreateResult>;

  /**
   * Overwrites only if the blob still has `etag` (If-Match). A blob deleted since the read is also `{ ok: false }`.
   * Content type and metadata are replaced as a whole, like an Azure Put Blob.
   */
  replace(
    container: string,
    name: string,
    body: Uint8Array,
    etag: ETag,
    options?: BlobWriteOptions,
  ): Promise<ReplaceResult>;

  /**
   * Unconditional overwrite. Allowed only where last-writer-wins is correct by construction: content that is a pure
   * function of its name and inputs (a rebuilt manifest, a derived report that every writer computes identically),
   * or stand-ins that play an external writer (the local hub writing archive blobs, test fixtures). Never for
   * ledgers, counters or anything a replay must not change.
   */
  put(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<{ etag: ETag }>;

  /** With `etag`, deletes only that version (If-Match). */
  delete(container: string, name: string, etag?: ETag): Promise<DeleteResult>;

  /** Every blob whose name starts with `prefix`, in name order, paged under the hood. Missing container: empty. */
  list(container: string, prefix?: string, options?: ListOptions): AsyncIterable<BlobItem>;

  /** One level of the virtual directory tree below `prefix`: blobs and prefixes interleaved in name order. */
  listHierarchy(container: string, prefix: string, options: HierarchyListOptions): AsyncIterable<BlobItem | BlobPrefix>;

  /** Streams a (large) blob; `null` when it does not exist. The stream stays on the version it opened. */
  openRead(container: string, name: string): Promise<BlobReadStream | null>;
}
