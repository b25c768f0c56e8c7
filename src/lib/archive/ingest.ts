/**
 * archiveIngest: for each archive blob IoT Hub writes (or rewrites), decode it as a stream, run the archive
 * endpoint's checks, quarantine what must not be served, and index it with one manifest.
 *
 * Delivery: the trigger (Event Grid's BlobCreated event in Azure, the polling blob trigger elsewhere) fires at least
 * once per blob version, and again after a rewrite; Event Grid also redelivers an event whose invocation failed or
 * took longer than its 30-second answer timeout, even while that invocation still runs; `iot-routing archive index`
 * (indexCatchUp.ts) is one more delivery, for blobs no event announced, possibly beside the trigger. Everything here is
 * keyed so a replay changes nothing: quarantined messages by message identity, a damaged blob by (name, ETag), the
 * manifest by (name, ETag) with the conditional protocol in manifest.ts. A replay of an indexed version is noticed
 * before the blob is downloaded; a replay that arrives while the same version is being downloaded by this handler
 * shares that download (singleFlightByVersion).
 *
 * Failures: damage in the blob is a finding (quarantine record + manifest), never an exception. A storage failure
 * throws (`StorageUnavailable`) so the trigger retries the blob; nothing half-written can mislead a reader, because
 * the manifest is written last.
 */
import { admit, type AdmitDeps } from '../checks/admit.js';
import type { ArchiveSummary } from '../message/archive.js';
import { readArchive } from '../message/readArchive.js';
import type { BlobItem, BlobStore, Clock, ETag } from '../ports.js';
import type { Quarantine } from '../storage/quarantine.js';
import type { ResolvedArchive } from './archiveDeps.js';
import { recordInHourSummary } from './hourSummary.js';
import {
  ManifestBuilder,
  manifestName,
  readManifest,
  storeManifest,
  type ArchiveManifest,
  type ManifestWriteOutcome,
} from './manifest.js';

export interface ArchiveIngestDeps {
  store: BlobStore;
  clock: Clock;
  quarantine: Quarantine;
  admitDeps: AdmitDeps;
  archive: ResolvedArchive;
}

export interface IngestSummary {
  blobName: string;
  /** The version indexed; null when the blob no longer exists. */
  etag: ETag | null;
  /** `missing`: deleted before it could be read. Otherwise what happened to the manifest. */
  outcome: ManifestWriteOutcome | 'missing';
  format: ArchiveSummary['format'] | null;
  records: number;
  admitted: number;
  quarantined: number;
  damage: ArchiveSummary['damage'];
  manifest: string;
}

export type ArchiveIngestHandler = (blobName: string) => Promise<IngestSummary>;

/**
 * What an ingest found in the blob, as the function's log line and `iot-routing archive index`'s progress line
 * both say it: the records read, how many were quarantined, and the damage (whose record is in the quarantine).
 */
export function describeIngest(summary: Pick<IngestSummary, 'records' | 'quarantined' | 'damage'>): string {
  const damage = summary.damage === null ? '' : `; ${summary.damage.code} at byte ${summary.damage.byteOffset}, quarantined`;
  return `${summary.records} records, ${summary.quarantined} quarantined${damage}`;
}

export function createArchiveIngestHandler(deps: ArchiveIngestDeps): ArchiveIngestHandler {
  const { store, archive } = deps;
  let ready: Promise<void> | undefined;
  const ensureIndex = (): Promise<void> => {
    ready ??= store.ensureContainer(archive.indexContainer).catch((error: unknown) => {
      ready = undefined; // a transient failure must not poison later invocations
      throw error;
    });
    return ready;
  };
  const currentVersion = async (name: string): Promise<BlobItem | null> => {
    // The exact name sorts first among names it prefixes, so one item of one page answers.
    for await (const item of store.list(archive.container, name, { pageSize: 1 })) {
      return item.name === name ? item : null;
    }
    return null;
  };
  const nothingRead = (blobName: string) =>
    ({ blobName, manifest: manifestName(archive.container, blobName), records: 0, admitted: 0, quarantined: 0, damage: null }) as const;
  const currentEtag = async (name: string): Promise<ETag | null> => (await currentVersion(name))?.etag ?? null;
  /**
   * Hour summaries are written after the manifest, only for the version that is still current: `current` is the
   * blob as listed after the manifest was written or found (the listing also gives the summary its Last-Modified).
   */
  const summarize = async (manifest: ArchiveManifest, current: BlobItem | null): Promise<void> => {
    const parsed = archive.format.parse(manifest.blob.name);
    if (parsed === null) return;
    if (current?.etag !== manifest.blob.etag) return;
    await recordInHourSummary(store, archive.indexContainer, manifest, parsed, current.lastModified);
  };

  /**
   * Downloads, checks and indexes the version of `blobName` that is current when it is opened. `opened` is told
   * that version (null: no blob) as soon as openRead answers, before the download is read.
   */
  const downloadAndIndex = async (blobName: string, opened: (version: ETag | null) => void): Promise<IngestSummary> => {
    const blob = await store.openRead(archive.container, blobName);
    opened(blob?.etag ?? null);
    if (blob === null) return { ...nothingRead(blobName), etag: null, outcome: 'missing', format: null };

    const builder = new ManifestBuilder();
    let admitted = 0;
    let quarantined = 0;
    let summary: ArchiveSummary | undefined;
    for await (const event of readArchive(blob.chunks, { name: blobName })) {
      if (event.type === 'end') {
        summary = event.summary;
        continue;
      }
      builder.addDecoded(event.messages);
      const result = await admit(event.messages, 'archive', deps.admitDeps);
      builder.addAdmitted(result);
      admitted += result.admitted.length;
      quarantined += result.quarantined;
    }
    if (summary === undefined) throw new Error(`readArchive ended without a summary for ${blobName}`);

    if (summary.damage !== null) {
      // One record per damaged blob version; the blob itself stays where it is (it can be hundreds of MB).
      await deps.quarantine.putDamagedBlob(
        { container: archive.container, name: blobName, etag: blob.etag, size: blob.size, recordsBeforeDamage: summary.records },
        'archive',
        summary.damage,
      );
    }

    const built = builder.build({
      container: archive.container,
      blob: { name: blobName, etag: blob.etag, size: blob.size },
      parsedName: archive.format.parse(blobName),
      summary,
      indexedAt: deps.clock.now(),
    });
    const outcome = await storeManifest(store, archive.indexContainer, built, () => currentEtag(blobName));
    if (outcome !== 'stale') await summarize(built, await currentVersion(blobName));
    return {
      blobName,
      etag: blob.etag,
      outcome,
      format: summary.format,
      records: summary.records,
      admitted,
      quarantined,
      damage: summary.damage,
      manifest: manifestName(archive.container, blobName),
    };
  };

  const downloads = singleFlightByVersion(downloadAndIndex, currentEtag);

  return async (blobName) => {
    await ensureIndex();
    const empty = nothingRead(blobName);

    const existing = await readManifest(store, archive.indexContainer, archive.container, blobName);
    if (existing !== null && existing.manifest !== null) {
      // One listing answers both questions: is the indexed version current, and may its hour summary be written.
      const current = await currentVersion(blobName);
      if (current === null) return { ...empty, etag: null, outcome: 'missing', format: null };
      if (current.etag === existing.manifest.blob.etag) {
        const m = existing.manifest;
        // A replay after a failure between the manifest and the summary completes the summary; otherwise a no-op.
        await summarize(m, current);
        return {
          ...empty,
          etag: current.etag,
          outcome: 'unchanged',
          format: m.format,
          records: m.records,
          admitted: m.outcomes.accept + m.outcomes.warn,
          quarantined: m.outcomes.quarantine,
          damage: m.damage,
        };
      }
    }

    return downloads.ingest(blobName);
  };
}

/** A download of one blob name under way, and the version it opened once openRead has answered. */
interface Download {
  /** The ETag the run opened (null: no blob). Rejects when the run failed before openRead answered. */
  version: Promise<ETag | null>;
  outcome: Promise<IngestSummary>;
}

/**
 * Concurrent ingests of one blob version share one download: Event Grid redelivers an event its 30-second webhook
 * timeout gave up on while the first invocation still reads the blob (up to 500 MiB), on the same instance.
 *
 * Invariant: a caller is answered by a run only if that run ingests the version that is current after the caller
 * arrived. The version a run ingests is known only once openRead answers (the name is read, not an ETag, and the
 * stream stays on the version it opened), so a caller that finds a run of the same name waits for that version and
 * then compares it with a listing of its own: equal, it awaits the run's outcome, failure included (each waiter's
 * trigger retries); different (rewritten or deleted since), it starts a run of its own, which later callers of the
 * name judge in turn. A run on an older version never answers for a newer one, and an answer is one a lone ingest
 * started at the caller's listing could have given. A lone ingest does exactly what it did without this: no
 * listing, one openRead.
 *
 * Bounded: one entry per blob name with a run under way (the latest one started), removed when that run settles.
 * The handler serves one archive container, so the name is the key.
 */
function singleFlightByVersion(
  run: (blobName: string, opened: (version: ETag | null) => void) => Promise<IngestSummary>,
  currentEtag: (blobName: string) => Promise<ETag | null>,
): { ingest(blobName: string): Promise<IngestSummary> } {
  const downloads = new Map<string, Download>();

  const start = (blobName: string): Promise<IngestSummary> => {
    let opened!: (version: ETag | null) => void;
    let failed!: (error: unknown) => void;
    const version = new Promise<ETag | null>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    // Waiters learn of a failure from the version; nobody may be waiting, and the starter has the outcome.
    version.catch(() => undefined);
    const download: Download = {
      version,
      outcome: run(blobName, opened)
        .catch((error: unknown) => {
          failed(error);
          throw error;
        })
        .finally(() => {
          if (downloads.get(blobName) === download) downloads.delete(blobName);
        }),
    };
    downloads.set(blobName, download);
    return download.outcome;
  };

  return {
    async ingest(blobName) {
      for (;;) {
        const download = downloads.get(blobName);
        if (download === undefined) return start(blobName);
        let version: ETag | null;
        try {
          version = await download.version;
        } catch {
          return download.outcome; // the shared run failed: its failure is this caller's too
        }
        if ((await currentEtag(blobName)) === version) return download.outcome;
        // Another version is current: start its run, unless another caller already has (judge that one instead).
        if (downloads.get(blobName) === download) return start(blobName);
      }
    },
  };
}
