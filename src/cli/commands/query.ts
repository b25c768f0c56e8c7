import type { Writable } from 'node:stream';
import { once } from 'node:events';
import type { BlobServiceClient } from '@azure/storage-blob';
import { DEFAULT_ARCHIVE_CONFIG, type ArchiveConfig } from '../../lib/archive/config.js';
import { parseFileNameFormat } from '../../lib/archive/fileNameFormat.js';
import { parseBodyPredicate, parsePropertyEquals, type ArchiveFilter } from '../../lib/archive/filter.js';
import { createFormatter, formatAnswer, OUTPUT_FORMATS, type OutputFormat } from '../../lib/archive/formats.js';
import { decodeContinuation, queryArchive, type QueryStats } from '../../lib/archive/query.js';
import type { ChecksConfig } from '../../lib/checks/expectations.js';
import { loadRoutingConfig } from '../../lib/config.js';
import { nearest } from '../../lib/editDistance.js';
import { AzureBlobStore } from '../../lib/storage/azureBlobStore.js';
import { blobServiceOf, EXIT, parseCommandArgs, routingConfigPath, timeRangeOptions, UsageError, wholeNumber, type CliIo } from '../io.js';

export const queryUsage = `iot-routing query --connection-string CS --container NAME [--device ID]... [--from ISO] [--to ISO]
                  [--level L] [--where field=value]... [--property key=value]... [--format ndjson|csv|json]
                  [--limit N] [--continuation TOKEN] [--file-name-format FMT] [--batch-frequency SECONDS]
                  [--index-container NAME | --no-index] [--config routing.config.json] [--concurrency N]
  Answers a query over the IoT Hub archive container directly: lists only the blobs the time range allows (any
  partition), skips blobs the archive index proves cannot match, streams and decodes the rest. --where compares a
  JSON body field (path=value, or != < <= > >=; a number numerically, 'quoted' text as text); --property matches an
  application property. Times are ISO 8601 with a zone, or a date; the range is [from, to). Checks and the archive settings
  come from --config, else routing.config.json in the working directory if there is one. --connection-string
  defaults to AzureWebJobsStorage. Records go to stdout in blob-name order, progress and the summary to stderr (a
  progress bar when stderr is a terminal). With --limit,
  the token for the next page is printed on stderr. Exit 0, 2 when damaged blobs were met (their complete records
  are still printed), 1 for usage errors (a --container the account does not have, and credentials it refuses,
  included), 4 when storage did not answer (check the connection string, then run it again; records already printed stand).`;

const FLUSH_CHARS = 64 * 1024;

export async function queryCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    allowPositionals: false,
    options: {
      'connection-string': { type: 'string' },
      container: { type: 'string' },
      device: { type: 'string', multiple: true },
      from: { type: 'string' },
      to: { type: 'string' },
      level: { type: 'string' },
      where: { type: 'string', multiple: true },
      property: { type: 'string', multiple: true },
      format: { type: 'string', default: 'ndjson' },
      limit: { type: 'string' },
      continuation: { type: 'string' },
      'file-name-format': { type: 'string' },
      'batch-frequency': { type: 'string' },
      'index-container': { type: 'string' },
      'no-index': { type: 'boolean', default: false },
      config: { type: 'string' },
      concurrency: { type: 'string' },
    },
  });

  const connectionString = values['connection-string'] ?? io.env['AzureWebJobsStorage'];
  if (connectionString === undefined || connectionString.trim() === '') {
    throw new UsageError('--connection-string is required (or set AzureWebJobsStorage)');
  }
  const container = values.container;
  if (container === undefined) throw new UsageError('--container is required');
  const format = values.format as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new UsageError(`--format must be ${OUTPUT_FORMATS.join(', ')}, not "${values.format}"`);

  let checks: ChecksConfig | undefined;
  let archive: ArchiveConfig = { ...DEFAULT_ARCHIVE_CONFIG };
  // As the other commands, and as the HTTP API with the app's own: routing.config.json here unless --config says.
  const configPath = await routingConfigPath(values.config);
  if (configPath !== undefined) {
    const routing = await loadRoutingConfig(configPath);
    checks = routing.checks;
    archive = routing.archive;
  }
  if (values['file-name-format'] !== undefined) {
    const parsed = parseFileNameFormat(values['file-name-format']);
    if ('errors' in parsed) throw new UsageError(`--file-name-format: ${parsed.errors.join('; ')}`);
    archive = { ...archive, fileNameFormat: values['file-name-format'] };
  }
  if (values['batch-frequency'] !== undefined) {
    archive = { ...archive, batchFrequencySeconds: wholeNumber(values['batch-frequency'], '--batch-frequency', 60, 720) };
  }

  const filter: ArchiveFilter = {};
  if (values.device !== undefined && values.device.length > 0) filter.deviceIds = values.device;
  const { fromMs, toMs } = timeRangeOptions(values);
  if (fromMs !== undefined) filter.from = new Date(fromMs);
  if (toMs !== undefined) filter.to = new Date(toMs);
  if (values.level !== undefined) filter.level = values.level;
  if (values.where !== undefined) {
    filter.where = values.where.map((text) => {
      const parsed = parseBodyPredicate(text);
      if ('error' in parsed) throw new UsageError(`--where ${parsed.error}`);
      return parsed.value;
    });
  }
  if (values.property !== undefined) {
    filter.properties = values.property.map((text) => {
      const parsed = parsePropertyEquals(text);
      if ('error' in parsed) throw new UsageError(`--property ${parsed.error}`);
      return parsed.value;
    });
  }
  const limit = values.limit === undefined ? undefined : wholeNumber(values.limit, '--limit', 1, Number.MAX_SAFE_INTEGER);
  const concurrency = values.concurrency === undefined ? undefined : wholeNumber(values.concurrency, '--concurrency', 1, 64);
  if (values.continuation !== undefined) {
    const position = decodeContinuation(values.continuation, { container, config: archive, filter });
    if ('error' in position) throw new UsageError(`--continuation: ${position.error}`);
  }

  const service = blobServiceOf(io, { AzureWebJobsStorage: connectionString });
  const store = new AzureBlobStore(service);
  const progress = isTerminal(io.stderr) ? new ProgressBar(io.stderr) : null;
  const query = queryArchive(store, container, archive, filter, {
    ...(limit === undefined ? {} : { limit }),
    ...(values.continuation === undefined ? {} : { continuation: values.continuation }),
    ...(concurrency === undefined ? {} : { concurrency }),
    indexContainer: values['no-index'] ? null : (values['index-container'] ?? 'archive-index'),
    ...(checks === undefined ? {} : { checks: { config: checks, now: new Date() } }),
    ...(progress === null ? {} : { onProgress: (stats: Readonly<QueryStats>) => progress.update(stats) }),
  });

  try {
    for await (const chunk of formatAnswer(query, createFormatter(format), FLUSH_CHARS)) await write(io.stdout, chunk);
  } finally {
    progress?.clear();
  }

  const stats = query.stats;
  // The store answers a missing container with an empty listing (it is how ingest meets a container not created
  // yet), so a misspelt --container would read as "no records in that range". Asked only when nothing was listed.
  if (stats.blobsListed === 0 && stats.unrecognizedNames === 0) {
    const missing = await missingContainerMessage(service, container);
    if (missing !== null) throw new UsageError(missing);
  }
  for (const damage of stats.damaged) {
    io.stderr.write(
      `${damage.blob}: ${damage.code} at byte ${damage.byteOffset}: ${damage.detail} (${damage.recordsBeforeDamage} complete records before it were answered)\n`,
    );
  }
  io.stderr.write(
    `${stats.recordsReturned} records from ${stats.blobsRead} blobs read (${stats.blobsListed} listed, ${stats.blobsSkipped} skipped by the index` +
      `${stats.unrecognizedNames > 0 ? `, ${stats.unrecognizedNames} names not in the file name format` : ''})\n`,
  );
  if (query.continuation !== null) io.stderr.write(`more results: --continuation ${query.continuation}\n`);
  return stats.damaged.length > 0 ? EXIT.damaged : EXIT.ok;
}

/** Containers listed for the "did you mean" of a missing one, and how many of the nearest are named. */
const CONTAINERS_LISTED = 5000;
const CONTAINERS_NAMED = 5;

/**
 * Why the query found nothing when `container` does not exist, naming the account's containers nearest to it so
 * that a typo shows; null when it exists or the credentials cannot tell (a container-scoped SAS may not ask the
 * account).
 */
async function missingContainerMessage(service: BlobServiceClient, container: string): Promise<string | null> {
  let exists: boolean;
  try {
    exists = await service.getContainerClient(container).exists();
  } catch {
    return null;
  }
  if (exists) return null;
  const names: string[] = [];
  try {
    for await (const item of service.listContainers()) {
      names.push(item.name);
      if (names.length >= CONTAINERS_LISTED) break;
    }
  } catch {
    // Listing containers needs account-wide rights; the message still says what is missing.
  }
  const listed = names.length === 0 ? '' : ` (nearest: ${nearest(container, names, CONTAINERS_NAMED).join(', ')})`;
  return `--container: the storage account has no container "${container}"${listed}`;
}

async function write(stream: Writable, text: string): Promise<void> {
  if (text !== '' && !stream.write(text)) await once(stream, 'drain');
}

function isTerminal(stream: Writable): boolean {
  return (stream as Writable & { isTTY?: boolean }).isTTY === true;
}

/** One line on stderr, redrawn at most every 100 ms; only used when stderr is a terminal. */
class ProgressBar {
  readonly #stream: Writable;
  #last = 0;
  #drawn = false;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  update(stats: Readonly<QueryStats>): void {
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    const done = stats.blobsRead + stats.blobsSkipped;
    const total = Math.max(stats.blobsListed, done);
    const width = 24;
    const filled = total === 0 ? 0 : Math.min(width, Math.round((done / total) * width));
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const megabytes = (stats.bytesRead / 1e6).toFixed(1);
    const line = `query [${bar}] ${done}/${total}${stats.listingDone ? '' : '+'} blobs, ${stats.recordsReturned} records, ${megabytes} MB`;
    const columns = (this.#stream as Writable & { columns?: number }).columns ?? 80;
    this.#stream.write(`\r${line.slice(0, Math.max(10, columns - 1))}\x1b[K`);
    this.#drawn = true;
  }

  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
  }
}
