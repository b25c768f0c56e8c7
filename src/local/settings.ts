/**
 * The app settings of a local run. The function modules read `process.env` (through `processServices()` and their
 * `%SETTING%` binding expressions), so the local host builds one environment and installs it before importing them.
 *
 * Precedence, lowest first: local defaults for the bindings the local host emulates; `local.settings.sample.json`;
 * `local.settings.json` (when present, as under `func start`); the process environment. Then two settings are
 * forced, because the point of the local run is that it needs no cloud account: `AzureWebJobsStorage` is the local
 * Azurite, and alerts go to the `.eml` outbox unless ACS is configured (`ACS_CONNECTION_STRING` or `ACS_ENDPOINT`).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SETTINGS } from '../lib/config.js';
import type { Registration } from './registrations.js';

export type Env = Record<string, string | undefined>;

export interface LocalSettingsInput {
  root: string;
  /** Azurite's connection string. */
  storageConnectionString: string;
  processEnv: Readonly<Env>;
  registrationsSettings: readonly string[];
  iotHubName: string;
  /** From routing.config.json `archive.container`, when it names one. */
  archiveContainer: string | null;
  dashboardUrl: string | null;
  /** Points ROUTING_CONFIG_PATH elsewhere (the runtime's overlay with a different outbox). */
  routingConfigPath?: string;
  /**
   * Only the defaults and local.settings.sample.json: no local.settings.json and no process environment, so a test
   * never picks up a developer's real ACS or IoT Hub settings.
   */
  sampleOnly?: boolean;
}

export interface LocalSettings {
  env: Env;
  /** Where each setting came from, for the start-up listing. */
  origins: Map<string, string>;
  alertSender: 'outbox' | 'acs';
}

async function readValues(file: string): Promise<Record<string, string> | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = JSON.parse(text) as { Values?: Record<string, unknown> };
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed.Values ?? {})) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') values[key] = String(value);
  }
  return values;
}

/** `%NAME%` expressions and `connection` names the registrations use. */
export function settingsReferencedBy(registrations: readonly Registration[]): string[] {
  const names = new Set<string>();
  for (const registration of registrations) {
    for (const [key, value] of Object.entries(registration.options)) {
      if (typeof value !== 'string') continue;
      if (key === 'connection') names.add(value);
      for (const match of value.matchAll(/%([^%]+)%/g)) names.add(match[1]!);
    }
  }
  return [...names].sort();
}

/** Values for binding settings the Functions host would need and the local host emulates. */
function localDefaults(input: LocalSettingsInput): Env {
  const hub = input.iotHubName.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  const defaults: Env = {
    FUNCTIONS_WORKER_RUNTIME: 'node',
    IOTHUB_EVENTS_NAME: `iothub-ehub-${hub}-local`,
    IOTHUB_EVENTS_CONSUMER_GROUP: '$Default',
    CRITICAL_QUEUE_NAME: 'critical-alerts',
    ARCHIVE_CONTAINER: input.archiveContainer ?? 'iothub-archive',
  };
  // Any other `%NAME%` a new function introduces gets a readable value rather than an empty binding.
  for (const name of input.registrationsSettings) {
    if (defaults[name] === undefined && !/CONNECTION|STORAGE/i.test(name)) defaults[name] = name.toLowerCase().replace(/_/g, '-');
  }
  return defaults;
}

export async function localSettings(input: LocalSettingsInput): Promise<LocalSettings> {
  const env: Env = {};
  const origins = new Map<string, string>();
  const layer = (values: Env | null, origin: string) => {
    for (const [key, value] of Object.entries(values ?? {})) {
      if (value === undefined || value === '') continue;
      env[key] = value;
      origins.set(key, origin);
    }
  };
  layer(localDefaults(input), 'local default');
  layer(await readValues(path.join(input.root, 'local.settings.sample.json')), 'local.settings.sample.json');
  if (input.sampleOnly !== true) layer(await readValues(path.join(input.root, 'local.settings.json')), 'local.settings.json');
  const known = new Set<string>([...SETTINGS.map((s) => s.name), ...input.registrationsSettings, ...Object.keys(env)]);
  const fromProcess: Env = {};
  for (const [key, value] of Object.entries(input.processEnv)) {
    if (known.has(key) || [...known].some((k) => key.startsWith(`${k}__`))) fromProcess[key] = value;
  }
  if (input.sampleOnly !== true) layer(fromProcess, 'environment');

  // Storage is always the local Azurite: identity-based settings for a real account must not leak into the run.
  for (const key of Object.keys(env)) if (key.startsWith('AzureWebJobsStorage__')) delete env[key];
  env['AzureWebJobsStorage'] = input.storageConnectionString;
  origins.set('AzureWebJobsStorage', 'local Azurite');

  // Blob arrivals are driven here through the blob trigger's registration (src/local/blobTriggers.ts); there is no
  // Event Grid to deliver to the Event Grid registration a shared local.settings.json may otherwise choose.
  if (env['ARCHIVE_TRIGGER_SOURCE'] !== undefined && env['ARCHIVE_TRIGGER_SOURCE'] !== 'LogsAndContainerScan') {
    env['ARCHIVE_TRIGGER_SOURCE'] = 'LogsAndContainerScan';
    origins.set('ARCHIVE_TRIGGER_SOURCE', 'local runtime (no Event Grid locally)');
  }

  const acsConfigured = (env['ACS_CONNECTION_STRING'] ?? env['ACS_ENDPOINT'] ?? '') !== '';
  // The sample's ALERT_SENDER=outbox is the default for a run without ACS, not a choice: setting ACS is enough.
  const outboxChosen = env['ALERT_SENDER'] === 'outbox' && origins.get('ALERT_SENDER') !== 'local.settings.sample.json';
  const alertSender = acsConfigured && !outboxChosen ? 'acs' : 'outbox';
  if (alertSender === 'outbox' && !outboxChosen) {
    env['ALERT_SENDER'] = 'outbox';
    origins.set('ALERT_SENDER', 'local runtime (no ACS configured)');
  } else if (alertSender === 'acs' && env['ALERT_SENDER'] !== 'acs') {
    env['ALERT_SENDER'] = 'acs';
    origins.set('ALERT_SENDER', 'local runtime (ACS configured)');
  }
  // The sample's DASHBOARD_URL describes the local default port; a run on another port links to itself instead.
  const dashboardOrigin = origins.get('DASHBOARD_URL');
  if (input.dashboardUrl !== null && (dashboardOrigin === undefined || dashboardOrigin === 'local.settings.sample.json')) {
    env['DASHBOARD_URL'] = input.dashboardUrl;
    origins.set('DASHBOARD_URL', 'local runtime');
  }
  if (input.routingConfigPath !== undefined) {
    env['ROUTING_CONFIG_PATH'] = input.routingConfigPath;
    origins.set('ROUTING_CONFIG_PATH', 'local runtime');
  }
  return { env, origins, alertSender };
}

const SECRET_NAME = /CONNECTION|KEY|SECRET|PASSWORD|TOKEN|AzureWebJobsStorage/i;

/** A setting as it may be printed: secrets only say that they are set. */
export function displayValue(name: string, value: string | undefined): string {
  if (value === undefined || value === '') return '(not set)';
  const spec = SETTINGS.find((s) => s.name === name);
  if (spec?.secret === true || SECRET_NAME.test(name)) return '(set, not shown)';
  return value;
}

/** Replaces the process environment's values for `env`'s keys; returns the function that puts them back. */
export function installEnvironment(env: Readonly<Env>): () => void {
  const previous = new Map<string, string | undefined>();
  for (const [key, value] of Object.entries(env)) {
    previous.set(key, process.env[key]);
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  return () => {
    for (const [key, value] of previous) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}
