/**
 * The `alerts` section of routing.config.json and the app settings the alert path reads, each validated once with
 * every problem reported (STYLE.md 3). Shape, with defaults:
 *
 * ```jsonc
 * "alerts": {
 *   "when": { "level": "critical" },                 // property equality; a list means any of; all keys must match
 *   "severity": { "default": "critical", "rules": [{ "when": { "alarm": ["fire", "flood"] }, "severity": "emergency" }] },
 *   "recipients": {
 *     "default": ["ops@contoso.example"],            // required: every alert reaches someone
 *     "bySeverity": { "emergency": ["oncall@contoso.example"] },
 *     "byGroup": { "property": "DeviceLocation", "groups": { "Building 43": ["b43@contoso.example"] } }
 *   },
 *   "from": "alerts@contoso.example",                // required; a verified sender of the ACS domain
 *   "templates": { "subject": "...", "text": "...", "html": "...", "digestSubject": "...", "digestText": "...", "digestHtml": "..." },
 *   "quietPeriodMinutes": 15,
 *   "budget": { "perMinute": 25, "perHour": 90 },
 *   "sender": "acs",                                 // or "outbox" (.eml files, local runtime); ALERT_SENDER overrides
 *   "outboxDirectory": ".local/outbox",
 *   "notifyDevice": false,
 *   "leaseSeconds": 75
 * }
 * ```
 *
 * Recipients of one alert: the addresses for its severity and for its device group together; the default list when
 * neither gives any. Property names compare ignoring case (the Functions Node library delivers `DeviceLocation` as
 * `deviceLocation`); values compare exactly, as IoT Hub's routing query does.
 */

import { isEmailAddress } from './email.js';
import {
  ALERT_PLACEHOLDERS,
  compileTemplate,
  DEFAULT_TEMPLATES,
  DIGEST_PLACEHOLDERS,
  type AlertPlaceholder,
  type DigestPlaceholder,
  type Template,
} from './templates.js';

/** Every listed property must be present with one of its values. */
export type PropertyMatch = ReadonlyArray<{ property: string; values: readonly string[] }>;

export interface SeverityRule {
  when: PropertyMatch;
  severity: string;
}

export interface RecipientsConfig {
  default: readonly string[];
  bySeverity: Readonly<Record<string, readonly string[]>>;
  byGroup: { property: string; groups: Readonly<Record<string, readonly string[]>> } | null;
}

export interface AlertTemplates {
  subject: Template<AlertPlaceholder>;
  text: Template<AlertPlaceholder>;
  html: Template<AlertPlaceholder>;
  digestSubject: Template<DigestPlaceholder>;
  digestText: Template<DigestPlaceholder>;
  digestHtml: Template<DigestPlaceholder>;
}

export type AlertSenderKind = 'acs' | 'outbox';

export interface AlertsConfig {
  /** False when routing.config.json has no `alerts` section: the defaults below, but no sender or recipients. */
  configured: boolean;
  when: PropertyMatch;
  severity: { default: string; rules: readonly SeverityRule[] };
  recipients: RecipientsConfig;
  from: string;
  templates: AlertTemplates;
  quietPeriodMinutes: number;
  budget: { perMinute: number; perHour: number };
  sender: AlertSenderKind;
  /** Where the outbox sender writes; a relative path is under the app root (`AppConfig.root`). */
  outboxDirectory: string;
  notifyDevice: boolean;
  /**
   * How long one delivery owns an alert before another may take it over (seconds). Longer than one send can take
   * (the ACS sender gives up after 60 s), short enough that a crashed instance's alert is picked up by the next
   * Service Bus delivery rather than dead-lettered.
   */
  leaseSeconds: number;
}

export const ALERT_DEFAULTS = {
  when: [{ property: 'level', values: ['critical'] }] as PropertyMatch,
  severity: 'critical',
  quietPeriodMinutes: 15,
  /** Below ACS's 30 a minute and 100 an hour per subscription on a custom domain. */
  budget: { perMinute: 25, perHour: 90 },
  sender: 'acs' as AlertSenderKind,
  outboxDirectory: '.local/outbox',
  leaseSeconds: 75,
} as const;

const SEVERITY_NAME = /^[A-Za-z0-9_-]{1,32}$/;
const PROPERTY_NAME = /^[^\s]{1,128}$/;
/** The gate document keeps one timestamp per send of the last hour; this bounds its size (about 70 KB). */
export const MAX_PER_HOUR = 5_000;
/**
 * The gate document keeps one entry per device in a quiet period, and each entry was opened by a send, so this and
 * the hourly budget bound its size: at most 4 × perHour entries.
 */
export const MAX_QUIET_PERIOD_MINUTES = 240;

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKeys(value: Record<string, Json>, allowed: readonly string[], at: string, errors: string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) errors.push(`${at}.${key}: unknown setting (allowed: ${allowed.join(', ')})`);
  }
}

function number(value: Json, at: string, errors: string[], fallback: number, min: number, max: number, integer = true): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value))) {
    return value;
  }
  errors.push(`${at}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  return fallback;
}

function addresses(value: Json, at: string, errors: string[], required: boolean): string[] {
  if (value === undefined && !required) return [];
  if (!Array.isArray(value) || (required && value.length === 0)) {
    errors.push(`${at}: expected ${required ? 'a non-empty ' : 'an '}array of e-mail addresses`);
    return [];
  }
  const out: string[] = [];
  value.forEach((entry, i) => {
    if (typeof entry === 'string' && isEmailAddress(entry)) out.push(entry);
    else errors.push(`${at}[${i}]: ${JSON.stringify(entry)} is not a plain e-mail address (local@domain, ASCII, no display name)`);
  });
  return [...new Set(out)];
}

function propertyMatch(value: Json, at: string, errors: string[]): PropertyMatch {
  if (!isObject(value) || Object.keys(value).length === 0) {
    errors.push(`${at}: expected an object of property names to a value or a list of values, e.g. { "level": "critical" }`);
    return [];
  }
  const out: Array<{ property: string; values: string[] }> = [];
  for (const [property, raw] of Object.entries(value)) {
    if (!PROPERTY_NAME.test(property)) errors.push(`${at}: "${property}" is not a property name`);
    const list = Array.isArray(raw) ? raw : [raw];
    const values = list.filter((v): v is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof v));
    if (values.length !== list.length || values.length === 0) {
      errors.push(`${at}.${property}: expected a string, number or boolean, or a non-empty list of them`);
      continue;
    }
    out.push({ property, values: values.map(String) });
  }
  return out;
}

function severityName(value: Json, at: string, errors: string[], fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && SEVERITY_NAME.test(value)) return value;
  errors.push(`${at}: expected a severity name (letters, digits, - and _, at most 32)`);
  return fallback;
}

function template<P extends string>(value: Json, fallback: string, allowed: readonly P[], at: string, errors: string[]): Template<P> {
  if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) {
    errors.push(`${at}: expected a non-empty string`);
    return compileTemplate(fallback, allowed, at, []);
  }
  return compileTemplate(typeof value === 'string' ? value : fallback, allowed, at, errors);
}

/**
 * Parses the `alerts` section. A missing section is valid: the defaults, with `configured: false` and no sender or
 * recipients, which {@link deploymentProblems} reports when criticalAlerts is deployed.
 */
export function parseAlertsConfig(raw: Json, path = 'alerts'): { value: AlertsConfig } | { errors: string[] } {
  const errors: string[] = [];
  const configured = raw !== undefined;
  if (raw !== undefined && !isObject(raw)) return { errors: [`${path}: expected an object`] };
  const doc: Record<string, Json> = isObject(raw) ? raw : {};
  unknownKeys(
    doc,
    ['when', 'severity', 'recipients', 'from', 'templates', 'quietPeriodMinutes', 'budget', 'sender', 'outboxDirectory', 'notifyDevice', 'leaseSeconds'],
    path,
    errors,
  );

  const when = doc['when'] === undefined ? ALERT_DEFAULTS.when : propertyMatch(doc['when'], `${path}.when`, errors);

  const severityRaw = doc['severity'];
  if (severityRaw !== undefined && !isObject(severityRaw)) errors.push(`${path}.severity: expected an object`);
  const severityDoc = isObject(severityRaw) ? severityRaw : {};
  unknownKeys(severityDoc, ['default', 'rules'], `${path}.severity`, errors);
  const defaultSeverity = severityName(severityDoc['default'], `${path}.severity.default`, errors, ALERT_DEFAULTS.severity);
  const rules: SeverityRule[] = [];
  if (severityDoc['rules'] !== undefined && !Array.isArray(severityDoc['rules'])) errors.push(`${path}.severity.rules: expected an array`);
  for (const [i, rule] of (Array.isArray(severityDoc['rules']) ? severityDoc['rules'] : []).entries()) {
    const at = `${path}.severity.rules[${i}]`;
    if (!isObject(rule)) {
      errors.push(`${at}: expected { "when": {...}, "severity": "..." }`);
      continue;
    }
    unknownKeys(rule, ['when', 'severity'], at, errors);
    if (rule['severity'] === undefined) errors.push(`${at}.severity: required`);
    rules.push({ when: propertyMatch(rule['when'], `${at}.when`, errors), severity: severityName(rule['severity'], `${at}.severity`, errors, defaultSeverity) });
  }

  const recipientsRaw = doc['recipients'];
  if (recipientsRaw !== undefined && !isObject(recipientsRaw)) errors.push(`${path}.recipients: expected an object`);
  const recipientsDoc = isObject(recipientsRaw) ? recipientsRaw : {};
  unknownKeys(recipientsDoc, ['default', 'bySeverity', 'byGroup'], `${path}.recipients`, errors);
  const defaultRecipients = configured ? addresses(recipientsDoc['default'], `${path}.recipients.default`, errors, true) : [];
  const bySeverity: Record<string, string[]> = {};
  const bySeverityRaw = recipientsDoc['bySeverity'];
  if (bySeverityRaw !== undefined && !isObject(bySeverityRaw)) errors.push(`${path}.recipients.bySeverity: expected an object`);
  for (const [severity, list] of Object.entries(isObject(bySeverityRaw) ? bySeverityRaw : {})) {
    if (!SEVERITY_NAME.test(severity)) errors.push(`${path}.recipients.bySeverity: "${severity}" is not a severity name`);
    bySeverity[severity] = addresses(list, `${path}.recipients.bySeverity.${severity}`, errors, true);
  }
  const knownSeverities = new Set([defaultSeverity, ...rules.map((r) => r.severity)]);
  for (const severity of Object.keys(bySeverity)) {
    if (!knownSeverities.has(severity)) {
      errors.push(`${path}.recipients.bySeverity.${severity}: no rule gives this severity (known: ${[...knownSeverities].join(', ')})`);
    }
  }
  let byGroup: RecipientsConfig['byGroup'] = null;
  const byGroupRaw = recipientsDoc['byGroup'];
  if (byGroupRaw !== undefined) {
    const at = `${path}.recipients.byGroup`;
    if (!isObject(byGroupRaw)) errors.push(`${at}: expected { "property": "...", "groups": { "<value>": [addresses] } }`);
    else {
      unknownKeys(byGroupRaw, ['property', 'groups'], at, errors);
      const property = byGroupRaw['property'];
      if (typeof property !== 'string' || !PROPERTY_NAME.test(property)) errors.push(`${at}.property: expected a property name, e.g. "DeviceLocation"`);
      const groupsRaw = byGroupRaw['groups'];
      const groups: Record<string, string[]> = {};
      if (!isObject(groupsRaw)) errors.push(`${at}.groups: expected an object of group values to address lists`);
      for (const [group, list] of Object.entries(isObject(groupsRaw) ? groupsRaw : {})) {
        groups[group] = addresses(list, `${at}.groups.${group}`, errors, true);
      }
      byGroup = { property: typeof property === 'string' ? property : '', groups };
    }
  }

  let from = '';
  if (configured) {
    if (typeof doc['from'] === 'string' && isEmailAddress(doc['from'])) from = doc['from'];
    else errors.push(`${path}.from: expected the sender's e-mail address (a verified sender of the ACS e-mail domain)`);
  }

  const templatesRaw = doc['templates'];
  if (templatesRaw !== undefined && !isObject(templatesRaw)) errors.push(`${path}.templates: expected an object`);
  const t = isObject(templatesRaw) ? templatesRaw : {};
  unknownKeys(t, Object.keys(DEFAULT_TEMPLATES), `${path}.templates`, errors);
  const at = `${path}.templates`;
  const templates: AlertTemplates = {
    subject: template(t['subject'], DEFAULT_TEMPLATES.subject, ALERT_PLACEHOLDERS, `${at}.subject`, errors),
    text: template(t['text'], DEFAULT_TEMPLATES.text, ALERT_PLACEHOLDERS, `${at}.text`, errors),
    html: template(t['html'], DEFAULT_TEMPLATES.html, ALERT_PLACEHOLDERS, `${at}.html`, errors),
    digestSubject: template(t['digestSubject'], DEFAULT_TEMPLATES.digestSubject, DIGEST_PLACEHOLDERS, `${at}.digestSubject`, errors),
    digestText: template(t['digestText'], DEFAULT_TEMPLATES.digestText, DIGEST_PLACEHOLDERS, `${at}.digestText`, errors),
    digestHtml: template(t['digestHtml'], DEFAULT_TEMPLATES.digestHtml, DIGEST_PLACEHOLDERS, `${at}.digestHtml`, errors),
  };

  const quietPeriodMinutes = number(
    doc['quietPeriodMinutes'],
    `${path}.quietPeriodMinutes`,
    errors,
    ALERT_DEFAULTS.quietPeriodMinutes,
    0,
    MAX_QUIET_PERIOD_MINUTES,
    false,
  );

  const budgetRaw = doc['budget'];
  if (budgetRaw !== undefined && !isObject(budgetRaw)) errors.push(`${path}.budget: expected an object`);
  const budgetDoc = isObject(budgetRaw) ? budgetRaw : {};
  unknownKeys(budgetDoc, ['perMinute', 'perHour'], `${path}.budget`, errors);
  const perMinute = number(budgetDoc['perMinute'], `${path}.budget.perMinute`, errors, ALERT_DEFAULTS.budget.perMinute, 1, MAX_PER_HOUR);
  const perHour = number(budgetDoc['perHour'], `${path}.budget.perHour`, errors, ALERT_DEFAULTS.budget.perHour, 1, MAX_PER_HOUR);
  if (perMinute > perHour) errors.push(`${path}.budget: perMinute (${perMinute}) is more than perHour (${perHour})`);

  let sender: AlertSenderKind = ALERT_DEFAULTS.sender;
  if (doc['sender'] !== undefined) {
    if (doc['sender'] === 'acs' || doc['sender'] === 'outbox') sender = doc['sender'];
    else errors.push(`${path}.sender: expected "acs" or "outbox"`);
  }
  let outboxDirectory: string = ALERT_DEFAULTS.outboxDirectory;
  if (doc['outboxDirectory'] !== undefined) {
    if (typeof doc['outboxDirectory'] === 'string' && doc['outboxDirectory'].trim() !== '') outboxDirectory = doc['outboxDirectory'];
    else errors.push(`${path}.outboxDirectory: expected a directory path`);
  }
  let notifyDevice = false;
  if (doc['notifyDevice'] !== undefined) {
    if (typeof doc['notifyDevice'] === 'boolean') notifyDevice = doc['notifyDevice'];
    else errors.push(`${path}.notifyDevice: expected true or false`);
  }
  const leaseSeconds = number(doc['leaseSeconds'], `${path}.leaseSeconds`, errors, ALERT_DEFAULTS.leaseSeconds, 10, 900);

  if (errors.length > 0) return { errors };
  return {
    value: {
      configured,
      when,
      severity: { default: defaultSeverity, rules },
      recipients: { default: defaultRecipients, bySeverity, byGroup },
      from,
      templates,
      quietPeriodMinutes,
      budget: { perMinute, perHour },
      sender,
      outboxDirectory,
      notifyDevice,
      leaseSeconds,
    },
  };
}

/** The configuration used when routing.config.json has no `alerts` section. */
export function defaultAlertsConfig(): AlertsConfig {
  const parsed = parseAlertsConfig(undefined);
  // Cannot happen: the empty section is valid by construction; a test holds this.
  if ('errors' in parsed) throw new Error(`default alerts config is invalid: ${parsed.errors.join('; ')}`);
  return parsed.value;
}

// ---------------------------------------------------------------------------------------------------------------
// App settings
// ---------------------------------------------------------------------------------------------------------------

export type AcsSetting = { kind: 'connectionString'; value: string } | { kind: 'endpoint'; endpoint: string };

/** The `endpoint=` part of an ACS connection string (`endpoint=https://...;accesskey=...`), keys ignoring case. */
export function acsConnectionStringEndpoint(connectionString: string): string | undefined {
  return /(?:^|;)\s*endpoint=([^;]+)/i.exec(connectionString)?.[1]?.trim();
}

export interface AlertSettings {
  /** ALERTS_CONTAINER, default `alerts`. */
  container: string;
  /** CRITICAL_QUEUE_NAME: the binding reads it as `%CRITICAL_QUEUE_NAME%`; recorded as the messages' source. */
  queueName: string | null;
  /** DASHBOARD_URL: the alert links to it with `?deviceId=`. */
  dashboardUrl: string;
  /** ACS_CONNECTION_STRING, or ACS_ENDPOINT for Microsoft Entra ID (identity from ACS_ENDPOINT__credential/__clientId). */
  acs: AcsSetting | null;
  /** ALERT_SENDER: `acs` or `outbox`, overriding `alerts.sender` for this deployment. */
  sender: AlertSenderKind | null;
}

/** What the local runtime serves (DESIGN.md section 6); set DASHBOARD_URL in Azure. */
export const DEFAULT_DASHBOARD_URL = 'http://localhost:7071/api/dashboard';

const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the alert path's app settings. Error messages name settings, never their values (some are secrets). */
export function parseAlertSettings(env: Env): { value: AlertSettings } | { errors: string[] } {
  const errors: string[] = [];
  const setting = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const container = setting('ALERTS_CONTAINER') ?? 'alerts';
  if (!CONTAINER_NAME.test(container)) {
    errors.push(`ALERTS_CONTAINER: "${container}" is not a valid container name (3-63 lower-case letters, digits and single hyphens)`);
  }
  const dashboardUrl = setting('DASHBOARD_URL') ?? DEFAULT_DASHBOARD_URL;
  if (!isHttpUrl(dashboardUrl)) errors.push('DASHBOARD_URL: expected an absolute http(s) URL');

  const connectionString = setting('ACS_CONNECTION_STRING');
  const endpoint = setting('ACS_ENDPOINT');
  let acs: AcsSetting | null = null;
  if (connectionString !== undefined) {
    const endpointPart = acsConnectionStringEndpoint(connectionString);
    // The endpoint must be a URL: the SDK would otherwise throw ERR_INVALID_URL on every send, until dead-lettering.
    if (endpointPart === undefined || !isHttpUrl(endpointPart) || !/(^|;)\s*accesskey=[^;]+/i.test(connectionString)) {
      errors.push('ACS_CONNECTION_STRING: expected endpoint=https://<resource>.communication.azure.com/;accesskey=<key>');
    }
    acs = { kind: 'connectionString', value: connectionString };
  } else if (endpoint !== undefined) {
    if (!isHttpUrl(endpoint)) errors.push('ACS_ENDPOINT: expected https://<resource>.communication.azure.com');
    acs = { kind: 'endpoint', endpoint };
  }
  if (connectionString !== undefined && endpoint !== undefined) {
    errors.push('ACS_CONNECTION_STRING and ACS_ENDPOINT are both set: keep one (the connection string would win)');
  }
  const senderSetting = setting('ALERT_SENDER');
  let sender: AlertSenderKind | null = null;
  if (senderSetting !== undefined) {
    if (senderSetting === 'acs' || senderSetting === 'outbox') sender = senderSetting;
    else errors.push('ALERT_SENDER: expected acs or outbox');
  }
  if (errors.length > 0) return { errors };
  return { value: { container, queueName: setting('CRITICAL_QUEUE_NAME') ?? null, dashboardUrl, acs, sender } };
}

/** What the deployment provides besides the parsed settings. */
export interface DeploymentFacts {
  /** IOTHUB_SERVICE_CONNECTION (or its identity-based form) is set. */
  iotHubService: boolean;
  /** A sender or notifier is handed in ready-made (tests, the local runtime), so its settings are not needed. */
  senderGiven?: boolean;
  notifierGiven?: boolean;
}

/**
 * What stops criticalAlerts from working although each part parsed: no `alerts` section, ACS chosen without an ACS
 * setting, device notifications without an IoT Hub connection.
 */
export function deploymentProblems(config: AlertsConfig, settings: AlertSettings, facts: DeploymentFacts): string[] {
  const problems: string[] = [];
  if (!config.configured) {
    problems.push('routing.config.json has no "alerts" section: criticalAlerts needs at least alerts.from and alerts.recipients.default');
  }
  if (facts.senderGiven !== true && (settings.sender ?? config.sender) === 'acs' && settings.acs === null) {
    problems.push('alerts are sent with ACS but neither ACS_CONNECTION_STRING nor ACS_ENDPOINT is set (ALERT_SENDER=outbox writes .eml files instead)');
  }
  if (facts.notifierGiven !== true && config.notifyDevice && !facts.iotHubService) {
    problems.push('alerts.notifyDevice is true but IOTHUB_SERVICE_CONNECTION is not set');
  }
  return problems;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}
