/**
 * What the handlers left in storage, read from storage itself: message identities counted in reports (base window
 * partials), quarantined identities per endpoint, the alert ledger (one record per alert or digest key), the archive
 * index (one manifest per archive blob version) and the e-mails in the outbox. The conservation summary is built
 * from these, so it holds the handlers to what they wrote, not to what they returned or logged.
 *
 * Documents are read incrementally: a listing gives each blob's ETag and only new or changed ones are downloaded,
 * so the status line can refresh every few seconds during a long run.
 */
import { readdir } from 'node:fs/promises';
import type { EndpointName } from '../lib/config.js';
import type { BlobStore } from '../lib/ports.js';
import { decodeBaseWindowDoc } from '../lib/aggregate/windowStore.js';
import { identityOfDeviceScoped } from '../lib/message/identity.js';

export interface LedgerEntry {
  kind: string;
  state: string;
}

export interface ManifestEntry {
  /** The archive blob's name and the version the manifest describes. */
  blobName: string;
  etag: string;
  records: number;
  admitted: number;
  quarantined: number;
}

export interface OutputSnapshot {
  /** Identities counted in reports. */
  reported: ReadonlySet<string>;
  /** Base windows (device and window start) that have a report. */
  reportWindows: number;
  /** Quarantined identities per endpoint. */
  quarantined: ReadonlyMap<EndpointName, ReadonlySet<string>>;
  /** Damaged archive blobs (whole-blob quarantine records). */
  quarantinedBlobs: number;
  /** Alert ledger records by key. */
  ledger: ReadonlyMap<string, LedgerEntry>;
  /** Archive manifests by archive blob name. */
  manifests: ReadonlyMap<string, ManifestEntry>;
  /** `.eml` files in the outbox; null when e-mail does not go to an outbox. */
  emails: number | null;
}

export interface OutputScannerOptions {
  store: BlobStore;
  reportsContainer: string;
  /** The base window's label (`1m`): only base partials hold identities. */
  baseWindowLabel: string;
  quarantineContainer: string;
  alertsContainer: string;
  archiveIndexContainer: string;
  outboxDirectory: string | null;
}

const ENDPOINTS = new Set<string>(['events', 'criticalQueue', 'archive']);

/** A container's JSON documents under a prefix, re-read only when their ETag changes. */
class IncrementalDocuments<T> {
  readonly values = new Map<string, T>();
  readonly #etags = new Map<string, string>();

  constructor(
    private readonly store: BlobStore,
    private readonly container: string,
    private readonly prefix: string,
    private readonly decode: (raw: unknown) => T | undefined,
  ) {}

  async refresh(): Promise<void> {
    const seen = new Set<string>();
    for await (const item of this.store.list(this.container, this.prefix)) {
      seen.add(item.name);
      if (this.#etags.get(item.name) === item.etag) continue;
      const doc = await this.store.get(this.container, item.name);
      if (doc === null) continue;
      let value: T | undefined;
      try {
        value = this.decode(JSON.parse(doc.body.toString('utf8')) as unknown);
      } catch {
        value = undefined;
      }
      this.#etags.set(item.name, doc.etag);
      if (value === undefined) this.values.delete(item.name);
      else this.values.set(item.name, value);
    }
    for (const name of [...this.#etags.keys()]) {
      if (seen.has(name)) continue;
      this.#etags.delete(name);
      this.values.delete(name);
    }
  }
}

function record(raw: unknown): Record<string, unknown> | undefined {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
}

export class OutputScanner {
  readonly #options: OutputScannerOptions;
  readonly #partials: IncrementalDocuments<string[]>;
  readonly #ledger: IncrementalDocuments<LedgerEntry>;
  readonly #manifests: IncrementalDocuments<ManifestEntry>;

  constructor(options: OutputScannerOptions) {
    this.#options = options;
    this.#partials = new IncrementalDocuments(options.store, options.reportsContainer, `windows/${options.baseWindowLabel}/`, (raw) => {
      if (record(raw)?.['kind'] !== 'window') return undefined;
      // Partials list identities scoped to their device; conservation compares `messageIdentity`.
      const doc = decodeBaseWindowDoc(raw);
      return doc.ids.map((id) => identityOfDeviceScoped(doc.deviceId, id));
    });
    this.#ledger = new IncrementalDocuments(options.store, options.alertsContainer, 'ledger/', (raw) => {
      const doc = record(raw);
      return typeof doc?.['key'] === 'string' ? { kind: String(doc['kind']), state: String(doc['state']) } : undefined;
    });
    this.#manifests = new IncrementalDocuments(options.store, options.archiveIndexContainer, '', (raw) => {
      const doc = record(raw);
      const blob = record(doc?.['blob']);
      const outcomes = record(doc?.['outcomes']);
      if (doc?.['kind'] !== 'archive-manifest' || blob === undefined || outcomes === undefined) return undefined;
      return {
        blobName: String(blob['name']),
        etag: String(blob['etag']),
        records: Number(doc['records']),
        admitted: Number(outcomes['accept']) + Number(outcomes['warn']),
        quarantined: Number(outcomes['quarantine']),
      };
    });
  }

  async scan(): Promise<OutputSnapshot> {
    const [, , , quarantine, emails] = await Promise.all([
      this.#partials.refresh(),
      this.#ledger.refresh(),
      this.#manifests.refresh(),
      this.#scanQuarantine(),
      this.#countOutbox(),
    ]);
    const reported = new Set<string>();
    for (const identities of this.#partials.values.values()) for (const identity of identities) reported.add(identity);
    // windows/{size}/{day}/{device}/{windowStart}/{partition}.json: one report per device and window start.
    const windows = new Set([...this.#partials.values.keys()].map((name) => name.split('/').slice(3, 5).join('/')));
    const ledger = new Map<string, LedgerEntry>();
    for (const [name, entry] of this.#ledger.values) ledger.set(name.slice('ledger/'.length, -'.json'.length), entry);
    const manifests = new Map<string, ManifestEntry>();
    for (const entry of this.#manifests.values.values()) manifests.set(entry.blobName, entry);
    return { reported, reportWindows: windows.size, ...quarantine, ledger, manifests, emails };
  }

  async #scanQuarantine(): Promise<Pick<OutputSnapshot, 'quarantined' | 'quarantinedBlobs'>> {
    const { store, quarantineContainer } = this.#options;
    const quarantined = new Map<EndpointName, Set<string>>();
    let quarantinedBlobs = 0;
    // Names carry the endpoint and the identity (messages/{endpoint}/{YYYY}/{MM}/{DD}/{identity}.json): no downloads.
    for await (const item of store.list(quarantineContainer)) {
      const parts = item.name.split('/');
      if (parts[0] === 'blobs') {
        quarantinedBlobs++;
        continue;
      }
      const endpoint = parts[1] ?? '';
      const file = parts[parts.length - 1] ?? '';
      if (parts[0] !== 'messages' || !ENDPOINTS.has(endpoint) || !file.endsWith('.json')) continue;
      let set = quarantined.get(endpoint as EndpointName);
      if (set === undefined) quarantined.set(endpoint as EndpointName, (set = new Set()));
      set.add(file.slice(0, -'.json'.length));
    }
    return { quarantined, quarantinedBlobs };
  }

  async #countOutbox(): Promise<number | null> {
    const directory = this.#options.outboxDirectory;
    if (directory === null) return null;
    try {
      return (await readdir(directory)).filter((f) => f.endsWith('.eml') && !f.startsWith('.')).length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
  }
}
