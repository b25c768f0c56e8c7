/**
 * IoT Hub's storage endpoint file name format: `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}` by default. IoT Hub
 * requires all seven tokens and lets them be reordered and surrounded by literal text (`.../{mm}.json`). The
 * partition is written as IoT Hub numbers it (`0` or `00` depending on the hub), and the set of partitions changes
 * after a failover, so partitions are listed, never assumed.
 *
 * Names carry the minute a batch was started (UTC). IoT Hub keeps adding to a batch for up to its batch frequency,
 * and routing runs a little after enqueueing, so a blob named for minute m holds messages enqueued in about
 * [m - slack, m + 60 s + batchFrequency + slack]. That window is what name-based pruning relies on; the archive
 * index (manifests) replaces it with the exact times once a blob has been ingested.
 */
import type { BlobItem, BlobStore } from '../ports.js';
import { prefetch, type Prefetched } from './prefetch.js';

export type TimeToken = 'YYYY' | 'MM' | 'DD' | 'HH' | 'mm';
export type FileNameToken = 'iothub' | 'partition' | TimeToken;

export const FILE_NAME_TOKENS: readonly FileNameToken[] = ['iothub', 'partition', 'YYYY', 'MM', 'DD', 'HH', 'mm'];

/** Position of each time token in the coarse-to-fine chain; a prefix can only fix a unit once its parent is fixed. */
const LEVEL: Readonly<Record<TimeToken, 1 | 2 | 3 | 4 | 5>> = { YYYY: 1, MM: 2, DD: 3, HH: 4, mm: 5 };

const PATTERN: Readonly<Record<FileNameToken, string>> = {
  // Hub names are 3-50 letters, digits and hyphens; anything without a slash is accepted so that a renamed or
  // differently-cased hub still parses.
  iothub: '([^/]+)',
  partition: '(\\d{1,4})',
  YYYY: '(\\d{4})',
  MM: '(\\d{2})',
  DD: '(\\d{2})',
  HH: '(\\d{2})',
  mm: '(\\d{2})',
};

export type FormatPart = { kind: 'literal'; text: string } | { kind: 'token'; token: FileNameToken };

export interface ParsedBlobName {
  iothub: string;
  /** As written in the name (`0` or `00`). */
  partition: string;
  /** Start of the minute the name promises, epoch ms UTC. */
  minuteMs: number;
}

/** Inclusive range of name minutes (epoch ms, minute-aligned) a listing must cover; an open end is ±Infinity. */
export interface NameMinuteWindow {
  firstMinuteMs: number;
  lastMinuteMs: number;
}

const MINUTE_MS = 60_000;

export class FileNameFormat {
  readonly source: string;
  readonly parts: readonly FormatPart[];
  readonly #regex: RegExp;
  readonly #groups: readonly FileNameToken[];

  constructor(source: string, parts: readonly FormatPart[]) {
    this.source = source;
    this.parts = parts;
    const groups: FileNameToken[] = [];
    let pattern = '^';
    for (const part of parts) {
      if (part.kind === 'literal') {
        pattern += part.text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      } else {
        pattern += PATTERN[part.token];
        groups.push(part.token);
      }
    }
    this.#regex = new RegExp(`${pattern}$`);
    this.#groups = groups;
  }

  /** The literal text before the first token: every archive blob name starts with it. */
  get fixedPrefix(): string {
    const first = this.parts[0];
    return first?.kind === 'literal' ? first.text : '';
  }

  /** Null when the name does not follow the format or names an impossible time (month 13, 31 February). */
  parse(name: string): ParsedBlobName | null {
    const match = this.#regex.exec(name);
    if (match === null) return null;
    const values: Partial<Record<FileNameToken, string>> = {};
    for (let i = 0; i < this.#groups.length; i++) values[this.#groups[i]!] = match[i + 1];
    const year = Number(values.YYYY);
    const month = Number(values.MM);
    const day = Number(values.DD);
    const hour = Number(values.HH);
    const minute = Number(values.mm);
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59) return null;
    const minuteMs = Date.UTC(year, month - 1, day, hour, minute);
    if (new Date(minuteMs).getUTCDate() !== day) return null;
    return { iothub: values.iothub ?? '', partition: values.partition ?? '', minuteMs };
  }

  /** The blob name IoT Hub would write for these values (used by tests and the bench as IoT Hub's stand-in). */
  format(values: { iothub: string; partition: string | number; minute: Date | number }): string {
    const at = new Date(values.minute);
    const text: Record<FileNameToken, string> = {
      iothub: values.iothub,
      partition: String(values.partition),
      YYYY: String(at.getUTCFullYear()).padStart(4, '0'),
      MM: pad2(at.getUTCMonth() + 1),
      DD: pad2(at.getUTCDate()),
      HH: pad2(at.getUTCHours()),
      mm: pad2(at.getUTCMinutes()),
    };
    return this.parts.map((p) => (p.kind === 'literal' ? p.text : text[p.token])).join('');
  }

  /** How many time tokens, in the order they appear, form the chain YYYY, MM, DD, HH, mm from its start. */
  get timeChainDepth(): number {
    let depth = 0;
    for (const part of this.parts) {
      if (part.kind !== 'token' || !(part.token in LEVEL)) continue;
      if (LEVEL[part.token as TimeToken] !== depth + 1) break;
      depth++;
    }
    return depth;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Validates a format the way IoT Hub does: every token exactly once, in any order, nothing unknown in braces. */
export function parseFileNameFormat(source: string): { value: FileNameFormat } | { errors: string[] } {
  const errors: string[] = [];
  const parts: FormatPart[] = [];
  const seen = new Map<FileNameToken, number>();
  const tokenPattern = /\{([^{}]*)\}/g;
  let last = 0;
  for (let match = tokenPattern.exec(source); match !== null; match = tokenPattern.exec(source)) {
    if (match.index > last) parts.push({ kind: 'literal', text: source.slice(last, match.index) });
    const name = match[1] ?? '';
    if ((FILE_NAME_TOKENS as readonly string[]).includes(name)) {
      const token = name as FileNameToken;
      seen.set(token, (seen.get(token) ?? 0) + 1);
      parts.push({ kind: 'token', token });
    } else {
      errors.push(`unknown token {${name}} (IoT Hub accepts ${FILE_NAME_TOKENS.map((t) => `{${t}}`).join(' ')}; tokens are case-sensitive)`);
    }
    last = match.index + match[0].length;
  }
  if (last < source.length) parts.push({ kind: 'literal', text: source.slice(last) });
  for (const part of parts) {
    if (part.kind === 'literal' && /[{}]/.test(part.text)) {
      errors.push(`unbalanced brace in "${part.text}"`);
    }
  }
  const missing = FILE_NAME_TOKENS.filter((t) => !seen.has(t));
  if (missing.length > 0) {
    errors.push(`missing ${missing.map((t) => `{${t}}`).join(' ')}: IoT Hub requires all seven tokens (they may be reordered)`);
  }
  for (const [token, count] of seen) {
    if (count > 1) errors.push(`{${token}} appears ${count} times; IoT Hub allows each token once`);
  }
  if (source.startsWith('/')) errors.push('must not start with "/": blob names have no leading slash');
  if (source.length > 1024) errors.push('longer than 1024 characters, the longest blob name Azure allows');
  return errors.length > 0 ? { errors } : { value: new FileNameFormat(source, parts) };
}

// ---- time windows ------------------------------------------------------------------------------------------

export interface WindowTiming {
  batchFrequencySeconds: number;
  pruningSlackSeconds: number;
}

/** Enqueued times a blob named for `minuteMs` can hold, as [start, end] in epoch ms (both inclusive). */
export function blobTimeWindow(minuteMs: number, timing: WindowTiming): { startMs: number; endMs: number } {
  const slack = timing.pruningSlackSeconds * 1000;
  return { startMs: minuteMs - slack, endMs: minuteMs + MINUTE_MS + timing.batchFrequencySeconds * 1000 + slack };
}

/**
 * The name minutes whose blobs can hold a message enqueued in [fromMs, toMs): the inverse of {@link blobTimeWindow}.
 * Null when the range is open on both sides (every blob can match).
 */
export function nameMinuteWindow(
  fromMs: number | undefined,
  toMs: number | undefined,
  timing: WindowTiming,
): NameMinuteWindow | null {
  if (fromMs === undefined && toMs === undefined) return null;
  const slack = timing.pruningSlackSeconds * 1000;
  const reach = MINUTE_MS + timing.batchFrequencySeconds * 1000 + slack;
  const first = fromMs === undefined ? -Infinity : Math.ceil((fromMs - reach) / MINUTE_MS) * MINUTE_MS;
  // A blob named for m starts collecting at m - slack; it can hold a message before `toMs` only if m - slack < toMs.
  const last = toMs === undefined ? Infinity : Math.ceil((toMs + slack) / MINUTE_MS) * MINUTE_MS - MINUTE_MS;
  return { firstMinuteMs: first, lastMinuteMs: last };
}

// ---- listing -----------------------------------------------------------------------------------------------

/** One entry of an archive listing: a blob whose name follows the format, or one that does not. */
export type ListedArchiveBlob =
  | { kind: 'archive'; item: BlobItem; parsed: ParsedBlobName }
  | { kind: 'unrecognized'; item: BlobItem };

/** A prefix about to be listed, with what it fixes: partition and hub when discovered, and its time unit. */
export interface ListingPrefix {
  prefix: string;
  dimensions: { iothub?: string; partition?: string };
  /** The time unit the prefix fixes, [startMs, endMs); unbounded (±Infinity) when it fixes none. */
  startMs: number;
  endMs: number;
}

export interface ListArchiveOptions {
  /** Only names whose minute falls in this window are yielded; null lists every blob under the fixed prefix. */
  window: NameMinuteWindow | null;
  /** Resume: names before this one are skipped without being listed where the prefix allows. */
  startAt?: string;
  /** Expected names per partition per minute, for choosing how deep the listing prefixes go. */
  batchFrequencySeconds: number;
  pageSize?: number;
  /**
   * Called as each prefix's listing starts, before its names arrive: lets a caller fetch what it will need for
   * those names (hour summaries) in parallel with the listing.
   */
  onPrefix?: (prefix: ListingPrefix) => void;
}

/** The most list calls one time level may take per partition before a shallower prefix is cheaper. */
const MAX_PREFIXES_PER_PARTITION = 400;
/** Names the service returns per list page. */
const LIST_PAGE = 5000;
/** Listing prefixes computed ahead, and prefixes whose listing runs ahead of the consumer. */
const PREFIXES_AHEAD = 16;
const LISTINGS_AHEAD = 4;

/**
 * Lists the archive blobs that can fall in `window`, in blob-name order, by the longest prefixes the format allows:
 * tokens before the first varying time unit are fixed, partitions (and hub names) that come before the time tokens
 * are discovered with a hierarchical listing, and the time chain is expanded to the depth that needs the fewest
 * list round trips. Out-of-order time tokens end the prefix there; names are always checked after listing, so a
 * shallower prefix costs list pages, never correctness.
 *
 * Order: every prefix is fixed-width below the same parent and none is a prefix of another, so concatenating the
 * listings in prefix order yields names in global lexicographic order; continuation tokens rely on it.
 */
export async function* listArchiveBlobs(
  store: BlobStore,
  container: string,
  format: FileNameFormat,
  options: ListArchiveOptions,
): AsyncGenerator<ListedArchiveBlob> {
  const { window, startAt } = options;
  const depth = window === null ? 0 : timeDepth(format, window, options.batchFrequencySeconds);
  const listOptions = options.pageSize === undefined ? {} : { pageSize: options.pageSize };
  // Prefixes (partition discovery included) and the listings of the next few prefixes run ahead of the consumer,
  // so a range over several partitions or hours costs about one list round trip, not one per prefix.
  const prefixes = prefetch(expandPrefixes(store, container, format, window, depth, startAt), PREFIXES_AHEAD);
  const listings: Prefetched<BlobItem>[] = [];
  let prefixesDone = false;
  const startListings = async (): Promise<void> => {
    while (listings.length < LISTINGS_AHEAD && !prefixesDone) {
      const next = await prefixes.next();
      if (next.done === true) {
        prefixesDone = true;
      } else {
        options.onPrefix?.(next.value);
        listings.push(prefetch(store.list(container, next.value.prefix, listOptions), LIST_PAGE));
      }
    }
  };
  try {
    for (;;) {
      await startListings();
      const listing = listings.shift();
      if (listing === undefined) return;
      await startListings();
      for await (const item of listing) {
        if (startAt !== undefined && item.name < startAt) continue;
        const parsed = format.parse(item.name);
        if (parsed === null) {
          yield { kind: 'unrecognized', item };
          continue;
        }
        if (window !== null && (parsed.minuteMs < window.firstMinuteMs || parsed.minuteMs > window.lastMinuteMs)) continue;
        yield { kind: 'archive', item, parsed };
      }
    }
  } finally {
    for (const listing of listings) await listing.return();
    await prefixes.return();
  }
}

/** Picks how many time tokens to fix in the prefixes: the depth with the fewest expected list round trips. */
function timeDepth(format: FileNameFormat, window: NameMinuteWindow, batchFrequencySeconds: number): number {
  const chain = format.timeChainDepth;
  if (!Number.isFinite(window.firstMinuteMs) || !Number.isFinite(window.lastMinuteMs)) return 0;
  const unitSeconds = [0, 366 * 86_400, 31 * 86_400, 86_400, 3_600, 60];
  let best = 0;
  let bestCost = Infinity;
  for (let level = 1; level <= chain; level++) {
    const count = unitsIntersecting(level, window.firstMinuteMs, window.lastMinuteMs);
    if (count > MAX_PREFIXES_PER_PARTITION) continue;
    const namesPerPrefix = Math.max(1, unitSeconds[level]! / batchFrequencySeconds);
    const cost = count * Math.max(1, namesPerPrefix / LIST_PAGE);
    // Ties go deeper: the same number of round trips with fewer names to transfer and parse.
    if (cost <= bestCost) {
      best = level;
      bestCost = cost;
    }
  }
  return best;
}

function unitsIntersecting(level: number, firstMs: number, lastMs: number): number {
  const a = new Date(firstMs);
  const b = new Date(lastMs);
  switch (level) {
    case 1:
      return b.getUTCFullYear() - a.getUTCFullYear() + 1;
    case 2:
      return (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + b.getUTCMonth() - a.getUTCMonth() + 1;
    case 3:
      return Math.floor(lastMs / 86_400_000) - Math.floor(firstMs / 86_400_000) + 1;
    case 4:
      return Math.floor(lastMs / 3_600_000) - Math.floor(firstMs / 3_600_000) + 1;
    default:
      return Math.floor(lastMs / MINUTE_MS) - Math.floor(firstMs / MINUTE_MS) + 1;
  }
}

interface FixedUnit {
  level: number;
  startMs: number;
  /** Exclusive. */
  endMs: number;
}

/** Units of `level` (one finer than `parent`) that intersect [firstMs, lastMs], as [start, end) and their text. */
function* unitsWithin(level: number, parent: FixedUnit, window: NameMinuteWindow): Generator<{ text: string; unit: FixedUnit }> {
  const from = Math.max(parent.startMs, window.firstMinuteMs);
  const to = Math.min(parent.endMs - 1, window.lastMinuteMs);
  if (from > to) return;
  let at = new Date(from);
  at = floorTo(level, at);
  while (at.getTime() <= to) {
    const next = addUnit(level, at);
    const text = level === 1 ? String(at.getUTCFullYear()).padStart(4, '0') : pad2(unitValue(level, at));
    yield { text, unit: { level, startMs: at.getTime(), endMs: next.getTime() } };
    at = next;
  }
}

function floorTo(level: number, at: Date): Date {
  const y = at.getUTCFullYear();
  switch (level) {
    case 1:
      return new Date(Date.UTC(y, 0, 1));
    case 2:
      return new Date(Date.UTC(y, at.getUTCMonth(), 1));
    case 3:
      return new Date(Date.UTC(y, at.getUTCMonth(), at.getUTCDate()));
    case 4:
      return new Date(Date.UTC(y, at.getUTCMonth(), at.getUTCDate(), at.getUTCHours()));
    default:
      return new Date(Date.UTC(y, at.getUTCMonth(), at.getUTCDate(), at.getUTCHours(), at.getUTCMinutes()));
  }
}

function addUnit(level: number, at: Date): Date {
  const next = new Date(at.getTime());
  switch (level) {
    case 1:
      next.setUTCFullYear(next.getUTCFullYear() + 1);
      return next;
    case 2:
      next.setUTCMonth(next.getUTCMonth() + 1);
      return next;
    case 3:
      return new Date(at.getTime() + 86_400_000);
    case 4:
      return new Date(at.getTime() + 3_600_000);
    default:
      return new Date(at.getTime() + MINUTE_MS);
  }
}

function unitValue(level: number, at: Date): number {
  switch (level) {
    case 2:
      return at.getUTCMonth() + 1;
    case 3:
      return at.getUTCDate();
    case 4:
      return at.getUTCHours();
    default:
      return at.getUTCMinutes();
  }
}

const UNBOUNDED: FixedUnit = { level: 0, startMs: -Infinity, endMs: Infinity };

/** Yields listing prefixes in name order (see {@link listArchiveBlobs}). */
async function* expandPrefixes(
  store: BlobStore,
  container: string,
  format: FileNameFormat,
  window: NameMinuteWindow | null,
  depth: number,
  startAt: string | undefined,
): AsyncGenerator<ListingPrefix> {
  const parts = format.parts;
  // A prefix whose names all sort before `startAt` (it differs from it before its own end) needs no listing.
  const before = (prefix: string): boolean =>
    startAt !== undefined && prefix < startAt && !startAt.startsWith(prefix);

  async function* expand(
    index: number,
    prefix: string,
    fixed: FixedUnit,
    dimensions: ListingPrefix['dimensions'],
  ): AsyncGenerator<ListingPrefix> {
    let i = index;
    let current = prefix;
    for (; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.kind === 'literal') {
        current += part.text;
        continue;
      }
      if (window === null) break;
      const token = part.token;
      if (fixed.level >= depth) {
        if (token === 'mm' && fixed.level === LEVEL.HH) {
          yield* tensOfMinutes(current, fixed, window, dimensions);
          return;
        }
        break;
      }
      if (token === 'iothub' || token === 'partition') {
        const next = parts[i + 1];
        // Only a token that fills a whole path segment can be enumerated with a hierarchical listing.
        if (next?.kind !== 'literal' || !next.text.startsWith('/')) break;
        const segment = new RegExp(`^${PATTERN[token]}$`);
        for await (const entry of store.listHierarchy(container, current, { delimiter: '/' })) {
          if (entry.kind !== 'prefix') continue;
          const value = entry.name.slice(current.length, -1);
          if (!segment.test(value) || before(entry.name)) continue;
          yield* expand(i + 1, current + value, fixed, { ...dimensions, [token]: value });
        }
        return;
      }
      if (LEVEL[token] !== fixed.level + 1) break;
      for (const { text, unit } of unitsWithin(LEVEL[token], fixed, window)) {
        if (before(current + text)) continue;
        yield* expand(i + 1, current + text, unit, dimensions);
      }
      return;
    }
    if (!before(current)) {
      yield { prefix: current, dimensions, startMs: fixed.startMs, endMs: fixed.endMs };
    }
  }

  yield* expand(0, '', UNBOUNDED, {});

  /**
   * An hour's prefix, or, when the window keeps at most three of its ten-minute runs, one prefix per run it keeps
   * (`12/3`, `12/4`): fixed-width below the hour's prefix, so the order rule holds. A short range then lists half
   * an hour's names or fewer instead of all of them, in listings that run in parallel, and the first names (the
   * first downloads) come back after a listing of ten names, not sixty. Names under the hour outside those runs
   * are not listed, so names there that do not follow the format are not counted in `unrecognizedNames`.
   */
  function* tensOfMinutes(
    prefix: string,
    hour: FixedUnit,
    window: NameMinuteWindow,
    dimensions: ListingPrefix['dimensions'],
  ): Generator<ListingPrefix> {
    const first = Math.floor((Math.max(hour.startMs, window.firstMinuteMs) - hour.startMs) / TEN_MINUTES_MS);
    const last = Math.floor((Math.min(hour.endMs - 1, window.lastMinuteMs) - hour.startMs) / TEN_MINUTES_MS);
    if (last - first + 1 > TENS_LISTED_AT_MOST) {
      if (!before(prefix)) yield { prefix, dimensions, startMs: hour.startMs, endMs: hour.endMs };
      return;
    }
    for (let tens = first; tens <= last; tens++) {
      const startMs = hour.startMs + tens * TEN_MINUTES_MS;
      if (!before(prefix + tens)) yield { prefix: prefix + tens, dimensions, startMs, endMs: startMs + TEN_MINUTES_MS };
    }
  }
}

const TEN_MINUTES_MS = 10 * MINUTE_MS;
/** Ten-minute prefixes listed instead of their hour's prefix, at most: half the hour. */
const TENS_LISTED_AT_MOST = 3;
