import { describe, expect, it } from 'vitest';
import { createAlertLedger, ledgerBlobName, type AlertLedger } from '../../src/lib/alerts/ledger.js';
import { ManualClock, type BlobStore } from '../../src/lib/ports.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');
const LEASE = 75_000;
const init = { kind: 'alert' as const, deviceId: 'dev-1', operationId: '6f1c2b3a-9d8e-5f7a-b6c5-d4e3f2a1b0c9' };

function ledger(store: BlobStore = new MemoryBlobStore(), clock = new ManualClock(T0)): { ledger: AlertLedger; clock: ManualClock; store: BlobStore } {
  return { store, clock, ledger: createAlertLedger({ store, container: 'alerts', clock, leaseMs: LEASE, ready: () => store.ensureContainer('alerts') }) };
}

describe('alert ledger', () => {
  it('lets exactly one delivery claim an alert; the others find it busy, then done', async () => {
    const { ledger: l } = ledger();
    const first = await l.claim('k1', init);
    expect(first).toMatchObject({ status: 'claimed', takeover: false, record: { state: 'in-progress', attempts: 1, expiresAt: new Date(T0 + LEASE).toISOString() } });
    expect(await l.claim('k1', init)).toMatchObject({ status: 'busy' });
    if (first.status !== 'claimed') throw new Error('unreachable');
    expect(await l.finish(first, { state: 'sent', recipients: 2, deviceNotification: 'not-requested', providerId: 'p-1' })).toMatchObject({ ok: true });
    expect(await l.claim('k1', init)).toMatchObject({ status: 'done', record: { state: 'sent', expiresAt: null, recipients: 2, providerId: 'p-1' } });
  });

  it('claims concurrently from many deliveries: one owner, whatever the interleaving', async () => {
    const { ledger: l } = ledger();
    const claims = await Promise.all(Array.from({ length: 12 }, () => l.claim('k-race', init)));
    expect(claims.filter((c) => c.status === 'claimed')).toHaveLength(1);
    expect(claims.filter((c) => c.status === 'busy')).toHaveLength(11);
  });

  it('hands an expired attempt to the next delivery, and only to one', async () => {
    const { ledger: l, clock } = ledger();
    const crashed = await l.claim('k1', init);
    clock.advance(LEASE);
    const takers = await Promise.all([l.claim('k1', init), l.claim('k1', init), l.claim('k1', init)]);
    const owner = takers.filter((c) => c.status === 'claimed');
    expect(owner).toHaveLength(1);
    expect(owner[0]).toMatchObject({ takeover: true, record: { attempts: 2 } });
    // The crashed attempt comes back to life: its outcome is not recorded over the taker's.
    if (crashed.status !== 'claimed') throw new Error('unreachable');
    expect(await l.finish(crashed, { state: 'failed', error: 'late' })).toEqual({ ok: false });
    expect((await l.get('k1'))?.record.state).toBe('in-progress');
  });

  it('releases after a transient error so that the redelivery takes over at once', async () => {
    const { ledger: l } = ledger();
    const claim = await l.claim('k1', init);
    if (claim.status !== 'claimed') throw new Error('unreachable');
    await l.release(claim, 'RoutingError: ACS throttled');
    const next = await l.claim('k1', init);
    expect(next).toMatchObject({ status: 'claimed', takeover: true, record: { attempts: 2, lastError: 'RoutingError: ACS throttled' } });
  });

  it('stores one blob per key under ledger/', async () => {
    const { ledger: l, store } = ledger();
    await l.claim('k1', init);
    await l.claim('k1', init);
    await l.claim('digest-2', { ...init, kind: 'digest' });
    const names: string[] = [];
    for await (const item of store.list('alerts')) names.push(item.name);
    expect(names).toEqual([ledgerBlobName('digest-2'), ledgerBlobName('k1')]);
  });
});
