import { randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import { BlobServiceClient, type BlobDownloadResponseParsed, type StoragePipelineOptions } from '@azure/storage-blob';
import { connectionCredential, connectionSetting } from '../connectionCredential.js';
import { RoutingError, isRoutingError } from '../errors.js';
import type {
  BlobDocument,
  BlobItem,
  BlobPrefix,
  BlobReadStream,
  BlobStore,
  BlobWriteOptions,
  CreateResult,
  DeleteResult,
  ETag,
  HierarchyListOptions,
  ListOptions,
  ReplaceResult,
} from '../ports.js';

/**
 * Metadata stamped on every conditional write with a fresh id per call, and hidden from readers. The client
 * pipeline retries a request whose response was lost (connection reset, timeout, 500/503); when the first try had
 * in fact been applied, the retry fails its own condition (409 or 412). Comparing the stored write id with ours
 * tells "our earlier try won" from "someone else won". Residual risk: a competitor overwriting our version before
 * we look makes our applied write read as lost.
 */
const WRITE_ID = 'routingwriteid';

/** Reconnections a streaming download may make (each resumes at the broken offset, pinned to the same ETag). */
const DOWNLOAD_RETRY_REQUESTS = 5;

/**
 * {@link BlobStore} on a `BlobServiceClient` (Azure Storage or Azurite).
 *
 * Service outcomes that are part of the contract become values (404 → `null`/`notFound`, 409 BlobAlreadyExists →
 * `{ created: false }`, 412 ConditionNotMet → `{ ok: false }`); all other failures become a `RoutingError` whose
 * code carries the retry meaning (see {@link toStorageError}). Retries of individual HTTP requests are the client
 * pipeline's business (`retryOptions`); this class never retries a conditional write by itself, because only the
 * caller knows whether the write is still wanted.
 */
export class AzureBlobStore implements BlobStore {
  readonly #service: BlobServiceClient;

  constructor(service: BlobServiceClient) {
    this.#service = service;
  }

  async ensureContainer(container: string): Promise<void> {
    try {
      await this.#service.getContainerClient(container).createIfNotExists();
    } catch (error) {
      throw toStorageError(error, 'ensureContainer', container);
    }
  }

  async get(container: string, name: string): Promise<BlobDocument | null> {
    let response: BlobDownloadResponseParsed;
    let body: Buffer;
    try {
      // One GET returns body, ETag and headers together, so they always describe the same version.
      response = await this.#download(container, name);
      body = await readAll(response.readableStreamBody);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw toStorageError(error, 'get', container, name);
    }
    return {
      body,
      etag: normalizeEtag(required(response.etag, 'ETag')),
      metadata: userMetadata(response.metadata),
      ...(response.contentType === undefined ? {} : { contentType: response.contentType }),
      lastModified: response.lastModified ?? new Date(0),
    };
  }

  async create(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<CreateResult> {
    // Bounded: the loop only repeats when the existing blob is deleted between our 409 and our HEAD.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const writeId = randomUUID();
      try {
        // If-None-Match: * — the first writer wins; a replay gets 409 and learns the winner's ETag below.
        const response = await this.#blob(container, name).upload(body, body.byteLength, {
          conditions: { ifNoneMatch: '*' },
          ...writeOptions(options, writeId),
        });
        return { created: true, etag: normalizeEtag(required(response.etag, 'ETag')) };
      } catch (error) {
        if (!isAlreadyExists(error)) throw toStorageError(error, 'create', container, name);
      }
      const existing = await this.#currentVersion(container, name, 'create');
      if (existing === null) continue;
      // The 409 may answer our own first try, replayed by the pipeline after its response was lost.
      return existing.writeId === writeId
        ? { created: true, etag: existing.etag }
        : { created: false, etag: existing.etag };
    }
    throw new RoutingError('StorageConflict', `Blob ${container}/${name} kept being created and deleted during create`);
  }

  async replace(
    container: string,
    name: string,
    body: Uint8Array,
    etag: ETag,
    options?: BlobWriteOptions,
  ): Promise<ReplaceResult> {
    const writeId = randomUUID();
    try {
      // If-Match: etag — only the version the caller read may be overwritten; a newer write or a delete wins.
      const response = await this.#blob(container, name).upload(body, body.byteLength, {
        conditions: { ifMatch: normalizeEtag(etag) },
        ...writeOptions(options, writeId),
      });
      return { ok: true, etag: normalizeEtag(required(response.etag, 'ETag')) };
    } catch (error) {
      if (isBlobNotFound(error)) return { ok: false };
      if (!isConditionNotMet(error)) throw toStorageError(error, 'replace', container, name);
    }
    // The 412 may answer our own first try, replayed by the pipeline after its response was lost; reporting that
    // as a lost race would make updateJson apply the same mutation twice.
    const current = await this.#currentVersion(container, name, 'replace');
    return current !== null && current.writeId === writeId ? { ok: true, etag: current.etag } : { ok: false };
  }

  async put(container: string, name: string, body: Uint8Array, options?: BlobWriteOptions): Promise<{ etag: ETag }> {
    try {
      // Unconditional by contract: see BlobStore.put for when last-writer-wins is allowed.
      const response = await this.#blob(container, name).upload(body, body.byteLength, writeOptions(options));
      return { etag: normalizeEtag(required(response.etag, 'ETag')) };
    } catch (error) {
      throw toStorageError(error, 'put', container, name);
    }
  }

  async delete(container: string, name: string, etag?: ETag): Promise<DeleteResult> {
    try {
      // If-Match when given: never delete a version the caller has not seen.
      await this.#blob(container, name).delete({
        deleteSnapshots: 'include',
        ...(etag === undefined ? {} : { conditions: { ifMatch: normalizeEtag(etag) } }),
      });
      return { deleted: true };
    } catch (error) {
      if (isNotFound(error)) return { deleted: false, reason: 'notFound' };
      if (!isConditionNotMet(error)) throw toStorageError(error, 'delete', container, name);
    }
    // Azure answers a conditional delete of a missing blob with 404, Azurite with 412 (Azurite issue #2751);
    // look once so both report `notFound` for a blob that is not there.
    try {
      await this.#blob(container, name).getProperties();
      return { deleted: false, reason: 'conditionNotMet' };
    } catch (error) {
      if (isNotFound(error)) return { deleted: false, reason: 'notFound' };
      throw toStorageError(error, 'delete', container, name);
    }
  }

  async *list(container: string, prefix = '', options: ListOptions = {}): AsyncIterable<BlobItem> {
    const pages = this.#service
      .getContainerClient(container)
      .listBlobsFlat({ prefix, includeMetadata: true })
      .byPage(options.pageSize === undefined ? {} : { maxPageSize: options.pageSize });
    try {
      for await (const page of pages) {
        for (const blob of page.segment.blobItems) yield toBlobItem(blob);
      }
    } catch (error) {
      if (isContainerNotFound(error)) return;
      throw toStorageError(error, 'list', container, prefix);
    }
  }

  async *listHierarchy(
    container: string,
    prefix: string,
    options: HierarchyListOptions,
  ): AsyncIterable<BlobItem | BlobPrefix> {
    const pages = this.#service
      .getContainerClient(container)
      .listBlobsByHierarchy(options.delimiter, { prefix, includeMetadata: true })
      .byPage(options.pageSize === undefined ? {} : { maxPageSize: options.pageSize });
    try {
      for await (const page of pages) {
        // The service returns a page's prefixes and blobs as two lists; merge them back into name order.
        const entries: (BlobItem | BlobPrefix)[] = [
          ...(page.segment.blobPrefixes ?? []).map((p): BlobPrefix => ({ kind: 'prefix', name: p.name })),
          ...page.segment.blobItems.map(toBlobItem),
        ];
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        yield* entries;
      }
    } catch (error) {
      if (isContainerNotFound(error)) return;
      throw toStorageError(error, 'list', container, prefix);
    }
  }

  async openRead(container: string, name: string): Promise<BlobReadStream | null> {
    let response: BlobDownloadResponseParsed;
    try {
      // The SDK resumes a broken stream with If-Match on the first response's ETag, so a blob rewritten mid-read
      // fails the read instead of splicing two versions together.
      response = await this.#download(container, name);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw toStorageError(error, 'openRead', container, name);
    }
    const stream = response.readableStreamBody;
    return {
      etag: normalizeEtag(required(response.etag, 'ETag')),
      size: response.contentLength ?? 0,
      ...(response.contentType === undefined ? {} : { contentType: response.contentType }),
      metadata: userMetadata(response.metadata),
      chunks: (async function* () {
        if (stream === undefined) return;
        try {
          for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
            yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          }
        } catch (error) {
          throw toStorageError(error, 'openRead', container, name);
        }
      })(),
    };
  }

  /** ETag and write id of the blob as it is now; `null` when it does not exist. */
  async #currentVersion(
    container: string,
    name: string,
    operation: string,
  ): Promise<{ etag: ETag; writeId: string | undefined } | null> {
    try {
      const properties = await this.#blob(container, name).getProperties();
      return { etag: normalizeEtag(required(properties.etag, 'ETag')), writeId: properties.metadata?.[WRITE_ID] };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw toStorageError(error, operation, container, name);
    }
  }

  #download(container: string, name: string): Promise<BlobDownloadResponseParsed> {
    return this.#blob(container, name).download(0, undefined, { maxRetryRequests: DOWNLOAD_RETRY_REQUESTS });
  }

  #blob(container: string, name: string) {
    return this.#service.getContainerClient(container).getBlockBlobClient(name);
  }
}

// -------------------------------------------------------------------------------------------------------------
// Connection settings
// -------------------------------------------------------------------------------------------------------------

export interface BlobServiceClientSettingsOptions {
  /**
   * The connection name, i.e. the app-setting prefix, as in a binding's `connection` property. Default
   * `AzureWebJobsStorage`.
   */
  connection?: string;
  /** Pipeline options (retry policy, keep-alive) for the client. */
  pipeline?: StoragePipelineOptions;
  /** Use this credential for identity-based connections instead of building one from the settings. */
  credential?: TokenCredential;
}

/**
 * Builds a `BlobServiceClient` from app settings the way the Functions host resolves a storage connection:
 *
 * 1. `<CONNECTION>` holds a connection string: an account key or SAS string, `UseDevelopmentStorage=true`
 *    (Azurite on 127.0.0.1:10000), or Azurite's explicit `DefaultEndpointsProtocol=http;...;BlobEndpoint=...`.
 * 2. Otherwise an identity-based connection: the endpoint from `<CONNECTION>__blobServiceUri`, else
 *    `<CONNECTION>__serviceUri`, else `https://<CONNECTION>__accountName.blob.core.windows.net`; the credential is
 *    the one the host would use for the connection ({@link connectionCredential}: `__credential=managedidentity`
 *    with `__clientId` or `__managedIdentityResourceId` for a user-assigned identity, and so on).
 *
 * `:` is accepted in place of `__` (local.settings.json style). Error messages name settings, never their values.
 */
export function blobServiceClientFromSettings(
  settings: Readonly<Record<string, string | undefined>>,
  options: BlobServiceClientSettingsOptions = {},
): BlobServiceClient {
  const connection = options.connection ?? 'AzureWebJobsStorage';
  const setting = (property?: string): string | undefined => connectionSetting(settings, connection, property);

  const connectionString = setting();
  if (connectionString !== undefined) {
    try {
      return BlobServiceClient.fromConnectionString(normalizeConnectionString(connectionString), options.pipeline);
    } catch (cause) {
      // The SDK's messages name the missing part ("Invalid AccountKey ...") and never echo the value.
      const reason = cause instanceof Error ? `: ${cause.message}` : '';
      throw new RoutingError('ConfigInvalid', `${connection} is not a valid storage connection string${reason}`, {
        cause,
      });
    }
  }

  const accountName = setting('accountName');
  const endpoint =
    setting('blobServiceUri') ??
    setting('serviceUri') ??
    (accountName === undefined ? undefined : `https://${accountName}.blob.core.windows.net`);
  if (endpoint === undefined) {
    throw new RoutingError(
      'ConfigInvalid',
      `No storage connection configured: set ${connection} to a connection string, or ${connection}__blobServiceUri, ` +
        `${connection}__serviceUri or ${connection}__accountName for an identity-based connection`,
    );
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (cause) {
    throw new RoutingError('ConfigInvalid', `${connection}__blobServiceUri/__serviceUri is not a URL`, { cause });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new RoutingError('ConfigInvalid', `${connection} blob service URI must use https (got ${url.protocol})`);
  }
  const credential = options.credential ?? connectionCredential(settings, connection);
  return new BlobServiceClient(url.toString().replace(/\/$/, ''), credential, options.pipeline);
}

/** The SDK recognises the emulator shortcut only verbatim and at the start; the host is more forgiving. */
function normalizeConnectionString(value: string): string {
  return value.replace(/^\s*UseDevelopmentStorage\s*=\s*true\s*(;|$)/i, 'UseDevelopmentStorage=true$1');
}

// -------------------------------------------------------------------------------------------------------------
// Error mapping
// -------------------------------------------------------------------------------------------------------------

interface ServiceErrorLike {
  name?: unknown;
  statusCode?: unknown;
  code?: unknown;
  message?: unknown;
  details?: unknown;
  response?: { headers?: { get?(name: string): string | undefined } };
}

/** Node and undici error codes that mean "the request may not have reached the service". */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'REQUEST_SEND_ERROR',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Maps an SDK failure to a `RoutingError` with its retry meaning:
 * network errors, timeouts, 408, 429 and 5xx → `StorageUnavailable` (transient, with Retry-After when sent);
 * other 4xx and credential configuration errors → `StorageRejected` (permanent).
 * Errors that are neither (programming errors) are returned unchanged so they are not mislabelled as retryable.
 */
export function toStorageError(error: unknown, operation: string, container: string, name?: string): Error {
  if (isRoutingError(error)) return error;
  const target = name === undefined ? container : `${container}/${name}`;
  if (typeof error !== 'object' || error === null) {
    return new RoutingError('StorageUnavailable', `Blob storage ${operation} ${target} failed`, { cause: error });
  }
  const e = error as ServiceErrorLike;
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const code = serviceCode(e);
  const what = [status, code].filter(Boolean).join(' ') || describe(e);
  const summary = `Blob storage ${operation} ${target} failed: ${what}`;

  if (e.name === 'CredentialUnavailableError') {
    return new RoutingError('StorageRejected', `${summary} (no usable credential: ${describe(e)})`, { cause: error });
  }
  if (e.name === 'AuthenticationError') {
    const transient = status === undefined || status === 429 || status >= 500;
    return new RoutingError(transient ? 'StorageUnavailable' : 'StorageRejected', `${summary} (authentication)`, {
      cause: error,
    });
  }
  if (status !== undefined) {
    if (status === 408 || status === 429 || status >= 500) {
      const retryAfterSeconds = retryAfter(e);
      return new RoutingError('StorageUnavailable', summary, {
        cause: error,
        ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
      });
    }
    return new RoutingError('StorageRejected', summary, { cause: error });
  }
  const networkCode = typeof e.code === 'string' ? e.code.toUpperCase() : '';
  const transportError = e.name === 'RestError' || e.name === 'AbortError' || e.name === 'TimeoutError';
  if (transportError || NETWORK_ERROR_CODES.has(networkCode)) {
    return new RoutingError('StorageUnavailable', `${summary} (${describe(e)})`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

function serviceCode(e: ServiceErrorLike): string | undefined {
  const details = e.details as { errorCode?: unknown } | undefined;
  if (typeof details?.errorCode === 'string') return details.errorCode;
  return typeof e.code === 'string' ? e.code : undefined;
}

function isStatus(error: unknown, status: number, ...codes: string[]): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as ServiceErrorLike;
  if (e.statusCode !== status) return false;
  const code = serviceCode(e);
  return codes.length === 0 || (code !== undefined && codes.includes(code));
}

const isNotFound = (error: unknown) => isStatus(error, 404);
const isBlobNotFound = (error: unknown) => isStatus(error, 404, 'BlobNotFound');
const isContainerNotFound = (error: unknown) => isStatus(error, 404, 'ContainerNotFound');
const isAlreadyExists = (error: unknown) => isStatus(error, 409, 'BlobAlreadyExists');
const isConditionNotMet = (error: unknown) => isStatus(error, 412);

function retryAfter(e: ServiceErrorLike): number | undefined {
  const header = e.response?.headers?.get?.('retry-after');
  if (header === undefined) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** First line of the message, with anything that looks like a SAS signature or account key removed. */
function describe(e: ServiceErrorLike): string {
  const message = typeof e.message === 'string' ? (e.message.split('\n')[0] ?? '') : '';
  return message
    .replace(/([?&;]sig=)[^&;\s]+/gi, '$1***')
    .replace(/(AccountKey=)[^;\s]+/gi, '$1***')
    .replace(/(SharedAccessSignature=)[^;\s]+/gi, '$1***')
    .slice(0, 300);
}

// -------------------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------------------

function writeOptions(options: BlobWriteOptions = {}, writeId?: string) {
  const metadata = { ...options.metadata, ...(writeId === undefined ? {} : { [WRITE_ID]: writeId }) };
  return {
    ...(options.contentType === undefined ? {} : { blobHTTPHeaders: { blobContentType: options.contentType } }),
    ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
  };
}

/** User metadata only: the write id is this adapter's bookkeeping. */
function userMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const { [WRITE_ID]: _writeId, ...rest } = metadata ?? {};
  return rest;
}

interface ListedBlob {
  name: string;
  properties: { etag: string; contentLength?: number; lastModified: Date };
  metadata?: Record<string, string>;
}

function toBlobItem(blob: ListedBlob): BlobItem {
  return {
    kind: 'blob',
    name: blob.name,
    etag: normalizeEtag(blob.properties.etag),
    size: blob.properties.contentLength ?? 0,
    lastModified: blob.properties.lastModified,
    metadata: userMetadata(blob.metadata),
  };
}

/** Listings return ETags without the quotes that response headers carry; the port always uses the quoted form. */
function normalizeEtag(etag: string): ETag {
  return etag.startsWith('"') || etag.startsWith('W/') ? etag : `"${etag}"`;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new RoutingError('StorageUnavailable', `Blob storage response lacked ${what}`);
  return value;
}

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (stream === undefined) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    // Wrap, don't copy: the chunks are ours and Buffer.concat copies once at the end.
    chunks.push(
      typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
    );
  }
  return Buffer.concat(chunks);
}
