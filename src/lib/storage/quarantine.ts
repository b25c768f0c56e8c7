/**
 * The quarantine: where every message that cannot be processed is kept, with what a person needs to fix and replay
 * it. Nothing rejected is ever dropped; it is quarantined or processed.
 *
 * Layout (container from QUARANTINE_CONTAINER, default `quarantine`):
 *   messages/{endpoint}/{YYYY}/{MM}/{DD}/{identity}.json   one per message identity (enqueued day; `undated`)
 *   blobs/{endpoint}/{sha of blob name}-{sha of etag}.json   one per damaged archive blob version
 *   digests/criticalQueue/{YYYY}/{MM}/{DD}/{digest key}.json one per refused digest (its first alert's day, its ledger key)
 * Earlier builds filed refused digests as messages/criticalQueue/{day refused}/{digest key}.json (kind `digest` in
 * the metadata): `list` and the dashboard still find them there, and a takeover of such a digest finds it first.
 * Blob metadata holds the reason codes, the device id and when it was quarantined (the app's clock), so a listing
 * can filter without downloading.
 */
import { createHash } from 'node:crypto';
import type { Finding } from '../checks/checks.js';
import { REASON_CODES, REASONS, type EndpointName, type ReasonCode } from '../checks/reasons.js';
import type { ArchiveDamage } from '../message/archive.js';
import { messageIdentity } from '../message/identity.js';
import type { RoutedMessage } from '../message/RoutedMessage.js';
import { messageFields, messageFromFields, type MessageRecord } from '../message/serialize.js';
import type { BlobItem, BlobStore, Clock, DeleteResult, ETag } from '../ports.js';
import { createJson, getJson, replaceJson, type JsonDocument } from './jsonDocuments.js';

export type ArchiveDamageCode = ArchiveDamage['code'];

/** Reasons a later stage can reject a message for, after the checks accepted it. */
export type ProcessingRejectionCode = 'EmailRejected';

export type QuarantineReasonCode = ReasonCode | ArchiveDamageCode | ProcessingRejectionCode;

/** Every code a quarantine entry can give as a reason. */
export function quarantineReasonCodes(): QuarantineReasonCode[] {
  return [...REASON_CODES, ...ARCHIVE_DAMAGE_CODES, 'EmailRejected'];
}

export interface QuarantineReason {
  code: QuarantineReasonCode;
  detail: string;
  hint: string;
  property?: string;
}

export const DAMAGE_HINTS: Readonly<Record<ArchiveDamageCode, string>> = {
  ArchiveTruncated:
    'The blob ends in the middle of a record block: it was cut while being written or copied. Every complete record ' +
    'before the cut was processed. If IoT Hub is still writing it, the blob trigger fires again when it is complete; ' +
    'otherwise restore the blob from its source and replay it.',
  ArchiveCorrupt:
    'The blob is not a valid Avro container or JSON-lines file past the reported offset (bad sync marker, block or ' +
    'line). Every complete record before it was processed. Check what else writes to this container; only IoT Hub ' +
    'routing and Event Hubs Capture output is expected here.',
  ArchiveFormatUnknown:
    'The blob is neither Avro (IoT Hub or Event Hubs Capture) nor IoT Hub JSON lines. Only IoT Hub routing or Event ' +
    'Hubs Capture should write to the archive container; move other files elsewhere.',
};

/** The codes a damaged archive blob is quarantined with. */
export const ARCHIVE_DAMAGE_CODES = Object.keys(DAMAGE_HINTS) as readonly ArchiveDamageCode[];

/** The message as every other output prints it (serialize.ts), without the decoded view, plus the original bytes. */
export type QuarantinedMessage = {
  schema: 1;
  kind: 'message';
  identity: string;
  endpoint: EndpointName;
  /** When the first copy was quarantined (replays do not change it). */
  quarantinedAt: string;
  reasons: QuarantineReason[];
} & Omit<MessageRecord, 'body'> & {
  /** The original body bytes, base64: the exact input, so it can be replayed once the cause is fixed. */
  bodyBase64: string;
  bodyBytes: number;
};

export interface QuarantinedBlob {
  schema: 1;
  kind: 'archive-blob';
  identity: string;
  endpoint: EndpointName;
  quarantinedAt: string;
  reasons: QuarantineReason[];
  /** The damaged blob stays where it is (it can be 300 MB); this records which version and where it broke. */
  blob: { container: string; name: string; etag: string; size: number; recordsBeforeDamage: number };
}

/**
 * A digest the e-mail service rejected for good. Its alerts were folded into the digest (their ledger records say
 * `digested`), and the digest window holds their aggregate, not the messages: this keeps what the e-mail would have
 * said and which alerts it covered, so a person can fix the cause and see what was not delivered.
 */
export interface QuarantinedDigest {
  schema: 1;
  kind: 'digest';
  /** The digest's key (its ledger record is `ledger/<identity>.json`). */
  identity: string;
  endpoint: 'criticalQueue';
  quarantinedAt: string;
  reasons: QuarantineReason[];
  deviceId: string;
  digest: {
    operationId: string;
    alerts: number;
    firstTime: string | null;
    lastTime: string | null;
    severities: readonly string[];
    recipients: readonly string[];
    /** Per reading, its range over the alerts (`min`, `max`) or, for text, the latest value. */
    readings: ReadonlyArray<{ name: string; min: number; max: number } | { name: string; latest: string | number | boolean | null }>;
    /** The most recent alert keys folded in (their ledger records are `ledger/<key>.json`). */
    recentAlertKeys: readonly string[];
  };
}

export type QuarantineEntry = QuarantinedMessage | QuarantinedBlob | QuarantinedDigest;

export interface QuarantineListItem {
  name: string;
  endpoint: string;
  kind: QuarantineEntry['kind'];
  reasons: string[];
  deviceId: string | null;
  /** When the record was first written, by the app's clock; null for records of builds that did not store it. */
  quarantinedAt: Date | null;
  lastModified: Date;
  size: number;
}

export interface QuarantinePutResult {
  name: string;
  /** False when this identity was already quarantined: a replay, which changes nothing. */
  created: boolean;
}

export interface Quarantine {
  putMessage(message: RoutedMessage, endpoint: EndpointName, reasons: readonly QuarantineReason[]): Promise<QuarantinePutResult>;
  putDamagedBlob(
    blob: QuarantinedBlob['blob'],
    endpoint: EndpointName,
    damage: ArchiveDamage,
  ): Promise<QuarantinePutResult>;
  /**
   * Kept under the critical queue (a failed digest is a failed delivery of its alerts), named by the digest's key.
   * `earlierAttemptsSince`, for a takeover: when the digest's first attempt began, so that a record an earlier
   * build wrote under the day of its refusal is found instead of written again.
   */
  putDigest(
    entry: Omit<QuarantinedDigest, 'schema' | 'kind' | 'endpoint' | 'quarantinedAt'>,
    options?: { earlierAttemptsSince?: Date },
  ): Promise<QuarantinePutResult>;
  list(filter?: { endpoint?: string; reason?: string; deviceId?: string }): AsyncIterable<QuarantineListItem>;
  /** The record and the version read (`etag`, for a delete that must not remove a rewritten record); null when gone. */
  get(name: string): Promise<JsonDocument<QuarantineEntry> | null>;
  /**
   * Deletes a record (a replayed message that went through); with `etag`, only that version (If-Match), so that a
   * record rewritten since it was read stays (`conditionNotMet`).
   */
  remove(name: string, etag?: ETag): Promise<DeleteResult>;
  /**
   * A quarantine for replays: a message it is asked to quarantine again (its record exists) gets its record's
   * reasons replaced by today's, `quarantinedAt` kept, so that `show`, `list --reason` and the dashboard say why
   * it is still refused. Everywhere else the first copy's reasons stay (a redelivery changes nothing).
   */
  forReplay(): Quarantine;
}

/** Findings with the outcome `quarantine` as reasons; the others stay with the processed message. */
export function reasonsFromFindings(findings: readonly Finding[]): QuarantineReason[] {
  return findings.filter((f) => f.outcome === 'quarantine').map((f) => ({
    code: f.code,
    detail: f.detail,
    hint: f.hint,
    ...(f.property !== undefined ? { property: f.property } : {}),
  }));
}

export function reasonFor(code: ReasonCode, detail: string): QuarantineReason {
  return { code, detail, hint: REASONS[code].hint };
}

/**
 * A refused digest's record: filed under the UTC day of its first alert and named by its key (its ledger record's
 * name). Both are fixed when the digest is sealed, so every attempt, on any day, names the same record; the day
 * lets a reader list the digests of a range's days, as it lists the messages, instead of every refusal ever made.
 */
export function digestRecordName(digestKey: string, firstAlertTime: string | null): string {
  return `${digestDayPrefix(firstAlertTime === null ? null : new Date(firstAlertTime))}${digestKey}.json`;
}

/**
 * The layout's day folders, the one place they are spelled: the UTC day of `day` as `YYYY/MM/DD`, `undated` for
 * none (or an invalid time). Writers name records with them; a reader lists a range's days with them (the dashboard).
 */
export function messageDayPrefix(endpoint: string, day: Date | null): string {
  return `messages/${endpoint}/${dayFolder(day)}/`;
}

/** The folder of the refused digests whose first alert fell on `day`'s UTC day (see `digestRecordName`). */
export function digestDayPrefix(day: Date | null): string {
  return `digests/criticalQueue/${dayFolder(day)}/`;
}

function dayFolder(day: Date | null): string {
  return day === null || Number.isNaN(day.getTime()) ? 'undated' : day.toISOString().slice(0, 10).replaceAll('-', '/');
}

/** How many days back a takeover looks for an earlier build's record of its digest (see `legacyDigestRecord`). */
const LEGACY_DIGEST_DAYS = 8;
const DAY_MS = 86_400_000;

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 24);
}

/**
 * Metadata values travel as HTTP headers: ASCII only, so device ids are percent-encoded. `quarantinedat` is the
 * app's clock (simulated under `npm start`), which Last-Modified is not.
 */
function metadataFor(kind: QuarantineEntry['kind'], reasons: readonly QuarantineReason[], deviceId: string | null, quarantinedAt: string): Record<string, string> {
  return {
    kind,
    reasons: [...new Set(reasons.map((r) => r.code))].join(','),
    ...(deviceId !== null ? { deviceid: encodeURIComponent(deviceId) } : {}),
    quarantinedat: quarantinedAt,
  };
}

/**
 * What a listed quarantine blob is, from its name and the metadata every write stores (`metadataFor`), without
 * downloading it: the one reading of that metadata, for `list` and the dashboard. Null for a name outside the
 * layout. A device id whose encoding is damaged (a hand-edited blob) reads as none.
 */
export function quarantineListing(
  item: Pick<BlobItem, 'name' | 'metadata'>,
): Pick<QuarantineListItem, 'endpoint' | 'kind' | 'reasons' | 'deviceId' | 'quarantinedAt'> | null {
  const [root, endpoint] = item.name.split('/');
  if (endpoint === undefined) return null;
  let deviceId: string | null = null;
  try {
    const encoded = item.metadata['deviceid'];
    if (encoded !== undefined && encoded !== '') deviceId = decodeURIComponent(encoded);
  } catch {
    deviceId = null;
  }
  const quarantinedMs = Date.parse(item.metadata['quarantinedat'] ?? '');
  return {
    endpoint,
    kind: item.metadata['kind'] === 'digest' || root === 'digests' ? 'digest' : root === 'messages' ? 'message' : 'archive-blob',
    reasons: [...new Set((item.metadata['reasons'] ?? '').split(',').filter((r) => r !== ''))],
    deviceId,
    quarantinedAt: Number.isNaN(quarantinedMs) ? null : new Date(quarantinedMs),
  };
}

export function createQuarantine(store: BlobStore, container: string, clock: Clock): Quarantine {
  let ready: Promise<void> | undefined;
  const ensure = (): Promise<void> => {
    ready ??= store.ensureContainer(container).catch((error: unknown) => {
      ready = undefined; // a transient failure must not poison later calls
      throw error;
    });
    return ready;
  };

  const quarantine: Quarantine = {
    async putMessage(message, endpoint, reasons) {
      await ensure();
      const identity = messageIdentity(message);
      const name = `${messageDayPrefix(endpoint, message.enqueuedTime)}${identity}.json`;
      const record = messageFields(message);
      const entry: QuarantinedMessage = {
        schema: 1,
        kind: 'message',
        identity,
        endpoint,
        quarantinedAt: clock.now().toISOString(),
        reasons: [...reasons],
        ...record,
        bodyBase64: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString('base64'),
        bodyBytes: message.body.byteLength,
      };
      // Invariant: one blob per (endpoint, message identity). If-None-Match: * makes the first copy win, so a
      // replayed or re-sent message finds it and writes nothing; its first reasons and time are kept.
      const result = await createJson(store, container, name, entry, {
        metadata: metadataFor('message', reasons, message.deviceId, entry.quarantinedAt),
      });
      return { name, created: result.created };
    },

    async putDamagedBlob(blob, endpoint, damage) {
      await ensure();
      const identity = `${sha(`${blob.container}/${blob.name}`)}-${sha(blob.etag)}`;
      const name = `blobs/${endpoint}/${identity}.json`;
      const reasons: QuarantineReason[] = [
        { code: damage.code, detail: `${damage.detail} (at byte ${damage.byteOffset})`, hint: DAMAGE_HINTS[damage.code] },
      ];
      const entry: QuarantinedBlob = {
        schema: 1,
        kind: 'archive-blob',
        identity,
        endpoint,
        quarantinedAt: clock.now().toISOString(),
        reasons,
        blob,
      };
      // Invariant: one record per blob version (name + ETag); a re-fired trigger for the same version writes nothing,
      // a rewritten blob (new ETag) is judged again.
      const result = await createJson(store, container, name, entry, { metadata: metadataFor('archive-blob', reasons, null, entry.quarantinedAt) });
      return { name, created: result.created };
    },

    async putDigest(digest, options = {}) {
      await ensure();
      if (options.earlierAttemptsSince !== undefined) {
        const earlier = await legacyDigestRecord(digest.identity, options.earlierAttemptsSince);
        if (earlier !== null) return { name: earlier, created: false };
      }
      const name = digestRecordName(digest.identity, digest.digest.firstTime);
      const entry: QuarantinedDigest = { schema: 1, kind: 'digest', endpoint: 'criticalQueue', quarantinedAt: clock.now().toISOString(), ...digest };
      // Invariant: one record per digest key, whatever the day it is refused on (its name holds its first alert's day). If-None-Match: * makes the first attempt's record
      // win, so a takeover (after a crash or a lease that ran out, on any later day) or a retry writes nothing and
      // the first quarantinedAt stays.
      const result = await createJson(store, container, name, entry, { metadata: metadataFor('digest', digest.reasons, digest.deviceId, entry.quarantinedAt) });
      return { name, created: result.created };
    },

    async *list(filter = {}) {
      const roots =
        filter.endpoint === undefined
          ? ['messages/', 'blobs/', 'digests/']
          : [`messages/${filter.endpoint}/`, `blobs/${filter.endpoint}/`, `digests/${filter.endpoint}/`];
      for (const prefix of roots) {
        for await (const item of store.list(container, prefix)) {
          const listed = quarantineListing(item);
          if (listed === null) continue;
          if (filter.reason !== undefined && !listed.reasons.includes(filter.reason)) continue;
          if (filter.deviceId !== undefined && listed.deviceId !== filter.deviceId) continue;
          yield { name: item.name, ...listed, lastModified: item.lastModified, size: item.size };
        }
      }
    },

    get(name) {
      return getJson<QuarantineEntry>(store, container, name);
    },

    remove(name, etag) {
      return store.delete(container, name, etag);
    },

    forReplay() {
      return {
        ...quarantine,
        async putMessage(message, endpoint, reasons) {
          const result = await quarantine.putMessage(message, endpoint, reasons);
          if (!result.created) await replaceReasons(result.name, reasons, message.deviceId);
          return result;
        },
      };
    },
  };
  return quarantine;

  /**
   * The record an earlier build wrote for this digest, if any: it named the record by the day of the refusal, which
   * fell between the digest's first attempt and now. Only a takeover asks (an attempt that refused it and stopped
   * before the ledger recorded the outcome), and those come within minutes, so the last days are enough.
   */
  async function legacyDigestRecord(digestKey: string, since: Date): Promise<string | null> {
    const today = Math.floor(clock.now().getTime() / DAY_MS) * DAY_MS;
    const first = Math.max(Math.floor(since.getTime() / DAY_MS) * DAY_MS, today - (LEGACY_DIGEST_DAYS - 1) * DAY_MS);
    for (let day = today; day >= first; day -= DAY_MS) {
      const name = `${messageDayPrefix('criticalQueue', new Date(day))}${digestKey}.json`;
      const document = await getJson<QuarantineEntry>(store, container, name);
      if (document?.value.kind === 'digest') return name;
    }
    return null;
  }

  /** If-Match on the version read: a record another writer changed meanwhile keeps that writer's reasons. */
  async function replaceReasons(name: string, reasons: readonly QuarantineReason[], deviceId: string | null): Promise<void> {
    const document = await getJson<QuarantineEntry>(store, container, name);
    if (document === null || document.value.kind !== 'message') return;
    const entry: QuarantinedMessage = { ...document.value, reasons: [...reasons] };
    await replaceJson(store, container, name, entry, document.etag, { metadata: metadataFor('message', reasons, deviceId, entry.quarantinedAt) });
  }
}

/**
 * The message a quarantine record was written from, for a replay: the record's fields as they were (identity,
 * enqueued time, properties, provenance), and the body decoded again from the original bytes with today's rules.
 * Messages of the Event Hubs and Service Bus paths only, which hand the bytes over as sent (no storage base64
 * layer to restore).
 */
export function quarantinedMessage(entry: QuarantinedMessage): RoutedMessage {
  return messageFromFields(entry, Buffer.from(entry.bodyBase64, 'base64'));
}
