/**
 * Hour summaries: one document per (hub, partition, hour) in the archive index, holding the pruning facts of
 * every blob of that hour. A range query fetches one summary per partition-hour instead of one manifest per blob,
 * which is what makes a 10-minute query cost a handful of requests before its first download.
 *
 * Summaries are derived from manifests and are only an accelerator: an entry counts only when its ETag equals the
 * listed blob's, so a missing, stale or lost entry costs a manifest read or a download, never a wrong answer.
 *
 * Name: `{archive container}/~hours/{iothub}/{partition}/{YYYY}-{MM}-{DD}T{HH}.json`.
 */
import type { BlobStore, ETag } from '../ports.js';
import { updateJson } from '../storage/jsonDocuments.js';
import { buildBloomFilter, isBloomFilterJson, type BloomFilterJson } from './bloomFilter.js';
import type { ParsedBlobName } from './fileNameFormat.js';
import type { ArchiveManifest, BlobFacts } from './manifest.js';

/** Device ids kept per blob in a summary; beyond it the manifest's Bloom filter is kept instead. */
const SUMMARY_DEVICE_IDS = 32;

export interface BlobSummaryEntry {
  etag: ETag;
  /** The version's Last-Modified (ISO): a newer version's entry is never replaced by an older one's. */
  lastModified: string;
  records: number;
  damaged: boolean;
  min: string | null;
  max: string | null;
  deviceIds: string[] | null;
  bloom: BloomFilterJson | null;
  levels: string[] | null;
}

export interface HourSummary {
  schema: 1;
  kind: 'archive-hour-summary';
  container: string;
  iothub: string;
  partition: string;
  hour: string;
  blobs: Record<string, BlobSummaryEntry>;
}

export function hourSummaryName(container: string, parsed: ParsedBlobName): string {
  const hour = new Date(parsed.minuteMs).toISOString().slice(0, 13);
  return `${container}/~hours/${parsed.iothub}/${parsed.partition}/${hour}.json`;
}

export function summaryEntryOf(manifest: ArchiveManifest, lastModified: Date): BlobSummaryEntry {
  const ids = manifest.devices.ids;
  const listed = ids !== null && ids.length <= SUMMARY_DEVICE_IDS;
  return {
    etag: manifest.blob.etag,
    lastModified: lastModified.toISOString(),
    records: manifest.records,
    damaged: manifest.damage !== null,
    min: manifest.enqueuedTime.min,
    max: manifest.enqueuedTime.max,
    deviceIds: listed ? ids : null,
    // A list too long for the summary is carried as the manifest's filter, or built from the list.
    bloom: listed ? null : (manifest.devices.bloom ?? buildBloomFilter(ids ?? [], ids?.length ?? 0)),
    levels: manifest.levels.complete ? Object.keys(manifest.levels.counts) : null,
  };
}

/**
 * Records a manifest's facts in its hour summary.
 *
 * Invariant: the entry for a blob only ever moves to a version with a later Last-Modified (a rewrite), whatever
 * order triggers run in; the read-modify-write is ETag-guarded (updateJson), so concurrent ingests of one hour
 * never lose each other's entries.
 */
export async function recordInHourSummary(
  store: BlobStore,
  indexContainer: string,
  manifest: ArchiveManifest,
  parsed: ParsedBlobName,
  lastModified: Date,
): Promise<void> {
  const entry = summaryEntryOf(manifest, lastModified);
  await updateJson<HourSummary>(store, indexContainer, hourSummaryName(manifest.container, parsed), (current) => {
    const summary: HourSummary = current ?? {
      schema: 1,
      kind: 'archive-hour-summary',
      container: manifest.container,
      iothub: parsed.iothub,
      partition: parsed.partition,
      hour: new Date(parsed.minuteMs).toISOString().slice(0, 13),
      blobs: {},
    };
    const existing = Object.hasOwn(summary.blobs, manifest.blob.name) ? summary.blobs[manifest.blob.name] : undefined;
    if (existing !== undefined && (existing.etag === entry.etag || Date.parse(existing.lastModified) > lastModified.getTime())) {
      return undefined;
    }
    summary.blobs = { ...summary.blobs, [manifest.blob.name]: entry };
    return summary;
  });
}

/** Null when the entry is unusable (hand-edited, older schema): the caller then reads the manifest. */
export function factsOfEntry(entry: unknown): BlobFacts | null {
  if (typeof entry !== 'object' || entry === null) return null;
  const e = entry as Record<string, unknown>;
  if (typeof e['records'] !== 'number' || typeof e['damaged'] !== 'boolean') return null;
  const time = (v: unknown): number | null | undefined =>
    v === null ? null : typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? Date.parse(v) : undefined;
  const minMs = time(e['min']);
  const maxMs = time(e['max']);
  if (minMs === undefined || maxMs === undefined) return null;
  const ids = e['deviceIds'];
  const deviceIds = Array.isArray(ids) && ids.every((id) => typeof id === 'string') ? (ids as string[]) : null;
  const bloom = isBloomFilterJson(e['bloom']) ? e['bloom'] : null;
  if (deviceIds === null && bloom === null) return null;
  const levels = Array.isArray(e['levels']) && e['levels'].every((l) => typeof l === 'string') ? (e['levels'] as string[]) : null;
  return { records: e['records'], damaged: e['damaged'], minMs, maxMs, deviceIds, bloom, levels };
}

/**
 * Fetches each hour summary a query needs once, however many of its blobs ask. Lives as long as one query, so it
 * never serves a summary older than the query.
 */
export class HourSummaryCache {
  readonly #store: BlobStore;
  readonly #indexContainer: string;
  readonly #container: string;
  readonly #summaries = new Map<string, Promise<Record<string, unknown> | null>>();
  fetched = 0;

  constructor(store: BlobStore, indexContainer: string, container: string) {
    this.#store = store;
    this.#indexContainer = indexContainer;
    this.#container = container;
  }

  /** Starts fetching a summary that blobs about to be listed will ask for. */
  prefetch(parsed: ParsedBlobName): void {
    this.#summary(hourSummaryName(this.#container, parsed));
  }

  /** The facts recorded for exactly this blob version, or null when the summary has none for it. */
  async factsFor(name: string, etag: ETag, parsed: ParsedBlobName): Promise<BlobFacts | null> {
    const blobs = await this.#summary(hourSummaryName(this.#container, parsed));
    if (blobs === null || !Object.hasOwn(blobs, name)) return null;
    const entry = blobs[name] as Record<string, unknown> | undefined;
    if (entry?.['etag'] !== etag) return null;
    return factsOfEntry(entry);
  }

  #summary(key: string): Promise<Record<string, unknown> | null> {
    let pending = this.#summaries.get(key);
    if (pending === undefined) {
      pending = this.#load(key);
      this.#summaries.set(key, pending);
    }
    return pending;
  }

  async #load(key: string): Promise<Record<string, unknown> | null> {
    let document;
    try {
      document = await this.#store.get(this.#indexContainer, key);
    } catch {
      return null; // the summary only saves work; without it, manifests and blobs are read
    }
    this.fetched++;
    if (document === null) return null;
    try {
      const raw = JSON.parse(document.body.toString('utf8')) as { kind?: unknown; blobs?: unknown };
      if (raw.kind !== 'archive-hour-summary' || typeof raw.blobs !== 'object' || raw.blobs === null) return null;
      return raw.blobs as Record<string, unknown>;
    } catch {
      return null;
    }
  }
}
