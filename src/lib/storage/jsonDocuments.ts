import { isRoutingError, RoutingError } from '../errors.js';
import type { BlobStore, BlobWriteOptions, CreateResult, ETag, ReplaceResult } from '../ports.js';

/** Validates a parsed document; throw (any error) to reject it. Defaults to an unchecked cast. */
export type Decode<T> = (raw: unknown) => T;

export interface JsonDocument<T> {
  value: T;
  etag: ETag;
}

const JSON_CONTENT_TYPE = 'application/json';

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/**
 * Marks the `StorageRejected` of a blob that was read but is not the document (not JSON, or refused by `decode`), as
 * against the service refusing the request (403, 404, ...). `Symbol.for`, so that the mark survives duplicated module
 * copies, as the name-based guards in errors.ts do.
 */
const UNDECODABLE = Symbol.for('iot-routing.undecodableDocument');

/** True for the error {@link getJson} and friends raise for a blob that was read and is not a valid document. */
export function isUndecodableDocument(error: unknown): error is RoutingError {
  return isRoutingError(error) && error.code === 'StorageRejected' && (error as { [UNDECODABLE]?: unknown })[UNDECODABLE] === true;
}

function undecodable(error: RoutingError): RoutingError {
  return Object.assign(error, { [UNDECODABLE]: true });
}

/**
 * `null` when the blob does not exist. A blob that is not valid JSON (or fails `decode`) is `StorageRejected`
 * ({@link isUndecodableDocument}).
 */
export async function getJson<T>(
  store: BlobStore,
  container: string,
  name: string,
  decode?: Decode<T>,
): Promise<JsonDocument<T> | null> {
  const document = await store.get(container, name);
  if (document === null) return null;
  return { value: parseJson(document.body, container, name, decode), etag: document.etag };
}

/** {@link BlobStore.create} for a JSON value: `{ created: false }` means the document already exists. */
export function createJson(
  store: BlobStore,
  container: string,
  name: string,
  value: unknown,
  options: Omit<BlobWriteOptions, 'contentType'> = {},
): Promise<CreateResult> {
  return store.create(container, name, encodeJson(value), { ...options, contentType: JSON_CONTENT_TYPE });
}

/** {@link BlobStore.replace} for a JSON value: `{ ok: false }` means the document changed since `etag` was read. */
export function replaceJson(
  store: BlobStore,
  container: string,
  name: string,
  value: unknown,
  etag: ETag,
  options: Omit<BlobWriteOptions, 'contentType'> = {},
): Promise<ReplaceResult> {
  return store.replace(container, name, encodeJson(value), etag, { ...options, contentType: JSON_CONTENT_TYPE });
}

/**
 * Computes the next version of a document from the current one (`undefined` when it does not exist yet).
 * Return `undefined` to leave the document as it is. May run several times (once per conflicting attempt), each
 * time on a freshly read copy, so it may modify its argument but must have no other side effects.
 */
export type Mutation<T> = (current: T | undefined) => T | undefined;

export interface UpdateJsonOptions<T> {
  /** Further attempts after the first lost race. Default 16. */
  retries?: number;
  decode?: Decode<T>;
  /** Pause before attempt `n` (n ≥ 2), in ms. Default min(2^(n-1), 100). */
  backoffMs?: (attempt: number) => number;
  metadata?: Readonly<Record<string, string>>;
}

export interface UpdateJsonResult<T> {
  /** The document as stored after the update (or as found, when the mutation made no change). */
  value: T | undefined;
  etag: ETag | undefined;
  changed: boolean;
  attempts: number;
}

/**
 * Optimistic-concurrency read-modify-write of one JSON document.
 *
 * Invariant: a mutation is applied to exactly the version it read, or not at all. Each write is conditional on
 * that version (If-None-Match `*` when the document did not exist, If-Match its ETag otherwise); losing the race
 * means another writer succeeded, so we re-read and re-apply. Progress is lock-free: with W concurrent writers,
 * `retries ≥ W - 1` always suffices. Exhausting the retries throws `StorageConflict` (transient), so the caller's
 * trigger retries the whole input later, which is safe because the mutation was never applied.
 */
export async function updateJson<T>(
  store: BlobStore,
  container: string,
  name: string,
  mutate: Mutation<T>,
  options: UpdateJsonOptions<T> = {},
): Promise<UpdateJsonResult<T>> {
  const retries = options.retries ?? 16;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError('retries must be a non-negative integer');
  const backoffMs = options.backoffMs ?? ((attempt: number) => Math.min(2 ** (attempt - 1), 100));
  const writeOptions = options.metadata === undefined ? {} : { metadata: options.metadata };

  for (let attempt = 1; attempt <= retries + 1; attempt += 1) {
    if (attempt > 1) await sleep(backoffMs(attempt));
    const current = await getJson(store, container, name, options.decode);
    const next = mutate(current?.value);
    if (next === undefined) {
      return { value: current?.value, etag: current?.etag, changed: false, attempts: attempt };
    }
    if (current === null) {
      // If-None-Match: * — we computed `next` from "no document"; if one appeared meanwhile, start over from it.
      const result = await createJson(store, container, name, next, writeOptions);
      if (result.created) return { value: next, etag: result.etag, changed: true, attempts: attempt };
    } else {
      // If-Match: etag — `next` was derived from this exact version; any newer write invalidates it.
      const result = await replaceJson(store, container, name, next, current.etag, writeOptions);
      if (result.ok) return { value: next, etag: result.etag, changed: true, attempts: attempt };
    }
  }
  throw new RoutingError(
    'StorageConflict',
    `Blob ${container}/${name}: lost ${retries + 1} concurrent-update races in a row; giving up for now`,
  );
}

function parseJson<T>(body: Buffer, container: string, name: string, decode: Decode<T> | undefined): T {
  let raw: unknown;
  try {
    // A BOM is legal at the start of UTF-8 text written by other tools, but JSON.parse rejects it.
    raw = JSON.parse(body.toString('utf8').replace(/^\uFEFF/, ''));
  } catch (cause) {
    throw undecodable(new RoutingError('StorageRejected', `Blob ${container}/${name} is not valid JSON`, { cause }));
  }
  if (decode === undefined) return raw as T;
  try {
    return decode(raw);
  } catch (cause) {
    const reason = cause instanceof Error ? `: ${cause.message}` : '';
    throw undecodable(new RoutingError('StorageRejected', `Blob ${container}/${name} is not a valid document${reason}`, { cause }));
  }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
