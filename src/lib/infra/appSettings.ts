/**
 * Which app settings the Function App gets, derived from the SETTINGS catalogue in config.ts so that a setting the
 * functions read cannot be missing from a deployment: every catalogue entry is provided one way or another, and an
 * entry this module does not recognise becomes a template parameter (a deployment then has to supply it) instead of
 * being dropped.
 *
 * Connections take the identity-based form wherever the binding and SDK accept it (`NAME__accountName`,
 * `NAME__fullyQualifiedNamespace`, `NAME__hostName`, an ACS endpoint), signed in as the site's system-assigned
 * identity (docs/deployment.md says how to switch to a user-assigned one). The one exception is IoT Hub's built-in
 * Event Hub-compatible endpoint, which accepts only shared access signatures: it gets a connection string built at
 * deployment time from the hub's `service` policy (listKeys), never written anywhere else.
 */
import type { SettingSpec } from '../config.js';
import { expr, literal, param, type ArmParameter } from './arm.js';

/** How one catalogue entry is provided in Azure. */
export type SettingProvision =
  /** App settings written on the Function App (`entries` holds the NAME or NAME__property settings). */
  | { setting: string; form: 'value' | 'identity' | 'connectionString'; entries: AppSettingEntry[] }
  /** The value comes from a template parameter the deployment supplies. */
  | { setting: string; form: 'parameter'; entries: AppSettingEntry[]; parameter: string }
  /** Set by the platform from the site's configuration (Flex Consumption rejects these as app settings). */
  | { setting: string; form: 'platform'; entries: []; note: string }
  /** An alternative to another setting that the template provides instead (a connection string vs an endpoint). */
  | { setting: string; form: 'alternative'; entries: []; coveredBy: string };

export interface AppSettingEntry {
  name: string;
  /** As written into the template: a literal, or `[expression]`. */
  value: string;
}

/** Template expressions for the values settings take; the template builder supplies them. */
export interface SettingValues {
  storageAccountName: string;
  iotHubHostName: string;
  eventsConnectionString: string;
  eventsPath: string;
  eventsConsumerGroup: string;
  serviceBusNamespace: string;
  criticalQueueName: string;
  acsEndpoint: string;
  emailSenderAddress: string;
  dashboardUrl: string;
  appInsightsConnectionString: string;
  /** The container each `*_CONTAINER` setting names (literal names). */
  containerFor: (setting: string, spec: SettingSpec | undefined) => string;
}

export interface AppSettingsPlan {
  provisions: SettingProvision[];
  /** Every app setting written on the site, sorted by name. */
  appSettings: AppSettingEntry[];
  /** Parameters the provisions need (unknown settings, alert recipients). */
  parameters: Record<string, ArmParameter>;
  /** Containers the catalogue's `*_CONTAINER` settings name, by setting. */
  containers: Record<string, string>;
}

/** The parameter holding ALERT_RECIPIENTS-like settings, when the catalogue has one. */
export const ALERT_RECIPIENTS_PARAMETER = 'alertRecipients';

/** Settings the Functions host needs in Azure whether or not the catalogue names them. */
const ALWAYS = ['APPLICATIONINSIGHTS_CONNECTION_STRING'] as const;

const RECIPIENTS = /RECIPIENTS$/;
/** A sender e-mail address setting (not ALERT_SENDER, which chooses acs or outbox). */
const SENDER_ADDRESS = /^(ACS|ALERTS?|EMAIL)_(FROM|FROM_ADDRESS|SENDER_ADDRESS)$/;

function provide(setting: string, form: 'value' | 'identity' | 'connectionString', entries: Record<string, string>): SettingProvision {
  return { setting, form, entries: Object.entries(entries).map(([name, value]) => ({ name, value })) };
}

type Known = (values: SettingValues, spec: SettingSpec | undefined) => SettingProvision;

const KNOWN: Readonly<Record<string, Known>> = {
  // Host storage and our containers; blob trigger, Event Hubs checkpoints and timers all accept accountName.
  AzureWebJobsStorage: (v) => provide('AzureWebJobsStorage', 'identity', { AzureWebJobsStorage__accountName: expr(v.storageAccountName) }),
  // Twin reads and cloud-to-device notifications sign in with the app's identity ("IoT Hub Data Contributor").
  IOTHUB_SERVICE_CONNECTION: (v) =>
    provide('IOTHUB_SERVICE_CONNECTION', 'identity', { IOTHUB_SERVICE_CONNECTION__hostName: expr(v.iotHubHostName) }),
  // The built-in endpoint takes no Microsoft Entra tokens; see the module comment.
  IOTHUB_EVENTS_CONNECTION: (v) =>
    provide('IOTHUB_EVENTS_CONNECTION', 'connectionString', { IOTHUB_EVENTS_CONNECTION: expr(v.eventsConnectionString) }),
  IOTHUB_EVENTS_NAME: (v) => provide('IOTHUB_EVENTS_NAME', 'value', { IOTHUB_EVENTS_NAME: expr(v.eventsPath) }),
  IOTHUB_EVENTS_CONSUMER_GROUP: (v) =>
    provide('IOTHUB_EVENTS_CONSUMER_GROUP', 'value', { IOTHUB_EVENTS_CONSUMER_GROUP: expr(v.eventsConsumerGroup) }),
  SERVICEBUS_CONNECTION: (v) =>
    provide('SERVICEBUS_CONNECTION', 'identity', { SERVICEBUS_CONNECTION__fullyQualifiedNamespace: expr(v.serviceBusNamespace) }),
  CRITICAL_QUEUE_NAME: (v) => provide('CRITICAL_QUEUE_NAME', 'value', { CRITICAL_QUEUE_NAME: expr(v.criticalQueueName) }),
  ACS_ENDPOINT: (v) => provide('ACS_ENDPOINT', 'value', { ACS_ENDPOINT: expr(v.acsEndpoint) }),
  ACS_CONNECTION_STRING: () => ({ setting: 'ACS_CONNECTION_STRING', form: 'alternative', entries: [], coveredBy: 'ACS_ENDPOINT' }),
  // The Functions convention for an identity-based ACS connection, should the catalogue name it that way.
  ACS_CONNECTION: (v) => provide('ACS_CONNECTION', 'identity', { ACS_CONNECTION__endpoint: expr(v.acsEndpoint) }),
  // archiveIngest registers its Event Grid trigger (no blob trigger, so the host never downloads a blob); the template
  // creates the subscription. Flex Consumption would not run the polling blob trigger anyway.
  ARCHIVE_TRIGGER_SOURCE: () => provide('ARCHIVE_TRIGGER_SOURCE', 'value', { ARCHIVE_TRIGGER_SOURCE: 'EventGrid' }),
  // In Azure alerts go out through Communication Services, whatever alerts.sender says for local runs.
  ALERT_SENDER: () => provide('ALERT_SENDER', 'value', { ALERT_SENDER: 'acs' }),
  DASHBOARD_URL: (v) => provide('DASHBOARD_URL', 'value', { DASHBOARD_URL: expr(v.dashboardUrl) }),
  ROUTING_CONFIG_PATH: () => provide('ROUTING_CONFIG_PATH', 'value', { ROUTING_CONFIG_PATH: 'routing.config.json' }),
  APPLICATIONINSIGHTS_CONNECTION_STRING: (v) =>
    provide('APPLICATIONINSIGHTS_CONNECTION_STRING', 'value', { APPLICATIONINSIGHTS_CONNECTION_STRING: expr(v.appInsightsConnectionString) }),
  FUNCTIONS_WORKER_RUNTIME: () => ({
    setting: 'FUNCTIONS_WORKER_RUNTIME',
    form: 'platform',
    entries: [],
    note: 'functionAppConfig.runtime (node 22); Flex Consumption rejects it as an app setting',
  }),
  FUNCTIONS_EXTENSION_VERSION: () => ({
    setting: 'FUNCTIONS_EXTENSION_VERSION',
    form: 'platform',
    entries: [],
    note: 'set by Flex Consumption itself (~4)',
  }),
};

function parameterName(setting: string): string {
  return `appSetting_${setting}`;
}

function provisionFor(
  name: string,
  spec: SettingSpec | undefined,
  values: SettingValues,
  parameters: Record<string, ArmParameter>,
  containers: Record<string, string>,
): SettingProvision {
  const known = KNOWN[name];
  if (known !== undefined) return known(values, spec);
  if (name.endsWith('_CONTAINER')) {
    const container = values.containerFor(name, spec);
    containers[name] = container;
    return provide(name, 'value', { [name]: literal(container) });
  }
  if (SENDER_ADDRESS.test(name)) return provide(name, 'value', { [name]: expr(values.emailSenderAddress) });
  if (RECIPIENTS.test(name)) {
    parameters[ALERT_RECIPIENTS_PARAMETER] = {
      type: 'string',
      metadata: { description: `Who receives alert e-mails (${name}): ${spec?.description ?? 'comma-separated addresses'}` },
    };
    return { setting: name, form: 'parameter', entries: [{ name, value: expr(param(ALERT_RECIPIENTS_PARAMETER)) }], parameter: ALERT_RECIPIENTS_PARAMETER };
  }
  // Unknown to this module: ask the deployment for it rather than deploy an app that lacks it.
  const parameter = parameterName(name);
  const placeholder = spec === undefined || spec.secret || /[<>]/.test(spec.example) || spec.example === '';
  parameters[parameter] = {
    type: spec?.secret === true ? 'securestring' : 'string',
    ...(placeholder ? {} : { defaultValue: literal(spec.example) }),
    metadata: { description: `App setting ${name}: ${spec?.description ?? 'read by the functions'}` },
  };
  return { setting: name, form: 'parameter', entries: [{ name, value: expr(param(parameter)) }], parameter };
}

/**
 * Plans the app settings for a catalogue. Deterministic: provisions follow the catalogue's order (then the settings
 * the host always needs), app settings are sorted by name, parameters by the order they were first needed.
 */
export function planAppSettings(settings: readonly SettingSpec[], values: SettingValues): AppSettingsPlan {
  const parameters: Record<string, ArmParameter> = {};
  const containers: Record<string, string> = {};
  const provisions: SettingProvision[] = [];
  const names = [...settings.map((s) => s.name), ...ALWAYS.filter((n) => !settings.some((s) => s.name === n))];
  for (const name of names) {
    provisions.push(provisionFor(name, settings.find((s) => s.name === name), values, parameters, containers));
  }
  const appSettings = new Map<string, AppSettingEntry>();
  for (const provision of provisions) for (const entry of provision.entries) appSettings.set(entry.name, entry);
  return {
    provisions,
    appSettings: [...appSettings.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    parameters,
    containers,
  };
}

/**
 * True when `settingName` is defined by `appSettings`, either as itself or as an identity-based `NAME__property`
 * group: how the Functions host resolves a binding's `connection`.
 */
export function definesConnection(appSettings: readonly { name: string }[], settingName: string): boolean {
  return appSettings.some((s) => s.name === settingName || s.name.startsWith(`${settingName}__`));
}
