/**
 * The one place settings and routing.config.json are read and validated. Every problem is collected and reported
 * in one ConfigInvalid error, so a deployment is fixed in one pass instead of one error per restart.
 * Secrets live only in app settings; routing.config.json holds no connection strings (it is checked for them).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DEFAULT_AGGREGATION_CONFIG,
  parseAggregationConfig,
  parseReportsContainer,
  type AggregationConfig,
} from './aggregate/aggregationConfig.js';
import { DEFAULT_DASHBOARD_URL, defaultAlertsConfig, parseAlertSettings, parseAlertsConfig, type AlertSettings, type AlertsConfig } from './alerts/alertsConfig.js';
import {
  DEFAULT_ARCHIVE_CONFIG,
  parseArchiveConfig,
  parseArchiveSettings,
  type ArchiveConfig,
  type ArchiveSettings,
} from './archive/config.js';
import { parseChecksConfig, type ChecksConfig } from './checks/expectations.js';
import { ENDPOINT_NAMES, ENRICHMENT_KEY, type EndpointName } from './checks/reasons.js';
import { connectionCredentialProblems, connectionSetting } from './connectionCredential.js';
import { configInvalid } from './errors.js';
import { compileRoutes } from './routing/routes.js';
import { APP_ROOT } from './version.js';

export interface SettingSpec {
  name: string;
  description: string;
  /** Placeholder shown in local.settings.sample.json. */
  example: string;
  /** Secrets are never logged or echoed in errors. */
  secret: boolean;
}

/**
 * Every app setting the app reads. local.settings.sample.json lists exactly these (a test keeps them in step).
 * Connections follow the Functions convention: either NAME holds a connection string, or NAME__property entries
 * describe an identity-based connection (documented next to each in the sample).
 */
export const SETTINGS = [
  {
    name: 'AzureWebJobsStorage',
    description:
      'Storage for the Functions host and for our containers (quarantine, reports, alerts, archive-index). Identity-based: AzureWebJobsStorage__accountName instead.',
    example: 'UseDevelopmentStorage=true',
    secret: true,
  },
  {
    name: 'ROUTING_CONFIG_PATH',
    description: 'Path of routing.config.json, relative to the app root. Default: routing.config.json.',
    example: 'routing.config.json',
    secret: false,
  },
  {
    name: 'QUARANTINE_CONTAINER',
    description: 'Container that keeps rejected messages with their reason codes. Default: quarantine.',
    example: 'quarantine',
    secret: false,
  },
  {
    name: 'IOTHUB_SERVICE_CONNECTION',
    description:
      'IoT Hub service connection string for twin resolution (registry read) and, when alerts.notifyDevice, cloud-to-device notifications (service connect). Identity-based: IOTHUB_SERVICE_CONNECTION__hostName with IoT Hub Data Reader (or Data Contributor for notifications).',
    example: 'HostName=<hub>.azure-devices.net;SharedAccessKeyName=registryRead;SharedAccessKey=<key>',
    secret: true,
  },
  {
    name: "IOTHUB_EVENTS_CONNECTION",
    description:
      "Event Hub-compatible connection string of the hub's built-in endpoint (telemetryStream reads it). It has no identity-based form: the built-in endpoint accepts only SAS (`az iot hub connection-string show -n <hub> --default-eventhub --policy-name service`).",
    example: "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=<key>;EntityPath=<hub>",
    secret: true,
  },
  {
    name: "IOTHUB_EVENTS_NAME",
    description:
      "Event Hub-compatible name of the hub's built-in endpoint (usually the hub name).",
    example: "contosotesthub",
    secret: false,
  },
  {
    name: "IOTHUB_EVENTS_CONSUMER_GROUP",
    description:
      "Consumer group telemetryStream reads with; give it its own group, never one another reader uses.",
    example: "functions",
    secret: false,
  },
  {
    name: "REPORTS_CONTAINER",
    description:
      "Container for window partials, partition watermarks and reports. Default: reports.",
    example: "reports",
    secret: false,
  },
  {
    name: "SERVICEBUS_CONNECTION",
    description:
      "Service Bus connection with Listen rights for the critical queue (criticalAlerts, iot-routing dlq). Identity-based: SERVICEBUS_CONNECTION__fullyQualifiedNamespace=<ns>.servicebus.windows.net with the Azure Service Bus Data Receiver role.",
    example: "Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=<key>",
    secret: true,
  },
  {
    name: "CRITICAL_QUEUE_NAME",
    description:
      "Service Bus queue IoT Hub routes level=\"critical\" to; the trigger reads %CRITICAL_QUEUE_NAME%.",
    example: "critical-alerts",
    secret: false,
  },
  {
    name: "ALERTS_CONTAINER",
    description:
      "Container for the alert ledger, the send gate and pending digests. Default: alerts.",
    example: "alerts",
    secret: false,
  },
  {
    name: "DASHBOARD_URL",
    description:
      "Alert e-mails link here with ?deviceId=. Default: http://localhost:7071/api/dashboard.",
    example: "http://localhost:7071/api/dashboard",
    secret: false,
  },
  {
    name: "ACS_CONNECTION_STRING",
    description:
      "Azure Communication Services connection string for alert e-mails. Set this or ACS_ENDPOINT, never both.",
    example: "endpoint=https://<resource>.communication.azure.com/;accesskey=<key>",
    secret: true,
  },
  {
    name: "ACS_ENDPOINT",
    description:
      "Identity-based alternative to ACS_CONNECTION_STRING: https://<resource>.communication.azure.com (role: Communication and Email Service Owner). A user-assigned identity: ACS_ENDPOINT__credential=managedidentity and ACS_ENDPOINT__clientId=<client id>.",
    example: "https://<resource>.communication.azure.com",
    secret: false,
  },
  {
    name: "ALERT_SENDER",
    description:
      "acs or outbox; overrides alerts.sender in routing.config.json (outbox writes .eml files to alerts.outboxDirectory).",
    example: "outbox",
    secret: false,
  },
  {
    name: "ARCHIVE_CONTAINER",
    description:
      "The container IoT Hub's storage endpoint writes to (archiveIngest's trigger path %ARCHIVE_CONTAINER%/{name}); else archive.container in routing.config.json.",
    example: "archive",
    secret: false,
  },
  {
    name: "ARCHIVE_INDEX_CONTAINER",
    description:
      "Container for one manifest per archive blob. Default: archive-index. Must differ from ARCHIVE_CONTAINER.",
    example: "archive-index",
    secret: false,
  },
  {
    name: "ARCHIVE_TRIGGER_SOURCE",
    description:
      "EventGrid (Azure: archiveIngest is an Event Grid trigger on the storage account's BlobCreated events, delivered by the subscription the infra template creates; the host never downloads the blob) or LogsAndContainerScan (default: a polling blob trigger, whose host downloads every blob into memory; local runs, and npm start always).",
    example: "LogsAndContainerScan",
    secret: false,
  },
] as const satisfies readonly SettingSpec[];

export type SettingName = (typeof SETTINGS)[number]['name'];

/** A connection given either as a connection string or as identity-based properties (`NAME__property`). */
export type Connection =
  | { kind: 'connectionString'; value: string }
  | { kind: 'identity'; properties: Record<string, string> };

export interface Settings {
  storage: Connection;
  quarantineContainer: string;
  iotHubService: Connection | null;
  /** REPORTS_CONTAINER: window partials, watermarks and reports. */
  reportsContainer: string;
  /** ARCHIVE_CONTAINER, ARCHIVE_INDEX_CONTAINER, ARCHIVE_TRIGGER_SOURCE. */
  archive: ArchiveSettings;
  /** ALERTS_CONTAINER, CRITICAL_QUEUE_NAME, DASHBOARD_URL, ACS_*, ALERT_SENDER. */
  alerts: AlertSettings;
}

export interface TwinResolutionConfig {
  enabled: boolean;
  cacheTtlSeconds: number;
  maxConcurrency: number;
  readsPerSecond: number;
}

export { ENDPOINT_NAMES, type EndpointName };

export interface RouteConfig {
  name: string;
  /** IoT Hub routing query, e.g. `level="critical"`. */
  condition: string;
  endpoint: EndpointName;
  enabled: boolean;
}

export interface EnrichmentConfig {
  key: string;
  /** `$iothubname`, `$twin.tags.x`, `$twin.properties.desired.x` or a static value. */
  value: string;
  endpoints: EndpointName[];
}

export interface RoutingConfig {
  iotHubName: string;
  routes: RouteConfig[];
  fallbackRoute: boolean;
  enrichments: EnrichmentConfig[];
  checks: ChecksConfig;
  twinResolution: TwinResolutionConfig;
  /** Windows, fields and lateness of the telemetry reports (src/lib/aggregate). */
  aggregation: AggregationConfig;
  /** The storage endpoint IoT Hub writes: encoding, file name format, batching; query limits (src/lib/archive). */
  archive: ArchiveConfig;
  /** Which messages alert, who is told, templates, quiet period and send budget (src/lib/alerts). */
  alerts: AlertsConfig;
}

export interface AppConfig {
  settings: Settings;
  routing: RoutingConfig;
  /**
   * The directory relative paths of the configuration resolve against (ROUTING_CONFIG_PATH, `alerts.outboxDirectory`):
   * the app root (`APP_ROOT`) unless the caller named another. Never the working directory, which the Functions host
   * does not promise to be the app root.
   */
  root: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;

/** The identity-based connection properties this app reads, in the spelling its code looks them up by. */
const CONNECTION_PROPERTIES = [
  'accountName', 'blobServiceUri', 'queueServiceUri', 'tableServiceUri', 'serviceUri', 'hostName', 'fullyQualifiedNamespace',
  'credential', 'clientId', 'managedIdentityResourceId', 'tenantId', 'clientSecret',
];

/**
 * A connection read as our clients read it ({@link connectionSetting}: `:` for `__`, property names in any case,
 * blank values unset), so that what this check accepts is what the clients it vouches for will build; null when
 * no form of it is set. The CLI asks it too whether a connection is there at all.
 */
export function connectionFrom(env: Env, name: string): Connection | null {
  const direct = connectionSetting(env, name);
  if (direct !== undefined) return { kind: 'connectionString', value: direct };
  const prefixes = [`${name}__`, `${name}:`].map((prefix) => prefix.toLowerCase());
  const properties: Record<string, string> = {};
  for (const key of Object.keys(env)) {
    const prefix = prefixes.find((p) => key.toLowerCase().startsWith(p));
    if (prefix === undefined) continue;
    const written = key.slice(prefix.length);
    const property = CONNECTION_PROPERTIES.find((p) => p.toLowerCase() === written.toLowerCase()) ?? written;
    const value = connectionSetting(env, name, property);
    if (value !== undefined) properties[property] = value;
  }
  return Object.keys(properties).length > 0 ? { kind: 'identity', properties } : null;
}

export function parseSettings(env: Env, problems: string[], archive: Pick<ArchiveConfig, 'container'> = DEFAULT_ARCHIVE_CONFIG): Settings {
  const storage = connectionFrom(env, 'AzureWebJobsStorage');
  if (storage === null) {
    problems.push(
      'AzureWebJobsStorage is not set: give a connection string (UseDevelopmentStorage=true locally) or AzureWebJobsStorage__accountName for an identity-based connection',
    );
  } else if (
    storage.kind === 'identity' &&
    storage.properties['accountName'] === undefined &&
    (storage.properties['blobServiceUri'] === undefined || storage.properties['queueServiceUri'] === undefined)
  ) {
    // The host and archiveIngest's blob trigger use this connection for blobs and for queues (the trigger's own
    // queue and its poison queue): accountName gives both endpoints; otherwise blobServiceUri needs queueServiceUri
    // beside it, and the serviceUri form, which names the blob service only, cannot serve (Functions blob binding
    // docs, "Identity-based connections"). Our own blob clients would start; the trigger would not.
    problems.push(
      'AzureWebJobsStorage__*: an identity-based connection needs accountName, or both blobServiceUri and queueServiceUri (the blob trigger uses queues through it; serviceUri names the blob service only)',
    );
  }
  const quarantineContainer = env['QUARANTINE_CONTAINER']?.trim() || 'quarantine';
  if (!CONTAINER_NAME.test(quarantineContainer)) {
    problems.push(
      `QUARANTINE_CONTAINER: "${quarantineContainer}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`,
    );
  }
  const iotHubService = connectionFrom(env, 'IOTHUB_SERVICE_CONNECTION');
  if (iotHubService?.kind === 'connectionString' && !/HostName=[^;]+/i.test(iotHubService.value)) {
    problems.push('IOTHUB_SERVICE_CONNECTION: not an IoT Hub connection string (no HostName=...)');
  }
  if (iotHubService?.kind === 'identity' && iotHubService.properties['hostName'] === undefined) {
    problems.push('IOTHUB_SERVICE_CONNECTION__*: an identity-based connection needs IOTHUB_SERVICE_CONNECTION__hostName');
  }
  // The clients this app builds itself sign in as the host would for each identity-based connection
  // (connectionCredential.ts); a wrong identity setting is reported here rather than as a token failure later. Each
  // connection is read as its clients read it: one given as a connection string reads no identity setting. ACS_ENDPOINT
  // names the endpoint itself, so it is identity-based unless ACS_CONNECTION_STRING is given instead.
  const connections: ReadonlyArray<[string, Connection | null]> = [
    ['AzureWebJobsStorage', storage],
    ['IOTHUB_SERVICE_CONNECTION', iotHubService],
    ['SERVICEBUS_CONNECTION', connectionFrom(env, 'SERVICEBUS_CONNECTION')],
  ];
  for (const [name, connection] of connections) {
    if (connection?.kind === 'identity') problems.push(...connectionCredentialProblems(env, name));
  }
  if (connectionSetting(env, 'ACS_CONNECTION_STRING') === undefined) problems.push(...connectionCredentialProblems(env, 'ACS_ENDPOINT'));
  const reports = parseReportsContainer(env);
  if ('errors' in reports) problems.push(...reports.errors);
  const alerts = parseAlertSettings(env);
  if ('errors' in alerts) problems.push(...alerts.errors);
  return {
    storage: storage ?? { kind: 'connectionString', value: '' },
    quarantineContainer,
    iotHubService,
    reportsContainer: 'value' in reports ? reports.value : 'reports',
    archive: parseArchiveSettings(env, archive, problems),
    alerts:
      'value' in alerts
        ? alerts.value
        : { container: 'alerts', queueName: null, dashboardUrl: DEFAULT_DASHBOARD_URL, acs: null, sender: null },
  };
}

// ---- routing.config.json -------------------------------------------------------------------------------------

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKeys(value: Record<string, Json>, allowed: readonly string[], at: string, problems: string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) problems.push(`${at}.${key}: unknown setting (allowed: ${allowed.join(', ')})`);
  }
}

function str(value: Json, at: string, problems: string[], fallback = ''): string {
  if (typeof value === 'string' && value.trim() !== '') return value;
  problems.push(`${at}: expected a non-empty string`);
  return fallback;
}

function positiveNumber(value: Json, at: string, problems: string[], fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= max) return value;
  problems.push(`${at}: expected a number above 0${max < Number.MAX_SAFE_INTEGER ? ` and at most ${max}` : ''}`);
  return fallback;
}

function endpointName(value: Json, at: string, problems: string[]): EndpointName {
  if (typeof value === 'string' && (ENDPOINT_NAMES as readonly string[]).includes(value)) return value as EndpointName;
  problems.push(`${at}: expected one of ${ENDPOINT_NAMES.join(', ')}`);
  return 'events';
}

const SECRET_LIKE = /(AccountKey|SharedAccessKey|SharedAccessSignature|accesskey)=/i;

export function parseRoutingConfig(raw: Json, problems: string[]): RoutingConfig {
  const at = 'routing.config.json';
  if (!isObject(raw)) {
    problems.push(`${at}: expected a JSON object`);
    raw = {};
  }
  const doc = raw as Record<string, Json>;
  unknownKeys(
    doc,
    ['$schema', 'iotHubName', 'routes', 'fallbackRoute', 'enrichments', 'checks', 'twinResolution', 'aggregation', 'archive', 'alerts'],
    at,
    problems,
  );
  if (SECRET_LIKE.test(JSON.stringify(doc))) {
    problems.push(`${at}: contains what looks like a key or connection string; secrets belong in app settings only`);
  }

  const routes: RouteConfig[] = [];
  if (doc['routes'] !== undefined && !Array.isArray(doc['routes'])) problems.push('routes: expected an array');
  const seenRoutes = new Set<string>();
  for (const [i, route] of (Array.isArray(doc['routes']) ? doc['routes'] : []).entries()) {
    const here = `routes[${i}]`;
    if (!isObject(route)) {
      problems.push(`${here}: expected an object`);
      continue;
    }
    unknownKeys(route, ['name', 'condition', 'endpoint', 'enabled'], here, problems);
    const name = str(route['name'], `${here}.name`, problems);
    if (name !== '' && !/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
      problems.push(`${here}.name: IoT Hub route names hold only letters, digits, - and _ (at most 64)`);
    }
    if (seenRoutes.has(name.toLowerCase())) problems.push(`${here}.name: duplicate route name "${name}"`);
    seenRoutes.add(name.toLowerCase());
    routes.push({
      name,
      condition: route['condition'] === undefined ? 'true' : str(route['condition'], `${here}.condition`, problems),
      endpoint: endpointName(route['endpoint'], `${here}.endpoint`, problems),
      enabled: route['enabled'] === undefined ? true : route['enabled'] === true,
    });
  }

  const enrichments: EnrichmentConfig[] = [];
  if (doc['enrichments'] !== undefined && !Array.isArray(doc['enrichments'])) problems.push('enrichments: expected an array');
  for (const [i, enrichment] of (Array.isArray(doc['enrichments']) ? doc['enrichments'] : []).entries()) {
    const here = `enrichments[${i}]`;
    if (!isObject(enrichment)) {
      problems.push(`${here}: expected an object`);
      continue;
    }
    unknownKeys(enrichment, ['key', 'value', 'endpoints'], here, problems);
    const key = str(enrichment['key'], `${here}.key`, problems);
    if (key !== '' && !ENRICHMENT_KEY.test(key)) {
      problems.push(
        `${here}.key: "${key}" is not accepted by IoT Hub: use only letters, digits, "-", "_" and "." (at most 64 characters)`,
      );
    }
    const endpoints = Array.isArray(enrichment['endpoints'])
      ? enrichment['endpoints'].map((e, j) => endpointName(e, `${here}.endpoints[${j}]`, problems))
      : (problems.push(`${here}.endpoints: expected an array of endpoint names`), []);
    enrichments.push({ key, value: str(enrichment['value'], `${here}.value`, problems), endpoints });
  }

  const iotHubName =
    doc['iotHubName'] === undefined ? 'local-hub' : str(doc['iotHubName'], 'iotHubName', problems, 'local-hub');
  const checks = parseChecksConfig(withDerivedExpectations(doc['checks'], enrichments, iotHubName), 'checks');
  if ('errors' in checks) problems.push(...checks.errors);
  // IoT Hub refuses to save a route whose query does not parse; so do we, with the position of the problem.
  const compiled = compileRoutes(routes);
  if ('errors' in compiled) problems.push(...compiled.errors);

  const twin = isObject(doc['twinResolution']) ? doc['twinResolution'] : {};
  if (doc['twinResolution'] !== undefined && !isObject(doc['twinResolution'])) problems.push('twinResolution: expected an object');
  unknownKeys(twin, ['enabled', 'cacheTtlSeconds', 'maxConcurrency', 'readsPerSecond'], 'twinResolution', problems);
  const twinResolution: TwinResolutionConfig = {
    enabled: twin['enabled'] === true,
    cacheTtlSeconds: positiveNumber(twin['cacheTtlSeconds'], 'twinResolution.cacheTtlSeconds', problems, 300, 86_400),
    maxConcurrency: positiveNumber(twin['maxConcurrency'], 'twinResolution.maxConcurrency', problems, 4, 64),
    readsPerSecond: positiveNumber(twin['readsPerSecond'], 'twinResolution.readsPerSecond', problems, 8, 1_000),
  };

  // Each domain validates its own section and reports every problem with its path.
  const aggregation = parseAggregationConfig(doc['aggregation'], 'aggregation');
  if ('errors' in aggregation) problems.push(...aggregation.errors);
  const archive = parseArchiveConfig(doc['archive'], 'archive');
  if ('errors' in archive) problems.push(...archive.errors);
  const alerts = parseAlertsConfig(doc['alerts'], 'alerts');
  if ('errors' in alerts) problems.push(...alerts.errors);

  return {
    iotHubName,
    routes,
    fallbackRoute: doc['fallbackRoute'] === undefined ? true : doc['fallbackRoute'] === true,
    enrichments,
    checks: 'value' in checks ? checks.value : parseDefaultChecks(),
    twinResolution,
    aggregation: 'value' in aggregation ? aggregation.value : DEFAULT_AGGREGATION_CONFIG,
    archive: 'value' in archive ? archive.value : { ...DEFAULT_ARCHIVE_CONFIG },
    alerts: 'value' in alerts ? alerts.value : defaultAlertsConfig(),
  };
}

/**
 * The enrichments the hub is configured to stamp are what each endpoint should find on its messages, so they become
 * expectations without being written twice: a static value must be equal, `$iothubname` must equal the hub's
 * name, a `$twin` path must be present (its value is the device's own). Expectations written explicitly under
 * `checks` for the same key (any case) win.
 */
function withDerivedExpectations(rawChecks: Json, enrichments: readonly EnrichmentConfig[], iotHubName: string): Json {
  if (rawChecks !== undefined && !isObject(rawChecks)) return rawChecks; // parseChecksConfig reports the type error
  const checks: Record<string, Json> = { ...(rawChecks ?? {}) };
  const endpointsRaw = checks['endpoints'];
  if (endpointsRaw !== undefined && !isObject(endpointsRaw)) return rawChecks;
  const endpoints: Record<string, Json> = { ...(endpointsRaw ?? {}) };
  for (const enrichment of enrichments) {
    if (enrichment.key === '' || !ENRICHMENT_KEY.test(enrichment.key)) continue; // already reported
    for (const endpoint of new Set(enrichment.endpoints)) {
      const current = isObject(endpoints[endpoint]) ? (endpoints[endpoint] as Record<string, Json>) : {};
      if (endpoints[endpoint] !== undefined && !isObject(endpoints[endpoint])) continue;
      const listed = Array.isArray(current['enrichments']) ? current['enrichments'] : [];
      if (current['enrichments'] !== undefined && !Array.isArray(current['enrichments'])) continue;
      const explicit = listed.some(
        (e) => isObject(e) && typeof e['key'] === 'string' && e['key'].toLowerCase() === enrichment.key.toLowerCase(),
      );
      if (explicit) continue;
      const value = enrichment.value;
      const derived = value.toLowerCase().startsWith('$twin.')
        ? { key: enrichment.key }
        : { key: enrichment.key, equals: value.toLowerCase() === '$iothubname' ? iotHubName : value };
      endpoints[endpoint] = { ...current, enrichments: [...listed, derived] };
    }
  }
  checks['endpoints'] = endpoints;
  return checks;
}

function parseDefaultChecks(): ChecksConfig {
  const fallback = parseChecksConfig({}, 'checks');
  if ('errors' in fallback) throw new Error(`default checks config is invalid: ${fallback.errors.join('; ')}`);
  return fallback.value;
}

/**
 * Validates settings and the parsed routing config together; throws one ConfigInvalid naming every problem. `root`:
 * see {@link AppConfig.root}.
 */
export function buildAppConfig(env: Env, rawRouting: Json, problems: string[] = [], root: string = APP_ROOT): AppConfig {
  const routing = parseRoutingConfig(rawRouting, problems);
  const settings = parseSettings(env, problems, routing.archive);
  if (routing.twinResolution.enabled && settings.iotHubService === null) {
    problems.push('twinResolution.enabled is true but IOTHUB_SERVICE_CONNECTION is not set');
  }
  if (problems.length > 0) {
    throw configInvalid('Configuration is invalid', problems);
  }
  return { settings, routing, root };
}

/**
 * Reads routing.config.json from disk (ROUTING_CONFIG_PATH, relative to `root`, by default the app root) and
 * validates everything once.
 */
export async function loadAppConfig(env: Env, root: string = APP_ROOT): Promise<AppConfig> {
  const problems: string[] = [];
  const configPath = path.resolve(root, env['ROUTING_CONFIG_PATH']?.trim() || 'routing.config.json');
  let raw: Json = {};
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8')) as Json;
  } catch (error) {
    problems.push(`${configPath}: ${error instanceof SyntaxError ? `not valid JSON: ${error.message}` : (error as Error).message}`);
  }
  return buildAppConfig(env, raw, problems, root);
}

/** Reads only routing.config.json (the CLI's `--config`), without app settings. */
export async function loadRoutingConfig(file: string): Promise<RoutingConfig> {
  const problems: string[] = [];
  let raw: Json = {};
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as Json;
  } catch (error) {
    problems.push(`${file}: ${error instanceof SyntaxError ? `not valid JSON: ${error.message}` : (error as Error).message}`);
  }
  const routing = parseRoutingConfig(raw, problems);
  if (problems.length > 0) {
    throw configInvalid(`${file} is invalid`, problems);
  }
  return routing;
}
