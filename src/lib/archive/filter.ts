/**
 * What an archive query selects, and the per-record test compiled from it. Every condition must hold (AND);
 * repeated device ids are alternatives (OR).
 */
import { createHash } from 'node:crypto';
import { lookupProperty } from '../message/normalize.js';
import type { JsonValue, RoutedMessage } from '../message/RoutedMessage.js';

export type ComparisonOperator = '=' | '!=' | '<' | '<=' | '>' | '>=';

/** `temperature>30`, `status.code=200`: a field of a JSON body compared with a literal. */
export interface BodyPredicate {
  /** Dot-separated path into the JSON body; a numeric segment indexes an array. */
  path: readonly string[];
  op: ComparisonOperator;
  value: string;
  /** Written in quotes: compared as text only (`code='007'`); unquoted, a number literal compares numerically. */
  quoted?: boolean;
}

/** `key=value` on application properties (enrichments included); the key is matched ignoring case, as IoT Hub does. */
export interface PropertyEquals {
  key: string;
  value: string;
}

export interface ArchiveFilter {
  /** Any of these device ids. */
  deviceIds?: readonly string[];
  /** Enqueued at or after (inclusive). */
  from?: Date;
  /** Enqueued before (exclusive). */
  to?: Date;
  /** The `level` application property equals this (case-sensitive, like `level="storage"` in a route). */
  level?: string;
  properties?: readonly PropertyEquals[];
  where?: readonly BodyPredicate[];
}

const OPERATOR = /^(.+?)(>=|<=|!=|=|>|<)([\s\S]*)$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parses `path<op>value`; the path may start with `$body.` (IoT Hub routing query style) or `$.`. */
export function parseBodyPredicate(text: string): { value: BodyPredicate } | { error: string } {
  const match = OPERATOR.exec(text);
  if (match === null) {
    return { error: `"${text}" is not a body predicate: expected path=value (or != < <= > >=), e.g. temperature>30` };
  }
  const rawPath = match[1]!.trim().replace(/^\$body\./, '').replace(/^\$\./, '');
  const path = rawPath.split('.');
  if (rawPath === '' || path.some((segment) => segment === '')) {
    return { error: `"${text}": the field path "${match[1]!.trim()}" has an empty segment` };
  }
  if (path.length > 16) return { error: `"${text}": field paths are limited to 16 segments` };
  const op = match[2] as ComparisonOperator;
  // Spaces around the value go, as around the path; quotes (IoT Hub's 'text', or "text") keep them.
  const raw = match[3]!.trim();
  if (raw === '') return { error: `"${text}": there is no value after ${op}` };
  if (/^[<>=!]/.test(raw)) {
    return { error: `"${text}": the value "${raw}" starts with an operator; write one of = != < <= > >= and then the value` };
  }
  const quoted = /^'([\s\S]*)'$|^"([\s\S]*)"$/.exec(raw);
  if (quoted !== null) return { value: { path, op, value: quoted[1] ?? quoted[2] ?? '', quoted: true } };
  if (op !== '=' && op !== '!=' && !NUMBER.test(raw)) {
    return { error: `"${text}": ${op} compares numbers, and "${raw}" is not one; to compare text, quote it: '${raw}'` };
  }
  return { value: { path, op, value: raw } };
}

export function parsePropertyEquals(text: string): { value: PropertyEquals } | { error: string } {
  const at = text.indexOf('=');
  if (at <= 0) return { error: `"${text}" is not a property condition: expected key=value` };
  return { value: { key: text.slice(0, at), value: text.slice(at + 1) } };
}

export function formatBodyPredicate(p: BodyPredicate): string {
  return `${p.path.join('.')}${p.op}${p.quoted === true ? `'${p.value}'` : p.value}`;
}

export interface CompiledFilter {
  /** True when the filter selects every record: the engine then skips per-record work. */
  readonly all: boolean;
  readonly fromMs: number | undefined;
  readonly toMs: number | undefined;
  readonly deviceIds: ReadonlySet<string> | null;
  readonly level: string | undefined;
  matches(message: RoutedMessage): boolean;
}

const LEVEL_NAMES = ['level'] as const;

export function compileFilter(filter: ArchiveFilter): CompiledFilter {
  const fromMs = filter.from?.getTime();
  const toMs = filter.to?.getTime();
  const deviceIds = filter.deviceIds !== undefined && filter.deviceIds.length > 0 ? new Set(filter.deviceIds) : null;
  const level = filter.level;
  const properties = (filter.properties ?? []).map((p) => ({ names: [p.key] as const, value: p.value }));
  const where = (filter.where ?? []).map(compilePredicate);
  const all =
    fromMs === undefined && toMs === undefined && deviceIds === null && level === undefined && properties.length === 0 && where.length === 0;
  return {
    all,
    fromMs,
    toMs,
    deviceIds,
    level,
    matches(message) {
      if (all) return true;
      if (deviceIds !== null && (message.deviceId === null || !deviceIds.has(message.deviceId))) return false;
      if (fromMs !== undefined || toMs !== undefined) {
        // An undated record cannot be placed in any range.
        if (message.enqueuedTime === null) return false;
        const t = message.enqueuedTime.getTime();
        if (fromMs !== undefined && t < fromMs) return false;
        if (toMs !== undefined && t >= toMs) return false;
      }
      if (level !== undefined && !propertyEquals(message, LEVEL_NAMES, level)) return false;
      for (const p of properties) if (!propertyEquals(message, p.names, p.value)) return false;
      for (const test of where) if (!test(message)) return false;
      return true;
    },
  };
}

function propertyEquals(message: RoutedMessage, names: readonly string[], expected: string): boolean {
  const value = lookupProperty(message.properties, names);
  if (value === undefined || value === null) return false;
  return (typeof value === 'string' ? value : String(value)) === expected;
}

/**
 * Semantics, written down because they decide what a query returns:
 * - A missing field, a non-JSON body or an object/array value fails every operator, `!=` included (as IoT Hub
 *   routing treats undefined).
 * - A JSON number compares numerically with a numeric literal; with anything else it fails.
 * - A string compares as a string (so ISO timestamps order correctly); booleans and null equal their JSON spelling.
 */
function compilePredicate(predicate: BodyPredicate): (message: RoutedMessage) => boolean {
  const { path, op, value } = predicate;
  const numeric = predicate.quoted !== true && NUMBER.test(value) ? Number(value) : null;
  return (message) => {
    if (message.decoded.kind !== 'json') return false;
    let node: JsonValue | undefined = message.decoded.value;
    for (const segment of path) {
      if (node === null || typeof node !== 'object') return false;
      node = Array.isArray(node) ? node[Number(segment)] : Object.hasOwn(node, segment) ? node[segment] : undefined;
      if (node === undefined) return false;
    }
    if (node === null) return op === '=' ? value === 'null' : op === '!=' ? value !== 'null' : false;
    if (typeof node === 'number') return numeric === null ? false : compare(node, numeric, op);
    if (typeof node === 'boolean') {
      const text = node ? 'true' : 'false';
      return op === '=' ? text === value : op === '!=' ? text !== value : false;
    }
    if (typeof node === 'string') return compare(node, value, op);
    return false;
  };
}

function compare<T extends number | string>(a: T, b: T, op: ComparisonOperator): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}

/**
 * A short, stable digest of what a query selects and where it reads, so that a continuation token handed back with
 * a different query is rejected instead of silently skipping records.
 */
export function queryFingerprint(container: string, fileNameFormat: string, filter: ArchiveFilter): string {
  const canonical = JSON.stringify([
    container,
    fileNameFormat,
    [...new Set(filter.deviceIds ?? [])].sort(),
    filter.from?.toISOString() ?? null,
    filter.to?.toISOString() ?? null,
    filter.level ?? null,
    (filter.properties ?? []).map((p) => `${p.key.toLowerCase()}=${p.value}`).sort(),
    (filter.where ?? []).map(formatBodyPredicate).sort(),
  ]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}
