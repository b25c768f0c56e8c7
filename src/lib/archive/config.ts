/**
 * The `archive` section of routing.config.json and the archive app settings: how IoT Hub's storage endpoint writes
 * (encoding, file name format, batch frequency, chunk size) and the limits the query API enforces.
 *
 * ```json
 * "archive": {
 *   "encoding": "avro",
 *   "fileNameFormat": "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
 *   "batchFrequencySeconds": 100,
 *   "maxChunkSizeBytes": 104857600,
 *   "maxQueryRangeHours": 168,
 *   "maxPageSize": 10000
 * }
 * ```
 *
 * The endpoint values must be copied from the hub (`az iot hub routing-endpoint show`): the query engine prunes
 * blobs by the times their names promise, and a batch frequency smaller than the hub's would prune blobs that hold
 * matching messages. Ranges follow IoT Hub's own validation (RoutingStorageContainerProperties).
 */
import { parseFileNameFormat } from './fileNameFormat.js';

export type ArchiveEncoding = 'avro' | 'json';

export interface ArchiveConfig {
  /** Container IoT Hub writes to; `ARCHIVE_CONTAINER` wins when set. Null: only the setting names it. */
  container: string | null;
  /** What the hub writes. Informational: readers sniff each blob's bytes, so a changed encoding still reads. */
  encoding: ArchiveEncoding;
  /** IoT Hub's `fileNameFormat`: all seven tokens, in any order, with any literal text around them. */
  fileNameFormat: string;
  /** IoT Hub's `batchFrequencyInSeconds` (60-720): how long after its name's minute a blob may still collect messages. */
  batchFrequencySeconds: number;
  /** IoT Hub's `maxChunkSizeInBytes` (10 MiB-500 MiB). */
  maxChunkSizeBytes: number;
  /**
   * How far (seconds) a message's enqueued time may lie outside the window its blob's name promises: routing
   * latency and clock skew between the hub's nodes. Used only for blobs that have no manifest yet.
   */
  pruningSlackSeconds: number;
  /** The widest `from`..`to` the HTTP API accepts. */
  maxQueryRangeHours: number;
  /** The most records one HTTP page returns; also the default `limit` ceiling. */
  maxPageSize: number;
}

export const DEFAULT_FILE_NAME_FORMAT = '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}';

export const DEFAULT_ARCHIVE_CONFIG: Readonly<ArchiveConfig> = Object.freeze({
  container: null,
  encoding: 'avro',
  fileNameFormat: DEFAULT_FILE_NAME_FORMAT,
  // The routing tutorial's endpoint setting. Smaller than IoT Hub's 300 s default; set the hub's value here.
  batchFrequencySeconds: 100,
  maxChunkSizeBytes: 104_857_600,
  pruningSlackSeconds: 300,
  maxQueryRangeHours: 168,
  maxPageSize: 10_000,
});

const BATCH_FREQUENCY = { min: 60, max: 720 } as const;
const CHUNK_SIZE = { min: 10_485_760, max: 524_288_000 } as const;
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;
const KEYS = [
  'container',
  'encoding',
  'fileNameFormat',
  'batchFrequencySeconds',
  'maxChunkSizeBytes',
  'pruningSlackSeconds',
  'maxQueryRangeHours',
  'maxPageSize',
] as const;

export type ParseResult<T> = { value: T } | { errors: string[] };

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function integerIn(
  raw: Record<string, unknown>,
  key: (typeof KEYS)[number],
  path: string,
  range: { min: number; max: number },
  fallback: number,
  errors: string[],
): number {
  const value = raw[key];
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value >= range.min && value <= range.max) return value;
  errors.push(`${path}.${key}: expected a whole number from ${range.min} to ${range.max}, got ${describe(value)}`);
  return fallback;
}

/** Validates the `archive` section; an absent section is the defaults. Every problem is reported at once. */
export function parseArchiveConfig(raw: unknown, path = 'archive'): ParseResult<ArchiveConfig> {
  if (raw === undefined) return { value: { ...DEFAULT_ARCHIVE_CONFIG } };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { errors: [`${path}: expected an object, got ${describe(raw)}`] };
  }
  const section = raw as Record<string, unknown>;
  const errors: string[] = [];
  for (const key of Object.keys(section)) {
    if (!(KEYS as readonly string[]).includes(key)) errors.push(`${path}.${key}: unknown setting (allowed: ${KEYS.join(', ')})`);
  }

  let container: string | null = null;
  if (section['container'] !== undefined && section['container'] !== null) {
    const value = section['container'];
    if (typeof value === 'string' && CONTAINER_NAME.test(value)) container = value;
    else errors.push(`${path}.container: "${String(value)}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`);
  }

  let encoding: ArchiveEncoding = DEFAULT_ARCHIVE_CONFIG.encoding;
  if (section['encoding'] !== undefined) {
    // IoT Hub's API spells Avro with deflate "avrodeflate"; both are Avro to the reader.
    const value = typeof section['encoding'] === 'string' ? section['encoding'].toLowerCase() : section['encoding'];
    if (value === 'avro' || value === 'avrodeflate') encoding = 'avro';
    else if (value === 'json') encoding = 'json';
    else errors.push(`${path}.encoding: expected "avro" or "json" (IoT Hub's storage encodings), got ${describe(section['encoding'])}`);
  }

  let fileNameFormat = DEFAULT_FILE_NAME_FORMAT;
  if (section['fileNameFormat'] !== undefined) {
    const value = section['fileNameFormat'];
    if (typeof value !== 'string') {
      errors.push(`${path}.fileNameFormat: expected a string like "${DEFAULT_FILE_NAME_FORMAT}", got ${describe(value)}`);
    } else {
      const parsed = parseFileNameFormat(value);
      if ('errors' in parsed) errors.push(...parsed.errors.map((e) => `${path}.fileNameFormat: ${e}`));
      else fileNameFormat = value;
    }
  }

  const value: ArchiveConfig = {
    container,
    encoding,
    fileNameFormat,
    batchFrequencySeconds: integerIn(section, 'batchFrequencySeconds', path, BATCH_FREQUENCY, DEFAULT_ARCHIVE_CONFIG.batchFrequencySeconds, errors),
    maxChunkSizeBytes: integerIn(section, 'maxChunkSizeBytes', path, CHUNK_SIZE, DEFAULT_ARCHIVE_CONFIG.maxChunkSizeBytes, errors),
    pruningSlackSeconds: integerIn(section, 'pruningSlackSeconds', path, { min: 0, max: 86_400 }, DEFAULT_ARCHIVE_CONFIG.pruningSlackSeconds, errors),
    maxQueryRangeHours: integerIn(section, 'maxQueryRangeHours', path, { min: 1, max: 24 * 366 }, DEFAULT_ARCHIVE_CONFIG.maxQueryRangeHours, errors),
    maxPageSize: integerIn(section, 'maxPageSize', path, { min: 1, max: 100_000 }, DEFAULT_ARCHIVE_CONFIG.maxPageSize, errors),
  };
  return errors.length > 0 ? { errors } : { value };
}

// ---- app settings ------------------------------------------------------------------------------------------

export type ArchiveTriggerSource = 'EventGrid' | 'LogsAndContainerScan';

export interface ArchiveSettings {
  /** ARCHIVE_CONTAINER, else `archive.container`; null when neither names one (ingest and HTTP then refuse to run). */
  container: string | null;
  /** ARCHIVE_INDEX_CONTAINER, default `archive-index`. */
  indexContainer: string;
  /** ARCHIVE_TRIGGER_SOURCE, default LogsAndContainerScan. */
  triggerSource: ArchiveTriggerSource;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads ARCHIVE_CONTAINER, ARCHIVE_INDEX_CONTAINER and ARCHIVE_TRIGGER_SOURCE; problems are appended, not thrown. */
export function parseArchiveSettings(env: Env, archive: Pick<ArchiveConfig, 'container'>, problems: string[]): ArchiveSettings {
  const container = env['ARCHIVE_CONTAINER']?.trim() || archive.container;
  if (container !== null && !CONTAINER_NAME.test(container)) {
    problems.push(`ARCHIVE_CONTAINER: "${container}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`);
  }
  const indexContainer = env['ARCHIVE_INDEX_CONTAINER']?.trim() || 'archive-index';
  if (!CONTAINER_NAME.test(indexContainer)) {
    problems.push(`ARCHIVE_INDEX_CONTAINER: "${indexContainer}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`);
  }
  if (container !== null && container === indexContainer) {
    problems.push('ARCHIVE_INDEX_CONTAINER must differ from ARCHIVE_CONTAINER: manifests written there would trigger ingestion themselves');
  }
  const source = env['ARCHIVE_TRIGGER_SOURCE']?.trim() || 'LogsAndContainerScan';
  if (source !== 'EventGrid' && source !== 'LogsAndContainerScan') {
    problems.push(`ARCHIVE_TRIGGER_SOURCE: expected EventGrid or LogsAndContainerScan, got "${source}"`);
  }
  return { container, indexContainer, triggerSource: archiveTriggerSourceOf(env) };
}

/**
 * ARCHIVE_TRIGGER_SOURCE as archiveIngest registers by it (src/functions/archiveIngest.ts, when the module loads):
 * `EventGrid` registers the Event Grid trigger, anything else the polling blob trigger. A value that is neither
 * is reported by {@link parseArchiveSettings} and polls meanwhile.
 */
export function archiveTriggerSourceOf(env: Env): ArchiveTriggerSource {
  return env['ARCHIVE_TRIGGER_SOURCE']?.trim() === 'EventGrid' ? 'EventGrid' : 'LogsAndContainerScan';
}
