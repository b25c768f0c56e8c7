import { describe, expect, it } from 'vitest';
import { createSendGate, decide, emptyGate, GATE_BLOB, type GateDecision, type GateDocument, type SendGate } from '../../src/lib/alerts/sendGate.js';
import { ManualClock, type BlobStore } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { faultyStore } from '../support/faultyStore.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const MINUTE = 60_000;

function gate(
  options: { perMinute?: number; perHour?: number; quietMinutes?: number; store?: BlobStore; clock?: ManualClock } = {},
): { gate: SendGate; clock: ManualClock; store: BlobStore } {
  const clock = options.clock ?? new ManualClock(T0);
  const store = options.store ?? new MemoryBlobStore();
  let created: Promise<void> | undefined;
  return {
    clock,
    store,
    gate: createSendGate({
      store,
      container: 'alerts',
      clock,
      budget: { perMinute: options.perMinute ?? 25, perHour: options.perHour ?? 90 },
      quietPeriodMs: (options.quietMinutes ?? 15) * MINUTE,
      ready: () => (created ??= store.ensureContainer('alerts')),
    }),
  };
}

const send = (reserved = true): GateDecision => ({ kind: 'send', reserved });
const hold = (reason: 'quiet' | 'budget' | 'paused', at: number): GateDecision => ({ kind: 'hold', reason, until: new Date(at) });

describe('send gate: budget', () => {
  it('allows perMinute sends in any 60 seconds, then holds until the oldest of them ages out', async () => {
    const { gate: g, clock } = gate({ perMinute: 3, quietMinutes: 0 });
    expect(await g.admitAlert('a', 'k1')).toEqual(send());
    clock.advance(10_000);
    expect(await g.admitAlert('b', 'k2')).toEqual(send());
    expect(await g.admitAlert('c', 'k3')).toEqual(send());
    expect(await g.admitAlert('d', 'k4')).toEqual(hold('budget', T0 + MINUTE));
    clock.set(T0 + MINUTE);
    expect(await g.admitAlert('d', 'k4')).toEqual(send());
  });

  it('is a sliding window: a minute boundary does not reset it (fixed windows would allow twice the limit)', async () => {
    const { gate: g, clock } = gate({ perMinute: 3, quietMinutes: 0 });
    clock.set(T0 + 59_000);
    for (const key of ['k1', 'k2', 'k3']) expect(await g.admitAlert(key, key)).toEqual(send());
    clock.set(T0 + MINUTE); // a new calendar minute
    expect(await g.admitAlert('k4', 'k4')).toEqual(hold('budget', T0 + 59_000 + MINUTE));
  });

  it('holds at perHour until the hour-old send ages out', async () => {
    const { gate: g, clock } = gate({ perMinute: 5, perHour: 6, quietMinutes: 0 });
    for (let i = 0; i < 5; i += 1) expect(await g.admitAlert(`d${i}`, `k${i}`)).toEqual(send());
    clock.advance(61_000);
    expect(await g.admitAlert('d5', 'k5')).toEqual(send());
    clock.advance(61_000);
    expect(await g.admitAlert('d6', 'k6')).toEqual(hold('budget', T0 + 3_600_000));
  });

  it('holds every alert and digest while paused after a 429', async () => {
    const { gate: g, clock } = gate();
    await g.pause(new Date(T0 + 30_000));
    expect(await g.admitAlert('a', 'k1')).toEqual(hold('paused', T0 + 30_000));
    expect(await g.admitDigest('a', 'digest-1')).toEqual(hold('paused', T0 + 30_000));
    await g.pause(new Date(T0 + 10_000)); // a shorter pause never shortens the current one
    clock.set(T0 + 29_999);
    expect((await g.admitAlert('a', 'k1')).kind).toBe('hold');
    clock.set(T0 + 30_000);
    expect(await g.admitAlert('a', 'k1')).toEqual(send());
  });
});

describe('send gate: quiet periods', () => {
  it('opens a quiet period for the device with its first alert; others are not affected', async () => {
    const { gate: g, clock } = gate({ quietMinutes: 15 });
    expect(await g.admitAlert('dev-1', 'k1')).toEqual(send());
    clock.advance(MINUTE);
    expect(await g.admitAlert('dev-1', 'k2')).toEqual(hold('quiet', T0 + 15 * MINUTE));
    expect(await g.admitAlert('dev-2', 'k3')).toEqual(send());
    clock.set(T0 + 16 * MINUTE);
    // dev-2's period (opened a minute later) passed with nothing held: its next alert goes out at once.
    expect(await g.admitAlert('dev-2', 'k5')).toEqual(send());
  });

  it('keeps a device with held alerts quiet past the period until its digest is sent', async () => {
    const { gate: g, clock, store } = gate({ quietMinutes: 15 });
    await g.admitAlert('dev-1', 'k1');
    clock.advance(MINUTE);
    expect(await g.admitAlert('dev-1', 'k2')).toEqual(hold('quiet', T0 + 15 * MINUTE));
    clock.set(T0 + 15 * MINUTE + 5_000);
    // Held until the next period's end: folded into the open window it joins the digest about to be sent (the
    // window keeps its earlier due time) rather than going out ahead of it; a window opened now (the due one being
    // sealed for its digest) is due when the period that digest opens ends, not at once.
    expect(await g.admitAlert('dev-1', 'k3')).toEqual(hold('quiet', T0 + 30 * MINUTE + 5_000));
    expect(await g.admitDigest('dev-1', 'digest-1')).toEqual(send());
    expect(await g.admitAlert('dev-1', 'k4')).toEqual(hold('quiet', T0 + 30 * MINUTE + 5_000));
    // Another instance with an older cached version re-reads rather than folding with the ended period.
    const other = gate({ store, clock, quietMinutes: 15 }).gate;
    clock.set(T0 + 30 * MINUTE + 5_000);
    await g.admitAlert('dev-9', 'k9');
    // (The period digest-1 opened has just ended with k4 pending: held for the period the next digest opens.)
    expect(await other.admitAlert('dev-1', 'k10')).toEqual(hold('quiet', T0 + 45 * MINUTE + 5_000));
  });

  it('lets the alert that opened the period retry without a second reservation', async () => {
    const { gate: g, clock } = gate({ perMinute: 1, quietMinutes: 15 });
    expect(await g.admitAlert('dev-1', 'k1')).toEqual(send(true));
    clock.advance(1_000);
    expect(await g.admitAlert('dev-1', 'k1')).toEqual(send(false));
    expect(g.peek()?.sends).toEqual([T0]);
  });

  it('a digest ignores the quiet period and starts the next one', async () => {
    const { gate: g, clock } = gate({ quietMinutes: 15 });
    await g.admitAlert('dev-1', 'k1');
    clock.set(T0 + 15 * MINUTE);
    expect(await g.admitDigest('dev-1', 'digest-1')).toEqual(send());
    clock.advance(MINUTE);
    expect(await g.admitAlert('dev-1', 'k9')).toEqual(hold('quiet', T0 + 30 * MINUTE));
  });

  it('says when a hold stands only on a pending digest past its period, the one hold a cached version cannot vouch for', () => {
    const budget = { perMinute: 25, perHour: 90 };
    const period = 15 * MINUTE;
    const at = (quiet: GateDocument['quiet'], pausedUntil = 0): GateDocument => ({ ...emptyGate(), sends: [T0], pausedUntil, quiet });
    const ended = T0 + period + 5_000;
    const pendingPast = at({ 'dev-1': { until: T0 + period, by: 'k1', pending: true } });

    const stale = decide(pendingPast, ended, 'dev-1', 'k2', 'alert', budget, period);
    expect(stale).toEqual({ decision: hold('quiet', ended + period), heldOnlyByPendingDigest: true });
    // Still inside the period, pending or not: the period itself holds, and only moves later.
    expect(decide(pendingPast, T0 + MINUTE, 'dev-1', 'k2', 'alert', budget, period).heldOnlyByPendingDigest).toBeUndefined();
    const open = decide(at({ 'dev-1': { until: T0 + period, by: 'k1' } }), T0 + MINUTE, 'dev-1', 'k2', 'alert', budget, period);
    expect(open.decision).toEqual(hold('quiet', T0 + period));
    expect(open.heldOnlyByPendingDigest).toBeUndefined();
    // Holds of the pause and the budget, and a digest (which the quiet period does not hold), are not that case.
    const paused = decide(at({}, ended + MINUTE), ended, 'dev-1', 'k2', 'alert', budget, period);
    expect(paused).toEqual({ decision: hold('paused', ended + MINUTE) });
    expect(decide(pendingPast, ended, 'dev-1', 'digest-1', 'digest', budget, period).heldOnlyByPendingDigest).toBeUndefined();
    // The alert that opened the period, retrying: its own reservation, not a hold.
    expect(decide(pendingPast, ended, 'dev-1', 'k1', 'alert', budget, period)).toEqual({ decision: send(false) });
  });

  it('forgets expired quiet periods and old reservations, so the document stays bounded', () => {
    let doc = emptyGate();
    for (let i = 0; i < 500; i += 1) {
      const decided = decide(doc, T0 + i * 20 * MINUTE, `dev-${i}`, `k${i}`, 'alert', { perMinute: 25, perHour: 90 }, 15 * MINUTE);
      if (decided.next !== undefined) doc = decided.next;
    }
    expect(doc.sends).toHaveLength(3); // the last hour, at one send every 20 minutes
    expect(Object.keys(doc.quiet)).toEqual(['dev-499']);
  });
});

describe('send gate: shared by instances', () => {
  it('never lets concurrent instances exceed the budget or both open one device\'s quiet period', async () => {
    const store = new MemoryBlobStore();
    const clock = new ManualClock(T0);
    const instances = [gate({ store, clock, perMinute: 5 }).gate, gate({ store, clock, perMinute: 5 }).gate, gate({ store, clock, perMinute: 5 }).gate];
    const decisions = await Promise.all(
      Array.from({ length: 30 }, (_, i) => instances[i % 3]!.admitAlert(`dev-${i % 10}`, `k${i}`)),
    );
    expect(decisions.filter((d) => d.kind === 'send')).toHaveLength(5);
    const reopened = Object.keys(instances[0]!.peek()?.quiet ?? {});
    const stored = JSON.parse((await store.get('alerts', GATE_BLOB))!.body.toString('utf8')) as { sends: number[]; quiet: object };
    expect(stored.sends).toHaveLength(5);
    expect(Object.keys(stored.quiet)).toHaveLength(5);
    expect(reopened.length).toBeLessThanOrEqual(5);
  });

  it('costs one conditional write per reservation once warm, and nothing for a hold it already knows', async () => {
    const counting = faultyStore(new MemoryBlobStore(), () => false);
    const { gate: g, clock } = gate({ store: counting });
    await g.admitAlert('warm-up', 'k0');
    const before = counting.calls;
    await g.admitAlert('dev-1', 'k1');
    expect(counting.calls - before).toBe(1);
    clock.advance(1_000);
    // The first alert held by a quiet period marks it pending (one write); the ones after it cost nothing.
    const beforeFirstHold = counting.calls;
    expect((await g.admitAlert('dev-1', 'k2')).kind).toBe('hold');
    expect(counting.calls - beforeFirstHold).toBe(1);
    const beforeHold = counting.calls;
    expect((await g.admitAlert('dev-1', 'k3')).kind).toBe('hold');
    expect(counting.calls - beforeHold).toBe(0);
  });

  it('re-reads and decides again when another instance wrote since its cached version', async () => {
    const store = new MemoryBlobStore();
    const clock = new ManualClock(T0);
    const a = gate({ store, clock, perMinute: 2 }).gate;
    const b = gate({ store, clock, perMinute: 2 }).gate;
    expect(await a.admitAlert('dev-1', 'k1')).toEqual(send());
    expect(await b.admitAlert('dev-2', 'k2')).toEqual(send());
    // a's cache still shows one send; its write fails, it re-reads, and the budget is full.
    expect(await a.admitAlert('dev-3', 'k3')).toEqual(hold('budget', T0 + MINUTE));
    // and b opened dev-2's quiet period, which a now knows about.
    expect(await a.admitAlert('dev-2', 'k4')).toEqual(hold('quiet', T0 + 15 * MINUTE));
  });
});
