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
 * before the blob is downloaded.
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
  const currentEtag = async (name: string): Promise<ETag | null> => (await currentVersion(name))?.etag ?? null;
  /** Hour summaries are written after the manifest, only for the version that is still current. */
  const summarize = async (manifest: ArchiveManifest): Promise<void> => {
    const parsed = archive.format.parse(manifest.blob.name);
    if (parsed === null) return;
    const current = await currentVersion(manifest.blob.name);
    if (current?.etag !== manifest.blob.etag) return;
    await recordInHourSummary(store, archive.indexContainer, manifest, parsed, current.lastModified);
  };

  return async (blobName) => {
    await ensureIndex();
    const manifest = manifestName(archive.container, blobName);
    const empty = { blobName, manifest, records: 0, admitted: 0, quarantined: 0, damage: null } as const;

    const existing = await readManifest(store, archive.indexContainer, archive.container, blobName);
    if (existing !== null && existing.manifest !== null) {
      const current = await currentEtag(blobName);
      if (current === null) return { ...empty, etag: null, outcome: 'missing', format: null };
      if (current === existing.manifest.blob.etag) {
        const m = existing.manifest;
        // A replay after a failure between the manifest and the summary completes the summary; otherwise a no-op.
        await summarize(m);
        return {
          ...empty,
          etag: current,
          outcome: 'unchanged',
          format: m.format,
          records: m.records,
          admitted: m.outcomes.accept + m.outcomes.warn,
          quarantined: m.outcomes.quarantine,
          damage: m.damage,
        };
      }
    }

    const blob = await store.openRead(archive.container, blobName);
    if (blob === null) return { ...empty, etag: null, outcome: 'missing', format: null };

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
    if (outcome !== 'stale') await summarize(built);
    return {
      blobName,
      etag: blob.etag,
      outcome,
      format: summary.format,
      records: summary.records,
      admitted,
      quarantined,
      damage: summary.damage,
      manifest,
    };
  };
}
