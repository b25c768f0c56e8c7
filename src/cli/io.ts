import { once } from 'node:events';
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { BlobServiceClient, StoragePipelineOptions } from '@azure/storage-blob';
import { instantProblem, parseInstant } from '../lib/instant.js';
import type { ArchiveDamage } from '../lib/message/archive.js';
import { createServices, type ServiceOverrides, type Services } from '../lib/runtime.js';
import { blobServiceClientFromSettings } from '../lib/storage/azureBlobStore.js';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: Readonly<Record<string, string | undefined>>;
  /**
   * Ctrl+C for the commands that stop gracefully (they stop starting work and finish what is under way). Absent in
   * a process: such a command listens for SIGINT itself, only while it runs ({@link interruptSignal}).
   */
  signal?: AbortSignal;
  /**
   * The pipeline options (retry policy) of the storage clients the commands build. Absent in a process: the SDK's
   * defaults, whose back-off keeps an unreachable account some fifteen seconds before the command gives up; tests
   * shorten the retries.
   */
  storagePipeline?: StoragePipelineOptions;
}

/** Exit codes shared by every command. */
export const EXIT = {
  ok: 0,
  usage: 1,
  /** The input was damaged (truncated or corrupt archive): what decoded was still printed. */
  damaged: 2,
  /** `check`: something would be quarantined; `archive index --dry-run`: some blobs are not indexed. */
  wouldQuarantine: 3,
  /** Some items failed for a transient reason (storage, a service, a resource busy): run the command again. */
  transient: 4,
  /** Stopped by Ctrl+C before the work was done (128 + SIGINT, as shells report it): run the command again. */
  interrupted: 130,
} as const;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * `parseArgs` for a command, stricter about what parseArgs lets pass silently: an option that takes one value given
 * twice (parseArgs keeps the last, so `--from A --from B` would quietly query from B) and an empty value (`--level
 * ''` would quietly match nothing) are usage errors, as the HTTP API's 400s are.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const { tokens } = parseArgs({ ...config, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens ?? []) {
    if (token.kind !== 'option') continue;
    const option = config.options?.[token.name];
    if (option?.multiple !== true) {
      if (seen.has(token.name)) throw new UsageError(`${token.rawName} is given more than once`);
      seen.add(token.name);
    }
    if (option?.type === 'string' && token.value !== undefined && token.value.trim() === '') {
      throw new UsageError(`${token.rawName} needs a value`);
    }
  }
  return parseArgs(config);
}

/** A whole number option in [min, max], or a usage error naming the option. */
export function wholeNumber(text: string, name: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${name} must be a whole number from ${min} to ${max}, not "${text}"`);
  return n;
}

/**
 * `--from` / `--to` as epoch milliseconds ([from, to), either open), read as every route and command reads a time
 * (src/lib/instant.ts); a usage error names the option that is wrong.
 */
export function timeRangeOptions(values: { from?: string | undefined; to?: string | undefined }): { fromMs?: number; toMs?: number } {
  const range: { fromMs?: number; toMs?: number } = {};
  for (const key of ['from', 'to'] as const) {
    const text = values[key];
    if (text === undefined) continue;
    const ms = parseInstant(text);
    if (ms === null) throw new UsageError(instantProblem(`--${key}`, text, 'flags'));
    range[key === 'from' ? 'fromMs' : 'toMs'] = ms;
  }
  if (range.fromMs !== undefined && range.toMs !== undefined && range.fromMs >= range.toMs) {
    throw new UsageError('--to must be after --from (the range is [from, to))');
  }
  return range;
}

/**
 * The signal a graceful command stops on: the caller's (tests), else the first Ctrl+C while the command runs. Only
 * the first is caught: the listener is gone after it, so a second Ctrl+C ends the process at once, as usual.
 * `dispose` removes the listener when the command ends.
 */
export function interruptSignal(io: CliIo, onInterrupt: () => void): { signal: AbortSignal; dispose: () => void } {
  if (io.signal !== undefined) {
    const given = io.signal;
    given.addEventListener('abort', onInterrupt, { once: true });
    return { signal: given, dispose: () => given.removeEventListener('abort', onInterrupt) };
  }
  const controller = new AbortController();
  const listener = (): void => {
    onInterrupt();
    controller.abort();
  };
  process.once('SIGINT', listener);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', listener) };
}

/** Writes with back-pressure so that piping a large decode into `head` or a slow consumer stays bounded. */
export async function writeLine(stream: Writable, line: string): Promise<void> {
  if (!stream.write(`${line}\n`)) await once(stream, 'drain');
}

/**
 * The stderr line for a damaged archive. `records` counts every complete record read from the file: an Avro file is
 * read up to its damage, JSON lines skip their bad lines and read on (the detail says how many were skipped).
 */
export function damageLine(file: string, damage: ArchiveDamage, records: number): string {
  return `${file}: ${damage.code} at byte ${damage.byteOffset}: ${damage.detail} (${records} complete record${records === 1 ? '' : 's'} read)\n`;
}

/** The file a command's --config names, else `routing.config.json` in the working directory if there is one. */
export async function routingConfigPath(given: string | undefined): Promise<string | undefined> {
  if (given !== undefined) return given;
  try {
    await access('routing.config.json');
    return 'routing.config.json';
  } catch {
    return undefined;
  }
}

/** The blob service of the storage connection in `settings` (default the environment's AzureWebJobsStorage). */
export function blobServiceOf(io: CliIo, settings: CliIo['env'] = io.env): BlobServiceClient {
  return blobServiceClientFromSettings(settings, io.storagePipeline === undefined ? {} : { pipeline: io.storagePipeline });
}

/**
 * The app's services for a command that runs the app's own handlers: the app settings in `env` and the
 * routing.config.json --config names (`given`), else the working directory's, which must exist: the handlers must
 * run with the app's configuration, never a default. `purpose` says what the file is needed for.
 */
export async function appServices(
  env: CliIo['env'],
  given: string | undefined,
  purpose: string,
  overrides: ServiceOverrides = {},
): Promise<Services> {
  const configPath = await routingConfigPath(given);
  if (configPath === undefined) throw new UsageError(`${purpose}: pass --config PATH or run it where that file is`);
  return createServices({ ...env, ROUTING_CONFIG_PATH: resolve(configPath) }, { root: process.cwd(), ...overrides });
}
