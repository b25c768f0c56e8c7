import { describe, expect, it } from 'vitest';

import { isRoutingError } from '../../../src/lib/errors.js';
import type { PropertyValue } from '../../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../../src/lib/ports.js';
import {
  DEFAULT_TWIN_READS_PER_SECOND,
  createTwinResolver,
  parseTwinPlaceholder,
} from '../../../src/lib/checks/twins/twinResolver.js';
import type { TwinDocument, TwinOwner, TwinReader, TwinResolverOptions } from '../../../src/lib/checks/twins/twinResolver.js';

/**
 * Timers on a manual clock: `sleep` registers a deadline, `settle` runs the earliest deadline whenever nothing else
 * can make progress. Concurrent sleepers therefore wake in deadline order at the right clock time, with no real
 * waiting.
 */
class FakeTime {
  readonly clock = new ManualClock('2024-05-01T00:00:00Z');
  readonly #timers: Array<{ at: number; seq: number; wake: () => void }> = [];
  #seq = 0;

  readonly sleep = (ms: number): Promise<void> =>
    new Promise((wake) => {
      this.#timers.push({ at: this.nowMs() + ms, seq: this.#seq++, wake });
    });

  nowMs(): number {
    return this.clock.now().getTime();
  }

  /** Runs timers until `work` settles; fails instead of hanging if it never can. */
  async settle<T>(work: Promise<T>): Promise<T> {
    let done = false;
    const tracked = work.finally(() => {
      done = true;
    });
    tracked.catch(() => undefined);
    for (let turns = 0; turns < 100_000; turns += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      if (done) return tracked;
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers.shift();
      if (next === undefined) throw new Error('FakeTime: work is stuck with no timer pending');
      if (next.at > this.nowMs()) this.clock.set(next.at);
      next.wake();
    }
    throw new Error('FakeTime: too many turns');
  }
}

interface ReadCall {
  deviceId: string;
  moduleId?: string;
  at: number;
}

type TwinSeed = Partial<TwinDocument> & { desired?: Record<string, unknown>; reported?: Record<string, unknown> };

const seeded = (twin: TwinSeed): TwinDocument => ({
  tags: twin.tags ?? {},
  properties: { desired: twin.desired ?? {}, reported: twin.reported ?? {} },
});

/** A twin store with instrumentation: when reads start, how many overlap, and scripted failures. */
class FakeTwinReader implements TwinReader {
  readonly twins = new Map<string, TwinDocument>();
  readonly calls: ReadCall[] = [];
  active = 0;
  maxActive = 0;
  failures: unknown[] = [];

  constructor(
    private readonly time: FakeTime,
    private readonly readMs = 0,
  ) {}

  set(deviceId: string, twin: TwinSeed): void {
    this.twins.set(deviceId, seeded(twin));
  }

  /** A module twin: stored apart from its device's twin, as IoT Hub keeps it. */
  setModule(deviceId: string, moduleId: string, twin: TwinSeed): void {
    this.twins.set(`${deviceId}/${moduleId}`, seeded(twin));
  }

  async getTwin({ deviceId, moduleId }: TwinOwner): Promise<TwinDocument | null> {
    this.calls.push({ deviceId, ...(moduleId === undefined ? {} : { moduleId }), at: this.time.nowMs() });
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.readMs > 0) await this.time.sleep(this.readMs);
      const failure = this.failures.shift();
      if (failure !== undefined) throw failure;
      return this.twins.get(moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`) ?? null;
    } finally {
      this.active -= 1;
    }
  }
}

function setup(options: Partial<TwinResolverOptions> & { readMs?: number } = {}) {
  const time = new FakeTime();
  const reader = new FakeTwinReader(time, options.readMs);
  const resolver = createTwinResolver({ reader, clock: time.clock, sleep: time.sleep, ...options });
  return { time, reader, resolver };
}

describe('parseTwinPlaceholder', () => {
  it.each([
    ['$twin.tags.location', { section: 'tags', path: ['location'] }],
    ['$twin.tags.site.building', { section: 'tags', path: ['site', 'building'] }],
    ['$twin.properties.desired.telemetryInterval', { section: 'desired', path: ['telemetryInterval'] }],
    ['$twin.properties.reported.firmware.version', { section: 'reported', path: ['firmware', 'version'] }],
  ])('parses %s', (placeholder, expected) => {
    expect(parseTwinPlaceholder(placeholder)).toEqual(expected);
  });

  it.each(['$twin.tags', '$twin.properties.desired', '$twin.properties.other.x', '$twin.deviceId', '$twin.tags..a', '$iothubname', 'tags.location'])(
    'rejects %s',
    (placeholder) => {
      expect(parseTwinPlaceholder(placeholder)).toBeNull();
    },
  );
});

describe('createTwinResolver: values', () => {
  it('resolves tags, desired and reported paths from one read, as the text IoT Hub would stamp', async () => {
    const { time, reader, resolver } = setup();
    reader.set('dev-1', {
      tags: { location: 'Oslo', site: { building: 7 } },
      desired: { interval: 30, config: { mode: 'eco', on: true } },
      reported: { online: false },
    });

    const results = await time.settle(
      Promise.all([
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'),
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.site.building'),
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.properties.desired.interval'),
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.properties.desired.config'),
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.properties.reported.online'),
      ]),
    );

    expect(results).toEqual([
      { resolved: true, value: 'Oslo' },
      { resolved: true, value: '7' },
      { resolved: true, value: '30' },
      // IoT Hub does not stamp objects: the placeholder stays, so the resolver must not invent a value either.
      { resolved: false, reason: 'Unsupported' },
      { resolved: true, value: 'false' },
    ]);
    expect(reader.calls).toHaveLength(1);
  });

  it('reports PathMissing, DeviceNotFound and Unsupported without inventing values', async () => {
    const { time, reader, resolver } = setup();
    reader.set('dev-1', { tags: { location: 'Oslo' } });

    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.floor'))).resolves.toEqual({
      resolved: false,
      reason: 'PathMissing',
    });
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location.city'))).resolves.toEqual({
      resolved: false,
      reason: 'PathMissing',
    });
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.constructor'))).resolves.toEqual({
      resolved: false,
      reason: 'PathMissing',
    });
    await expect(time.settle(resolver.resolve({ deviceId: 'ghost' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.deviceId'))).resolves.toEqual({
      resolved: false,
      reason: 'Unsupported',
    });
    // An unsupported placeholder never costs a read.
    expect(reader.calls.map((c) => c.deviceId)).toEqual(['dev-1', 'ghost']);
  });

  it("reads a module's placeholders from its module twin, apart from the device twin, and says ModuleNotFound", async () => {
    const { time, reader, resolver } = setup({ ratePerSecond: 1000 });
    reader.set('edge-1', { tags: { location: 'Oslo', line: 'A' } });
    reader.setModule('edge-1', 'filter', { tags: { location: 'Dock 4' }, desired: { threshold: 40 } });

    const module = { deviceId: 'edge-1', moduleId: 'filter' };
    const result = await time.settle(
      resolver.resolveProperties(module, {
        location: '$twin.tags.location',
        threshold: '$twin.properties.desired.threshold',
        // On the device twin only: a module inherits no tags, so IoT Hub would leave this placeholder.
        line: '$twin.tags.line',
      }),
    );
    expect(result.properties).toEqual({ location: 'Dock 4', threshold: '40', line: '$twin.tags.line' });
    expect(result.reasons).toEqual({ line: 'PathMissing' });
    await expect(time.settle(resolver.resolve({ deviceId: 'edge-1' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: true,
      value: 'Oslo',
    });
    // An empty module id is no module (as in message identities): the device twin, already cached.
    await expect(time.settle(resolver.resolve({ deviceId: 'edge-1', moduleId: '' }, '$twin.tags.line'))).resolves.toEqual({
      resolved: true,
      value: 'A',
    });
    await expect(time.settle(resolver.resolve(module, '$twin.tags.location'))).resolves.toEqual({ resolved: true, value: 'Dock 4' });
    await expect(time.settle(resolver.resolve({ deviceId: 'edge-1', moduleId: 'gone' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: false,
      reason: 'ModuleNotFound',
    });
    await expect(time.settle(resolver.resolveProperties({ deviceId: 'edge-1', moduleId: 'gone' }, { a: '$twin.tags.a' }))).resolves.toMatchObject({
      reasons: { a: 'ModuleNotFound' },
    });
    // One read per twin, each cached under its own key; the missing module is remembered too.
    expect(reader.calls.map(({ deviceId, moduleId }) => ({ deviceId, moduleId }))).toEqual([
      { deviceId: 'edge-1', moduleId: 'filter' },
      { deviceId: 'edge-1', moduleId: undefined },
      { deviceId: 'edge-1', moduleId: 'gone' },
    ]);
  });

  it("names the module in a failed module twin read's TwinUnavailable", async () => {
    const { time, reader, resolver } = setup();
    reader.failures.push(new Error('socket hang up'));
    const error = await time.settle(resolver.resolve({ deviceId: 'edge-1', moduleId: 'filter' }, '$twin.tags.location')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient' });
    expect((error as Error).message).toContain("module 'filter' of device 'edge-1'");
  });

  it('treats an empty device id as not found without a read', async () => {
    const { time, reader, resolver } = setup();
    await expect(time.settle(resolver.resolve({ deviceId: '' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    // No device to look a module up on: the device is what is missing, for either entry point.
    await expect(time.settle(resolver.resolve({ deviceId: '', moduleId: 'filter' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    await expect(time.settle(resolver.resolveProperties({ deviceId: '', moduleId: 'filter' }, { a: '$twin.tags.a' }))).resolves.toMatchObject({
      reasons: { a: 'DeviceNotFound' },
    });
    expect(reader.calls).toHaveLength(0);
  });

  it('resolveProperties replaces placeholders, keeps other values and the literal text of unresolved ones', async () => {
    const { time, reader, resolver } = setup();
    reader.set('dev-1', { tags: { location: 'Oslo' }, desired: { interval: 30 } });
    const properties: Record<string, PropertyValue> = {
      level: 'critical',
      hub: 'my-hub',
      location: '$twin.tags.location',
      interval: '$twin.properties.desired.interval',
      floor: '$twin.tags.floor',
      odd: '$twin.deviceId',
      count: 3,
    };

    const result = await time.settle(resolver.resolveProperties({ deviceId: 'dev-1' }, properties));

    expect(result.properties).toEqual({
      level: 'critical',
      hub: 'my-hub',
      location: 'Oslo',
      interval: '30',
      floor: '$twin.tags.floor',
      odd: '$twin.deviceId',
      count: 3,
    });
    expect(result.resolved.sort()).toEqual(['interval', 'location']);
    expect(result.unresolved.sort()).toEqual(['floor', 'odd']);
    expect(result.reasons).toEqual({ floor: 'PathMissing', odd: 'Unsupported' });
    expect(reader.calls).toHaveLength(1);
    expect(properties.location).toBe('$twin.tags.location');
  });

  it('resolveProperties does not read the twin when nothing needs resolving', async () => {
    const { time, reader, resolver } = setup();
    const result = await time.settle(resolver.resolveProperties({ deviceId: 'dev-1' }, { level: 'storage', location: 'Oslo' }));
    expect(result).toEqual({ properties: { level: 'storage', location: 'Oslo' }, resolved: [], unresolved: [], reasons: {} });
    expect(reader.calls).toHaveLength(0);
  });

  it('resolveProperties marks every placeholder DeviceNotFound for an unknown device', async () => {
    const { time, resolver } = setup();
    const result = await time.settle(
      resolver.resolveProperties({ deviceId: 'ghost' }, { a: '$twin.tags.a', b: '$twin.properties.reported.b' }),
    );
    expect(result.unresolved.sort()).toEqual(['a', 'b']);
    expect(result.reasons).toEqual({ a: 'DeviceNotFound', b: 'DeviceNotFound' });
  });
});

describe('createTwinResolver: cache', () => {
  it('reuses a twin until its TTL expires, then reads the new value', async () => {
    const { time, reader, resolver } = setup({ ttlMs: 60_000 });
    reader.set('dev-1', { tags: { location: 'Oslo' } });
    await time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'));

    reader.set('dev-1', { tags: { location: 'Bergen' } });
    time.clock.advance(59_999);
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: true,
      value: 'Oslo',
    });
    expect(reader.calls).toHaveLength(1);

    time.clock.advance(1);
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: true,
      value: 'Bergen',
    });
    expect(reader.calls).toHaveLength(2);
  });

  it('remembers a missing device for negativeTtlMs only', async () => {
    const { time, reader, resolver } = setup({ ttlMs: 300_000, negativeTtlMs: 10_000 });
    await time.settle(resolver.resolve({ deviceId: 'late' }, '$twin.tags.location'));
    reader.set('late', { tags: { location: 'Oslo' } });

    time.clock.advance(9_999);
    await expect(time.settle(resolver.resolve({ deviceId: 'late' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: false,
      reason: 'DeviceNotFound',
    });
    expect(reader.calls).toHaveLength(1);

    time.clock.advance(1);
    await expect(time.settle(resolver.resolve({ deviceId: 'late' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: true,
      value: 'Oslo',
    });
    expect(reader.calls).toHaveLength(2);
  });

  it('drops the least recently read device when the cache is full', async () => {
    const { time, reader, resolver } = setup({ maxCachedDevices: 2, ratePerSecond: 1000 });
    for (const id of ['a', 'b', 'c']) reader.set(id, { tags: { id } });
    for (const id of ['a', 'b', 'c']) await time.settle(resolver.resolve({ deviceId: id }, '$twin.tags.id'));
    await time.settle(resolver.resolve({ deviceId: 'c' }, '$twin.tags.id'));
    await time.settle(resolver.resolve({ deviceId: 'b' }, '$twin.tags.id'));
    expect(reader.calls).toHaveLength(3);
    await time.settle(resolver.resolve({ deviceId: 'a' }, '$twin.tags.id'));
    expect(reader.calls.map((c) => c.deviceId)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('shares one in-flight read between concurrent callers for the same device', async () => {
    const { time, reader, resolver } = setup({ readMs: 200 });
    reader.set('dev-1', { tags: { location: 'Oslo' }, desired: { interval: 30 } });

    const results = await time.settle(
      Promise.all([
        ...Array.from({ length: 10 }, () => resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location')),
        resolver.resolveProperties({ deviceId: 'dev-1' }, { interval: '$twin.properties.desired.interval' }),
      ]),
    );

    expect(reader.calls).toHaveLength(1);
    expect(results.slice(0, 10).every((r) => 'value' in r && r.value === 'Oslo')).toBe(true);
    expect(results[10]).toMatchObject({ properties: { interval: '30' }, resolved: ['interval'] });
  });
});

describe('createTwinResolver: failures', () => {
  it('throws a transient TwinUnavailable with the cause, to every waiter, and caches nothing', async () => {
    const { time, reader, resolver } = setup({ readMs: 50 });
    reader.set('dev-1', { tags: { location: 'Oslo' } });
    const cause = Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailableError' });
    reader.failures.push(cause);

    const outcomes = await time.settle(
      Promise.allSettled([
        resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'),
        resolver.resolveProperties({ deviceId: 'dev-1' }, { location: '$twin.tags.location' }),
      ]),
    );

    expect(reader.calls).toHaveLength(1);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as unknown;
      expect(isRoutingError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'TwinUnavailable', kind: 'transient', cause });
      expect((error as Error).message).toContain("device 'dev-1'");
    }

    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'))).resolves.toEqual({
      resolved: true,
      value: 'Oslo',
    });
    expect(reader.calls).toHaveLength(2);
  });

  it('passes a TwinUnavailable from the adapter through unchanged, keeping its retry hint', async () => {
    const { time, reader, resolver } = setup();
    const { RoutingError } = await import('../../../src/lib/errors.js');
    const throttled = new RoutingError('TwinUnavailable', 'throttled', { retryAfterSeconds: 10 });
    reader.failures.push(throttled);
    await expect(time.settle(resolver.resolve({ deviceId: 'dev-1' }, '$twin.tags.location'))).rejects.toBe(throttled);
  });

  it('rejects impossible options as ConfigInvalid, naming each one', () => {
    const time = new FakeTime();
    const reader = new FakeTwinReader(time);
    let message = '';
    try {
      createTwinResolver({ reader, clock: time.clock, maxConcurrency: 0, ratePerSecond: 0, ttlMs: -1 });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const name of ['ttlMs', 'maxConcurrency', 'ratePerSecond']) expect(message).toContain(name);
    try {
      createTwinResolver({ reader, clock: time.clock, burst: 1.5 });
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'ConfigInvalid', kind: 'permanent' });
    }
  });
});

describe('createTwinResolver: load limits', () => {
  it('never has more than maxConcurrency reads in flight', async () => {
    const { time, reader, resolver } = setup({ maxConcurrency: 3, ratePerSecond: 1000, burst: 1000, readMs: 500 });
    const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
    for (const id of ids) reader.set(id, { tags: { id } });

    const results = await time.settle(Promise.all(ids.map((id) => resolver.resolve({ deviceId: id }, '$twin.tags.id'))));

    expect(results.map((r) => ('value' in r ? r.value : undefined))).toEqual(ids);
    expect(reader.calls).toHaveLength(20);
    expect(reader.maxActive).toBe(3);
  });

  it('starts no more than ratePerSecond reads in any one-second window, and no fewer than it may', async () => {
    const ratePerSecond = 8;
    const { time, reader, resolver } = setup({ ratePerSecond, maxConcurrency: 4, readMs: 40 });
    const ids = Array.from({ length: 40 }, (_, i) => `dev-${i}`);
    for (const id of ids) reader.set(id, { tags: { id } });
    const start = time.nowMs();

    await time.settle(Promise.all(ids.map((id) => resolver.resolve({ deviceId: id }, '$twin.tags.id'))));

    const starts = reader.calls.map((c) => c.at);
    expect(starts).toHaveLength(40);
    for (const t of starts) {
      expect(starts.filter((s) => s >= t && s < t + 1000).length).toBeLessThanOrEqual(ratePerSecond);
    }
    // Paced, not stalled: the 40th read starts at 39 intervals of 125 ms.
    expect(Math.max(...starts) - start).toBe(39 * 125);
  });

  it('keeps the rate across calls spread over time (tokens refill, but never beyond the burst)', async () => {
    const { time, reader, resolver } = setup({ ratePerSecond: 2, burst: 2 });
    const ids = Array.from({ length: 6 }, (_, i) => `dev-${i}`);
    for (const id of ids) reader.set(id, { tags: { id } });
    time.clock.advance(60_000);
    const start = time.nowMs();

    await time.settle(Promise.all(ids.map((id) => resolver.resolve({ deviceId: id }, '$twin.tags.id'))));

    expect(reader.calls.map((c) => c.at - start)).toEqual([0, 0, 500, 1000, 1500, 2000]);
  });

  it('defaults to a rate well below the smallest documented twin-read throttle (100/sec on S1)', async () => {
    expect(DEFAULT_TWIN_READS_PER_SECOND).toBeLessThan(100);
    const { time, reader, resolver } = setup();
    const ids = Array.from({ length: 3 * DEFAULT_TWIN_READS_PER_SECOND }, (_, i) => `dev-${i}`);
    for (const id of ids) reader.set(id, { tags: { id } });
    await time.settle(Promise.all(ids.map((id) => resolver.resolve({ deviceId: id }, '$twin.tags.id'))));
    const starts = reader.calls.map((c) => c.at);
    for (const t of starts) {
      expect(starts.filter((s) => s >= t && s < t + 1000).length).toBeLessThanOrEqual(DEFAULT_TWIN_READS_PER_SECOND);
    }
  });
});
