/**
 * Output formats of archive queries: JSON, NDJSON and CSV, written record by record so a large answer streams.
 *
 * CSV decisions (also in docs/adr/0008):
 * - RFC 4180: comma-separated, CRLF line ends, a field with a comma, quote, CR or LF is quoted with quotes doubled.
 * - Columns: fixed leading columns, then `properties.<key>` for application properties, then `body.<path>` for the
 *   JSON body flattened with dot paths (arrays and empty objects as JSON text), then `body` (a non-JSON body: text,
 *   or base64 for binary) and `extra`.
 * - Stable order: a streamed CSV must write its header first, so the property and body columns are the sorted
 *   union over the first {@link CSV_HEADER_WINDOW} records (the whole answer when it is smaller). A later record
 *   with a field outside the header keeps it: such fields go to `extra` as a JSON object, never dropped.
 * - Cells as `csvCell` writes them (../csv.ts): RFC 4180 quoting, formula injection defused reversibly.
 */
import { csvCell } from '../csv.js';
import { lookupProperty } from '../message/normalize.js';
import type { JsonValue, RoutedMessage } from '../message/RoutedMessage.js';
import { toMessageRecord } from '../message/serialize.js';
import type { ArchiveQuery, QueryStats } from './query.js';

export type OutputFormat = 'json' | 'ndjson' | 'csv';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['json', 'ndjson', 'csv'];

export const CONTENT_TYPES: Readonly<Record<OutputFormat, string>> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
};

/** Records whose fields decide the CSV columns. */
export const CSV_HEADER_WINDOW = 1000;

export const CSV_FIXED_COLUMNS = [
  'deviceId',
  'enqueuedTime',
  'messageId',
  'moduleId',
  'level',
  'contentType',
  'bodyKind',
  'blobName',
  'recordIndex',
] as const;

/** What ends an answer: the token for the next page and what the query met on the way. */
export interface QueryTrailer {
  continuation: string | null;
  stats: Readonly<QueryStats>;
}

export interface RecordFormatter {
  readonly contentType: string;
  /** Text before the first record. */
  start(): string;
  /** Text for one record; CSV returns '' while it is still choosing its columns. */
  push(message: RoutedMessage): string;
  /**
   * Text after the last record. JSON always carries `continuation` and `summary`; NDJSON and CSV carry them only
   * with `inBandTrailer` (the HTTP API, which cannot send a header after the body has started), because a CLI
   * prints them on stderr instead.
   */
  end(trailer: QueryTrailer): string;
}

export interface FormatterOptions {
  inBandTrailer?: boolean;
  csvHeaderWindow?: number;
}

export function createFormatter(format: OutputFormat, options: FormatterOptions = {}): RecordFormatter {
  switch (format) {
    case 'json':
      return new JsonFormatter();
    case 'ndjson':
      return new NdjsonFormatter(options.inBandTrailer ?? false);
    case 'csv':
      return new CsvFormatter(options.inBandTrailer ?? false, options.csvHeaderWindow ?? CSV_HEADER_WINDOW);
  }
}

export function summaryOf(stats: Readonly<QueryStats>) {
  return {
    records: stats.recordsReturned,
    blobsListed: stats.blobsListed,
    blobsRead: stats.blobsRead,
    blobsSkipped: stats.blobsSkipped,
    recordsScanned: stats.recordsScanned,
    recordsExcluded: stats.recordsExcluded,
    unrecognizedNames: stats.unrecognizedNames,
    damaged: stats.damaged,
  };
}

class JsonFormatter implements RecordFormatter {
  readonly contentType = CONTENT_TYPES.json;
  #first = true;

  start(): string {
    return '{"records":[';
  }

  push(message: RoutedMessage): string {
    const text = JSON.stringify(toMessageRecord(message));
    if (this.#first) {
      this.#first = false;
      return `\n${text}`;
    }
    return `,\n${text}`;
  }

  end(trailer: QueryTrailer): string {
    return `\n],"continuation":${JSON.stringify(trailer.continuation)},"summary":${JSON.stringify(summaryOf(trailer.stats))}}\n`;
  }
}

class NdjsonFormatter implements RecordFormatter {
  readonly contentType = CONTENT_TYPES.ndjson;
  constructor(readonly inBand: boolean) {}

  start(): string {
    return '';
  }

  push(message: RoutedMessage): string {
    return `${JSON.stringify(toMessageRecord(message))}\n`;
  }

  /** The last line is `{"@summary":{...}}`: its absence tells a client the stream was cut. */
  end(trailer: QueryTrailer): string {
    if (!this.inBand) return '';
    return `${JSON.stringify({ '@summary': { continuation: trailer.continuation, ...summaryOf(trailer.stats) } })}\n`;
  }
}

type FlatBody = Map<string, JsonValue>;

/** The header's body columns as a tree, so a record's body is matched to columns in one walk over its keys. */
interface ColumnNode {
  /** Column position when this path is a column. */
  index?: number;
  children?: Map<string, ColumnNode>;
}

class CsvFormatter implements RecordFormatter {
  readonly contentType = CONTENT_TYPES.csv;
  readonly #inBand: boolean;
  readonly #window: number;
  #pending: RoutedMessage[] = [];
  #propertyColumns: string[] | null = null;
  #bodyColumns: string[] = [];
  #bodyTree: ColumnNode = {};
  #propertySet = new Set<string>();
  /** Per property column: whether its name is an Object.prototype member (and so needs an own-property check). */
  #inheritable: boolean[] = [];
  /** Reused for every row: body values by column, cleared as they are written. */
  #slots: (JsonValue | undefined)[] = [];
  #lastBlob: string | undefined = undefined;
  #lastBlobCell = '';
  #lastContentType: string | undefined = undefined;
  #lastContentTypeCell = '';
  readonly #iso = new IsoFormatter();

  constructor(inBand: boolean, window: number) {
    this.#inBand = inBand;
    this.#window = Math.max(1, window);
  }

  start(): string {
    return '';
  }

  push(message: RoutedMessage): string {
    if (this.#propertyColumns !== null) return this.#row(message);
    this.#pending.push(message);
    return this.#pending.length >= this.#window ? this.#flushWindow() : '';
  }

  /**
   * Trailer: comment lines (`#continuation=...`, `#damaged=...`) only when there is something to say, so a complete
   * undamaged answer is plain CSV. pandas reads them away with `comment='#'`.
   */
  end(trailer: QueryTrailer): string {
    let text = this.#propertyColumns === null ? this.#flushWindow() : '';
    if (this.#inBand) {
      if (trailer.continuation !== null) text += `#continuation=${trailer.continuation}\r\n`;
      for (const damage of trailer.stats.damaged) {
        // A comment line, not a field: only line breaks need removing.
        const note = `${damage.blob}: ${damage.code} at byte ${damage.byteOffset}, ${damage.recordsBeforeDamage} records before it`;
        text += `#damaged=${note.replace(/[\r\n]+/g, ' ')}\r\n`;
      }
    }
    return text;
  }

  #flushWindow(): string {
    const properties = new Set<string>();
    const body = new Set<string>();
    for (const message of this.#pending) {
      for (const key of Object.keys(message.properties)) properties.add(key);
      if (message.decoded.kind === 'json') for (const path of flattenJson(message.decoded.value).keys()) if (path !== '') body.add(path);
    }
    this.#propertyColumns = [...properties].sort();
    this.#propertySet = properties;
    this.#inheritable = this.#propertyColumns.map((key) => key in Object.prototype);
    this.#bodyColumns = [...body].sort();
    this.#slots = new Array<JsonValue | undefined>(this.#bodyColumns.length).fill(undefined);
    this.#bodyTree = {};
    this.#bodyColumns.forEach((path, index) => {
      let node = this.#bodyTree;
      for (const segment of path.split('.')) {
        node.children ??= new Map();
        let child = node.children.get(segment);
        if (child === undefined) node.children.set(segment, (child = {}));
        node = child;
      }
      node.index = index;
    });
    const header = [
      ...CSV_FIXED_COLUMNS,
      ...this.#propertyColumns.map((k) => `properties.${k}`),
      ...this.#bodyColumns.map((p) => `body.${p}`),
      'body',
      'extra',
    ];
    let text = `${header.map(csvCell).join(',')}\r\n`;
    for (const message of this.#pending) text += this.#row(message);
    this.#pending = [];
    return text;
  }

  #row(message: RoutedMessage): string {
    const source = message.source;
    const properties = message.properties;
    const own = properties['level'];
    const level = typeof own === 'string' ? own : lookupProperty(properties, ['level']);
    // Records of one blob share these values; their cells are computed once per change.
    const blobName = source.kind === 'blob' ? source.blobName : '';
    if (blobName !== this.#lastBlob) {
      this.#lastBlob = blobName;
      this.#lastBlobCell = csvCell(blobName);
    }
    const contentType = message.contentType;
    if (contentType !== this.#lastContentType) {
      this.#lastContentType = contentType;
      this.#lastContentTypeCell = csvCell(contentType);
    }
    let line =
      `${csvCell(message.deviceId)},${message.enqueuedTime === null ? '' : this.#iso.format(message.enqueuedTime.getTime())},${csvCell(message.messageId)},` +
      `${csvCell(message.moduleId)},${csvCell(level)},${this.#lastContentTypeCell},${message.decoded.kind},` +
      `${this.#lastBlobCell},${source.kind === 'blob' ? source.index : ''}`;
    let extra: Record<string, JsonValue> | null = null;
    let present = 0;
    const columns = this.#propertyColumns!;
    for (let i = 0; i < columns.length; i++) {
      const key = columns[i]!;
      const value = properties[key];
      // Only a column named like an Object.prototype member can read an inherited value.
      if (value === undefined || (this.#inheritable[i] === true && !Object.hasOwn(properties, key))) {
        line += ',';
      } else {
        present++;
        line += `,${csvCell(value)}`;
      }
    }
    let total = 0;
    for (const _ in properties) total++;
    if (total > present) {
      for (const key of Object.keys(properties)) {
        if (!this.#propertySet.has(key)) (extra ??= {})[`properties.${key}`] = properties[key]!;
      }
    }
    let raw = '';
    const bodyColumns = this.#bodyColumns.length;
    if (message.decoded.kind === 'json') {
      const value = message.decoded.value;
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const slots = this.#slots;
        const leftovers = this.#fill(value, this.#bodyTree, [], slots, null);
        if (leftovers !== null) extra = { ...extra, ...leftovers };
        for (let i = 0; i < bodyColumns; i++) {
          const slot = slots[i];
          if (slot === undefined) {
            line += ',';
          } else {
            line += `,${csvCell(slot)}`;
            slots[i] = undefined;
          }
        }
      } else {
        line += ','.repeat(bodyColumns);
        raw = csvCell(value);
      }
    } else {
      line += ','.repeat(bodyColumns);
      raw = csvCell(message.decoded.value);
    }
    return `${line},${raw},${extra === null ? '' : csvCell(JSON.stringify(extra))}\r\n`;
  }

  /**
   * Puts each leaf of `object` in its column slot; returns the leaves that have no column, by `body.` path. `path`
   * is the keys leading here, turned into text only for such leftovers (rare once the header has been chosen).
   */
  #fill(
    object: { [key: string]: JsonValue },
    tree: ColumnNode,
    path: string[],
    slots: (JsonValue | undefined)[],
    leftovers: Record<string, JsonValue> | null,
  ): Record<string, JsonValue> | null {
    let out = leftovers;
    for (const key in object) {
      const child = object[key]!;
      const column = tree.children?.get(key);
      const nested = child !== null && typeof child === 'object' && !Array.isArray(child) && hasKeys(child);
      if (nested) {
        if (column !== undefined) {
          path.push(key);
          out = this.#fill(child, column, path, slots, out);
          path.pop();
        } else {
          const at = [...path, key].join('.');
          for (const [leaf, value] of flattenJson(child)) (out ??= {})[`body.${at}.${leaf}`] = value;
        }
      } else if (column?.index !== undefined) {
        slots[column.index] = child;
      } else {
        (out ??= {})[`body.${[...path, key].join('.')}`] = child;
      }
    }
    return out;
  }
}

/**
 * `Date.prototype.toISOString` at a fraction of its cost for runs of times within the same minute (records of one
 * blob): the minute's text is computed once and seconds and milliseconds appended. Same output for any date.
 */
export class IsoFormatter {
  #minute = Number.NaN;
  #prefix = '';

  format(ms: number): string {
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.#minute) {
      const text = new Date(minute * 60_000).toISOString();
      // Years outside 0000-9999 are written with a sign and six digits; keep the builtin for those.
      if (text.length !== 24) return new Date(ms).toISOString();
      this.#minute = minute;
      this.#prefix = text.slice(0, 17);
    }
    const rest = ms - minute * 60_000;
    const seconds = Math.floor(rest / 1000);
    const millis = rest - seconds * 1000;
    return `${this.#prefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 100 ? (millis < 10 ? '00' : '0') : ''}${millis}Z`;
  }
}

function hasKeys(object: object): boolean {
  for (const _ in object) return true;
  return false;
}

/**
 * Leaves of a JSON body by dot path. A body that is not an object (a number, a string, an array) is one leaf with
 * the empty path; arrays and empty objects inside are leaves (written as JSON text).
 */
export function flattenJson(value: JsonValue): FlatBody {
  const out: FlatBody = new Map();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    out.set('', value);
    return out;
  }
  const walk = (node: { [key: string]: JsonValue }, prefix: string): void => {
    for (const key in node) {
      const child = node[key]!;
      const path = prefix === '' ? key : `${prefix}.${key}`;
      if (child !== null && typeof child === 'object' && !Array.isArray(child) && Object.keys(child).length > 0) walk(child, path);
      else out.set(path, child);
    }
  };
  walk(value, '');
  return out;
}

/**
 * Formats a query's answer as text chunks of about `chunkChars` characters (one write per chunk rather than per
 * record), ending with the formatter's trailer.
 */
export async function* formatAnswer(
  query: ArchiveQuery,
  formatter: RecordFormatter,
  chunkChars = 64 * 1024,
): AsyncGenerator<string> {
  let text = formatter.start();
  for await (const batch of query.batches()) {
    for (const message of batch) text += formatter.push(message);
    if (text.length >= chunkChars) {
      yield text;
      text = '';
    }
  }
  yield text + formatter.end({ continuation: query.continuation, stats: query.stats });
}
