/**
 * The documents of the reports container and the port the aggregation reads and writes them through.
 *
 * `blobWindowStore` is the product: every write is an ETag-conditional read-modify-write (`updateJson`).
 * `memoryWindowStore` holds the same documents as objects in a map, for the CLI's backfill and the pipeline
 * benchmark: same mutations, same reports, no serialisation.
 */
import type { BlobStore, ETag } from '../ports.js';
import { getJson, updateJson, type Decode, type Mutation } from '../storage/jsonDocuments.js';
import { totalsOf, type Contribution, type WindowTotals } from './windowSummary.js';

/**
 * A partial of one base window: one device, one partition. Schema 2 lists identities and contributions and added
 * `totals`; a schema 1 partial (written by an earlier build, `messages` an object by identity) is read by converting
 * it and recomputing the totals, which is exact.
 */
export interface BaseWindowDoc {
  schema: 2;
  kind: 'window';
  deviceId: string;
  partition: string;
  window: string;
  windowStart: string;
  windowEnd: string;
  /** +1 on every change; under If-Match it only grows, which is what roll-ups use to ignore stale totals. */
  rev: number;
  /**
   * The identity of every message counted here, in the order counted. A message is counted in a window iff its
   * identity is in this list (once). A list, not an object keyed by identity: objects with ever-new keys cost V8 a
   * new hidden class per key, some ten times a Map insertion.
   */
  ids: string[];
  /** What each message of `ids` contributes, at the same position. */
  contributions: Contribution[];
  /** Identities counted after the window had closed, with the partition's watermark (epoch ms) at that moment. */
  late: Record<string, number>;
  /** The totals of `messages`, kept up to date message by message. */
  totals: WindowTotals;
}

export interface RollupEntry {
  /** The base partial's `rev` these totals were taken from. */
  rev: number;
  /** Of those, messages that were late for this roll-up window (it closes later than its base windows). */
  late: number;
  /**
   * The base partial's totals; absent in entries written by schema 1, which are read from the base partial.
   * Read-only: in memory it is the base partial's own object (see `BaseSummary` in windowAggregator.ts).
   */
  readonly totals?: WindowTotals;
}

/** A partial of a larger window: the totals of its base windows from one partition. */
export interface RollupWindowDoc {
  schema: 2;
  kind: 'rollup';
  deviceId: string;
  partition: string;
  window: string;
  windowStart: string;
  windowEnd: string;
  /** By base window start (ISO). */
  subs: Record<string, RollupEntry>;
}

/** A partition's progress in event time, and when it last saw a batch. */
export interface PartitionDoc {
  schema: 1;
  kind: 'partition';
  partition: string;
  /** Highest enqueued time seen (epoch ms), capped at the clock plus a small skew; null before any message. */
  maxEventTime: number | null;
  /** Set by the finalize timer while the partition is idle: windows ending at or before it are closed. */
  clockWatermark: number | null;
  /** Clock time of the last batch (epoch ms). */
  lastBatchAt: number;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`not a ${what} document`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isSchema = (value: unknown): boolean => value === 1 || value === 2;

export const decodeBaseWindowDoc: Decode<BaseWindowDoc> = (raw) => {
  check(isRecord(raw) && isSchema(raw['schema']) && raw['kind'] === 'window', 'base window');
  const doc = raw as unknown as BaseWindowDoc & { messages?: Record<string, Contribution> };
  check(typeof doc.rev === 'number' && isRecord(doc.late), 'base window');
  if ((doc.schema as number) === 1) {
    check(isRecord(doc.messages), 'base window');
    const messages = doc.messages!;
    delete doc.messages;
    doc.schema = 2;
    doc.ids = Object.keys(messages);
    doc.contributions = Object.values(messages);
    doc.totals = totalsOf(doc);
  }
  check(Array.isArray(doc.ids) && Array.isArray(doc.contributions) && doc.ids.length === doc.contributions.length, 'base window');
  check(isRecord(doc.totals), 'base window');
  return doc;
};

/** A partial's list is scanned up to this length; a longer one gets an index. */
const SCANNED = 16;

/** Positions in a partial's `ids` by identity, built once per list and kept while the list lives (in memory). */
const indexes = new WeakMap<readonly string[], Map<string, number>>();

/**
 * The last list looked up and its index (undefined: none yet), kept in step by `findMessage`, the only place an
 * index is built: a group's messages are found and appended one after another, without a WeakMap lookup each.
 */
let lastIds: readonly string[] | undefined;
let lastIndex: Map<string, number> | undefined;

/** The position of `identity` in a partial's `ids`, or -1. */
export function findMessage(ids: readonly string[], identity: string): number {
  if (ids.length <= SCANNED) return ids.indexOf(identity);
  let index = indexOf(ids);
  if (index === undefined) {
    index = new Map();
    for (let i = 0; i < ids.length; i++) index.set(ids[i]!, i);
    indexes.set(ids, index);
    lastIds = ids;
    lastIndex = index;
  }
  return index.get(identity) ?? -1;
}

/** Appends a message to a partial; the only way the aggregator adds one, so that an index stays in step. */
export function appendMessage(doc: Pick<BaseWindowDoc, 'ids' | 'contributions'>, identity: string, contribution: Contribution): void {
  indexOf(doc.ids)?.set(identity, doc.ids.length);
  doc.ids.push(identity);
  doc.contributions.push(contribution);
}

function indexOf(ids: readonly string[]): Map<string, number> | undefined {
  if (ids !== lastIds) {
    lastIds = ids;
    lastIndex = indexes.get(ids);
  }
  return lastIndex;
}

export const decodeRollupWindowDoc: Decode<RollupWindowDoc> = (raw) => {
  check(isRecord(raw) && isSchema(raw['schema']) && raw['kind'] === 'rollup' && isRecord(raw['subs']), 'roll-up window');
  const doc = raw as unknown as RollupWindowDoc;
  if ((doc.schema as number) === 1) {
    // Schema 1 entries held rounded summaries; keep their revisions (so propagation still only moves forward) and
    // let readers take those base windows from the base partials.
    doc.schema = 2;
    for (const sub in doc.subs) doc.subs[sub] = { rev: doc.subs[sub]!.rev, late: 0 };
  }
  return doc;
};

export const decodeWindowDoc: Decode<BaseWindowDoc | RollupWindowDoc> = (raw) =>
  isRecord(raw) && raw['kind'] === 'rollup' ? decodeRollupWindowDoc(raw) : decodeBaseWindowDoc(raw);

export const decodePartitionDoc: Decode<PartitionDoc> = (raw) => {
  check(isRecord(raw) && raw['schema'] === 1 && raw['kind'] === 'partition', 'partition');
  const doc = raw as unknown as PartitionDoc;
  check(typeof doc.lastBatchAt === 'number', 'partition');
  return doc;
};

export interface WindowUpdate<T> {
  /** The document as stored after the update, or as found when the mutation changed nothing. */
  value: T | undefined;
  changed: boolean;
}

/**
 * Where window and partition documents live. Mutations follow `updateJson`'s contract and, in addition, leave
 * their argument untouched when they return `undefined` (the in-memory store hands over the stored object).
 */
export interface WindowStore {
  /** Synchronous when the store does no I/O (the in-memory one), so that a batch of updates costs no event-loop turns. */
  update<T>(name: string, mutate: Mutation<T>, decode: Decode<T>): WindowUpdate<T> | Promise<WindowUpdate<T>>;
  get<T>(name: string, decode: Decode<T>): Promise<T | null>;
  /** Document names under `prefix`, in name order. */
  list(prefix: string): AsyncIterable<string>;
}

export interface BlobWindowStoreOptions {
  /** Lost-race retries per document before `StorageConflict` (transient). Default 16. */
  retries?: number;
  /** Documents whose last version this process wrote are kept (serialised) for the next batch. Default 2000. */
  cachedDocuments?: number;
  /** ... and at most this many characters of them in all. Default 64 Mi (a 1h roll-up of 32 fields is ~0.4 M). */
  cachedCharacters?: number;
}

const JSON_CONTENT_TYPE = 'application/json';

/**
 * Blob-backed documents. A partition is owned by one instance at a time, so the version this process last wrote
 * is almost always still the current one: it is kept, and the next update of that document is a single If-Match
 * write on it, without a read; a document this process has not written is first tried as a new one (a single
 * If-None-Match write). When another writer got in between, the condition fails and the update starts over
 * from a fresh read (`updateJson`). Documents only grow (identities are added, revisions and watermarks only
 * increase), so a mutation that finds nothing to do on the kept version has nothing to do on any later one either.
 */
export function blobWindowStore(store: BlobStore, container: string, options: BlobWindowStoreOptions = {}): WindowStore {
  const capacity = options.cachedDocuments ?? 2000;
  const characterCapacity = options.cachedCharacters ?? 64 * 1024 * 1024;
  const kept = new Map<string, { body: string; etag: ETag }>();
  let keptCharacters = 0;
  const forget = (name: string): void => {
    const entry = kept.get(name);
    if (entry === undefined) return;
    keptCharacters -= entry.body.length;
    kept.delete(name);
  };
  const keep = (name: string, body: string, etag: ETag | undefined): void => {
    forget(name);
    if (etag === undefined || capacity === 0 || body.length > characterCapacity) return;
    kept.set(name, { body, etag });
    keptCharacters += body.length;
    // Map order is insertion order: the first key is the least recently written. Bounded by count and by size,
    // so that many devices with wide roll-ups cannot hold gigabytes of strings.
    while (kept.size > capacity || keptCharacters > characterCapacity) forget(kept.keys().next().value!);
  };
  let ready: Promise<void> | undefined;
  const ensure = (): Promise<void> => {
    ready ??= store.ensureContainer(container).catch((error: unknown) => {
      ready = undefined; // a transient failure must not poison later batches
      throw error;
    });
    return ready;
  };
  return {
    async update<T>(name: string, mutate: Mutation<T>, decode: Decode<T>): Promise<WindowUpdate<T>> {
      await ensure();
      const last = kept.get(name);
      if (last !== undefined) {
        const current = JSON.parse(last.body) as T;
        const next = mutate(current);
        if (next === undefined) return { value: current, changed: false };
        const body = JSON.stringify(next);
        // If-Match on the version this process wrote last: anything written since makes this fail, and the
        // mutation is then applied again to a fresh read below.
        const result = await store.replace(container, name, Buffer.from(body, 'utf8'), last.etag, { contentType: JSON_CONTENT_TYPE });
        if (result.ok) {
          keep(name, body, result.etag);
          return { value: next, changed: true };
        }
        forget(name);
      } else {
        // Not written by this process: usually a new window's first batch, so the document is created without
        // reading first (If-None-Match: *). One that exists (after a restart or an ownership change) refuses the
        // create and is read and updated below: one wasted call then, one saved for every new window.
        const created = mutate(undefined);
        if (created !== undefined) {
          const body = JSON.stringify(created);
          const result = await store.create(container, name, Buffer.from(body, 'utf8'), { contentType: JSON_CONTENT_TYPE });
          if (result.created) {
            keep(name, body, result.etag);
            return { value: created, changed: true };
          }
        }
      }
      const result = await updateJson(store, container, name, mutate, {
        decode,
        ...(options.retries === undefined ? {} : { retries: options.retries }),
      });
      if (result.value !== undefined) keep(name, JSON.stringify(result.value), result.etag);
      return { value: result.value, changed: result.changed };
    },
    async get<T>(name: string, decode: Decode<T>): Promise<T | null> {
      return (await getJson(store, container, name, decode))?.value ?? null;
    },
    async *list(prefix: string): AsyncIterable<string> {
      for await (const item of store.list(container, prefix)) yield item.name;
    },
  };
}

export interface MemoryWindowStore extends WindowStore {
  /** Document count, for tests and the benchmark. */
  readonly size: number;
}

export function memoryWindowStore(): MemoryWindowStore {
  const documents = new Map<string, unknown>();
  return {
    get size() {
      return documents.size;
    },
    update<T>(name: string, mutate: Mutation<T>): WindowUpdate<T> {
      const current = documents.get(name) as T | undefined;
      const next = mutate(current);
      if (next === undefined) return { value: current, changed: false };
      documents.set(name, next);
      return { value: next, changed: true };
    },
    async get<T>(name: string): Promise<T | null> {
      return (documents.get(name) as T | undefined) ?? null;
    },
    async *list(prefix: string): AsyncIterable<string> {
      const names = [...documents.keys()].filter((name) => name.startsWith(prefix)).sort();
      yield* names;
    },
  };
}
