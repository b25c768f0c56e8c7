/**
 * The archive index: one manifest per archive blob version, in the `archive-index` container, saying what the
 * blob holds (devices, enqueued-time range, levels, check outcomes, damage). The query engine reads a manifest
 * instead of the blob when the manifest proves the blob cannot match.
 *
 * Name: `{archive container}/{archive blob name}.manifest.json`, so the index mirrors the archive's layout and
 * a manifest is found from a listing of the archive without a lookup table.
 */
import { createHash } from 'node:crypto';
import type { AdmitResult } from '../checks/admit.js';
import type { ReasonCode } from '../checks/reasons.js';
import { RoutingError } from '../errors.js';
import type { ArchiveDamage, ArchiveSummary } from '../message/archive.js';
import { lookupProperty } from '../message/normalize.js';
import type { RoutedMessage } from '../message/RoutedMessage.js';
import type { BlobStore, ETag } from '../ports.js';
import { encodeJson } from '../storage/jsonDocuments.js';
import { bloomFilterTest, buildBloomFilter, isBloomFilterJson, type BloomFilterJson } from './bloomFilter.js';
import type { CompiledFilter } from './filter.js';
import type { ParsedBlobName } from './fileNameFormat.js';

/** Up to this many distinct devices are listed exactly; beyond it the manifest keeps a Bloom filter. */
export const MANIFEST_DEVICE_LIST_LIMIT = 1000;
/** Distinct `level` values counted one by one; a blob with more is marked incomplete (and never pruned by level). */
const LEVEL_VALUES_LIMIT = 64;

export interface ArchiveManifest {
  schema: 1;
  kind: 'archive-manifest';
  container: string;
  /** The blob version this manifest describes. */
  blob: { name: string; etag: ETag; size: number };
  /** What the name says, when it follows the configured file name format. */
  name: { iothub: string; partition: string; minute: string } | null;
  format: ArchiveSummary['format'];
  codec: 'null' | 'deflate' | null;
  /** Complete records decoded (before any damage). */
  records: number;
  bytesRead: number;
  enqueuedTime: { min: string | null; max: string | null; undated: number };
  devices: {
    count: number;
    /** Sorted; null when there are more than {@link MANIFEST_DEVICE_LIST_LIMIT} (see `bloom`). */
    ids: string[] | null;
    bloom: BloomFilterJson | null;
    /** Records without a device id. */
    missing: number;
  };
  /** Records per value of the `level` application property. */
  levels: { counts: Record<string, number>; missing: number; complete: boolean };
  /** Check outcomes on the archive endpoint (admit): quarantined records are in the quarantine container. */
  outcomes: { accept: number; warn: number; quarantine: number };
  findings: Partial<Record<ReasonCode, number>>;
  damage: (ArchiveDamage & { recordsBeforeDamage: number }) | null;
  indexedAt: string;
}

const MAX_BLOB_NAME = 1024;

export function manifestName(container: string, blobName: string): string {
  const name = `${container}/${blobName}.manifest.json`;
  // Azure caps names at 1024 characters; a long archive name is hashed so it still has a manifest.
  if (name.length <= MAX_BLOB_NAME) return name;
  return `${container}/~long-names/${createHash('sha256').update(blobName).digest('hex')}.manifest.json`;
}

/** Accumulates a manifest while a blob is decoded and admitted, batch by batch. */
export class ManifestBuilder {
  #records = 0;
  #min = Infinity;
  #max = -Infinity;
  #undated = 0;
  readonly #devices = new Set<string>();
  #missingDevice = 0;
  readonly #levels = new Map<string, number>();
  #levelsComplete = true;
  #missingLevel = 0;
  readonly #outcomes = { accept: 0, warn: 0, quarantine: 0 };
  readonly #findings: Partial<Record<ReasonCode, number>> = {};

  addDecoded(messages: readonly RoutedMessage[]): void {
    for (const message of messages) {
      this.#records++;
      if (message.enqueuedTime === null) {
        this.#undated++;
      } else {
        const t = message.enqueuedTime.getTime();
        if (t < this.#min) this.#min = t;
        if (t > this.#max) this.#max = t;
      }
      if (message.deviceId === null) this.#missingDevice++;
      else this.#devices.add(message.deviceId);
      const level = lookupProperty(message.properties, ['level']);
      if (level === undefined || level === null) {
        this.#missingLevel++;
      } else {
        const key = typeof level === 'string' ? level : String(level);
        const count = this.#levels.get(key);
        if (count !== undefined) this.#levels.set(key, count + 1);
        else if (this.#levels.size < LEVEL_VALUES_LIMIT) this.#levels.set(key, 1);
        else this.#levelsComplete = false;
      }
    }
  }

  addAdmitted(result: AdmitResult): void {
    for (const { check } of result.admitted) this.#outcomes[check.outcome === 'warn' ? 'warn' : 'accept']++;
    this.#outcomes.quarantine += result.quarantined;
    for (const [code, count] of Object.entries(result.findings) as Array<[ReasonCode, number]>) {
      this.#findings[code] = (this.#findings[code] ?? 0) + count;
    }
  }

  build(input: {
    container: string;
    blob: ArchiveManifest['blob'];
    parsedName: ParsedBlobName | null;
    summary: ArchiveSummary;
    indexedAt: Date;
  }): ArchiveManifest {
    const { summary } = input;
    const ids = [...this.#devices].sort();
    const listed = ids.length <= MANIFEST_DEVICE_LIST_LIMIT;
    return {
      schema: 1,
      kind: 'archive-manifest',
      container: input.container,
      blob: input.blob,
      name:
        input.parsedName === null
          ? null
          : {
              iothub: input.parsedName.iothub,
              partition: input.parsedName.partition,
              minute: new Date(input.parsedName.minuteMs).toISOString(),
            },
      format: summary.format,
      codec: summary.codec ?? null,
      records: this.#records,
      bytesRead: summary.bytes,
      enqueuedTime: {
        min: Number.isFinite(this.#min) ? new Date(this.#min).toISOString() : null,
        max: Number.isFinite(this.#max) ? new Date(this.#max).toISOString() : null,
        undated: this.#undated,
      },
      devices: {
        count: ids.length,
        ids: listed ? ids : null,
        bloom: listed ? null : buildBloomFilter(ids, ids.length),
        missing: this.#missingDevice,
      },
      levels: {
        counts: Object.fromEntries([...this.#levels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
        missing: this.#missingLevel,
        complete: this.#levelsComplete,
      },
      outcomes: { ...this.#outcomes },
      findings: { ...this.#findings },
      damage: summary.damage === null ? null : { ...summary.damage, recordsBeforeDamage: summary.records },
      indexedAt: input.indexedAt.toISOString(),
    };
  }
}

// ---- reading ------------------------------------------------------------------------------------------------

/**
 * Checks the parts of a stored manifest the query engine relies on. Anything else (an older or hand-edited file)
 * is treated as absent: the blob is read instead, which is always correct.
 */
export function decodeManifest(raw: unknown): ArchiveManifest | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const m = raw as Record<string, unknown>;
  if (m['schema'] !== 1 || m['kind'] !== 'archive-manifest') return null;
  const blob = m['blob'] as Record<string, unknown> | undefined;
  if (typeof blob?.['name'] !== 'string' || typeof blob['etag'] !== 'string') return null;
  if (typeof m['records'] !== 'number') return null;
  const time = m['enqueuedTime'] as Record<string, unknown> | undefined;
  if (time === undefined || !isIsoOrNull(time['min']) || !isIsoOrNull(time['max'])) return null;
  const devices = m['devices'] as Record<string, unknown> | undefined;
  if (devices === undefined || typeof devices['count'] !== 'number') return null;
  const ids = devices['ids'];
  if (ids !== null && !(Array.isArray(ids) && ids.every((id) => typeof id === 'string'))) return null;
  if (ids === null && !isBloomFilterJson(devices['bloom'])) return null;
  const levels = m['levels'] as Record<string, unknown> | undefined;
  if (levels === undefined || typeof levels['counts'] !== 'object' || levels['counts'] === null || typeof levels['complete'] !== 'boolean') {
    return null;
  }
  if (m['damage'] !== null && typeof m['damage'] !== 'object') return null;
  return raw as ArchiveManifest;
}

function isIsoOrNull(value: unknown): boolean {
  return value === null || (typeof value === 'string' && !Number.isNaN(Date.parse(value)));
}

/** The manifest as stored (with its own ETag), or null when absent or unusable. */
export async function readManifest(
  store: BlobStore,
  indexContainer: string,
  container: string,
  blobName: string,
): Promise<{ manifest: ArchiveManifest | null; etag: ETag } | null> {
  const document = await store.get(indexContainer, manifestName(container, blobName));
  if (document === null) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(document.body.toString('utf8'));
  } catch {
    return { manifest: null, etag: document.etag };
  }
  const manifest = decodeManifest(raw);
  return { manifest: manifest?.blob.name === blobName ? manifest : null, etag: document.etag };
}

/** What pruning needs to know about one blob version, from its manifest or its hour summary. */
export interface BlobFacts {
  records: number;
  damaged: boolean;
  minMs: number | null;
  maxMs: number | null;
  /** Every device id, or null when only the Bloom filter is kept. */
  deviceIds: readonly string[] | null;
  bloom: BloomFilterJson | null;
  /** Every `level` value present, or null when not all were counted. */
  levels: readonly string[] | null;
}

export function factsOfManifest(manifest: ArchiveManifest): BlobFacts {
  return {
    records: manifest.records,
    damaged: manifest.damage !== null,
    minMs: manifest.enqueuedTime.min === null ? null : Date.parse(manifest.enqueuedTime.min),
    maxMs: manifest.enqueuedTime.max === null ? null : Date.parse(manifest.enqueuedTime.max),
    deviceIds: manifest.devices.ids,
    bloom: manifest.devices.bloom,
    levels: manifest.levels.complete ? Object.keys(manifest.levels.counts) : null,
  };
}

/**
 * Whether a blob with these facts can hold a record `filter` selects. Conservative: a damaged blob may hold
 * undecoded records after the damage, so what was indexed proves nothing and the blob is read.
 */
export function factsMayMatch(facts: BlobFacts, filter: CompiledFilter): boolean {
  if (facts.damaged) return true;
  if (facts.records === 0) return false;
  if (filter.fromMs !== undefined || filter.toMs !== undefined) {
    // Undated records never match a range.
    if (facts.minMs === null || facts.maxMs === null) return false;
    if (filter.fromMs !== undefined && facts.maxMs < filter.fromMs) return false;
    if (filter.toMs !== undefined && facts.minMs >= filter.toMs) return false;
  }
  if (filter.deviceIds !== null) {
    if (facts.deviceIds !== null) {
      const listed = new Set(facts.deviceIds);
      if (![...filter.deviceIds].some((id) => listed.has(id))) return false;
    } else if (facts.bloom !== null) {
      const test = bloomFilterTest(facts.bloom);
      if (![...filter.deviceIds].some((id) => test(id))) return false;
    }
  }
  if (filter.level !== undefined && facts.levels !== null && !facts.levels.includes(filter.level)) return false;
  return true;
}

export function manifestMayMatch(manifest: ArchiveManifest, filter: CompiledFilter): boolean {
  return factsMayMatch(factsOfManifest(manifest), filter);
}

// ---- writing ------------------------------------------------------------------------------------------------

export type ManifestWriteOutcome =
  /** First manifest for this blob. */
  | 'created'
  /** The blob was rewritten (new ETag): the previous version's manifest was replaced. */
  | 'replaced'
  /** A manifest for this very version exists: a replayed trigger, nothing written. */
  | 'unchanged'
  /** The blob changed or disappeared since it was read: a newer trigger indexes it, nothing written. */
  | 'stale';

const WRITE_ATTEMPTS = 8;

/**
 * Stores `manifest` for the blob version it describes, never over a newer version's manifest.
 *
 * Why not an unconditional put: a manifest is not a pure function of (name, ETag) — it records check outcomes
 * under the configuration of the day and when it was indexed — and, decisively, a trigger for an older version
 * can run late (retries, a slow instance). Last-writer-wins would then let the old version's manifest replace the
 * new one's, and queries would prune the rewritten blob by the old blob's contents.
 *
 * Invariant: a manifest for version E is written only (1) while E is the blob's current ETag, checked just before
 * the write, and (2) conditionally on the manifest version read (If-None-Match `*` to create, If-Match to
 * replace). A writer for an older version that loses either check re-reads and stops. The one window left — the
 * blob is rewritten between check (1) and the write — leaves a manifest whose `blob.etag` no longer matches the
 * listing; readers ignore such a manifest, and the newer version's trigger replaces it.
 */
export async function storeManifest(
  store: BlobStore,
  indexContainer: string,
  manifest: ArchiveManifest,
  currentEtag: () => Promise<ETag | null>,
): Promise<ManifestWriteOutcome> {
  const name = manifestName(manifest.container, manifest.blob.name);
  const body = encodeJson(manifest);
  const options = { contentType: 'application/json', metadata: { blobetag: encodeURIComponent(manifest.blob.etag) } };
  for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
    const existing = await readManifest(store, indexContainer, manifest.container, manifest.blob.name);
    if (existing?.manifest?.blob.etag === manifest.blob.etag) return 'unchanged';
    if ((await currentEtag()) !== manifest.blob.etag) return 'stale';
    if (existing === null) {
      const created = await store.create(indexContainer, name, body, options);
      if (created.created) return 'created';
    } else {
      const replaced = await store.replace(indexContainer, name, body, existing.etag, options);
      if (replaced.ok) return 'replaced';
    }
  }
  throw new RoutingError(
    'StorageConflict',
    `Manifest ${indexContainer}/${name}: lost ${WRITE_ATTEMPTS} conditional writes in a row; the trigger will retry`,
  );
}
