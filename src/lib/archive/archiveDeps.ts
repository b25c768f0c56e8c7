/**
 * The archive's resolved configuration (section, settings and parsed file name format) and how the shared
 * services provide it. Kept apart from the handlers so the Functions host, the local runtime, the CLI and tests
 * build it the same way.
 */
import { configInvalid } from '../errors.js';
import type { Services } from '../runtime.js';
import { parseArchiveSettings, type ArchiveConfig, type ArchiveSettings } from './config.js';
import { parseFileNameFormat, type FileNameFormat } from './fileNameFormat.js';
import type { ArchiveIngestDeps } from './ingest.js';
import type { TelemetryQueryDeps } from './telemetryQuery.js';

type Env = Readonly<Record<string, string | undefined>>;

const MISSING_CONTAINER =
  "ARCHIVE_CONTAINER is not set (nor archive.container in routing.config.json): name the container IoT Hub's storage endpoint writes to";

export interface ResolvedArchive {
  config: ArchiveConfig;
  format: FileNameFormat;
  /** The container IoT Hub writes to. */
  container: string;
  indexContainer: string;
}

/** Throws ConfigInvalid naming every problem (no archive container, bad format, bad settings). */
export function resolveArchive(config: ArchiveConfig, env: Env): ResolvedArchive {
  const problems: string[] = [];
  const settings = parseArchiveSettings(env, config, problems);
  return resolved(config, settings, problems);
}

/**
 * The archive configuration of the running app: routing.config.json's `archive` section and the ARCHIVE_* settings,
 * both validated once by loadAppConfig. Only the container's presence is checked here, where the archive is used,
 * so an app that does not run the archive paths still starts without it.
 */
export function archiveFromServices(services: Pick<Services, 'config'>): ResolvedArchive {
  return resolved(services.config.routing.archive, services.config.settings.archive);
}

/**
 * The one assembly of a ResolvedArchive: the file name format parsed and the container required here, after the
 * settings' own `problems` (if any), so that both entry points name the same problems in the same words.
 */
function resolved(config: ArchiveConfig, settings: ArchiveSettings, problems: string[] = []): ResolvedArchive {
  const format = parseFileNameFormat(config.fileNameFormat);
  if ('errors' in format) problems.push(...format.errors.map((e) => `archive.fileNameFormat: ${e}`));
  if (settings.container === null) problems.push(MISSING_CONTAINER);
  if (problems.length > 0 || 'errors' in format || settings.container === null) {
    throw configInvalid('Archive configuration is invalid', problems);
  }
  return {
    config,
    format: format.value,
    container: settings.container,
    indexContainer: settings.indexContainer,
  };
}

/** What archiveIngest needs, from the shared services. */
export function ingestDepsFromServices(services: Services): ArchiveIngestDeps {
  return {
    store: services.store,
    clock: services.clock,
    quarantine: services.quarantine,
    admitDeps: services.admitDeps,
    archive: archiveFromServices(services),
  };
}

/** What GET /api/telemetry needs, from the shared services: the archive checks keep quarantined records out. */
export function telemetryDepsFromServices(services: Services): TelemetryQueryDeps {
  return {
    store: services.store,
    clock: services.clock,
    archive: archiveFromServices(services),
    checks: services.config.routing.checks,
  };
}
