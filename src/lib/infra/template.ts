/**
 * The ARM template for everything this app runs on, generated from the routing.config.json the app itself reads,
 * so that the hub's routes, endpoints and enrichments and the functions' expectations of them cannot drift apart.
 * Pure and deterministic: the same config and catalogue give byte-identical JSON (keys are written in a fixed order,
 * names come from `uniqueString(resourceGroup().id)` at deployment time, never from randomness here).
 *
 * What it creates, and why each piece looks the way it does, is in docs/adr/0011-infra-template.md; how to deploy it
 * is in docs/deployment.md. In short: an IoT hub (named as `iotHubName` says, because `$iothubname` enrichment checks
 * compare against it) routing to a Service Bus queue and a storage container through a user-assigned identity that
 * holds its role assignments before the hub exists; storage, Service Bus, Communication Services e-mail, a Flex
 * Consumption Function App (Node 22, system-assigned identity, identity-based connections) and the Event Grid
 * subscription that delivers the archive's BlobCreated events to archiveIngest's Event Grid trigger, deployed in a
 * second pass once the code is published.
 */
import { SETTINGS, type EndpointName, type EnrichmentConfig, type RouteConfig, type SettingSpec } from '../config.js';
import { ENRICHMENT_KEY } from '../checks/reasons.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../archive/config.js';
import { parseFileNameFormat } from '../archive/fileNameFormat.js';
import { configInvalid } from '../errors.js';
import { APP_VERSION } from '../version.js';
import { planAppSettings, type AppSettingsPlan, type SettingValues } from './appSettings.js';
import {
  DEPLOYMENT_TEMPLATE_SCHEMA,
  dependsOnId,
  expr,
  extensionDependsOnId,
  lit,
  param,
  resourceIdExpr,
  resourceName,
  resourceScope,
  variable,
  type ArmOutput,
  type ArmParameter,
  type ArmResource,
  type ArmTemplate,
  type ArmValue,
  type ResourceRef,
} from './arm.js';

/** What the template needs of routing.config.json. RoutingConfig satisfies it; `archive` may be absent. */
export interface InfraRoutingConfig {
  iotHubName: string;
  routes: readonly RouteConfig[];
  fallbackRoute: boolean;
  enrichments: readonly EnrichmentConfig[];
  archive?: ArchiveEndpointConfig | undefined;
}

/** The storage endpoint's settings, as the `archive` section of routing.config.json gives them. */
export interface ArchiveEndpointConfig {
  container: string | null;
  /** `avro`, `avrodeflate` or `json`, in any case. */
  encoding: string;
  fileNameFormat: string;
  batchFrequencySeconds: number;
  maxChunkSizeBytes: number;
}

export type IotHubStorageEncoding = 'Avro' | 'AvroDeflate' | 'JSON';

export interface ArmTemplateOptions {
  /** The settings catalogue the functions read. Default: SETTINGS from config.ts. */
  settings?: readonly SettingSpec[];
  /**
   * Consumer group of the built-in endpoint the telemetry function reads. Default: the catalogue's example for
   * IOTHUB_EVENTS_CONSUMER_GROUP unless that is `$Default`, else {@link DEFAULT_CONSUMER_GROUP}.
   */
  eventsConsumerGroup?: string;
  /** Overrides the encoding derived from `archive.encoding` (the CLI passes AvroDeflate when the file asks for it). */
  archiveEncoding?: IotHubStorageEncoding;
  /** Name of the Event Grid-triggered function the archive's event subscription calls. Default `archiveIngest`. */
  archiveFunctionName?: string;
}

/** Our endpoint names as the hub knows them. `events` is IoT Hub's own name for the built-in endpoint. */
export const IOT_HUB_ENDPOINT_NAMES: Readonly<Record<EndpointName, string>> = {
  events: 'events',
  criticalQueue: 'CriticalQueueEndpoint',
  archive: 'ArchiveStorageEndpoint',
};

export const DEFAULT_CONSUMER_GROUP = 'functions';
export const DEFAULT_ARCHIVE_CONTAINER = 'archive';
export const NODE_VERSION = '22';
export const CRITICAL_QUEUE_NAME = 'critical-alerts';
/** The Flex Consumption deployment package container. */
export const DEPLOYMENT_CONTAINER = 'app-package';
/** The containers of DESIGN.md section 5 other than the archive, by the setting that names each. */
export const DESIGN_CONTAINERS: Readonly<Record<string, string>> = {
  ARCHIVE_INDEX_CONTAINER: 'archive-index',
  REPORTS_CONTAINER: 'reports',
  ALERTS_CONTAINER: 'alerts',
  QUARANTINE_CONTAINER: 'quarantine',
};

/** IoT Hub's limits (standard and basic tiers) and naming rules, from its resource provider's API. */
export const IOT_HUB_LIMITS = {
  routes: 100,
  enrichments: 10,
  batchFrequencySeconds: { min: 60, max: 720 },
  maxChunkSizeBytes: { min: 10_485_760, max: 524_288_000 },
} as const;
const ROUTE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const HUB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{1,48})[A-Za-z0-9]$/;
const CONSUMER_GROUP = /^(\$Default|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?)$/;
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;
const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,127}$/;

const API = {
  identity: '2023-01-31',
  storage: '2023-05-01',
  serviceBus: '2021-11-01',
  iotHub: '2023-06-30',
  communication: '2023-04-01',
  logAnalytics: '2023-09-01',
  appInsights: '2020-02-02',
  web: '2024-04-01',
  roleAssignment: '2022-04-01',
  eventGrid: '2022-06-15',
  diagnosticSettings: '2021-05-01-preview',
} as const;

/** Built-in role definitions (ids are the same in every tenant). */
export const ROLES = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
  iotHubDataContributor: '4fc6c259-987e-4a07-842e-c321cc9d413f',
  communicationAndEmailServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350',
} as const;

// ---- validation ----------------------------------------------------------------------------------------------

function archiveOf(routing: InfraRoutingConfig): ArchiveEndpointConfig {
  return routing.archive ?? DEFAULT_ARCHIVE_CONFIG;
}

/** IoT Hub's spelling of an `archive.encoding` value, or null when it has none. */
export function iotHubEncoding(encoding: string): IotHubStorageEncoding | null {
  switch (encoding.toLowerCase()) {
    case 'avro':
      return 'Avro';
    case 'avrodeflate':
      return 'AvroDeflate';
    case 'json':
      return 'JSON';
    default:
      return null;
  }
}

/**
 * `$Default` is where `az iot hub monitor-events` and other ad hoc readers go; the Functions host reads with an
 * exclusive (epoch) receiver that would disconnect them, or be disconnected, so it gets a group of its own.
 */
function consumerGroupOf(options: ArmTemplateOptions): string {
  if (options.eventsConsumerGroup !== undefined) return options.eventsConsumerGroup;
  const example = (options.settings ?? SETTINGS).find((s) => s.name === 'IOTHUB_EVENTS_CONSUMER_GROUP')?.example;
  return example !== undefined && CONSUMER_GROUP.test(example) && example.toLowerCase() !== '$default' ? example : DEFAULT_CONSUMER_GROUP;
}

function archiveContainerOf(routing: InfraRoutingConfig): string {
  return archiveOf(routing).container ?? DEFAULT_ARCHIVE_CONTAINER;
}

/** Every container the template creates, by what names it. */
function containersOf(routing: InfraRoutingConfig, plan: AppSettingsPlan): Map<string, string> {
  // ARCHIVE_CONTAINER, when the catalogue has it, names this same container (containerFor): one owner, one entry.
  const containers = new Map<string, string>([['archive.container', archiveContainerOf(routing)]]);
  for (const [setting, name] of Object.entries(DESIGN_CONTAINERS)) containers.set(setting, plan.containers[setting] ?? name);
  for (const [setting, name] of Object.entries(plan.containers)) if (setting !== 'ARCHIVE_CONTAINER') containers.set(setting, name);
  containers.set('Flex Consumption deployment package', DEPLOYMENT_CONTAINER);
  return containers;
}

function containerFor(routing: InfraRoutingConfig): (setting: string, spec: SettingSpec | undefined) => string {
  return (setting, spec) => {
    if (setting === 'ARCHIVE_CONTAINER') return archiveContainerOf(routing);
    const design = DESIGN_CONTAINERS[setting];
    if (design !== undefined) return design;
    if (spec !== undefined && CONTAINER_NAME.test(spec.example)) return spec.example;
    return setting.replace(/_CONTAINER$/, '').toLowerCase().replaceAll('_', '-');
  };
}

/**
 * Everything IoT Hub or ARM would refuse in this configuration, all at once. Names are checked against the rules
 * the resource providers enforce; routing.config.json's own validation (config.ts) is stricter in places and runs
 * first in the CLI, so most problems here concern limits only a deployment meets.
 */
export function infraProblems(routing: InfraRoutingConfig, options: ArmTemplateOptions = {}): string[] {
  const problems: string[] = [];
  if (!HUB_NAME.test(routing.iotHubName) || routing.iotHubName.includes('--')) {
    problems.push(`iotHubName: "${routing.iotHubName}" is not a valid IoT hub name (3-50 letters, digits and single hyphens, starting and ending with a letter or digit)`);
  } else if (routing.iotHubName === 'local-hub') {
    problems.push('iotHubName: set it to the name of the hub to create (globally unique); "local-hub" is only the local runtime\'s default, and $iothubname enrichment checks compare against this name');
  }

  if (routing.routes.length > IOT_HUB_LIMITS.routes) problems.push(`routes: IoT Hub takes at most ${IOT_HUB_LIMITS.routes} routes, found ${routing.routes.length}`);
  const routeNames = new Set<string>();
  routing.routes.forEach((route, i) => {
    if (!ROUTE_NAME.test(route.name)) problems.push(`routes[${i}].name: "${route.name}" is not accepted by IoT Hub (letters, digits, ".", "_" and "-", at most 64)`);
    if (routeNames.has(route.name.toLowerCase())) problems.push(`routes[${i}].name: "${route.name}" is used by another route`);
    routeNames.add(route.name.toLowerCase());
    if (route.name.startsWith('$')) problems.push(`routes[${i}].name: names starting with "$" are IoT Hub's own`);
    if (route.condition.trim() === '') problems.push(`routes[${i}].condition: empty`);
    if (IOT_HUB_ENDPOINT_NAMES[route.endpoint] === undefined) problems.push(`routes[${i}].endpoint: "${route.endpoint}" is no endpoint of this app`);
  });

  if (routing.enrichments.length > IOT_HUB_LIMITS.enrichments) {
    problems.push(`enrichments: IoT Hub takes at most ${IOT_HUB_LIMITS.enrichments} enrichments per hub (standard tier), found ${routing.enrichments.length}`);
  }
  const keys = new Set<string>();
  routing.enrichments.forEach((enrichment, i) => {
    if (!ENRICHMENT_KEY.test(enrichment.key)) problems.push(`enrichments[${i}].key: "${enrichment.key}" is not accepted by IoT Hub (letters, digits, "-", "_" and ".", at most 64)`);
    if (keys.has(enrichment.key.toLowerCase())) problems.push(`enrichments[${i}].key: "${enrichment.key}" is stamped by another enrichment too; application property names must differ`);
    keys.add(enrichment.key.toLowerCase());
    if (enrichment.value.trim() === '') problems.push(`enrichments[${i}].value: empty`);
    if (enrichment.endpoints.length === 0) problems.push(`enrichments[${i}].endpoints: IoT Hub needs at least one endpoint per enrichment`);
    enrichment.endpoints.forEach((endpoint, j) => {
      if (IOT_HUB_ENDPOINT_NAMES[endpoint] === undefined) problems.push(`enrichments[${i}].endpoints[${j}]: "${endpoint}" is no endpoint of this app`);
    });
  });

  const archive = archiveOf(routing);
  const { batchFrequencySeconds: frequency, maxChunkSizeBytes: chunk } = IOT_HUB_LIMITS;
  if (!Number.isInteger(archive.batchFrequencySeconds) || archive.batchFrequencySeconds < frequency.min || archive.batchFrequencySeconds > frequency.max) {
    problems.push(`archive.batchFrequencySeconds: IoT Hub takes ${frequency.min}-${frequency.max}, got ${archive.batchFrequencySeconds}`);
  }
  if (!Number.isInteger(archive.maxChunkSizeBytes) || archive.maxChunkSizeBytes < chunk.min || archive.maxChunkSizeBytes > chunk.max) {
    problems.push(`archive.maxChunkSizeBytes: IoT Hub takes ${chunk.min}-${chunk.max} (10-500 MiB), got ${archive.maxChunkSizeBytes}`);
  }
  const format = parseFileNameFormat(archive.fileNameFormat);
  if ('errors' in format) problems.push(...format.errors.map((e) => `archive.fileNameFormat: ${e}`));
  if (options.archiveEncoding === undefined && iotHubEncoding(archive.encoding) === null) {
    problems.push(`archive.encoding: "${archive.encoding}" is not an IoT Hub storage encoding (avro, avrodeflate or json)`);
  }

  const consumerGroup = consumerGroupOf(options);
  if (!CONSUMER_GROUP.test(consumerGroup)) {
    problems.push(`eventsConsumerGroup: "${consumerGroup}" is not a valid consumer group name (letters, digits, ".", "_" and "-", at most 50, starting and ending with a letter or digit)`);
  }
  const functionName = options.archiveFunctionName ?? 'archiveIngest';
  if (!FUNCTION_NAME.test(functionName)) problems.push(`archiveFunctionName: "${functionName}" is not a function name`);

  const settings = options.settings ?? SETTINGS;
  const seen = new Set<string>();
  for (const spec of settings) {
    if (seen.has(spec.name.toLowerCase())) problems.push(`settings: ${spec.name} is listed twice (app setting names ignore case)`);
    seen.add(spec.name.toLowerCase());
  }
  const plan = planAppSettings(settings, settingValues(routing));
  const byName = new Map<string, string>();
  for (const [owner, name] of containersOf(routing, plan)) {
    if (!CONTAINER_NAME.test(name)) problems.push(`${owner}: "${name}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`);
    const other = byName.get(name);
    if (other !== undefined && other !== owner) problems.push(`${owner}: container "${name}" is also used by ${other}; each needs its own`);
    byName.set(name, owner);
  }
  return problems;
}

// ---- names and expressions -----------------------------------------------------------------------------------

const V = {
  suffix: 'suffix',
  prefix: 'prefix',
  iotHubName: 'iotHubName',
  hubIdentityName: 'hubIdentityName',
  storageAccountName: 'storageAccountName',
  serviceBusNamespaceName: 'serviceBusNamespaceName',
  criticalQueueName: 'criticalQueueName',
  emailServiceName: 'emailServiceName',
  emailDomainName: 'emailDomainName',
  communicationServiceName: 'communicationServiceName',
  logAnalyticsName: 'logAnalyticsName',
  appInsightsName: 'appInsightsName',
  planName: 'planName',
  functionAppName: 'functionAppName',
  archiveContainerName: 'archiveContainerName',
  archiveFunctionName: 'archiveFunctionName',
  systemTopicName: 'systemTopicName',
} as const;

const P = {
  namePrefix: 'namePrefix',
  location: 'location',
  iotHubSku: 'iotHubSku',
  iotHubCapacity: 'iotHubCapacity',
  iotHubPartitionCount: 'iotHubPartitionCount',
  iotHubRetentionDays: 'iotHubRetentionDays',
  eventsConsumerGroup: 'eventsConsumerGroup',
  communicationDataLocation: 'communicationDataLocation',
  existingEmailDomainId: 'existingEmailDomainId',
  maximumInstanceCount: 'functionMaximumInstanceCount',
  instanceMemoryMB: 'functionInstanceMemoryMB',
  deployArchiveEventSubscription: 'deployArchiveEventSubscription',
} as const;

const REF = {
  hubIdentity: { type: 'Microsoft.ManagedIdentity/userAssignedIdentities', parts: [variable(V.hubIdentityName)] },
  storage: { type: 'Microsoft.Storage/storageAccounts', parts: [variable(V.storageAccountName)] },
  blobService: { type: 'Microsoft.Storage/storageAccounts/blobServices', parts: [variable(V.storageAccountName), lit('default')] },
  serviceBus: { type: 'Microsoft.ServiceBus/namespaces', parts: [variable(V.serviceBusNamespaceName)] },
  queue: { type: 'Microsoft.ServiceBus/namespaces/queues', parts: [variable(V.serviceBusNamespaceName), variable(V.criticalQueueName)] },
  iotHub: { type: 'Microsoft.Devices/IotHubs', parts: [variable(V.iotHubName)] },
  consumerGroup: {
    type: 'Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups',
    parts: [variable(V.iotHubName), lit('events'), param(P.eventsConsumerGroup)],
  },
  emailService: { type: 'Microsoft.Communication/emailServices', parts: [variable(V.emailServiceName)] },
  emailDomain: { type: 'Microsoft.Communication/emailServices/domains', parts: [variable(V.emailServiceName), variable(V.emailDomainName)] },
  communication: { type: 'Microsoft.Communication/communicationServices', parts: [variable(V.communicationServiceName)] },
  logAnalytics: { type: 'Microsoft.OperationalInsights/workspaces', parts: [variable(V.logAnalyticsName)] },
  appInsights: { type: 'Microsoft.Insights/components', parts: [variable(V.appInsightsName)] },
  plan: { type: 'Microsoft.Web/serverfarms', parts: [variable(V.planName)] },
  site: { type: 'Microsoft.Web/sites', parts: [variable(V.functionAppName)] },
  systemTopic: { type: 'Microsoft.EventGrid/systemTopics', parts: [variable(V.systemTopicName)] },
  eventSubscription: {
    type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions',
    parts: [variable(V.systemTopicName), lit('archive-ingest')],
  },
} as const satisfies Record<string, ResourceRef>;

function containerRef(name: string): ResourceRef {
  return { type: 'Microsoft.Storage/storageAccounts/blobServices/containers', parts: [variable(V.storageAccountName), lit('default'), lit(name)] };
}

function reference(ref: ResourceRef, apiVersion: string, full = false): string {
  return `reference(${resourceIdExpr(ref)}, ${lit(apiVersion)}${full ? ", 'Full'" : ''})`;
}

const E = {
  blobEndpoint: `${reference(REF.storage, API.storage)}.primaryEndpoints.blob`,
  /** `<namespace>.servicebus.windows.net` in any cloud: the namespace's endpoint without scheme and port. */
  serviceBusFqdn: `replace(replace(${reference(REF.serviceBus, API.serviceBus)}.serviceBusEndpoint, 'https://', ''), ':443/', '')`,
  iotHubHostName: `${reference(REF.iotHub, API.iotHub)}.hostName`,
  eventsEndpoint: `${reference(REF.iotHub, API.iotHub)}.eventHubEndpoints.events.endpoint`,
  eventsPath: `${reference(REF.iotHub, API.iotHub)}.eventHubEndpoints.events.path`,
  // The default `service` policy has ServiceConnect and nothing else: enough to read the built-in endpoint.
  serviceKey: `listKeys(resourceId('Microsoft.Devices/IotHubs/IotHubKeys', ${variable(V.iotHubName)}, 'service'), ${lit(API.iotHub)}).primaryKey`,
  acsHostName: `${reference(REF.communication, API.communication)}.hostName`,
  senderDomain: `if(empty(${param(P.existingEmailDomainId)}), ${reference(REF.emailDomain, API.communication)}.mailFromSenderDomain, reference(${param(P.existingEmailDomainId)}, ${lit(API.communication)}).mailFromSenderDomain)`,
  siteHostName: `${reference(REF.site, API.web)}.defaultHostName`,
  sitePrincipal: `${reference(REF.site, API.web, true)}.identity.principalId`,
  hubPrincipal: `${reference(REF.hubIdentity, API.identity)}.principalId`,
  // The Event Grid extension's system key exists only once the published code (with its Event Grid trigger) has
  // started; see deployArchiveEventSubscription.
  eventGridExtensionKey: `listKeys(concat(${resourceIdExpr(REF.site)}, '/host/default'), ${lit(API.web)}).systemKeys.eventgrid_extension`,
};

function settingValues(routing: InfraRoutingConfig): SettingValues {
  return {
    storageAccountName: variable(V.storageAccountName),
    iotHubHostName: E.iotHubHostName,
    eventsConnectionString: `concat('Endpoint=', ${E.eventsEndpoint}, ';SharedAccessKeyName=service;SharedAccessKey=', ${E.serviceKey})`,
    eventsPath: E.eventsPath,
    eventsConsumerGroup: param(P.eventsConsumerGroup),
    serviceBusNamespace: E.serviceBusFqdn,
    criticalQueueName: variable(V.criticalQueueName),
    acsEndpoint: `concat('https://', ${E.acsHostName})`,
    emailSenderAddress: `concat('DoNotReply@', ${E.senderDomain})`,
    // The default host name is known before the site exists; the site's own settings cannot reference the site.
    dashboardUrl: `concat('https://', ${variable(V.functionAppName)}, '.azurewebsites.net/api/dashboard')`,
    appInsightsConnectionString: `${reference(REF.appInsights, API.appInsights)}.ConnectionString`,
    containerFor: containerFor(routing),
  };
}

// ---- resources -----------------------------------------------------------------------------------------------

function roleAssignment(options: {
  comment: string;
  scope: ResourceRef;
  role: string;
  principal: ResourceRef;
  principalId: string;
}): ArmResource {
  const name = `guid(${resourceIdExpr(options.scope)}, ${resourceIdExpr(options.principal)}, ${lit(options.role)})`;
  return {
    type: 'Microsoft.Authorization/roleAssignments',
    apiVersion: API.roleAssignment,
    name: expr(name),
    scope: resourceScope(options.scope),
    comments: options.comment,
    properties: {
      roleDefinitionId: expr(`subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ${lit(options.role)})`),
      principalId: expr(options.principalId),
      // Without it a brand-new identity can fail with PrincipalNotFound while Entra ID replicates.
      principalType: 'ServicePrincipal',
    },
    dependsOn: [dependsOnId(options.scope), dependsOnId(options.principal)],
  };
}

function roleAssignmentId(scope: ResourceRef, principal: ResourceRef, role: string): string {
  return extensionDependsOnId(scope, 'Microsoft.Authorization/roleAssignments', `guid(${resourceIdExpr(scope)}, ${resourceIdExpr(principal)}, ${lit(role)})`);
}

function routesOf(routing: InfraRoutingConfig): ArmValue[] {
  return routing.routes.map((route) => ({
    name: route.name,
    source: 'DeviceMessages',
    condition: route.condition,
    endpointNames: [IOT_HUB_ENDPOINT_NAMES[route.endpoint]],
    isEnabled: route.enabled,
  }));
}

function enrichmentsOf(routing: InfraRoutingConfig): ArmValue[] {
  return routing.enrichments.map((enrichment) => ({
    key: enrichment.key,
    value: enrichment.value,
    endpointNames: [...new Set(enrichment.endpoints.map((e) => IOT_HUB_ENDPOINT_NAMES[e]))],
  }));
}

function parameters(plan: AppSettingsPlan, consumerGroup: string): Record<string, ArmParameter> {
  return {
    [P.namePrefix]: {
      type: 'string',
      defaultValue: 'iotrt',
      minLength: 3,
      maxLength: 9,
      metadata: { description: 'Lower-case letters and digits that start every resource name; the storage account name (24 characters at most) is this, "st" and a 13-character hash of the resource group.' },
    },
    [P.location]: {
      type: 'string',
      defaultValue: '[resourceGroup().location]',
      metadata: { description: 'Region for every regional resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.' },
    },
    [P.iotHubSku]: {
      type: 'string',
      defaultValue: 'S1',
      allowedValues: ['S1', 'S2', 'S3'],
      metadata: { description: 'IoT hub tier. Standard only: the free tier allows one custom endpoint and two enrichments, the basic tier has no twins ($twin enrichments) and no cloud-to-device messages.' },
    },
    [P.iotHubCapacity]: { type: 'int', defaultValue: 1, minValue: 1, maxValue: 200, metadata: { description: 'IoT hub units.' } },
    [P.iotHubPartitionCount]: {
      type: 'int',
      defaultValue: 4,
      minValue: 2,
      maxValue: 32,
      metadata: { description: 'Partitions of the built-in endpoint; fixed once the hub exists. Each partition is read by at most one function instance at a time.' },
    },
    [P.iotHubRetentionDays]: {
      type: 'int',
      defaultValue: 1,
      minValue: 1,
      maxValue: 7,
      metadata: { description: 'How long the built-in endpoint keeps messages: how far back a new consumer group starts (host.json initialOffsetOptions fromStart) and how long an outage of the telemetry function may last without losing messages.' },
    },
    [P.eventsConsumerGroup]: {
      type: 'string',
      defaultValue: consumerGroup,
      metadata: { description: 'Consumer group the telemetry function reads the built-in endpoint with; created unless it is $Default. Its own group keeps its checkpoints apart from every other reader.' },
    },
    [P.communicationDataLocation]: {
      type: 'string',
      defaultValue: 'United States',
      metadata: { description: 'Where Communication Services stores e-mail data at rest, e.g. "United States", "Europe", "UK".' },
    },
    [P.existingEmailDomainId]: {
      type: 'string',
      defaultValue: '',
      metadata: { description: 'Resource id of a verified custom e-mail domain (Microsoft.Communication/emailServices/domains) to send from. Empty: an Azure-managed domain (DoNotReply@<guid>.azurecomm.net) is created, which works at once but is throttled harder.' },
    },
    [P.maximumInstanceCount]: {
      type: 'int',
      defaultValue: 100,
      minValue: 40,
      maxValue: 1000,
      metadata: { description: 'Flex Consumption: the most instances the app scales out to.' },
    },
    [P.instanceMemoryMB]: {
      type: 'int',
      defaultValue: 2048,
      allowedValues: [512, 2048, 4096],
      metadata: { description: 'Flex Consumption instance size. 2048 leaves room for archive ingestion streaming large blobs in parallel.' },
    },
    [P.deployArchiveEventSubscription]: {
      type: 'bool',
      defaultValue: false,
      metadata: { description: "Create the Event Grid subscription that delivers the archive container's BlobCreated events to archiveIngest. Leave false on the first deployment: its webhook needs the eventgrid_extension key, which exists only once the published functions have started. Deploy again with true after func azure functionapp publish." },
    },
    ...plan.parameters,
  };
}

function variables(routing: InfraRoutingConfig, archiveFunctionName: string): Record<string, ArmValue> {
  const prefix = variable(V.prefix);
  const suffix = variable(V.suffix);
  const named = (kind: string): string => expr(`format('{0}-${kind}-{1}', ${prefix}, ${suffix})`);
  return {
    [V.prefix]: expr(`toLower(${param(P.namePrefix)})`),
    [V.suffix]: '[uniqueString(resourceGroup().id)]',
    [V.iotHubName]: routing.iotHubName,
    [V.hubIdentityName]: named('iothub-id'),
    [V.storageAccountName]: expr(`take(format('{0}st{1}', ${prefix}, ${suffix}), 24)`),
    [V.serviceBusNamespaceName]: named('sb'),
    [V.criticalQueueName]: CRITICAL_QUEUE_NAME,
    [V.emailServiceName]: named('email'),
    [V.emailDomainName]: 'AzureManagedDomain',
    [V.communicationServiceName]: named('acs'),
    [V.logAnalyticsName]: named('log'),
    [V.appInsightsName]: named('appi'),
    [V.planName]: named('plan'),
    [V.functionAppName]: named('func'),
    [V.archiveContainerName]: archiveContainerOf(routing),
    [V.archiveFunctionName]: archiveFunctionName,
    [V.systemTopicName]: named('archive-events'),
  };
}

function storageResources(containers: readonly string[]): ArmResource[] {
  return [
    {
      type: REF.storage.type,
      apiVersion: API.storage,
      name: resourceName(REF.storage),
      location: expr(param(P.location)),
      sku: { name: 'Standard_LRS' },
      kind: 'StorageV2',
      properties: {
        accessTier: 'Hot',
        minimumTlsVersion: 'TLS1_2',
        supportsHttpsTrafficOnly: true,
        allowBlobPublicAccess: false,
      },
    },
    {
      type: REF.blobService.type,
      apiVersion: API.storage,
      name: resourceName(REF.blobService),
      dependsOn: [dependsOnId(REF.storage)],
    },
    ...containers.map((name) => {
      const ref = containerRef(name);
      return {
        type: ref.type,
        apiVersion: API.storage,
        name: resourceName(ref),
        properties: { publicAccess: 'None' },
        dependsOn: [dependsOnId(REF.blobService)],
      };
    }),
  ];
}

function serviceBusResources(): ArmResource[] {
  return [
    {
      type: REF.serviceBus.type,
      apiVersion: API.serviceBus,
      name: resourceName(REF.serviceBus),
      location: expr(param(P.location)),
      sku: { name: 'Standard', tier: 'Standard' },
      properties: { minimumTlsVersion: '1.2' },
    },
    {
      type: REF.queue.type,
      apiVersion: API.serviceBus,
      name: resourceName(REF.queue),
      comments: 'IoT Hub refuses a Service Bus endpoint with sessions or duplicate detection enabled.',
      properties: {
        requiresSession: false,
        requiresDuplicateDetection: false,
        // Ten deliveries, then the dead-letter queue (iot-routing dlq); redelivery is criticalAlerts' retry.
        maxDeliveryCount: 10,
        lockDuration: 'PT1M',
        defaultMessageTimeToLive: 'P14D',
        deadLetteringOnMessageExpiration: true,
        enablePartitioning: false,
        maxSizeInMegabytes: 1024,
      },
      dependsOn: [dependsOnId(REF.serviceBus)],
    },
  ];
}

function iotHubResources(routing: InfraRoutingConfig, encoding: IotHubStorageEncoding): ArmResource[] {
  const archive = archiveOf(routing);
  const identity = { userAssignedIdentity: expr(resourceIdExpr(REF.hubIdentity)) };
  const blobRole = roleAssignmentId(REF.storage, REF.hubIdentity, ROLES.storageBlobDataContributor);
  const queueRole = roleAssignmentId(REF.serviceBus, REF.hubIdentity, ROLES.serviceBusDataSender);
  return [
    {
      type: REF.hubIdentity.type,
      apiVersion: API.identity,
      name: resourceName(REF.hubIdentity),
      location: expr(param(P.location)),
      comments: 'The hub writes to its endpoints as this identity. User-assigned, so its roles exist before the hub does: IoT Hub checks an identity-based endpoint when the route is saved.',
    },
    roleAssignment({
      comment: 'IoT Hub writes archive blobs to the storage endpoint.',
      scope: REF.storage,
      role: ROLES.storageBlobDataContributor,
      principal: REF.hubIdentity,
      principalId: E.hubPrincipal,
    }),
    roleAssignment({
      comment: 'IoT Hub sends critical messages to the Service Bus endpoint.',
      scope: REF.serviceBus,
      role: ROLES.serviceBusDataSender,
      principal: REF.hubIdentity,
      principalId: E.hubPrincipal,
    }),
    {
      type: REF.iotHub.type,
      apiVersion: API.iotHub,
      name: resourceName(REF.iotHub),
      location: expr(param(P.location)),
      sku: { name: expr(param(P.iotHubSku)), capacity: expr(param(P.iotHubCapacity)) },
      identity: { type: 'UserAssigned', userAssignedIdentities: { [expr(resourceIdExpr(REF.hubIdentity))]: {} } },
      properties: {
        eventHubEndpoints: {
          events: { retentionTimeInDays: expr(param(P.iotHubRetentionDays)), partitionCount: expr(param(P.iotHubPartitionCount)) },
        },
        routing: {
          endpoints: {
            serviceBusQueues: [
              {
                name: IOT_HUB_ENDPOINT_NAMES.criticalQueue,
                authenticationType: 'identityBased',
                identity,
                endpointUri: expr(`concat('sb://', ${E.serviceBusFqdn})`),
                entityPath: expr(variable(V.criticalQueueName)),
                subscriptionId: '[subscription().subscriptionId]',
                resourceGroup: '[resourceGroup().name]',
              },
            ],
            serviceBusTopics: [],
            eventHubs: [],
            storageContainers: [
              {
                name: IOT_HUB_ENDPOINT_NAMES.archive,
                authenticationType: 'identityBased',
                identity,
                endpointUri: expr(E.blobEndpoint),
                containerName: expr(variable(V.archiveContainerName)),
                fileNameFormat: archive.fileNameFormat,
                batchFrequencyInSeconds: archive.batchFrequencySeconds,
                maxChunkSizeInBytes: archive.maxChunkSizeBytes,
                encoding,
                subscriptionId: '[subscription().subscriptionId]',
                resourceGroup: '[resourceGroup().name]',
              },
            ],
          },
          routes: routesOf(routing),
          fallbackRoute: {
            name: '$fallback',
            source: 'DeviceMessages',
            condition: 'true',
            endpointNames: [IOT_HUB_ENDPOINT_NAMES.events],
            isEnabled: routing.fallbackRoute,
          },
          enrichments: enrichmentsOf(routing),
        },
      },
      dependsOn: [dependsOnId(REF.hubIdentity), blobRole, queueRole, dependsOnId(containerRef(archiveContainerOf(routing))), dependsOnId(REF.queue)],
    },
    {
      type: REF.consumerGroup.type,
      apiVersion: API.iotHub,
      name: resourceName(REF.consumerGroup),
      condition: expr(`not(equals(toLower(${param(P.eventsConsumerGroup)}), '$default'))`),
      properties: { name: expr(param(P.eventsConsumerGroup)) },
      dependsOn: [dependsOnId(REF.iotHub)],
    },
  ];
}

function monitoringResources(): ArmResource[] {
  return [
    {
      type: 'Microsoft.Insights/diagnosticSettings',
      apiVersion: API.diagnosticSettings,
      name: 'iothub-to-log-analytics',
      scope: resourceScope(REF.iotHub),
      comments: 'Routes logs say why a message went nowhere: an undefined condition, an unhealthy endpoint, a dropped message.',
      properties: {
        workspaceId: expr(resourceIdExpr(REF.logAnalytics)),
        logs: [
          { category: 'Routes', enabled: true },
          { category: 'Connections', enabled: true },
        ],
        metrics: [{ category: 'AllMetrics', enabled: true }],
      },
      dependsOn: [dependsOnId(REF.iotHub), dependsOnId(REF.logAnalytics)],
    },
    {
      type: REF.logAnalytics.type,
      apiVersion: API.logAnalytics,
      name: resourceName(REF.logAnalytics),
      location: expr(param(P.location)),
      properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 },
    },
    {
      type: REF.appInsights.type,
      apiVersion: API.appInsights,
      name: resourceName(REF.appInsights),
      location: expr(param(P.location)),
      kind: 'web',
      properties: { Application_Type: 'web', WorkspaceResourceId: expr(resourceIdExpr(REF.logAnalytics)) },
      dependsOn: [dependsOnId(REF.logAnalytics)],
    },
  ];
}

function communicationResources(): ArmResource[] {
  return [
    {
      type: REF.emailService.type,
      apiVersion: API.communication,
      name: resourceName(REF.emailService),
      location: 'global',
      properties: { dataLocation: expr(param(P.communicationDataLocation)) },
    },
    {
      type: REF.emailDomain.type,
      apiVersion: API.communication,
      name: resourceName(REF.emailDomain),
      condition: expr(`empty(${param(P.existingEmailDomainId)})`),
      location: 'global',
      comments: 'Azure-managed sender domain: no DNS to verify, so alerts can go out right after deployment.',
      properties: { domainManagement: 'AzureManaged', userEngagementTracking: 'Disabled' },
      dependsOn: [dependsOnId(REF.emailService)],
    },
    {
      type: REF.communication.type,
      apiVersion: API.communication,
      name: resourceName(REF.communication),
      location: 'global',
      properties: {
        dataLocation: expr(param(P.communicationDataLocation)),
        linkedDomains: [expr(`if(empty(${param(P.existingEmailDomainId)}), ${resourceIdExpr(REF.emailDomain)}, ${param(P.existingEmailDomainId)})`)],
      },
      dependsOn: [dependsOnId(REF.emailDomain)],
    },
  ];
}

function functionAppResources(plan: AppSettingsPlan, routing: InfraRoutingConfig): ArmResource[] {
  const site = (role: string, scope: ResourceRef, comment: string): ArmResource =>
    roleAssignment({ comment, scope, role, principal: REF.site, principalId: E.sitePrincipal });
  return [
    {
      type: REF.plan.type,
      apiVersion: API.web,
      name: resourceName(REF.plan),
      location: expr(param(P.location)),
      kind: 'functionapp',
      sku: { name: 'FC1', tier: 'FlexConsumption' },
      properties: { reserved: true },
    },
    {
      type: REF.site.type,
      apiVersion: API.web,
      name: resourceName(REF.site),
      location: expr(param(P.location)),
      kind: 'functionapp,linux',
      identity: { type: 'SystemAssigned' },
      properties: {
        serverFarmId: expr(resourceIdExpr(REF.plan)),
        httpsOnly: true,
        functionAppConfig: {
          deployment: {
            storage: {
              type: 'blobContainer',
              value: expr(`concat(${E.blobEndpoint}, ${lit(DEPLOYMENT_CONTAINER)})`),
              authentication: { type: 'SystemAssignedIdentity' },
            },
          },
          scaleAndConcurrency: {
            maximumInstanceCount: expr(param(P.maximumInstanceCount)),
            instanceMemoryMB: expr(param(P.instanceMemoryMB)),
          },
          runtime: { name: 'node', version: NODE_VERSION },
        },
        siteConfig: {
          minTlsVersion: '1.2',
          ftpsState: 'Disabled',
          appSettings: plan.appSettings.map((s) => ({ name: s.name, value: s.value })),
        },
      },
      dependsOn: [
        dependsOnId(REF.plan),
        dependsOnId(containerRef(DEPLOYMENT_CONTAINER)),
        dependsOnId(REF.appInsights),
        dependsOnId(REF.iotHub),
        dependsOnId(REF.consumerGroup),
        dependsOnId(REF.queue),
        dependsOnId(REF.communication),
        dependsOnId(containerRef(archiveContainerOf(routing))),
      ],
    },
    site(ROLES.storageBlobDataOwner, REF.storage, 'Host storage, the deployment package, our containers and blob leases: AzureWebJobsStorage__accountName.'),
    site(ROLES.storageQueueDataContributor, REF.storage, 'Queues behind AzureWebJobsStorage: the polling blob trigger (ARCHIVE_TRIGGER_SOURCE other than EventGrid) keeps its poison queue there.'),
    site(ROLES.storageTableDataContributor, REF.storage, 'The Functions host writes its diagnostic events to Table storage through AzureWebJobsStorage (AZFD0003 without it).'),
    site(ROLES.serviceBusDataReceiver, REF.queue, 'criticalAlerts receives, completes and abandons messages of the critical queue.'),
    site(ROLES.iotHubDataContributor, REF.iotHub, 'Twin reads for unresolved $twin enrichments and cloud-to-device alert notifications (IOTHUB_SERVICE_CONNECTION__hostName).'),
    site(ROLES.communicationAndEmailServiceOwner, REF.communication, 'Sends alert e-mail through ACS_ENDPOINT with the app identity.'),
  ];
}

function eventGridResources(routing: InfraRoutingConfig): ArmResource[] {
  // The Event Grid trigger's webhook: the host answers 202 once the function returns, 500 when it throws (Event Grid
  // then retries), and never downloads the blob, unlike /runtime/webhooks/blobs (the blob trigger's EventGrid source).
  const webhook = `concat('https://', ${E.siteHostName}, '/runtime/webhooks/eventgrid?functionName=', ${variable(V.archiveFunctionName)}, '&code=', ${E.eventGridExtensionKey})`;
  return [
    {
      type: REF.systemTopic.type,
      apiVersion: API.eventGrid,
      name: resourceName(REF.systemTopic),
      location: expr(param(P.location)),
      properties: { source: expr(resourceIdExpr(REF.storage)), topicType: 'Microsoft.Storage.StorageAccounts' },
      dependsOn: [dependsOnId(REF.storage)],
    },
    {
      type: REF.eventSubscription.type,
      apiVersion: API.eventGrid,
      name: resourceName(REF.eventSubscription),
      condition: expr(param(P.deployArchiveEventSubscription)),
      comments: "Delivers a BlobCreated event to archiveIngest's Event Grid trigger for every blob IoT Hub writes to the archive container.",
      properties: {
        destination: {
          endpointType: 'WebHook',
          // if() keeps listKeys from running on a first deployment, when the key does not exist yet.
          properties: { endpointUrl: expr(`if(${param(P.deployArchiveEventSubscription)}, ${webhook}, '')`), maxEventsPerBatch: 1 },
        },
        filter: {
          includedEventTypes: ['Microsoft.Storage.BlobCreated'],
          subjectBeginsWith: `/blobServices/default/containers/${archiveContainerOf(routing)}/blobs/`,
        },
        eventDeliverySchema: 'EventGridSchema',
        retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
      },
      dependsOn: [dependsOnId(REF.systemTopic), dependsOnId(REF.site), dependsOnId(containerRef(archiveContainerOf(routing)))],
    },
  ];
}

function outputs(): Record<string, ArmOutput> {
  return {
    iotHubName: { type: 'string', value: expr(variable(V.iotHubName)) },
    iotHubHostName: { type: 'string', value: expr(E.iotHubHostName) },
    functionAppName: { type: 'string', value: expr(variable(V.functionAppName)) },
    functionAppUrl: { type: 'string', value: expr(`concat('https://', ${E.siteHostName})`) },
    storageAccountName: { type: 'string', value: expr(variable(V.storageAccountName)) },
    archiveContainer: { type: 'string', value: expr(variable(V.archiveContainerName)) },
    serviceBusNamespace: { type: 'string', value: expr(E.serviceBusFqdn) },
    criticalQueueName: { type: 'string', value: expr(variable(V.criticalQueueName)) },
    acsEndpoint: { type: 'string', value: expr(`concat('https://', ${E.acsHostName})`) },
    emailSenderAddress: { type: 'string', value: expr(`concat('DoNotReply@', ${E.senderDomain})`) },
    appInsightsName: { type: 'string', value: expr(variable(V.appInsightsName)) },
    logAnalyticsWorkspaceId: { type: 'string', value: expr(`${reference(REF.logAnalytics, API.logAnalytics)}.customerId`) },
    archiveEventsTopic: { type: 'string', value: expr(variable(V.systemTopicName)) },
    archiveEventSubscription: {
      type: 'string',
      value: expr(
        `if(${param(P.deployArchiveEventSubscription)}, 'deployed', 'not deployed yet: publish the functions, then deploy again with deployArchiveEventSubscription=true')`,
      ),
    },
  };
}

/**
 * The ARM template for a routing configuration. Throws a ConfigInvalid RoutingError listing every problem
 * ({@link infraProblems}) when IoT Hub or ARM would refuse it.
 */
export function buildArmTemplate(routing: InfraRoutingConfig, options: ArmTemplateOptions = {}): ArmTemplate {
  const problems = infraProblems(routing, options);
  if (problems.length > 0) {
    throw configInvalid('Cannot generate the ARM template', problems);
  }
  const consumerGroup = consumerGroupOf(options);
  const encoding = options.archiveEncoding ?? iotHubEncoding(archiveOf(routing).encoding) ?? 'Avro';
  const plan = planAppSettings(options.settings ?? SETTINGS, settingValues(routing));
  const containers = [...new Set(containersOf(routing, plan).values())];
  return {
    $schema: DEPLOYMENT_TEMPLATE_SCHEMA,
    contentVersion: '1.0.0.0',
    metadata: {
      generator: 'iot-routing infra',
      generatorVersion: APP_VERSION,
      iotHubName: routing.iotHubName,
      description: 'IoT Hub message routing (critical to Service Bus, storage to blobs, the rest to the built-in endpoint) and the Azure Functions app that processes each path. Generated from routing.config.json; regenerate instead of editing.',
    },
    parameters: parameters(plan, consumerGroup),
    variables: variables(routing, options.archiveFunctionName ?? 'archiveIngest'),
    resources: [
      ...storageResources(containers),
      ...serviceBusResources(),
      ...iotHubResources(routing, encoding),
      ...monitoringResources(),
      ...communicationResources(),
      ...functionAppResources(plan, routing),
      ...eventGridResources(routing),
    ],
    outputs: outputs(),
  };
}

/** The app settings plan a template for this configuration carries (for reports and tests). */
export function appSettingsPlanFor(routing: InfraRoutingConfig, options: ArmTemplateOptions = {}): AppSettingsPlan {
  return planAppSettings(options.settings ?? SETTINGS, settingValues(routing));
}
