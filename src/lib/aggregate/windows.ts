/**
 * Tumbling windows on event time (IoT Hub's enqueued time) and where their documents live in the reports container.
 *
 * Layout:
 *   windows/{size}/{YYYY-MM-DD}/{device}/{windowStart}/{partition}.json   one partial per partition that saw the device
 *   windows/{size}/{YYYY-MM-DD}/{device}/{windowStart}/{partition},{k}.json
 *                                        page k of a roll-up spanning more than 60 base windows (see rollupPageOf)
 *   partitions/{partition}.json                                           the partition's watermark
 *
 * The day of the window's start comes before the device so that both "one device over a range" and "every device
 * over a range" list only the days asked for. Device ids and partition ids are percent-encoded: IoT Hub device ids
 * may hold `%`, `#`, `?` and other characters that mean something in a URL.
 */
import type { RoutedMessage } from '../message/RoutedMessage.js';
import type { WindowSize } from './aggregationConfig.js';

export const WINDOWS_PREFIX = 'windows/';
export const PARTITIONS_PREFIX = 'partitions/';
const DAY_MS = 86_400_000;

export type UnwindowableCode = 'DeviceIdMissing' | 'EnqueuedTimeInvalid';

/**
 * Why a message cannot be placed in a window, which is per device and enqueued time; undefined when it can. Only
 * reachable after the checks when routing.config.json lets such messages through as warnings.
 */
export function unwindowableCode(message: Pick<RoutedMessage, 'deviceId' | 'enqueuedTime'>): UnwindowableCode | undefined {
  if (message.deviceId === null || message.deviceId === '') return 'DeviceIdMissing';
  const time = message.enqueuedTime?.getTime();
  return time === undefined || Number.isNaN(time) ? 'EnqueuedTimeInvalid' : undefined;
}

export function windowStartOf(timeMs: number, size: WindowSize): number {
  return Math.floor(timeMs / size.ms) * size.ms;
}

/** A batch names the same few window starts over and over; formatting a Date is the costly part of a name. */
const ISO_CACHE = new Map<number, string>();
const ISO_CACHE_SIZE = 4096;

/** `2024-03-01T10:15:00Z`: fixed width up to year 9999, so names sort in time order. */
export function isoSeconds(ms: number): string {
  let text = ISO_CACHE.get(ms);
  if (text === undefined) {
    const iso = new Date(ms).toISOString();
    text = iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
    if (ISO_CACHE.size >= ISO_CACHE_SIZE) ISO_CACHE.clear();
    ISO_CACHE.set(ms, text);
  }
  return text;
}

/**
 * A device id as one segment of a blob name. Percent-encoded, and a trailing dot too: IoT Hub allows `.` in device
 * ids, but a name segment ending with a dot is one Azure Storage tells us to avoid, and `.` and `..` are resolved as
 * URL dot segments on the way (the SDK encodes `%`, so `%2E` stays three characters of the name). Ids not ending
 * with a dot are named as before.
 */
function nameSegment(text: string): string {
  const encoded = encodeURIComponent(text);
  return encoded.endsWith('.') ? `${encoded.slice(0, -1)}%2E` : encoded;
}

function day(ms: number): string {
  return isoSeconds(Math.floor(ms / DAY_MS) * DAY_MS).slice(0, 10);
}

/**
 * `page` is a roll-up page (see {@link rollupPageOf}); base partials and roll-ups of up to 60 base windows have none.
 * `,` separates it: percent-encoding always encodes a comma, so no partition id can hold one.
 */
export function windowDocName(size: WindowSize, deviceId: string, startMs: number, partition: string, page?: number): string {
  const file = `${encodeURIComponent(partition)}${page === undefined ? '' : `,${page}`}.json`;
  return `${WINDOWS_PREFIX}${size.label}/${day(startMs)}/${nameSegment(deviceId)}/${isoSeconds(startMs)}/${file}`;
}

/** Base windows one roll-up document holds at most; a roll-up spanning more is split into pages of this many. */
export const ROLLUP_PAGE_SUBS = 60;

/**
 * The page of the roll-up window of `size` starting at `rollupStartMs` that holds the base window starting at
 * `subStartMs`; undefined when the roll-up spans at most {@link ROLLUP_PAGE_SUBS} base windows (one document).
 *
 * Why pages: a roll-up document holds a copy of every base window's totals, and a batch rewrites the documents it
 * touches whole. `1m` + `1d` in one document grew to about 1 MB per device by the evening (10 MB with 32 fields),
 * all rewritten by every batch; a page is the size of a `1h` roll-up whatever the span. Pages of one partition hold
 * disjoint base windows, so readers merge them as they merge partitions.
 */
export function rollupPageOf(size: WindowSize, base: WindowSize, rollupStartMs: number, subStartMs: number): number | undefined {
  if (size.ms <= ROLLUP_PAGE_SUBS * base.ms) return undefined;
  return Math.floor((subStartMs - rollupStartMs) / (ROLLUP_PAGE_SUBS * base.ms));
}

export interface WindowDocAddress {
  sizeLabel: string;
  deviceId: string;
  startMs: number;
  partition: string;
  /** A roll-up page; absent for base partials and unpaged roll-ups. */
  page?: number;
}

const PAGED_FILE = /^(.*),(\d{1,6})\.json$/;

/** The inverse of {@link windowDocName}; null for any other blob that may sit in the container. */
export function parseWindowDocName(name: string): WindowDocAddress | null {
  if (!name.startsWith(WINDOWS_PREFIX)) return null;
  const parts = name.slice(WINDOWS_PREFIX.length).split('/');
  if (parts.length !== 5) return null;
  const [sizeLabel, , device, start, file] = parts as [string, string, string, string, string];
  if (!file.endsWith('.json')) return null;
  const startMs = Date.parse(start);
  if (Number.isNaN(startMs)) return null;
  const paged = PAGED_FILE.exec(file);
  try {
    const deviceId = decodeURIComponent(device);
    if (paged !== null) return { sizeLabel, deviceId, startMs, partition: decodeURIComponent(paged[1]!), page: Number(paged[2]) };
    return { sizeLabel, deviceId, startMs, partition: decodeURIComponent(file.slice(0, -5)) };
  } catch {
    return null;
  }
}

/**
 * Listing prefixes that cover every window of `size` starting in [fromMs, toMs), one per UTC day; narrowed to one
 * device when given. Without a range: every window of the size (the CLI's backfill reads everything it wrote).
 */
export function windowListPrefixes(
  size: WindowSize,
  range: { fromMs: number; toMs: number } | undefined,
  deviceId: string | undefined,
): string[] {
  // Without a range the day level cannot be skipped, so the caller filters by device.
  if (range === undefined) return [`${WINDOWS_PREFIX}${size.label}/`];
  const device = deviceId === undefined ? '' : `${nameSegment(deviceId)}/`;
  const prefixes: string[] = [];
  for (let d = Math.floor(range.fromMs / DAY_MS) * DAY_MS; d < range.toMs; d += DAY_MS) {
    prefixes.push(`${WINDOWS_PREFIX}${size.label}/${day(d)}/${device}`);
  }
  return prefixes;
}

export function partitionDocName(partition: string): string {
  return `${PARTITIONS_PREFIX}${encodeURIComponent(partition)}.json`;
}

export function parsePartitionDocName(name: string): string | null {
  if (!name.startsWith(PARTITIONS_PREFIX) || !name.endsWith('.json')) return null;
  try {
    return decodeURIComponent(name.slice(PARTITIONS_PREFIX.length, -5));
  } catch {
    return null;
  }
}
