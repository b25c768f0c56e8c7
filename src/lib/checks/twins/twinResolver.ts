/**
 * Optional twin resolution for `$twin.*` message enrichments.
 *
 * IoT Hub stamps an enrichment such as `location: $twin.tags.location` with the twin's value when it can, and with
 * the literal placeholder text when the twin lacks the path or a twin change has not reached the enrichment yet
 * (up to five minutes). This module reads the twin itself for such messages, through the {@link TwinReader} port,
 * with a per-twin cache, single-flight reads, bounded concurrency and a rate below IoT Hub's twin-read throttle.
 *
 * Whose twin: the sender's. A device's message is enriched from its device twin, an IoT Edge module's message from
 * its module twin, which inherits nothing from the device twin (learn.microsoft.com/azure/iot-hub/
 * iot-hub-message-enrichments-overview, "Limitations": "Modules don't inherit twin tags from their corresponding
 * devices. Enrichments for messages originating from device modules (for example from IoT Edge modules) must use the
 * twin tags that are set on the module twin."). See {@link TwinOwner}.
 *
 * Pure domain: no SDK import. The azure-iothub adapter lives in `registryTwinReader.ts`.
 */

import { RoutingError, configInvalid, isRoutingError } from '../../errors.js';
import { moduleOf, senderKey } from '../../message/identity.js';
import type { PropertyValue } from '../../message/RoutedMessage.js';
import type { Clock } from '../../ports.js';

/** The parts of a device or module twin that enrichments can name. */
export interface TwinDocument {
  tags: Record<string, unknown>;
  properties: {
    desired: Record<string, unknown>;
    reported: Record<string, unknown>;
  };
}

/**
 * Whose twin a message's `$twin` enrichments name: the module's twin for an IoT Edge module's message (`moduleId`
 * set and not empty), the device's twin otherwise. A module twin is a twin of its own (`GET /twins/{id}/modules/{mid}`),
 * never a view of the device twin.
 */
export interface TwinOwner {
  deviceId: string;
  moduleId?: string | undefined;
}

/** True when `owner` names a module's twin: the module `moduleOf` finds, as message identities do. */
export function isModuleTwin(owner: TwinOwner): owner is TwinOwner & { moduleId: string } {
  return moduleOf(owner) !== undefined;
}

/** "device 'd'" or "module 'm' of device 'd'", for messages. */
export function describeTwinOwner(owner: TwinOwner): string {
  return isModuleTwin(owner) ? `module '${owner.moduleId}' of device '${owner.deviceId}'` : `device '${owner.deviceId}'`;
}

/** Port: reads one device or module twin. */
export interface TwinReader {
  /**
   * The module twin when `owner` names a module, else the device twin. Resolves to `null` when the hub has no such
   * device (or no such module on it). Any other failure rejects; the resolver treats it as transient.
   */
  getTwin(owner: TwinOwner): Promise<TwinDocument | null>;
}

export type TwinUnresolvedReason =
  /** The hub has no device with this id (deleted since the message was sent, or a wrong id). */
  | 'DeviceNotFound'
  /** The hub has no module with this id on the device (the module or its device was deleted since). */
  | 'ModuleNotFound'
  /** The twin exists but has nothing at the placeholder's path. */
  | 'PathMissing'
  /** Not a placeholder this resolver understands (IoT Hub only offers tags, desired and reported properties). */
  | 'Unsupported';

export type TwinResolution =
  | { resolved: true; value: PropertyValue }
  | { resolved: false; reason: TwinUnresolvedReason };

export interface ResolvedProperties {
  /** A copy of the input with every resolvable placeholder replaced; unresolved ones keep their literal text. */
  properties: Record<string, PropertyValue>;
  /** Keys whose placeholder was replaced by a twin value. */
  resolved: string[];
  /** Keys that still hold a `$twin.` placeholder. */
  unresolved: string[];
  /** Why each key in `unresolved` stayed unresolved. */
  reasons: Record<string, TwinUnresolvedReason>;
}

export interface TwinResolver {
  /** Resolves one placeholder such as `$twin.tags.location` from one device's or module's twin. */
  resolve(owner: TwinOwner, placeholder: string): Promise<TwinResolution>;
  /**
   * Resolves every property value that is an unresolved `$twin.` placeholder, with at most one twin read per twin
   * per cache lifetime. Other values are copied unchanged.
   */
  resolveProperties(owner: TwinOwner, properties: Readonly<Record<string, PropertyValue>>): Promise<ResolvedProperties>;
}

/**
 * IoT Hub's documented throttle for twin (device and module) reads is 100/sec for Free and S1 hubs, the higher of
 * 100/sec or 10/sec/unit for S2 and 500/sec/unit for S3 (learn.microsoft.com, "IoT Hub quotas and throttling").
 * The budget is per hub and shared with devices reading their own twins, other back ends and every scaled-out
 * instance of this app, each of which has its own resolver; 8/sec per instance leaves most of the smallest
 * budget to them. Raise it per deployment when the hub tier and instance count allow.
 */
export const DEFAULT_TWIN_READS_PER_SECOND = 8;

/**
 * Matches the propagation window IoT Hub documents for enrichments: a value read now is no older than what the hub
 * itself would stamp a few minutes later, and a busy device costs at most one read per five minutes.
 */
export const DEFAULT_TWIN_TTL_MS = 5 * 60_000;

/**
 * A device (or module) that does not exist is usually deleted for good; a minute bounds the wait if it is being
 * re-created (IoT Edge deployments re-create modules).
 */
export const DEFAULT_NOT_FOUND_TTL_MS = 60_000;

export const DEFAULT_MAX_CONCURRENT_TWIN_READS = 4;

export const DEFAULT_MAX_CACHED_TWINS = 10_000;

export interface TwinResolverOptions {
  reader: TwinReader;
  clock: Clock;
  /** Waits for the rate limiter. Defaults to a real timer; tests pass one that advances a manual clock. */
  sleep?: (ms: number) => Promise<void>;
  /** How long a twin read stays usable, in milliseconds. Default {@link DEFAULT_TWIN_TTL_MS}. */
  ttlMs?: number;
  /** How long "device/module not found" is remembered, in milliseconds. Default {@link DEFAULT_NOT_FOUND_TTL_MS}. */
  negativeTtlMs?: number;
  /** Twin reads in flight at once. Default {@link DEFAULT_MAX_CONCURRENT_TWIN_READS}. */
  maxConcurrency?: number;
  /** Sustained twin reads per second started by this resolver. Default {@link DEFAULT_TWIN_READS_PER_SECOND}. */
  ratePerSecond?: number;
  /**
   * Reads that may start back to back before pacing applies. In any window of `T` seconds at most
   * `burst - 1 + ratePerSecond * T` reads start; with the default of 1 no one-second window holds more than
   * `ratePerSecond`.
   */
  burst?: number;
  /**
   * Twins (device and module twins together) kept in the cache; the least recently read is dropped first. Default
   * {@link DEFAULT_MAX_CACHED_TWINS}.
   */
  maxCachedDevices?: number;
}

const TWIN_PREFIX = '$twin.';

/** True for a value IoT Hub left as an unresolved `$twin.` enrichment. */
export function isTwinPlaceholder(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(TWIN_PREFIX);
}

export interface TwinPath {
  section: 'tags' | 'desired' | 'reported';
  /** Property names from the section root; never empty. */
  path: string[];
}

/**
 * Parses `$twin.tags.a.b`, `$twin.properties.desired.x` and `$twin.properties.reported.x`. Returns null for anything
 * else, including a bare section (`$twin.tags`), because IoT Hub enrichments name a value, not a section.
 */
export function parseTwinPlaceholder(placeholder: string): TwinPath | null {
  if (!placeholder.startsWith(TWIN_PREFIX)) return null;
  const segments = placeholder.slice(TWIN_PREFIX.length).split('.');
  // Twin property names cannot contain '.', so an empty segment is a malformed placeholder, not a key.
  if (segments.some((s) => s.length === 0)) return null;
  const [first, second, ...rest] = segments;
  if (first === 'tags' && second !== undefined) return { section: 'tags', path: [second, ...rest] };
  if (first === 'properties' && (second === 'desired' || second === 'reported') && rest.length > 0) {
    return { section: second, path: rest };
  }
  return null;
}

/** Looks a parsed path up in a twin. Own properties only, so `constructor` or `__proto__` never resolve. */
export function readTwinPath(twin: TwinDocument, twinPath: TwinPath): TwinResolution {
  let current: unknown = twinPath.section === 'tags' ? twin.tags : twin.properties[twinPath.section];
  for (const key of twinPath.path) {
    if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, key)) {
      return { resolved: false, reason: 'PathMissing' };
    }
    current = (current as Record<string, unknown>)[key];
  }
  // Resolve exactly what IoT Hub would have stamped (see src/lib/routing/enrich.ts and ADR 0003): enrichment values
  // are text, so numbers and booleans become their text, and an object, array or null is not stamped at all (the
  // hub leaves the placeholder).
  if (typeof current === 'string') return { resolved: true, value: current };
  if (typeof current === 'number' || typeof current === 'boolean') return { resolved: true, value: String(current) };
  return { resolved: false, reason: 'Unsupported' };
}

export function createTwinResolver(options: TwinResolverOptions): TwinResolver {
  const settings = validateOptions(options);
  const { reader, clock } = options;
  const sleep = options.sleep ?? realSleep;
  const cache = new TwinCache(settings.maxCachedDevices);
  const inFlight = new Map<string, Promise<TwinDocument | null>>();
  const slots = new Semaphore(settings.maxConcurrency);
  const bucket = new TokenBucket(settings.ratePerSecond, settings.burst, clock.now().getTime());

  async function readThrottled(owner: TwinOwner): Promise<TwinDocument | null> {
    // The slot is taken before the token so that a read starts as soon as its token is granted; taking tokens while
    // queued for a slot would let reads bunch up later and exceed the rate. Device and module twin reads share the
    // bucket: IoT Hub's twin-read throttle counts both.
    await slots.acquire();
    try {
      const waitMs = bucket.reserve(clock.now().getTime());
      if (waitMs > 0) await sleep(waitMs);
      return await reader.getTwin(owner);
    } finally {
      slots.release();
    }
  }

  async function load(key: string, owner: TwinOwner): Promise<TwinDocument | null> {
    let twin: TwinDocument | null;
    try {
      twin = await readThrottled(owner);
    } catch (error) {
      // Not cached: the next message from this twin's owner tries again, and the trigger's retry sees a transient error.
      if (isRoutingError(error) && error.code === 'TwinUnavailable') throw error;
      throw new RoutingError('TwinUnavailable', `Reading the twin of ${describeTwinOwner(owner)} failed: ${describe(error)}`, {
        cause: error,
      });
    }
    const ttl = twin === null ? settings.negativeTtlMs : settings.ttlMs;
    cache.set(key, twin, clock.now().getTime() + ttl);
    return twin;
  }

  /** `null` when the hub has no such twin; an empty device id names none, and costs no read. */
  function twinOf(owner: TwinOwner): Promise<TwinDocument | null> {
    if (owner.deviceId.length === 0) return Promise.resolve(null);
    const key = twinKey(owner);
    const cached = cache.get(key, clock.now().getTime());
    if (cached !== undefined) return Promise.resolve(cached);
    const pending = inFlight.get(key);
    if (pending !== undefined) return pending;
    // Single flight: every caller that arrives while the read runs shares it, so a burst of messages from one
    // device (or module) costs one read and one token.
    const started = load(key, owner).finally(() => inFlight.delete(key));
    inFlight.set(key, started);
    return started;
  }

  /**
   * What a missing twin means for `owner`: its device, or its module, is not (or no longer) registered. Without a
   * device id there is no device to look a module up on.
   */
  const notFound = (owner: TwinOwner): TwinResolution => ({
    resolved: false,
    reason: owner.deviceId.length > 0 && isModuleTwin(owner) ? 'ModuleNotFound' : 'DeviceNotFound',
  });

  return {
    async resolve(owner, placeholder) {
      const twinPath = parseTwinPlaceholder(placeholder);
      if (twinPath === null) return { resolved: false, reason: 'Unsupported' };
      const twin = await twinOf(owner);
      if (twin === null) return notFound(owner);
      return readTwinPath(twin, twinPath);
    },

    async resolveProperties(owner, properties) {
      const result: ResolvedProperties = { properties: { ...properties }, resolved: [], unresolved: [], reasons: {} };
      const wanted: Array<[string, TwinPath]> = [];
      for (const [key, value] of Object.entries(properties)) {
        if (!isTwinPlaceholder(value)) continue;
        const twinPath = parseTwinPlaceholder(value);
        if (twinPath === null) {
          result.unresolved.push(key);
          result.reasons[key] = 'Unsupported';
        } else {
          wanted.push([key, twinPath]);
        }
      }
      if (wanted.length === 0) return result;

      const twin = await twinOf(owner);
      for (const [key, twinPath] of wanted) {
        const resolution = twin === null ? notFound(owner) : readTwinPath(twin, twinPath);
        if (resolution.resolved) {
          result.properties[key] = resolution.value;
          result.resolved.push(key);
        } else {
          result.unresolved.push(key);
          result.reasons[key] = resolution.reason;
        }
      }
      return result;
    },
  };
}

/** The cache key of a twin: its owner as message identities name it, so a module twin never shares a device's key. */
function twinKey(owner: TwinOwner): string {
  return senderKey(owner.deviceId, moduleOf(owner));
}

interface Settings {
  ttlMs: number;
  negativeTtlMs: number;
  maxConcurrency: number;
  ratePerSecond: number;
  burst: number;
  maxCachedDevices: number;
}

function validateOptions(options: TwinResolverOptions): Settings {
  const settings: Settings = {
    ttlMs: options.ttlMs ?? DEFAULT_TWIN_TTL_MS,
    negativeTtlMs: options.negativeTtlMs ?? DEFAULT_NOT_FOUND_TTL_MS,
    maxConcurrency: options.maxConcurrency ?? DEFAULT_MAX_CONCURRENT_TWIN_READS,
    ratePerSecond: options.ratePerSecond ?? DEFAULT_TWIN_READS_PER_SECOND,
    burst: options.burst ?? 1,
    maxCachedDevices: options.maxCachedDevices ?? DEFAULT_MAX_CACHED_TWINS,
  };
  const problems: string[] = [];
  const requireAtLeast = (name: keyof Settings, min: number, integer: boolean): void => {
    const value = settings[name];
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      problems.push(`${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`);
    }
  };
  requireAtLeast('ttlMs', 0, false);
  requireAtLeast('negativeTtlMs', 0, false);
  requireAtLeast('maxConcurrency', 1, true);
  requireAtLeast('burst', 1, true);
  requireAtLeast('maxCachedDevices', 1, true);
  if (!Number.isFinite(settings.ratePerSecond) || settings.ratePerSecond <= 0) {
    problems.push(`ratePerSecond must be a number > 0, got ${String(settings.ratePerSecond)}`);
  }
  if (problems.length > 0) throw configInvalid('Twin resolver settings are invalid', problems);
  return settings;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === 'Error' ? error.message : `${error.name}: ${error.message}`;
  return String(error);
}

function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Twin reads by twin key with expiry; Map order doubles as recency so the oldest read is evicted first. */
class TwinCache {
  readonly #entries = new Map<string, { twin: TwinDocument | null; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {}

  /** `undefined` means "not cached"; `null` is a cached "device (or module) not found". */
  get(key: string, nowMs: number): TwinDocument | null | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (nowMs >= entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.twin;
  }

  set(key: string, twin: TwinDocument | null, expiresAt: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { twin, expiresAt });
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }
}

/** Counting semaphore with FIFO hand-over: a released slot goes straight to the longest waiter. */
class Semaphore {
  #active = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async acquire(): Promise<void> {
    if (this.#active < this.max) {
      this.#active += 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else this.#active -= 1;
  }
}

/**
 * Token bucket that lets callers go into debt: `reserve` always takes a token and returns how long the caller must
 * wait until the bucket would have held it. Reservations are therefore served in arrival order, with no polling,
 * and the start times they produce never exceed `burst` plus `ratePerSecond` per elapsed second.
 */
class TokenBucket {
  #tokens: number;
  #updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    nowMs: number,
  ) {
    this.#tokens = capacity;
    this.#updatedAt = nowMs;
  }

  reserve(nowMs: number): number {
    // A clock that steps backwards must not mint tokens.
    const elapsed = Math.max(0, nowMs - this.#updatedAt);
    this.#updatedAt = Math.max(this.#updatedAt, nowMs);
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsed * this.ratePerSecond) / 1000);
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.ratePerSecond);
  }
}
