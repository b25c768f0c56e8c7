/**
 * Effectively-once windowed aggregation of admitted messages, per partition (docs/adr/0007).
 *
 * Per batch: group the messages by base-window partial, apply each group with one conditional read-modify-write,
 * propagate the touched partials' summaries to their roll-ups (one write per roll-up touched), then advance the
 * partition's watermark. Storage calls grow with the windows a batch touches, not with its messages, and every step
 * is idempotent, so a batch that fails half-way is simply applied again by the trigger's retry.
 */
import type { AdmittedMessage } from '../checks/admit.js';
import type { CheckResult } from '../checks/checks.js';
import { deviceScopedIdentity, legacyDeviceScopedIdentity } from '../message/identity.js';
import { ObjectShapes, setOwnProperty } from '../message/objectShapes.js';
import type { DecodedBody, JsonValue, PropertyValue, RoutedMessage } from '../message/RoutedMessage.js';
import type { Clock } from '../ports.js';
import { LEVEL_WHEN_ABSENT, MAX_FIELDS_PER_MESSAGE, type AggregationConfig, type WindowSize } from './aggregationConfig.js';
import { claimBaseWindow } from './baseWindow.js';
import { mapLimit } from './mapLimit.js';
import {
  addContribution,
  contributionKey,
  emptyTotals,
  isAggregatedValue,
  lateCount,
  sameContribution,
  totalsOf,
  type Contribution,
} from './windowSummary.js';
import {
  decodeBaseWindowDoc,
  decodePartitionDoc,
  decodeRollupWindowDoc,
  appendMessage,
  findMessage,
  type BaseWindowDoc,
  type PartitionDoc,
  type RollupEntry,
  type RollupWindowDoc,
  type WindowStore,
} from './windowStore.js';
import { isoSeconds, partitionDocName, rollupPageOf, unwindowableCode, windowDocName, windowStartOf, type UnwindowableCode } from './windows.js';

export interface WindowAggregatorDeps {
  windows: WindowStore;
  config: AggregationConfig;
  clock: Clock;
  /** Document updates in flight at once within a batch. Default 8. */
  concurrency?: number;
}

export interface AggregateResult {
  /** Newly counted messages of an aggregated level (their numeric fields are in the window statistics). */
  aggregated: number;
  /** Newly counted messages of other levels (counted by level, no field statistics). */
  countedOtherLevel: number;
  /** Messages whose identity was already counted in their window, in storage or earlier in this batch. */
  duplicates: number;
  /** Of the newly counted, those whose window had already closed: recorded, and the window gets a new revision. */
  late: number;
  /** Admitted messages that cannot be placed in a window (no device id or no enqueued time): quarantine them. */
  unwindowable: UnwindowableMessage[];
  baseWindows: number;
  rollupWindows: number;
}

/**
 * An admitted message no window can take, with why: decided once, where the aggregation meets it, and carried to
 * whoever quarantines it. Only these are wrapped; a message placed in a window costs no allocation for it.
 */
export interface UnwindowableMessage {
  admitted: AdmittedMessage;
  code: UnwindowableCode;
}

export interface WindowAggregator {
  aggregate(admitted: readonly AdmittedMessage[], partition: string): Promise<AggregateResult>;
}

/** Enqueued times further ahead of the clock than this do not move the watermark beyond it. */
const FUTURE_SKEW_MS = 5 * 60_000;
/**
 * A batch refreshes `lastBatchAt` when it claims its partition, at most this often (a replayed batch that moves
 * nothing included), so that the finalizer does not take a busy partition for an idle one.
 */
const LAST_BATCH_REFRESH_MS = 10_000;

interface PendingMessage {
  identity: string;
  legacy: string | undefined;
  contribution: Contribution;
  /** The partition's watermark when the message arrived, if its window had closed by then. */
  lateWatermark: number | null;
}

interface BaseGroup {
  deviceId: string;
  startMs: number;
  /**
   * The group's messages in arrival order, copies included: `applyToBase` finds a copy among the identities already
   * in the partial, including those it appended moments before, exactly as it finds a replayed one.
   */
  pending: PendingMessage[];
}

interface BatchGroups {
  groups: BaseGroup[];
  unwindowable: UnwindowableMessage[];
  /** The latest enqueued time of the batch (capped at the clock plus a small skew); null when none had one. */
  maxEventTime: number | null;
}

interface BaseEffect {
  next: BaseWindowDoc | undefined;
  aggregated: number;
  countedOtherLevel: number;
  duplicates: number;
  late: number;
}

/** Event-time progress of a partition: windows ending at or before it are closed. */
export function watermarkOf(doc: PartitionDoc | null, allowedLatenessMs: number): number {
  if (doc === null) return -Infinity;
  const fromEvents = doc.maxEventTime === null ? -Infinity : doc.maxEventTime - allowedLatenessMs;
  return Math.max(fromEvents, doc.clockWatermark ?? -Infinity);
}

export function createWindowAggregator(deps: WindowAggregatorDeps): WindowAggregator {
  const { windows, config, clock } = deps;
  const concurrency = deps.concurrency ?? 8;
  const [base, ...larger] = config.windows;
  if (base === undefined) throw new RangeError('aggregation needs at least one window size');
  const aggregateLevels = new Set(config.aggregateLevels);
  const docNames = new DocNames();
  let baseClaimed: Promise<void> | undefined;

  /**
   * Groups a batch by base partial, classifying each message in arrival order with the watermark advanced message
   * by message, so which messages are late depends on the order they arrived in, never on where batch boundaries
   * fell. A function of its own (not inline in the async `aggregate`), so that the running times stay unboxed
   * locals rather than variables its closures capture, which would box every new value.
   */
  function groupBatch(admitted: readonly AdmittedMessage[], base: WindowSize, startWatermark: number, now: number): BatchGroups {
    let watermark = startWatermark;
    let maxEventTime: number | null = null;
    // Groups in the order they were first touched, found by device (a device's messages in a batch mostly fall in
    // one or two windows, so its list is short).
    const groups: BaseGroup[] = [];
    const groupsByDevice = new Map<string, BaseGroup[]>();
    const unwindowable: UnwindowableMessage[] = [];
    for (const item of admitted) {
      const { message, check } = item;
      const code = unwindowableCode(message);
      if (code !== undefined) {
        unwindowable.push({ admitted: item, code });
        continue;
      }
      const time = message.enqueuedTime!.getTime();
      const deviceId = message.deviceId!;
      const startMs = windowStartOf(time, base);
      const group = groupOf(groups, groupsByDevice, deviceId, startMs);
      const identity = deviceScopedIdentity(message);
      const contribution = contributionOf(message, time, check, config.fields, aggregateLevels);
      group.pending.push({ identity, legacy: legacyDeviceScopedIdentity(message), contribution, lateWatermark: startMs + base.ms <= watermark ? watermark : null });
      const eventTime = Math.min(time, now + FUTURE_SKEW_MS);
      if (maxEventTime === null || eventTime > maxEventTime) maxEventTime = eventTime;
      watermark = Math.max(watermark, eventTime - config.allowedLatenessMs);
    }
    return { groups, unwindowable, maxEventTime };
  }

  return {
    async aggregate(admitted, partition) {
      // Once per aggregator (a retried failure asks again): a container keeps the base window it was written with.
      baseClaimed ??= claimBaseWindow(windows, base, clock.now()).catch((error: unknown) => {
        baseClaimed = undefined;
        throw error;
      });
      await baseClaimed;
      const now = clock.now().getTime();
      const partitionName = partitionDocName(partition);
      // Invariant: lateness is classified against a watermark no finalizer can move behind this batch's back. The
      // batch first claims the partition (lastBatchAt, a conditional write, when older than claimMs): a timer that
      // read it as idle then fails its If-Match and re-reads it as busy, and one that wrote first is in what this
      // update returns. Without the claim, a window the timer finalized mid-batch took on-time messages and changed
      // while reported final, without a new revision.
      const claimMs = Math.min(LAST_BATCH_REFRESH_MS, config.idlePartitionMs / 2);
      const partitionDoc =
        (await windows.update<PartitionDoc>(partitionName, (current) => claimPartition(current, partition, now, claimMs), decodePartitionDoc))
          .value ?? null;

      const { groups, unwindowable, maxEventTime } = groupBatch(admitted, base, watermarkOf(partitionDoc, config.allowedLatenessMs), now);

      // One conditional read-modify-write per base partial. The mutation may run more than once (a lost race
      // re-reads), so its effect is recorded by the group's index and the last run's is the one that was written.
      const effects: Array<BaseEffect | undefined> = [];
      const written = await mapLimit(groups, concurrency, (group, index) =>
        windows.update<BaseWindowDoc>(
          docNames.name(base, group.deviceId, group.startMs, partition),
          (current) => {
            const effect = applyToBase(current, group, base, partition);
            effects[index] = effect;
            return effect.next;
          },
          decodeBaseWindowDoc,
        ),
      );

      const rollups = new Map<string, RollupGroup>();
      const rollupList: RollupGroup[] = [];
      for (let index = 0; index < groups.length; index++) {
        const group = groups[index]!;
        const doc = written[index]!.value;
        if (effects[index] === undefined || doc === undefined) {
          throw new Error(`window update of ${docNames.name(base, group.deviceId, group.startMs, partition)} returned no document`);
        }
        if (larger.length === 0) continue;
        const summary = new BaseSummary(doc);
        const sub = isoSeconds(group.startMs);
        for (const size of larger) {
          const startMs = windowStartOf(group.startMs, size);
          const name = docNames.name(size, group.deviceId, startMs, partition, rollupPageOf(size, base, startMs, group.startMs));
          let rollup = rollups.get(name);
          if (rollup === undefined) {
            rollup = { name, deviceId: group.deviceId, size, startMs, subs: [] };
            rollups.set(name, rollup);
            rollupList.push(rollup);
          }
          rollup.subs.push({ sub, base: summary, endMs: startMs + size.ms });
        }
      }
      await mapLimit(rollupList, concurrency, (rollup) =>
        windows.update<RollupWindowDoc>(rollup.name, (current) => applyToRollup(current, rollup, partition), decodeRollupWindowDoc),
      );

      // Last, so that a batch that failed above is retried against the same watermark and classifies alike.
      await windows.update<PartitionDoc>(
        partitionName,
        (current) => advancePartition(current, partition, maxEventTime, now),
        decodePartitionDoc,
      );

      const result: AggregateResult = {
        aggregated: 0,
        countedOtherLevel: 0,
        duplicates: 0,
        late: 0,
        unwindowable,
        baseWindows: groups.length,
        rollupWindows: rollupList.length,
      };
      for (const effect of effects) {
        if (effect === undefined) continue;
        result.aggregated += effect.aggregated;
        result.countedOtherLevel += effect.countedOtherLevel;
        result.duplicates += effect.duplicates;
        result.late += effect.late;
      }
      return result;
    },
  };
}

/**
 * Adds a group of messages to a base partial. Invariant (kept by the If-Match write of the returned document): an
 * identity is in `ids` at most once, so a message is counted in its window at most once whether it comes
 * back in a replayed batch, as a re-send, or from a second instance that owns the partition for a while; `totals`
 * are always those of `contributions`, because a contribution is added to them exactly when its identity is appended.
 * When two copies of one identity differ (a device reusing a message id), the smaller serialisation is kept, so
 * the copies converge to the same document in any order, and the totals are recomputed (rare).
 */
function applyToBase(current: BaseWindowDoc | undefined, group: BaseGroup, size: WindowSize, partition: string): BaseEffect {
  const effect: BaseEffect = { next: undefined, aggregated: 0, countedOtherLevel: 0, duplicates: 0, late: 0 };
  const doc: BaseWindowDoc = current ?? {
    schema: 2,
    kind: 'window',
    deviceId: group.deviceId,
    partition,
    window: size.label,
    windowStart: isoSeconds(group.startMs),
    windowEnd: isoSeconds(group.startMs + size.ms),
    rev: 0,
    ids: [],
    contributions: [],
    late: {},
    totals: emptyTotals(),
  };
  let changed = current === undefined;
  let replaced = false;
  for (const { identity, legacy, contribution, lateWatermark } of group.pending) {
    let at = findMessage(doc.ids, identity);
    if (at < 0 && legacy !== undefined) at = findMessage(doc.ids, legacy);
    if (at >= 0) {
      effect.duplicates += 1;
      if (converges(contribution, doc.contributions[at]!)) {
        doc.contributions[at] = contribution;
        changed = true;
        replaced = true;
      }
      continue;
    }
    appendMessage(doc, identity, contribution);
    addContribution(doc.totals, identity, contribution);
    changed = true;
    if (contribution.values === undefined) effect.countedOtherLevel += 1;
    else effect.aggregated += 1;
    if (lateWatermark !== null) {
      // Identities start with `id:`, `mid:` or `h:`, so plain assignment stores them as data (never `__proto__`).
      doc.late[identity] = lateWatermark;
      effect.late += 1;
    }
  }
  if (replaced) doc.totals = totalsOf(doc);
  if (changed) {
    doc.rev += 1;
    effect.next = doc;
  }
  return effect;
}

/** Whether `candidate` replaces `kept` as the copy of their identity: the smaller serialisation wins. */
function converges(candidate: Contribution, kept: Contribution): boolean {
  return !sameContribution(candidate, kept) && contributionKey(candidate) < contributionKey(kept);
}

interface RollupGroup {
  name: string;
  deviceId: string;
  size: WindowSize;
  startMs: number;
  /** One per base window (`sub` is its start, ISO): the base partial as written, and this roll-up window's end. */
  subs: Array<{ sub: string; base: BaseSummary; endMs: number }>;
}

/**
 * A base partial as this batch left it, as its roll-up entries take it. An entry holds the partial's totals object
 * itself, not a copy (a copy per base window and batch was a third of the aggregation's time when every message of
 * a batch is another window's): in storage each document is serialised, so the entry is a copy there; in memory
 * it is the partial's live totals, which the next batch that changes the partial also propagates, in the same
 * `aggregate` call, so an entry is never behind its partial once a call returns. Hence the rule: roll-up entries'
 * totals are read, never written (readers merge them into totals of their own).
 */
class BaseSummary {
  readonly rev: number;
  constructor(readonly doc: BaseWindowDoc) {
    this.rev = doc.rev;
  }

  /** Late counts differ per roll-up size (a roll-up closes later); the totals are the base window's. */
  entryForRollupEnding(endMs: number): RollupEntry {
    return { rev: this.rev, late: lateCount(this.doc.late, endMs), totals: this.doc.totals };
  }
}

/**
 * Invariant (kept by the If-Match write): a base window's entry only moves to a higher revision of that base
 * partial. Two instances propagating revisions 5 and 6 of the same partial, in either order, leave 6; a retry that
 * propagates what is already there writes nothing.
 */
function applyToRollup(current: RollupWindowDoc | undefined, rollup: RollupGroup, partition: string): RollupWindowDoc | undefined {
  const doc: RollupWindowDoc = current ?? {
    schema: 2,
    kind: 'rollup',
    deviceId: rollup.deviceId,
    partition,
    window: rollup.size.label,
    windowStart: isoSeconds(rollup.startMs),
    windowEnd: isoSeconds(rollup.startMs + rollup.size.ms),
    subs: {},
  };
  let changed = current === undefined;
  for (const { sub, base, endMs } of rollup.subs) {
    const rev = base.rev;
    const existing = Object.hasOwn(doc.subs, sub) ? doc.subs[sub] : undefined;
    if (existing !== undefined && existing.rev >= rev) continue;
    doc.subs[sub] = base.entryForRollupEnding(endMs);
    changed = true;
  }
  return changed ? doc : undefined;
}

/** The group of `deviceId`'s window starting at `startMs`, created (and appended to `groups`) on first use. */
function groupOf(groups: BaseGroup[], byDevice: Map<string, BaseGroup[]>, deviceId: string, startMs: number): BaseGroup {
  let list = byDevice.get(deviceId);
  if (list === undefined) {
    list = [];
    byDevice.set(deviceId, list);
  } else {
    // Newest first: a device's messages arrive in time order, give or take.
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.startMs === startMs) return list[i]!;
  }
  const group: BaseGroup = { deviceId, startMs, pending: [] };
  list.push(group);
  groups.push(group);
  return group;
}

/** Devices whose last document names are kept, per window size; beyond it the memo starts over. */
const NAMED_DEVICES = 10_000;

/**
 * `windowDocName`, remembering each device's last name per window size: consecutive batches keep writing the same
 * windows, and one string instance (hashed once) is cheaper to build and to look up than a new one each time.
 */
class DocNames {
  readonly #last = new Map<WindowSize, Map<string, { startMs: number; partition: string; page: number | undefined; name: string }>>();

  /** `page`: a roll-up page (see `rollupPageOf`), undefined for a base partial or an unpaged roll-up. */
  name(size: WindowSize, deviceId: string, startMs: number, partition: string, page?: number): string {
    let bySize = this.#last.get(size);
    if (bySize === undefined) {
      bySize = new Map();
      this.#last.set(size, bySize);
    }
    const last = bySize.get(deviceId);
    if (last !== undefined && last.startMs === startMs && last.partition === partition && last.page === page) return last.name;
    const name = windowDocName(size, deviceId, startMs, partition, page);
    if (last !== undefined) {
      last.startMs = startMs;
      last.partition = partition;
      last.page = page;
      last.name = name;
    } else {
      if (bySize.size >= NAMED_DEVICES) bySize.clear();
      bySize.set(deviceId, { startMs, partition, page, name });
    }
    return name;
  }
}

/** Refreshes `lastBatchAt` (only) when older than `claimMs`, so the finalizer cannot see the partition as idle. */
function claimPartition(current: PartitionDoc | undefined, partition: string, now: number, claimMs: number): PartitionDoc | undefined {
  if (current === undefined) return { schema: 1, kind: 'partition', partition, maxEventTime: null, clockWatermark: null, lastBatchAt: now };
  if (now - current.lastBatchAt < claimMs) return undefined;
  current.lastBatchAt = now;
  return current;
}

/**
 * Invariant: `maxEventTime` and `lastBatchAt` only grow, so concurrent and replayed batches converge. A batch that
 * moves no event time writes nothing here: its claim (`claimPartition`, same `now`) already refreshed `lastBatchAt`.
 */
function advancePartition(
  current: PartitionDoc | undefined,
  partition: string,
  maxEventTime: number | null,
  now: number,
): PartitionDoc | undefined {
  if (current !== undefined) {
    const advances = maxEventTime !== null && (current.maxEventTime === null || maxEventTime > current.maxEventTime);
    if (!advances) return undefined;
    current.maxEventTime = maxEventTime;
    current.lastBatchAt = Math.max(current.lastBatchAt, now);
    return current;
  }
  return { schema: 1, kind: 'partition', partition, maxEventTime, clockWatermark: null, lastBatchAt: now };
}

/**
 * The `level` application property, its name compared ignoring case as IoT Hub does. Most telemetry on the built-in
 * endpoint has none, so the miss is the common case and allocates nothing.
 */
function levelOf(properties: Readonly<Record<string, PropertyValue>>): PropertyValue | undefined {
  if (Object.hasOwn(properties, 'level')) return properties['level'];
  for (const key in properties) {
    if (key.length === 5 && key.toLowerCase() === 'level') return properties[key];
  }
  return undefined;
}

function contributionOf(
  message: RoutedMessage,
  time: number,
  check: CheckResult,
  fields: readonly string[] | null,
  aggregateLevels: ReadonlySet<string>,
): Contribution {
  const raw = levelOf(message.properties);
  const level = raw === undefined || raw === null || raw === '' ? null : String(raw);
  const outcome = check.outcome === 'warn' ? 'warn' : 'accept';
  const reasons = check.findings.length > 0 ? [...new Set(check.findings.map((f) => f.code))].sort() : undefined;
  if (!aggregateLevels.has(level ?? LEVEL_WHEN_ABSENT)) return reasons === undefined ? { t: time, level, outcome } : { t: time, level, outcome, reasons };
  // Each literal has its properties in serialisation order and every one the common case needs, so that none is
  // added later (which allocates a property store per message); `omitted` is rare.
  const scanned = scannedValues(message.decoded, fields);
  if (scanned !== undefined) {
    return reasons === undefined ? { t: time, level, outcome, values: scanned } : { t: time, level, outcome, reasons, values: scanned };
  }
  const values: Record<string, number> = {};
  const contribution: Contribution = reasons === undefined ? { t: time, level, outcome, values } : { t: time, level, outcome, reasons, values };
  addNumericFields(contribution, values, message.decoded, fields);
  return contribution;
}

/** Builds the `values` of contributions from the scan's key lists (one factory per list a fleet sends). */
const valueShapes = new ObjectShapes();

/**
 * The common case in one step: the decoder scanned the body's numbers, every field is taken (no configured list),
 * and every number is aggregated (within the exact range, so finite) and within the per-message limit. `values` is
 * then the scan itself as an object, keys in the scan's order, which is the order the general path below assigns
 * them in. Undefined otherwise: the general path decides, and counts what it omits.
 */
function scannedValues(decoded: DecodedBody, fields: readonly string[] | null): Record<string, number> | undefined {
  if (decoded.kind !== 'json' || fields !== null) return undefined;
  const scanned = decoded.numbers;
  if (scanned === undefined) return undefined;
  const { names, values } = scanned;
  const count = names.length;
  if (count > MAX_FIELDS_PER_MESSAGE) return undefined;
  for (let i = 0; i < count; i++) if (!isAggregatedValue(values[i]!)) return undefined;
  return valueShapes.build(count, names, values) as Record<string, number>;
}

function isNumber(value: JsonValue | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Fills the contribution's `values` (and sets `omitted` when some were not taken), written straight into that
 * object: the general path, for what `scannedValues` declines (a configured field list, numbers outside the exact
 * range, more fields than the per-message limit, bodies the decoder did not scan), rare enough that reading the
 * parsed body is fine. Fields are taken in the order the body lists them (`for...in` order, which the scan
 * reproduces) up to the per-message limit; beyond it, the first by name.
 */
function addNumericFields(contribution: Contribution, values: Record<string, number>, decoded: DecodedBody, fields: readonly string[] | null): void {
  if (decoded.kind !== 'json') return;
  let omitted = 0;
  const body = decoded.value;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  if (fields !== null) {
    for (const name of fields) {
      const value = Object.hasOwn(body, name) ? body[name] : undefined;
      if (!isNumber(value)) continue;
      if (!isAggregatedValue(value)) omitted += 1;
      else setOwnProperty(values, name, value);
    }
  } else {
    let kept = 0;
    for (const name in body) {
      const value = body[name];
      if (!isNumber(value)) continue;
      if (!isAggregatedValue(value)) omitted += 1;
      else if (kept === MAX_FIELDS_PER_MESSAGE) {
        const byName = firstFieldsByName(Object.entries(body));
        contribution.values = byName.values;
        omitted = byName.omitted;
        break;
      } else {
        setOwnProperty(values, name, value);
        kept += 1;
      }
    }
  }
  if (omitted > 0) contribution.omitted = omitted;
}

/**
 * Over the limit, the fields kept are the first by name, whatever order the device wrote them in; the rest (and the
 * values outside the aggregated range) are counted as omitted.
 */
function firstFieldsByName(members: ReadonlyArray<readonly [string, JsonValue | undefined]>): { values: Record<string, number>; omitted: number } {
  const entries: Array<[string, number]> = [];
  let outside = 0;
  for (const [name, value] of members) {
    if (!isNumber(value)) continue;
    if (isAggregatedValue(value)) entries.push([name, value]);
    else outside += 1;
  }
  entries.sort(([a], [b]) => (a < b ? -1 : 1));
  // fromEntries defines own properties, so even a field named "__proto__" stays data.
  return {
    values: Object.fromEntries(entries.slice(0, MAX_FIELDS_PER_MESSAGE)),
    omitted: outside + Math.max(0, entries.length - MAX_FIELDS_PER_MESSAGE),
  };
}
