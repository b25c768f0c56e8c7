/**
 * The send gate: decides, for every instance at once, whether an alert may be e-mailed now. One JSON blob
 * (`gate.json` in the alerts container) holds both things that decision needs:
 *
 * - the global send budget, as the times of the reservations made in the last hour. Sliding windows rather than
 *   per-minute and per-hour counters, because fixed windows allow twice the limit across a boundary (25 sends at
 *   10:00:59 and 25 more at 10:01:00), which ACS's own per-minute limit would answer with 429s;
 * - the devices in a quiet period: until when, which alert (or digest) opened it, and whether a digest is pending.
 *
 * Keeping them together makes the first alert of a device cost one write here, and its size is bounded by the
 * budget: timestamps ≤ perHour, quiet entries ≤ the sends of the last quiet period plus the devices whose digest
 * waits for the budget (each entry was opened by a send).
 *
 * Each instance caches the version it last read or wrote. A cached "hold" is trusted without a read, because the
 * state only moves towards holding: reservations are only added (and age out the same way for everyone), quiet
 * periods and pauses are only extended. The exception is a quiet period that has ended and is held only by its
 * pending digest (`decide` says so, `heldOnlyByPendingDigest`): a digest sent since then replaced it, so that one is
 * re-read. A cached "go" is never trusted on its own: the reservation is a write conditional on the cached ETag,
 * and losing that race re-reads and decides again.
 */

import { RoutingError } from '../errors.js';
import type { BlobStore, Clock, ETag } from '../ports.js';
import { createJson, getJson, replaceJson } from '../storage/jsonDocuments.js';

export interface GateDocument {
  schema: 1;
  /** Reservation times (epoch ms) within the last hour, ascending. */
  sends: number[];
  /** After the e-mail service throttled us: no sends before this (epoch ms); 0 when not paused. */
  pausedUntil: number;
  /**
   * Devices in a quiet period: until when (epoch ms), and the alert or digest key that opened it. `pending` once an
   * alert was folded into the device's digest: the device then stays quiet past `until` until that digest is sent
   * (which opens the next period), so that an alert arriving between the end of the period and the digest run joins
   * the digest instead of being e-mailed ahead of it.
   */
  quiet: Record<string, QuietPeriod>;
}

export interface QuietPeriod {
  until: number;
  by: string;
  pending?: true;
}

export type HoldReason = 'quiet' | 'budget' | 'paused';

export type GateDecision =
  /** Send now. `reserved` is false when this key already holds its reservation (a retry of the same alert). */
  | { kind: 'send'; reserved: boolean }
  /** Do not send now; fold into the device's digest, which is due no earlier than `until`. */
  | { kind: 'hold'; reason: HoldReason; until: Date };

export interface SendGate {
  /** For an alert: the device's quiet period, the pause and the budget apply. */
  admitAlert(deviceId: string, alertKey: string): Promise<GateDecision>;
  /** For a digest: the pause and the budget apply; sending it starts a new quiet period for the device. */
  admitDigest(deviceId: string, digestKey: string): Promise<GateDecision>;
  /** The e-mail service asked us to wait: no instance sends before `until`. */
  pause(until: Date): Promise<void>;
  /** The version this instance last read or wrote, without a storage call. */
  peek(): GateDocument | undefined;
}

export interface SendGateOptions {
  store: BlobStore;
  container: string;
  clock: Clock;
  budget: { perMinute: number; perHour: number };
  quietPeriodMs: number;
  ready: () => Promise<void>;
}

export const GATE_BLOB = 'gate.json';
const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Reservations are rare (the budget caps them), so losing this many races in a row means something is wrong. */
const MAX_ROUNDS = 12;

export function emptyGate(): GateDocument {
  return { schema: 1, sends: [], pausedUntil: 0, quiet: {} };
}

export interface Decided {
  decision: GateDecision;
  /** The version to write; absent when the decision needs no write. */
  next?: GateDocument;
  /**
   * The hold stands only because the device's quiet period has ended with its digest still pending. That is the one
   * hold that can lift without a pause or the budget moving: the digest, once sent, replaces the entry with a later
   * period (whose end is the due time to fold with). So it is the one hold a cached version cannot vouch for.
   */
  heldOnlyByPendingDigest?: true;
}

/**
 * The decision as a pure function of one version of the gate, so that it is the same whether the version came from
 * the cache or from storage.
 */
export function decide(
  gate: GateDocument,
  nowMs: number,
  deviceId: string,
  key: string,
  kind: 'alert' | 'digest',
  budget: { perMinute: number; perHour: number },
  quietPeriodMs: number,
): Decided {
  const quiet = gate.quiet[deviceId];
  const paused = gate.pausedUntil > nowMs;
  if (quiet !== undefined && quiet.by === key) {
    // This key's own reservation: an earlier attempt reserved (and may have sent) before it crashed or was
    // throttled. Sending again under the same operation id costs nothing more; only a pause holds it back.
    if (paused) return { decision: { kind: 'hold', reason: 'paused', until: new Date(gate.pausedUntil) } };
    return { decision: { kind: 'send', reserved: false } };
  }
  if (kind === 'alert' && quiet !== undefined && (quiet.until > nowMs || quiet.pending === true)) {
    // Past the period's end, only its digest still to be sent holds the device: sending it opens the next period,
    // and what is held now goes into that period's digest, due when it ends, about a period from now. The past end
    // would make a window opened now (the due one being sealed for its digest) due at once: a second digest a run
    // after the first.
    const until = quiet.until > nowMs ? quiet.until : nowMs + quietPeriodMs;
    const decision: GateDecision = { kind: 'hold', reason: 'quiet', until: new Date(until) };
    if (quiet.until <= nowMs) return { decision, heldOnlyByPendingDigest: true };
    if (quiet.pending === true) return { decision };
    // The first alert held by this period marks it pending (one write per quiet period, not per alert).
    return { decision, next: { ...gate, quiet: { ...activeQuiet(gate.quiet, nowMs), [deviceId]: { ...quiet, pending: true } } } };
  }
  if (paused) return { decision: { kind: 'hold', reason: 'paused', until: new Date(gate.pausedUntil) } };

  const sends = gate.sends.filter((t) => t > nowMs - HOUR);
  let freeAt = 0;
  const lastMinute = sends.filter((t) => t > nowMs - MINUTE);
  if (lastMinute.length >= budget.perMinute) {
    freeAt = Math.max(freeAt, (lastMinute[lastMinute.length - budget.perMinute] ?? nowMs) + MINUTE);
  }
  if (sends.length >= budget.perHour) {
    freeAt = Math.max(freeAt, (sends[sends.length - budget.perHour] ?? nowMs) + HOUR);
  }
  if (freeAt > 0) return { decision: { kind: 'hold', reason: 'budget', until: new Date(freeAt) } };

  const next: GateDocument = {
    schema: 1,
    sends: [...sends, nowMs].sort((a, b) => a - b),
    pausedUntil: gate.pausedUntil > nowMs ? gate.pausedUntil : 0,
    quiet: activeQuiet(gate.quiet, nowMs),
  };
  if (quietPeriodMs > 0) next.quiet[deviceId] = { until: nowMs + quietPeriodMs, by: key };
  return { decision: { kind: 'send', reserved: true }, next };
}

function activeQuiet(quiet: GateDocument['quiet'], nowMs: number): GateDocument['quiet'] {
  const out: GateDocument['quiet'] = {};
  for (const [deviceId, entry] of Object.entries(quiet)) if (entry.until > nowMs || entry.pending === true) out[deviceId] = entry;
  return out;
}

export function createSendGate(options: SendGateOptions): SendGate {
  const { store, container, clock, budget, quietPeriodMs, ready } = options;
  /** `etag` undefined: the blob did not exist when read. */
  let cached: { value: GateDocument; etag: ETag | undefined } | undefined;

  const load = async (): Promise<{ value: GateDocument; etag: ETag | undefined }> => {
    const document = await getJson<GateDocument>(store, container, GATE_BLOB);
    cached = document === null ? { value: emptyGate(), etag: undefined } : { value: document.value, etag: document.etag };
    return cached;
  };

  /**
   * Invariant: the gate changes only by a write conditional on the exact version the change was computed from
   * (If-None-Match: * for the first version, If-Match after), so two instances can never both take the last slot
   * of the budget or both open a device's quiet period: the second one's write fails, and it decides again on the
   * first one's version.
   */
  const write = async (next: GateDocument, etag: ETag | undefined): Promise<boolean> => {
    if (etag === undefined) {
      const created = await createJson(store, container, GATE_BLOB, next);
      if (created.created) cached = { value: next, etag: created.etag };
      return created.created;
    }
    const replaced = await replaceJson(store, container, GATE_BLOB, next, etag);
    if (replaced.ok) cached = { value: next, etag: replaced.etag };
    return replaced.ok;
  };

  const admit = async (deviceId: string, key: string, kind: 'alert' | 'digest'): Promise<GateDecision> => {
    await ready();
    let fromCache = cached !== undefined;
    let state = cached ?? (await load());
    for (let round = 0; round < MAX_ROUNDS; round += 1) {
      const now = clock.now().getTime();
      const decided = decide(state.value, now, deviceId, key, kind, budget, quietPeriodMs);
      if (fromCache && decided.heldOnlyByPendingDigest === true) {
        // A digest may have been sent since this version, opening a later period: read it fresh.
        state = await load();
        fromCache = false;
        continue;
      }
      if (decided.next === undefined) return decided.decision;
      if (await write(decided.next, state.etag)) return decided.decision;
      state = await load();
      fromCache = false;
    }
    throw new RoutingError('StorageConflict', `${container}/${GATE_BLOB}: lost ${MAX_ROUNDS} reservation races in a row`);
  };

  return {
    admitAlert: (deviceId, alertKey) => admit(deviceId, alertKey, 'alert'),
    admitDigest: (deviceId, digestKey) => admit(deviceId, digestKey, 'digest'),
    async pause(until) {
      await ready();
      let state = cached ?? (await load());
      for (let round = 0; round < MAX_ROUNDS; round += 1) {
        if (state.value.pausedUntil >= until.getTime()) return;
        // A pause only ever moves later, which is what lets other instances trust a cached pause.
        if (await write({ ...state.value, pausedUntil: until.getTime() }, state.etag)) return;
        state = await load();
      }
      throw new RoutingError('StorageConflict', `${container}/${GATE_BLOB}: lost ${MAX_ROUNDS} races recording a pause`);
    },
    peek: () => cached?.value,
  };
}
