/**
 * Digest windows per device: the alerts held back by a quiet period, the budget or a pause, folded into what one
 * digest e-mail will say (count, first and last time, lowest and highest readings). One blob per device that has
 * something pending: `devices/{deviceId}.json` in the alerts container, with the earliest due time in its metadata
 * (`dueat`) so the digest timer finds due devices from a listing, without downloading every document. A document
 * whose windows are all sent is deleted, so the listing stays as small as what is pending.
 *
 * A device has at most one open window, which alerts fold into, and at most one sealed window, which a digest is
 * being sent for. Sealing is what makes a digest exact: the timer seals the window with a conditional write before
 * it renders, so an alert that folds in while the digest is being sent starts the next window instead of joining
 * one whose e-mail has already been rendered (and whose removal would then lose it).
 */

import { createHash } from 'node:crypto';
import { RoutingError } from '../errors.js';
import type { BlobStore, ETag } from '../ports.js';
import { encodeJson, getJson } from '../storage/jsonDocuments.js';
import { FACT_LIMITS, OMITTED_NAME, type AlertFacts } from './alertPolicy.js';
import { EMAIL_LIMITS } from './email.js';
import type { DigestFacts, DigestReading } from './render.js';

export interface DigestWindow {
  /** The key of the first alert folded into it: unique per device and stable across retries. */
  id: string;
  /** Not sent before this (ISO 8601): the end of the quiet period, or when the budget or pause allows. */
  dueAt: string;
  sealed: boolean;
  count: number;
  firstTime: string | null;
  lastTime: string | null;
  readings: DigestReading[];
  severities: string[];
  recipients: string[];
  group: string | null;
  /** The properties of the alert with the latest enqueued time. */
  properties: Array<[string, string]>;
  /**
   * The most recent alert keys folded in. A delivery that takes over an alert whose earlier attempt folded it and
   * then crashed finds its key here and does not count it twice.
   */
  recentKeys: string[];
}

export interface DeviceDigestDocument {
  schema: 1;
  deviceId: string;
  windows: DigestWindow[];
}

export interface DueDevice {
  deviceId: string;
  dueAt: Date;
}

export interface FoldResult {
  windowId: string;
  /** False when the alert was already in a window (a retry); nothing changed. */
  added: boolean;
  dueAt: Date;
}

export interface DeviceDigests {
  /** Folds an alert into the device's open window (opening one due at `dueAt`). Idempotent per alert key. */
  fold(facts: AlertFacts, dueAt: Date): Promise<FoldResult>;
  /** Devices with a window due at or before `now`, earliest first. */
  listDue(now: Date): Promise<DueDevice[]>;
  /**
   * Seals the device's window to send: an already sealed one (an earlier run did not finish it), else the earliest
   * due open one. Null when nothing is due.
   */
  seal(deviceId: string, now: Date): Promise<DigestWindow | null>;
  /** Removes a sent (or failed) window; deletes the document when nothing is left. */
  remove(deviceId: string, windowId: string): Promise<void>;
  get(deviceId: string): Promise<DeviceDigestDocument | null>;
}

export interface DeviceDigestsOptions {
  store: BlobStore;
  container: string;
  ready: () => Promise<void>;
}

/** Enough for any redelivery that can still take over (they arrive within minutes); bounds the document. */
export const RECENT_KEYS = 100;
const MAX_SEVERITIES = 10;
const MAX_ROUNDS = 16;

export function deviceBlobName(deviceId: string): string {
  return `devices/${encodeURIComponent(deviceId)}.json`;
}

/** The ledger key and e-mail operation id seed of a digest: one per device and window, never random. */
export function digestKeyOf(deviceId: string, windowId: string): string {
  return `digest-${createHash('sha256').update(deviceId).update('\u0000').update(windowId).digest('hex').slice(0, 32)}`;
}

export function digestFactsOf(deviceId: string, window: DigestWindow): DigestFacts {
  return {
    digestKey: digestKeyOf(deviceId, window.id),
    deviceId,
    count: window.count,
    firstTime: window.firstTime,
    lastTime: window.lastTime,
    readings: window.readings,
    properties: window.properties,
    severities: window.severities,
    group: window.group,
    recipients: window.recipients,
  };
}

export function createDeviceDigests(options: DeviceDigestsOptions): DeviceDigests {
  const { store, container, ready } = options;

  const read = async (deviceId: string): Promise<{ value: DeviceDigestDocument; etag: ETag } | null> =>
    getJson<DeviceDigestDocument>(store, container, deviceBlobName(deviceId));

  /**
   * Read-modify-write of one device document. Invariant: a change is written only onto the version it was computed
   * from (If-None-Match: * when there was none, If-Match otherwise, and the same for a delete); losing the race
   * re-reads and re-applies, so concurrent folds from several instances all land, each exactly once.
   */
  const update = async <R>(
    deviceId: string,
    change: (current: DeviceDigestDocument | null) => { next: DeviceDigestDocument | null | undefined; result: R },
  ): Promise<R> => {
    await ready();
    const name = deviceBlobName(deviceId);
    for (let round = 0; round < MAX_ROUNDS; round += 1) {
      const current = await read(deviceId);
      const { next, result } = change(current === null ? null : structuredClone(current.value));
      if (next === undefined) return result;
      if (next === null || next.windows.length === 0) {
        if (current === null) return result;
        const deleted = await store.delete(container, name, current.etag);
        if (deleted.deleted || deleted.reason === 'notFound') return result;
        continue;
      }
      const body = encodeJson(next);
      const writeOptions = { contentType: 'application/json', metadata: metadataOf(next) };
      const ok =
        current === null
          ? (await store.create(container, name, body, writeOptions)).created
          : (await store.replace(container, name, body, current.etag, writeOptions)).ok;
      if (ok) return result;
    }
    throw new RoutingError('StorageConflict', `${container}/${name}: lost ${MAX_ROUNDS} concurrent-update races in a row`);
  };

  return {
    fold(facts, dueAt) {
      return update<FoldResult>(facts.deviceId, (current) => {
        const doc: DeviceDigestDocument = current ?? { schema: 1, deviceId: facts.deviceId, windows: [] };
        const already = doc.windows.find((w) => w.recentKeys.includes(facts.alertKey));
        if (already !== undefined) return { next: undefined, result: { windowId: already.id, added: false, dueAt: new Date(already.dueAt) } };
        let open = doc.windows.find((w) => !w.sealed);
        if (open === undefined) {
          open = openWindow(facts, dueAt);
          doc.windows.push(open);
        } else {
          foldInto(open, facts);
          // The window goes out as soon as any of its alerts may: a hold that ends earlier brings it forward.
          if (Date.parse(open.dueAt) > dueAt.getTime()) open.dueAt = dueAt.toISOString();
        }
        return { next: doc, result: { windowId: open.id, added: true, dueAt: new Date(open.dueAt) } };
      });
    },

    async listDue(now) {
      await ready();
      const due: DueDevice[] = [];
      for await (const item of store.list(container, 'devices/')) {
        const dueAt = Date.parse(item.metadata['dueat'] ?? '');
        const deviceId = item.metadata['deviceid'];
        if (Number.isNaN(dueAt) || deviceId === undefined || dueAt > now.getTime()) continue;
        due.push({ deviceId: decodeURIComponent(deviceId), dueAt: new Date(dueAt) });
      }
      return due.sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime() || a.deviceId.localeCompare(b.deviceId));
    },

    seal(deviceId, now) {
      return update<DigestWindow | null>(deviceId, (current) => {
        if (current === null) return { next: undefined, result: null };
        const sealed = current.windows.find((w) => w.sealed);
        if (sealed !== undefined) return { next: undefined, result: sealed };
        const due = current.windows
          .filter((w) => Date.parse(w.dueAt) <= now.getTime())
          .sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt))[0];
        if (due === undefined) return { next: undefined, result: null };
        due.sealed = true;
        return { next: current, result: due };
      });
    },

    remove(deviceId, windowId) {
      return update(deviceId, (current) => {
        if (current === null || !current.windows.some((w) => w.id === windowId)) return { next: undefined, result: undefined };
        return { next: { ...current, windows: current.windows.filter((w) => w.id !== windowId) }, result: undefined };
      });
    },

    async get(deviceId) {
      await ready();
      return (await read(deviceId))?.value ?? null;
    },
  };
}

function metadataOf(doc: DeviceDigestDocument): Record<string, string> {
  const earliest = Math.min(...doc.windows.map((w) => Date.parse(w.dueAt)));
  // Metadata values travel as HTTP headers: ASCII only, so the device id is percent-encoded.
  return { dueat: new Date(earliest).toISOString(), deviceid: encodeURIComponent(doc.deviceId) };
}

function openWindow(facts: AlertFacts, dueAt: Date): DigestWindow {
  return {
    id: facts.alertKey,
    dueAt: dueAt.toISOString(),
    sealed: false,
    count: 1,
    firstTime: facts.enqueuedTime,
    lastTime: facts.enqueuedTime,
    // An alert's "N more not shown" counts that alert's readings, not the digest's: it is not a reading to fold.
    readings: facts.readings
      .filter((r) => r.name !== OMITTED_NAME)
      .map((r): DigestReading => (typeof r.value === 'number' ? { name: r.name, min: r.value, max: r.value } : { name: r.name, latest: r.value })),
    severities: [facts.severity],
    recipients: [...facts.recipients],
    group: facts.group,
    properties: facts.properties,
    recentKeys: [facts.alertKey],
  };
}

function foldInto(window: DigestWindow, facts: AlertFacts): void {
  window.count += 1;
  const time = facts.enqueuedTime;
  // Only the latest alert's text values and properties are shown; "latest" by enqueued time, not by arrival, so
  // the result does not depend on the order deliveries happened to come in.
  const latest = time !== null && (window.lastTime === null || time >= window.lastTime);
  if (time !== null) {
    if (window.firstTime === null || time < window.firstTime) window.firstTime = time;
    if (window.lastTime === null || time > window.lastTime) window.lastTime = time;
  }
  for (const reading of facts.readings) {
    if (reading.name === OMITTED_NAME) continue;
    const index = window.readings.findIndex((r) => r.name === reading.name);
    const existing = window.readings[index];
    if (typeof reading.value === 'number') {
      const value = reading.value;
      if (existing === undefined) {
        if (window.readings.length < FACT_LIMITS.readings) window.readings.push({ name: reading.name, min: value, max: value });
      } else if ('min' in existing) {
        existing.min = Math.min(existing.min, value);
        existing.max = Math.max(existing.max, value);
      } else {
        // A field that was text and is now a number is shown as a range from here on: numbers are what matter.
        window.readings[index] = { name: reading.name, min: value, max: value };
      }
    } else if (existing === undefined) {
      if (window.readings.length < FACT_LIMITS.readings) window.readings.push({ name: reading.name, latest: reading.value });
    } else if (!('min' in existing) && latest) {
      existing.latest = reading.value;
    }
  }
  if (!window.severities.includes(facts.severity) && window.severities.length < MAX_SEVERITIES) window.severities.push(facts.severity);
  for (const address of facts.recipients) {
    if (!window.recipients.includes(address) && window.recipients.length < EMAIL_LIMITS.recipients) window.recipients.push(address);
  }
  if (latest) {
    window.properties = facts.properties;
    window.group = facts.group;
  }
  window.recentKeys.push(facts.alertKey);
  if (window.recentKeys.length > RECENT_KEYS) window.recentKeys.splice(0, window.recentKeys.length - RECENT_KEYS);
}
