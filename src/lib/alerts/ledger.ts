/**
 * The alert ledger: one JSON blob per alert key (`ledger/{key}.json` in the alerts container) that decides, across
 * redeliveries, crashes and racing instances, which delivery of an alert may act on it, and records what happened.
 * Digests have ledger records too (their key is derived from the device and the digest window).
 *
 * State machine (the conditional writes that implement it are in {@link createAlertLedger}):
 *
 * ```
 *   (none) ──create, If-None-Match:*──▶ in-progress(expiresAt = now + lease, attempts = 1)
 *   in-progress ──replace, If-Match──▶ sent | digested | failed          (the owner records the outcome)
 *   in-progress ──replace, If-Match──▶ in-progress(expiresAt = now)      (the owner hit a transient error: released)
 *   in-progress, expired ──replace, If-Match──▶ in-progress(attempts + 1) (another delivery takes over)
 *   sent | digested | failed: final; every later delivery is a duplicate and changes nothing
 *   sent with deviceNotification 'pending' ──replace, If-Match──▶ deviceNotification 'sent' | 'failed'
 * ```
 *
 * Why a crash never costs a second e-mail: the ACS operation id is derived from the key, not from the attempt, and
 * rendering is deterministic, so a takeover that sends again sends the same operation, which ACS does not deliver
 * twice. The ledger stops redeliveries from reaching the sender at all once the outcome is recorded.
 */

import type { BlobStore, Clock, ETag } from '../ports.js';
import { RoutingError } from '../errors.js';
import { createJson, getJson, replaceJson } from '../storage/jsonDocuments.js';

export type LedgerState = 'in-progress' | 'sent' | 'digested' | 'failed';
export type DeviceNotificationState = 'not-requested' | 'pending' | 'sent' | 'failed';

export interface LedgerRecord {
  schema: 1;
  key: string;
  kind: 'alert' | 'digest';
  deviceId: string;
  /** The e-mail's operation id, derived from the key: every attempt sends under the same id. */
  operationId: string;
  state: LedgerState;
  /** While in progress: until when the current attempt owns the alert. Null once final. */
  expiresAt: string | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  /** sent: the provider's id for the send. */
  providerId?: string;
  recipients?: number;
  /** digested: the digest window the alert was folded into, and when that digest is due. */
  windowId?: string;
  dueAt?: string;
  /** failed: the permanent reason. */
  error?: string;
  providerCode?: string;
  httpStatus?: number;
  deviceNotification?: DeviceNotificationState;
  deviceNotificationError?: string;
  /** The transient error that released the last attempt, for diagnosis. */
  lastError?: string;
}

export type Claim =
  /** This delivery owns the alert; `takeover` when an earlier attempt existed (it may have sent already). */
  | { status: 'claimed'; record: LedgerRecord; etag: ETag; takeover: boolean }
  /** The outcome is recorded: a duplicate delivery. */
  | { status: 'done'; record: LedgerRecord; etag: ETag }
  /** Another delivery owns it and its lease has not expired. */
  | { status: 'busy'; record: LedgerRecord; etag: ETag };

export interface ClaimInit {
  kind: LedgerRecord['kind'];
  deviceId: string;
  operationId: string;
}

export type FinalOutcome =
  | { state: 'sent'; providerId?: string; recipients: number; deviceNotification: DeviceNotificationState; deviceNotificationError?: string }
  | { state: 'digested'; windowId: string; dueAt: string }
  | { state: 'failed'; error: string; providerCode?: string; httpStatus?: number };

export interface AlertLedger {
  claim(key: string, init: ClaimInit): Promise<Claim>;
  /**
   * Records the outcome of an owned attempt. `{ ok: false }` means the record changed since `etag`: the lease ran out
   * and another delivery took over, which will record the same outcome (it sends the same operation).
   */
  finish(owned: { record: LedgerRecord; etag: ETag }, outcome: FinalOutcome): Promise<{ ok: true; etag: ETag } | { ok: false }>;
  /** Updates the device notification of a sent record. */
  recordNotification(
    done: { record: LedgerRecord; etag: ETag },
    state: DeviceNotificationState,
    error?: string,
  ): Promise<{ ok: true; etag: ETag } | { ok: false }>;
  /** Gives up ownership after a transient error so the next delivery can take over at once. Best effort. */
  release(owned: { record: LedgerRecord; etag: ETag }, error: string): Promise<void>;
  get(key: string): Promise<{ record: LedgerRecord; etag: ETag } | null>;
}

export interface AlertLedgerOptions {
  store: BlobStore;
  container: string;
  clock: Clock;
  leaseMs: number;
  /** Creates the container on first use (shared by every alert store). */
  ready: () => Promise<void>;
}

/** A takeover that loses to another taker re-reads and decides again; more than this many losses is contention. */
const MAX_CLAIM_ROUNDS = 4;

export function ledgerBlobName(key: string): string {
  return `ledger/${key}.json`;
}

/**
 * How long before its lease ends an attempt stops working on the alert (a send's polling, a wait on a Retry-After)
 * and hands it back: work still under way when the lease ran out would let another delivery take the alert over
 * without knowing what this one did.
 */
export const LEASE_MARGIN_MS = 15_000;

/**
 * Until when the attempt that owns `record` holds it (epoch ms): its lease's end, 0 when it has none or one that
 * cannot be read. The one reading of `expiresAt`: `claim` takes an in-progress record over once this has passed,
 * and whoever waits on an owner, or on its own lease, asks the same.
 */
export function leaseEndMs(record: LedgerRecord): number {
  const ms = record.expiresAt === null ? 0 : Date.parse(record.expiresAt);
  return Number.isNaN(ms) ? 0 : ms;
}

/**
 * What every write of a record also stores as blob metadata, so that a listing of `ledger/` says when each record
 * was created and last written without downloading it (the dashboard skips records outside its range this way).
 * Replacing a blob replaces its metadata, so every write passes it.
 */
type LedgerMetadata = Record<'kind' | 'createdat' | 'updatedat', string>;

function writeOptions(record: LedgerRecord): { metadata: LedgerMetadata } {
  return { metadata: { kind: record.kind, createdat: record.createdAt, updatedat: record.updatedAt } };
}

/** A listed record's metadata as written by {@link writeOptions}, as epoch ms; undefined for records written before it. */
export function ledgerListingTimes(metadata: Readonly<Record<string, string>>): { kind: string; createdMs: number; updatedMs: number } | undefined {
  const kind = metadata['kind'];
  const createdMs = Date.parse(metadata['createdat'] ?? '');
  const updatedMs = Date.parse(metadata['updatedat'] ?? '');
  if (kind === undefined || Number.isNaN(createdMs) || Number.isNaN(updatedMs)) return undefined;
  return { kind, createdMs, updatedMs };
}

export function createAlertLedger(options: AlertLedgerOptions): AlertLedger {
  const { store, container, clock, leaseMs, ready } = options;

  const read = async (key: string): Promise<{ record: LedgerRecord; etag: ETag } | null> => {
    const document = await getJson<LedgerRecord>(store, container, ledgerBlobName(key));
    return document === null ? null : { record: document.value, etag: document.etag };
  };

  return {
    async claim(key, init) {
      await ready();
      const name = ledgerBlobName(key);
      for (let round = 0; round < MAX_CLAIM_ROUNDS; round += 1) {
        const now = clock.now();
        const fresh: LedgerRecord = {
          schema: 1,
          key,
          kind: init.kind,
          deviceId: init.deviceId,
          operationId: init.operationId,
          state: 'in-progress',
          expiresAt: new Date(now.getTime() + leaseMs).toISOString(),
          attempts: 1,
          createdAt: now.toISOString(),
          updatedAt: now.toISOString(),
        };
        // Invariant: one record per alert key. If-None-Match: * lets exactly one delivery create it; every other
        // delivery of the same message (redelivered, re-sent by IoT Hub, racing on another instance) lands below.
        const created = await createJson(store, container, name, fresh, writeOptions(fresh));
        if (created.created) return { status: 'claimed', record: fresh, etag: created.etag, takeover: false };

        const existing = await read(key);
        if (existing === null) continue; // deleted in between (retention): start over
        const { record, etag } = existing;
        if (record.state !== 'in-progress') return { status: 'done', record, etag };
        if (leaseEndMs(record) > now.getTime()) return { status: 'busy', record, etag };
        const taken: LedgerRecord = {
          ...record,
          expiresAt: new Date(now.getTime() + leaseMs).toISOString(),
          attempts: record.attempts + 1,
          updatedAt: now.toISOString(),
        };
        // Invariant: an expired attempt is taken over by exactly one delivery. If-Match on the version we judged
        // expired; a concurrent taker changes the ETag, and we go round again to find it owned (busy) or finished.
        const replaced = await replaceJson(store, container, name, taken, etag, writeOptions(taken));
        if (replaced.ok) return { status: 'claimed', record: taken, etag: replaced.etag, takeover: true };
      }
      throw new RoutingError('StorageConflict', `ledger ${name}: lost ${MAX_CLAIM_ROUNDS} races for this alert in a row`);
    },

    async finish(owned, outcome) {
      const now = clock.now().toISOString();
      const next: LedgerRecord = { ...owned.record, ...outcome, expiresAt: null, updatedAt: now };
      // Invariant: only the current owner records an outcome. If-Match on the version it claimed; if a taker
      // replaced it, the taker owns the alert now and records instead.
      return replaceJson(store, container, ledgerBlobName(owned.record.key), next, owned.etag, writeOptions(next));
    },

    async recordNotification(done, state, error) {
      const next: LedgerRecord = { ...done.record, deviceNotification: state, updatedAt: clock.now().toISOString() };
      if (error !== undefined) next.deviceNotificationError = error;
      else delete next.deviceNotificationError;
      // If-Match: two deliveries retrying the same pending notification record it once; the loser's copy of the
      // message had the same message id, so the device can drop it.
      return replaceJson(store, container, ledgerBlobName(done.record.key), next, done.etag, writeOptions(next));
    },

    async release(owned, error) {
      const now = clock.now().toISOString();
      const next: LedgerRecord = { ...owned.record, expiresAt: now, lastError: error.slice(0, 500), updatedAt: now };
      try {
        // If-Match: release only our own attempt; a taker's newer lease must not be cut short.
        await replaceJson(store, container, ledgerBlobName(owned.record.key), next, owned.etag, writeOptions(next));
      } catch {
        // The caller is already failing with the error that matters; an unreleased lease only delays the next
        // delivery until it expires.
      }
    },

    get: read,
  };
}
