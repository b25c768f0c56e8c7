import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadRoutingConfig, parseRoutingConfig, SETTINGS, type RoutingConfig, type SettingSpec } from '../../src/lib/config.js';
import { isRoutingError } from '../../src/lib/errors.js';
import { definesConnection } from '../../src/lib/infra/appSettings.js';
import { checkArmTemplate, idOfResource, type ArmResource, type ArmTemplate } from '../../src/lib/infra/arm.js';
import {
  appSettingsPlanFor,
  buildArmTemplate,
  DEFAULT_CONSUMER_GROUP,
  infraProblems,
  IOT_HUB_ENDPOINT_NAMES,
  NODE_VERSION,
  ROLES,
  type InfraRoutingConfig,
} from '../../src/lib/infra/template.js';

/** The app's settings with some replaced or added, as a deployment with other descriptions or extras would have. */
function catalogueWith(extra: SettingSpec[]): SettingSpec[] {
  const names = new Set(extra.map((e) => e.name));
  return [...SETTINGS.filter((s) => !names.has(s.name)), ...extra];
}
import { captureRegistrations, type Registration } from '../support/registrations.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A config exercising every shape: a disabled route, a route to the built-in endpoint, enrichments to each endpoint. */
function richConfig(): RoutingConfig {
  const problems: string[] = [];
  const routing = parseRoutingConfig(
    {
      iotHubName: 'contoso-routing-hub',
      routes: [
        { name: 'CriticalRoute', condition: 'level="critical"', endpoint: 'criticalQueue' },
        { name: 'StorageRoute', condition: 'level="storage"', endpoint: 'archive' },
        { name: 'Diagnostics', condition: '$body.diagnostics = true', endpoint: 'events' },
        { name: 'OldStorage', condition: 'level="archive"', endpoint: 'archive', enabled: false },
      ],
      fallbackRoute: false,
      enrichments: [
        { key: 'iothubname', value: '$iothubname', endpoints: ['events', 'criticalQueue', 'archive'] },
        { key: 'DeviceLocation', value: '$twin.tags.location', endpoints: ['criticalQueue', 'archive', 'archive'] },
        { key: 'customerID', value: '6ce345b8-1e4a-411e-9398-d34587459a3a', endpoints: ['events'] },
      ],
    },
    problems,
  );
  expect(problems).toEqual([]);
  return routing;
}

function withArchive(routing: RoutingConfig, archive: Partial<NonNullable<InfraRoutingConfig['archive']>>): InfraRoutingConfig {
  return {
    ...routing,
    archive: {
      container: null,
      encoding: 'avro',
      fileNameFormat: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}',
      batchFrequencySeconds: 100,
      maxChunkSizeBytes: 104_857_600,
      ...archive,
    },
  };
}

function resources(template: ArmTemplate, type: string): ArmResource[] {
  return template.resources.filter((r) => r.type === type);
}

/** The one resource of a type, seen as the shape a test reads. */
function only<T = ArmResource & Record<string, unknown>>(template: ArmTemplate, type: string): T {
  const found = resources(template, type);
  expect(found, type).toHaveLength(1);
  return found[0] as unknown as T;
}

interface HubRouting {
  endpoints: {
    serviceBusQueues: Array<Record<string, unknown>>;
    storageContainers: Array<Record<string, unknown>>;
    eventHubs: unknown[];
    serviceBusTopics: unknown[];
  };
  routes: Array<{ name: string; source: string; condition: string; endpointNames: string[]; isEnabled: boolean }>;
  fallbackRoute: { name: string; condition: string; endpointNames: string[]; isEnabled: boolean };
  enrichments: Array<{ key: string; value: string; endpointNames: string[] }>;
}

function hubRouting(template: ArmTemplate): HubRouting {
  const hub = only<{ properties: { routing: HubRouting } }>(template, 'Microsoft.Devices/IotHubs');
  return hub.properties.routing;
}

function appSettings(template: ArmTemplate): Array<{ name: string; value: string }> {
  const site = only<{ properties: { siteConfig: { appSettings: Array<{ name: string; value: string }> } } }>(template, 'Microsoft.Web/sites');
  return site.properties.siteConfig.appSettings;
}

function roleAssignments(template: ArmTemplate): Array<{ scope: string; role: string; principal: string; dependsOn: string[] }> {
  return resources(template, 'Microsoft.Authorization/roleAssignments').map((r) => {
    const properties = r['properties'] as { roleDefinitionId: string; principalId: string };
    return {
      scope: String(r['scope']),
      role: /'([0-9a-f-]{36})'\)\]$/.exec(properties.roleDefinitionId)?.[1] ?? '',
      principal: properties.principalId,
      dependsOn: r['dependsOn'] as string[],
    };
  });
}

describe('buildArmTemplate: the IoT hub', () => {
  const routing = richConfig();
  const template = buildArmTemplate(routing);
  const hub = hubRouting(template);

  it('is named exactly as routing.config.json says, because $iothubname checks compare against that name', () => {
    expect(template.variables['iotHubName']).toBe('contoso-routing-hub');
    expect(only(template, 'Microsoft.Devices/IotHubs').name).toBe("[variables('iotHubName')]");
  });

  it('has every route with its condition, its endpoint under the hub\'s name and its enabled state', () => {
    expect(hub.routes).toEqual(
      routing.routes.map((route) => ({
        name: route.name,
        source: 'DeviceMessages',
        condition: route.condition,
        endpointNames: [IOT_HUB_ENDPOINT_NAMES[route.endpoint]],
        isEnabled: route.enabled,
      })),
    );
    expect(hub.routes.find((r) => r.name === 'Diagnostics')?.endpointNames).toEqual(['events']);
    expect(hub.routes.find((r) => r.name === 'OldStorage')?.isEnabled).toBe(false);
  });

  it('has the fallback route to the built-in endpoint, enabled as configured', () => {
    expect(hub.fallbackRoute).toMatchObject({ condition: 'true', endpointNames: ['events'], isEnabled: false });
    expect(hubRouting(buildArmTemplate({ ...routing, fallbackRoute: true })).fallbackRoute.isEnabled).toBe(true);
  });

  it('has every enrichment with its value and its endpoints mapped (each once)', () => {
    expect(hub.enrichments).toEqual([
      { key: 'iothubname', value: '$iothubname', endpointNames: ['events', 'CriticalQueueEndpoint', 'ArchiveStorageEndpoint'] },
      { key: 'DeviceLocation', value: '$twin.tags.location', endpointNames: ['CriticalQueueEndpoint', 'ArchiveStorageEndpoint'] },
      { key: 'customerID', value: '6ce345b8-1e4a-411e-9398-d34587459a3a', endpointNames: ['events'] },
    ]);
  });

  it('names only endpoints it defines', () => {
    const defined = new Set(['events', ...hub.endpoints.serviceBusQueues.map((e) => e['name']), ...hub.endpoints.storageContainers.map((e) => e['name'])]);
    const named = [...hub.routes, hub.fallbackRoute, ...hub.enrichments].flatMap((r) => r.endpointNames);
    for (const name of named) expect(defined, name).toContain(name);
    expect(defined).toEqual(new Set(Object.values(IOT_HUB_ENDPOINT_NAMES)));
  });

  it('writes to the Service Bus queue and the archive container with its user-assigned identity', () => {
    const [queue] = hub.endpoints.serviceBusQueues;
    expect(queue).toMatchObject({ name: 'CriticalQueueEndpoint', authenticationType: 'identityBased', entityPath: "[variables('criticalQueueName')]" });
    expect(String(queue?.['endpointUri'])).toMatch(/^\[concat\('sb:\/\/', .*serviceBusEndpoint/);
    expect(queue).not.toHaveProperty('connectionString');
    const [storage] = hub.endpoints.storageContainers;
    expect(storage).toMatchObject({ name: 'ArchiveStorageEndpoint', authenticationType: 'identityBased', containerName: "[variables('archiveContainerName')]" });
    expect(storage).not.toHaveProperty('connectionString');
    const identity = "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('hubIdentityName'))]";
    expect(queue?.['identity']).toEqual({ userAssignedIdentity: identity });
    expect(only(template, 'Microsoft.Devices/IotHubs')['identity']).toEqual({ type: 'UserAssigned', userAssignedIdentities: { [identity]: {} } });
  });

  it('gets its data roles before it exists, so that saving identity-based routes succeeds', () => {
    const iotHub = only(template, 'Microsoft.Devices/IotHubs');
    const hubRoles = roleAssignments(template).filter((r) => r.principal.includes('hubIdentityName'));
    expect(hubRoles.map((r) => [r.role, r.scope])).toEqual([
      [ROLES.storageBlobDataContributor, "[format('Microsoft.Storage/storageAccounts/{0}', variables('storageAccountName'))]"],
      [ROLES.serviceBusDataSender, "[format('Microsoft.ServiceBus/namespaces/{0}', variables('serviceBusNamespaceName'))]"],
    ]);
    const ids = resources(template, 'Microsoft.Authorization/roleAssignments')
      .filter((r) => (r['properties'] as { principalId: string }).principalId.includes('hubIdentityName'))
      .map(idOfResource);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(iotHub['dependsOn']).toContain(id);
  });

  it('configures the storage endpoint from the archive section: encoding, file name format, batch frequency, chunk size', () => {
    const archive = withArchive(routing, {
      container: 'telemetry-archive',
      encoding: 'json',
      fileNameFormat: 'data/{iothub}/{YYYY}-{MM}-{DD}/{HH}{mm}-{partition}.json',
      batchFrequencySeconds: 60,
      maxChunkSizeBytes: 524_288_000,
    });
    const built = buildArmTemplate(archive);
    expect(hubRouting(built).endpoints.storageContainers[0]).toMatchObject({
      encoding: 'JSON',
      fileNameFormat: 'data/{iothub}/{YYYY}-{MM}-{DD}/{HH}{mm}-{partition}.json',
      batchFrequencyInSeconds: 60,
      maxChunkSizeInBytes: 524_288_000,
    });
    expect(built.variables['archiveContainerName']).toBe('telemetry-archive');
    expect(hubRouting(buildArmTemplate(withArchive(routing, { encoding: 'AVRO' }))).endpoints.storageContainers[0]?.['encoding']).toBe('Avro');
    expect(hubRouting(buildArmTemplate(withArchive(routing, { encoding: 'avrodeflate' }))).endpoints.storageContainers[0]?.['encoding']).toBe('AvroDeflate');
    expect(hubRouting(buildArmTemplate(routing, { archiveEncoding: 'AvroDeflate' })).endpoints.storageContainers[0]?.['encoding']).toBe('AvroDeflate');
  });

  it('uses the archive defaults when routing.config.json has no archive section', () => {
    expect(hubRouting(template).endpoints.storageContainers[0]).toMatchObject({
      encoding: 'Avro',
      fileNameFormat: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}',
      batchFrequencyInSeconds: 100,
      maxChunkSizeInBytes: 104_857_600,
    });
    expect(template.variables['archiveContainerName']).toBe('archive');
  });

  it('creates the consumer group the telemetry function reads with, and hands its name to the app', () => {
    const group = only(template, 'Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups');
    expect(group.name).toBe("[format('{0}/{1}/{2}', variables('iotHubName'), 'events', parameters('eventsConsumerGroup'))]");
    expect(group['condition']).toBe("[not(equals(toLower(parameters('eventsConsumerGroup')), '$default'))]");
    expect(template.parameters['eventsConsumerGroup']?.defaultValue).toBe(DEFAULT_CONSUMER_GROUP);
    const custom = buildArmTemplate(routing, { eventsConsumerGroup: 'telemetry-reports' });
    expect(custom.parameters['eventsConsumerGroup']?.defaultValue).toBe('telemetry-reports');
    const catalogue = catalogueWith([
      { name: 'IOTHUB_EVENTS_CONSUMER_GROUP', description: 'consumer group', example: 'reports-reader', secret: false },
    ]);
    const fromSettings = buildArmTemplate(routing, { settings: catalogue });
    expect(fromSettings.parameters['eventsConsumerGroup']?.defaultValue).toBe('reports-reader');
    expect(appSettings(fromSettings)).toContainEqual({ name: 'IOTHUB_EVENTS_CONSUMER_GROUP', value: "[parameters('eventsConsumerGroup')]" });
  });
});

describe('buildArmTemplate: around the hub', () => {
  const template = buildArmTemplate(richConfig());

  it('creates a Service Bus queue IoT Hub accepts as an endpoint: no sessions, no duplicate detection', () => {
    const queue = only(template, 'Microsoft.ServiceBus/namespaces/queues');
    expect(queue['properties']).toMatchObject({ requiresSession: false, requiresDuplicateDetection: false, maxDeliveryCount: 10 });
  });

  it('creates every container of the storage layout, the archive and the deployment package', () => {
    const names = resources(template, 'Microsoft.Storage/storageAccounts/blobServices/containers').map((r) => /'([a-z0-9-]+)'\)\]$/.exec(r.name)?.[1]);
    expect(names).toEqual(['archive', 'archive-index', 'reports', 'alerts', 'quarantine', 'app-package']);
  });

  it('creates Communication Services e-mail with an Azure-managed domain linked to it, unless a domain is given', () => {
    const email = only(template, 'Microsoft.Communication/emailServices');
    expect(email['location']).toBe('global');
    const domain = only(template, 'Microsoft.Communication/emailServices/domains');
    expect(domain['properties']).toMatchObject({ domainManagement: 'AzureManaged' });
    expect(domain['condition']).toBe("[empty(parameters('existingEmailDomainId'))]");
    const acs = only<{ properties: { linkedDomains: string[] } }>(template, 'Microsoft.Communication/communicationServices');
    expect(acs.properties.linkedDomains).toEqual([
      "[if(empty(parameters('existingEmailDomainId')), resourceId('Microsoft.Communication/emailServices/domains', variables('emailServiceName'), variables('emailDomainName')), parameters('existingEmailDomainId'))]",
    ]);
  });

  it('runs the functions on Flex Consumption, Node 22, with a system-assigned identity', () => {
    const site = only<
      Record<string, unknown> & { properties: { functionAppConfig: { runtime: unknown; deployment: { storage: unknown } }; httpsOnly: boolean } }
    >(template, 'Microsoft.Web/sites');
    expect(NODE_VERSION).toBe('22');
    expect(site['kind']).toBe('functionapp,linux');
    expect(site['identity']).toEqual({ type: 'SystemAssigned' });
    expect(site.properties.httpsOnly).toBe(true);
    expect(site.properties.functionAppConfig.runtime).toEqual({ name: 'node', version: '22' });
    expect(site.properties.functionAppConfig.deployment.storage).toMatchObject({ type: 'blobContainer', authentication: { type: 'SystemAssignedIdentity' } });
    expect(only(template, 'Microsoft.Web/serverfarms')['sku']).toEqual({ name: 'FC1', tier: 'FlexConsumption' });
  });

  it('gives the app identity the data roles its connections need, and no management role', () => {
    const appRoles = roleAssignments(template).filter((r) => r.principal.includes("'Microsoft.Web/sites'"));
    expect(appRoles.map((r) => r.role).sort()).toEqual(
      [
        ROLES.storageBlobDataOwner,
        ROLES.storageQueueDataContributor,
        ROLES.storageTableDataContributor,
        ROLES.serviceBusDataReceiver,
        ROLES.iotHubDataContributor,
        ROLES.communicationAndEmailServiceOwner,
      ].sort(),
    );
    expect(appRoles.find((r) => r.role === ROLES.serviceBusDataReceiver)?.scope).toBe(
      "[format('Microsoft.ServiceBus/namespaces/{0}/queues/{1}', variables('serviceBusNamespaceName'), variables('criticalQueueName'))]",
    );
  });

  it("delivers the archive container's BlobCreated events to archiveIngest's Event Grid webhook, in a second deployment", () => {
    only(template, 'Microsoft.EventGrid/systemTopics');
    const subscription = only<
      Record<string, unknown> & {
        properties: { destination: { endpointType: string; properties: { endpointUrl: string; maxEventsPerBatch: number } }; filter: unknown; eventDeliverySchema: string };
      }
    >(template, 'Microsoft.EventGrid/systemTopics/eventSubscriptions');
    expect(subscription['condition']).toBe("[parameters('deployArchiveEventSubscription')]");
    expect(template.parameters['deployArchiveEventSubscription']?.defaultValue).toBe(false);
    // BlobCreated only, and only the archive container: the function ignores anything else, but should not see it.
    expect(subscription.properties.filter).toEqual({
      includedEventTypes: ['Microsoft.Storage.BlobCreated'],
      subjectBeginsWith: '/blobServices/default/containers/archive/blobs/',
    });
    expect(subscription.properties.eventDeliverySchema).toBe('EventGridSchema');
    expect(subscription.properties.destination.endpointType).toBe('WebHook');
    expect(subscription.properties.destination.properties.maxEventsPerBatch).toBe(1);
    const url = subscription.properties.destination.properties.endpointUrl;
    // The Event Grid trigger's webhook with the Event Grid extension's key: never the blob extension's
    // /runtime/webhooks/blobs, whose blob trigger makes the host download every blob.
    expect(url).toBe(
      "[if(parameters('deployArchiveEventSubscription'), concat('https://', reference(resourceId('Microsoft.Web/sites', variables('functionAppName')), '2024-04-01').defaultHostName, " +
        "'/runtime/webhooks/eventgrid?functionName=', variables('archiveFunctionName'), '&code=', " +
        "listKeys(concat(resourceId('Microsoft.Web/sites', variables('functionAppName')), '/host/default'), '2024-04-01').systemKeys.eventgrid_extension), '')]",
    );
    expect(template.variables['archiveFunctionName']).toBe('archiveIngest');
  });

  it('sends the hub\'s Routes and Connections logs to Log Analytics, where undelivered messages are explained', () => {
    const diagnostics = only<{ scope: string; properties: { logs: Array<{ category: string }> } }>(template, 'Microsoft.Insights/diagnosticSettings');
    expect(diagnostics.scope).toBe("[format('Microsoft.Devices/IotHubs/{0}', variables('iotHubName'))]");
    expect(diagnostics.properties.logs.map((l) => l.category)).toEqual(['Routes', 'Connections']);
  });

  it('never writes a secret into the template: keys are read by listKeys at deployment time', () => {
    const text = JSON.stringify(template);
    expect(text).not.toMatch(/AccountKey=/);
    for (const setting of appSettings(template).filter((s) => s.value.includes('SharedAccessKey'))) {
      expect(setting.value).toMatch(/^\[concat\(.*listKeys\(/);
    }
    expect(JSON.stringify(template.outputs)).not.toContain('listKeys');
  });

  it('is structurally sound: types, api versions, names, dependencies, parameters and variables', () => {
    expect(checkArmTemplate(template)).toEqual([]);
    expect(checkArmTemplate(JSON.parse(JSON.stringify(template)))).toEqual([]);
  });

  it('is deterministic, with a stable key order', () => {
    expect(JSON.stringify(buildArmTemplate(richConfig()))).toBe(JSON.stringify(template));
    expect(Object.keys(template)).toEqual(['$schema', 'contentVersion', 'metadata', 'parameters', 'variables', 'resources', 'outputs']);
  });
});

describe('buildArmTemplate: app settings', () => {
  const routing = richConfig();

  it('defines every setting of the catalogue, as itself or in its identity-based form', () => {
    const template = buildArmTemplate(routing);
    const settings = appSettings(template);
    const plan = appSettingsPlanFor(routing);
    for (const spec of SETTINGS) {
      const provision = plan.provisions.find((p) => p.setting === spec.name);
      expect(provision, spec.name).toBeDefined();
      if (provision?.form === 'platform') continue;
      if (provision?.form === 'alternative') {
        expect(definesConnection(settings, provision.coveredBy), `${spec.name} via ${provision.coveredBy}`).toBe(true);
        continue;
      }
      expect(definesConnection(settings, spec.name), spec.name).toBe(true);
    }
    expect(settings.map((s) => s.name)).toEqual([...settings.map((s) => s.name)].sort());
    expect(settings.find((s) => s.name === 'AzureWebJobsStorage__accountName')?.value).toBe("[variables('storageAccountName')]");
    expect(settings.map((s) => s.name)).not.toContain('AzureWebJobsStorage');
    expect(settings.map((s) => s.name)).toContain('APPLICATIONINSIGHTS_CONNECTION_STRING');
  });

  it('uses identity-based connections where the bindings take them, and a listKeys connection string for the built-in endpoint', () => {
    const catalogue = catalogueWith([
      { name: 'IOTHUB_EVENTS_CONNECTION', description: 'built-in endpoint', example: 'Endpoint=sb://<ns>/;SharedAccessKeyName=service;SharedAccessKey=<key>', secret: true },
      { name: 'IOTHUB_EVENTS_NAME', description: 'event hub-compatible name', example: '<hub>', secret: false },
      { name: 'SERVICEBUS_CONNECTION', description: 'service bus', example: 'Endpoint=sb://<ns>.servicebus.windows.net/;...', secret: true },
      { name: 'CRITICAL_QUEUE_NAME', description: 'queue', example: 'critical', secret: false },
      { name: 'ACS_CONNECTION_STRING', description: 'acs', example: 'endpoint=https://<acs>;accesskey=<key>', secret: true },
      { name: 'ACS_ENDPOINT', description: 'acs endpoint', example: 'https://<acs>.communication.azure.com', secret: false },
      { name: 'ARCHIVE_TRIGGER_SOURCE', description: 'source', example: 'LogsAndContainerScan', secret: false },
      { name: 'DASHBOARD_URL', description: 'dashboard', example: 'http://localhost:7071/api/dashboard', secret: false },
      { name: 'FUNCTIONS_WORKER_RUNTIME', description: 'worker', example: 'node', secret: false },
    ]);
    const settings = Object.fromEntries(appSettings(buildArmTemplate(routing, { settings: catalogue })).map((s) => [s.name, s.value]));
    expect(settings['SERVICEBUS_CONNECTION__fullyQualifiedNamespace']).toContain('serviceBusEndpoint');
    expect(settings['SERVICEBUS_CONNECTION']).toBeUndefined();
    expect(settings['IOTHUB_SERVICE_CONNECTION__hostName']).toContain('.hostName');
    expect(settings['IOTHUB_EVENTS_CONNECTION']).toBe(
      "[concat('Endpoint=', reference(resourceId('Microsoft.Devices/IotHubs', variables('iotHubName')), '2023-06-30').eventHubEndpoints.events.endpoint, ';SharedAccessKeyName=service;SharedAccessKey=', listKeys(resourceId('Microsoft.Devices/IotHubs/IotHubKeys', variables('iotHubName'), 'service'), '2023-06-30').primaryKey)]",
    );
    expect(settings['IOTHUB_EVENTS_NAME']).toContain('eventHubEndpoints.events.path');
    expect(settings['CRITICAL_QUEUE_NAME']).toBe("[variables('criticalQueueName')]");
    expect(settings['ACS_ENDPOINT']).toBe(
      "[concat('https://', reference(resourceId('Microsoft.Communication/communicationServices', variables('communicationServiceName')), '2023-04-01').hostName)]",
    );
    expect(settings['ACS_CONNECTION_STRING']).toBeUndefined();
    expect(settings['ARCHIVE_TRIGGER_SOURCE']).toBe('EventGrid');
    expect(settings['DASHBOARD_URL']).toContain("'.azurewebsites.net/api/dashboard'");
    // Flex Consumption takes the runtime from functionAppConfig and rejects the setting.
    expect(settings['FUNCTIONS_WORKER_RUNTIME']).toBeUndefined();
  });

  it('turns settings it does not know into deployment parameters, and *_CONTAINER settings into containers', () => {
    const catalogue = catalogueWith([
      { name: 'REPORTS_CONTAINER', description: 'reports', example: 'reports', secret: false },
      { name: 'EXPORTS_CONTAINER', description: 'exports', example: 'exports', secret: false },
      { name: 'FINALIZE_SCHEDULE', description: 'NCRONTAB of the finalize timer', example: '0 */5 * * * *', secret: false },
      { name: 'PARTNER_API_KEY', description: 'partner key', example: '<key>', secret: true },
      { name: 'ALERT_RECIPIENTS', description: 'comma-separated addresses', example: 'ops@example.com', secret: false },
      { name: 'ALERTS_SENDER_ADDRESS', description: 'from', example: 'DoNotReply@<domain>', secret: false },
      { name: 'ALERT_SENDER', description: 'acs or outbox', example: 'acs', secret: false },
    ]);
    const template = buildArmTemplate(routing, { settings: catalogue });
    const settings = Object.fromEntries(appSettings(template).map((s) => [s.name, s.value]));
    expect(settings['EXPORTS_CONTAINER']).toBe('exports');
    expect(settings['REPORTS_CONTAINER']).toBe('reports');
    expect(resources(template, 'Microsoft.Storage/storageAccounts/blobServices/containers').map((r) => r.name)).toContainEqual(
      "[format('{0}/{1}/{2}', variables('storageAccountName'), 'default', 'exports')]",
    );
    expect(template.parameters['appSetting_FINALIZE_SCHEDULE']).toMatchObject({ type: 'string', defaultValue: '0 */5 * * * *' });
    expect(settings['FINALIZE_SCHEDULE']).toBe("[parameters('appSetting_FINALIZE_SCHEDULE')]");
    expect(template.parameters['appSetting_PARTNER_API_KEY']).toMatchObject({ type: 'securestring' });
    expect(template.parameters['appSetting_PARTNER_API_KEY']).not.toHaveProperty('defaultValue');
    expect(template.parameters['alertRecipients']).toMatchObject({ type: 'string' });
    expect(settings['ALERT_RECIPIENTS']).toBe("[parameters('alertRecipients')]");
    expect(settings['ALERT_SENDER']).toBe('acs');
    expect(settings['ALERTS_SENDER_ADDRESS']).toMatch(/^\[concat\('DoNotReply@', if\(empty\(parameters\('existingEmailDomainId'\)\)/);
    expect(checkArmTemplate(template)).toEqual([]);
  });

  describe('the registered functions', () => {
    let registrations: Registration[];
    let settings: Array<{ name: string; value: string }>;
    let template: ArmTemplate;
    beforeAll(async () => {
      template = buildArmTemplate(await loadRoutingConfig(path.join(root, 'routing.config.json')));
      settings = appSettings(template);
      // Registrations may read settings when they load (the archive trigger's source does): load them as in Azure.
      for (const { name, value } of settings) if (!value.startsWith('[')) vi.stubEnv(name, value);
      registrations = (await captureRegistrations()).registrations;
    });
    afterAll(() => {
      vi.unstubAllEnvs();
    });

    function placeholders(value: unknown): string[] {
      if (typeof value === 'string') return [...value.matchAll(/%([^%]+)%/g)].map((m) => m[1] ?? '');
      if (Array.isArray(value)) return value.flatMap(placeholders);
      if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(placeholders);
      return [];
    }

    it('find every connection and %SETTING% they name among the app settings', () => {
      const missing = (what: string): string => `${what} is not among the template's app settings: add it to SETTINGS in src/lib/config.ts`;
      for (const { name, options } of registrations) {
        const { handler: _handler, ...rest } = options;
        if (typeof rest['connection'] === 'string') {
          expect(definesConnection(settings, rest['connection']), missing(`${name}: connection ${rest['connection']}`)).toBe(true);
        }
        for (const setting of placeholders(rest)) {
          expect(settings.map((s) => s.name), missing(`${name}: %${setting}%`)).toContain(setting);
        }
      }
    });

    it('have exactly one archive ingest: the Event Grid trigger the subscription calls, and no blob trigger', () => {
      expect(settings.find((s) => s.name === 'ARCHIVE_TRIGGER_SOURCE')?.value).toBe('EventGrid');
      expect(registrations.filter((r) => r.kind === 'storageBlob').map((r) => r.name)).toEqual([]);
      expect(registrations.filter((r) => r.kind === 'eventGrid').map((r) => r.name)).toEqual([template.variables['archiveFunctionName']]);
    });
  });
});

describe('buildArmTemplate: what IoT Hub would refuse', () => {
  it('reports every problem at once', () => {
    const enrichment = (i: number): InfraRoutingConfig['enrichments'][number] => ({ key: `k${i}`, value: 'v', endpoints: ['archive'] });
    const routing: InfraRoutingConfig = {
      iotHubName: 'x',
      routes: [
        { name: 'has space', condition: 'true', endpoint: 'archive', enabled: true },
        { name: 'Twice', condition: 'true', endpoint: 'archive', enabled: true },
        { name: 'twice', condition: ' ', endpoint: 'events', enabled: true },
      ],
      fallbackRoute: true,
      enrichments: [...Array.from({ length: 10 }, (_, i) => enrichment(i)), { key: 'K1', value: 'v', endpoints: [] }],
      archive: {
        container: 'Bad_Name',
        encoding: 'parquet',
        fileNameFormat: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}',
        batchFrequencySeconds: 30,
        maxChunkSizeBytes: 1_048_576,
      },
    };
    let message = '';
    try {
      buildArmTemplate(routing, { eventsConsumerGroup: '-bad' });
    } catch (error) {
      expect(isRoutingError(error) && error.code === 'ConfigInvalid').toBe(true);
      message = (error as Error).message;
    }
    const problems = infraProblems(routing, { eventsConsumerGroup: '-bad' });
    expect(message).toContain(`(${problems.length} problems)`);
    for (const expected of [
      'iotHubName: "x" is not a valid IoT hub name',
      'routes[0].name: "has space" is not accepted by IoT Hub',
      'routes[2].name: "twice" is used by another route',
      'routes[2].condition: empty',
      'enrichments: IoT Hub takes at most 10 enrichments',
      'enrichments[10].key: "K1" is stamped by another enrichment too',
      'enrichments[10].endpoints: IoT Hub needs at least one endpoint',
      'archive.batchFrequencySeconds: IoT Hub takes 60-720, got 30',
      'archive.maxChunkSizeBytes: IoT Hub takes 10485760-524288000',
      'archive.fileNameFormat:',
      'archive.encoding: "parquet"',
      'archive.container: "Bad_Name" is not a valid container name',
      'eventsConsumerGroup: "-bad"',
    ]) {
      expect(message).toContain(expected);
    }
  });

  it('refuses the local runtime\'s default hub name and containers two settings share', () => {
    const routing = { ...richConfig(), iotHubName: 'local-hub' };
    const catalogue: SettingSpec[] = [...SETTINGS, { name: 'EXPORTS_CONTAINER', description: 'exports', example: 'quarantine', secret: false }];
    const problems = infraProblems(routing, { settings: catalogue });
    expect(problems).toEqual([
      expect.stringContaining('iotHubName: set it to the name of the hub to create'),
      'EXPORTS_CONTAINER: container "quarantine" is also used by QUARANTINE_CONTAINER; each needs its own',
    ]);
  });

  it('accepts the routing.config.json shipped with the app', async () => {
    const routing = await loadRoutingConfig(path.join(root, 'routing.config.json'));
    expect(infraProblems(routing)).toEqual([]);
    expect(checkArmTemplate(buildArmTemplate(routing))).toEqual([]);
  });
});
