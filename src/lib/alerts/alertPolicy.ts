/**
 * Alert policy: which messages are alerts, how severe, who is told, and the bounded facts an e-mail is made of.
 * Pure functions of the message and the `alerts` configuration.
 */

import { messageIdentity, moduleOf } from '../message/identity.js';
import { lookupProperty } from '../message/normalize.js';
import type { JsonValue, PropertyValue, RoutedMessage } from '../message/RoutedMessage.js';
import type { AlertsConfig, PropertyMatch } from './alertsConfig.js';
import { boundText, EMAIL_LIMITS } from './email.js';

/** One value read from the message body, shown in the e-mail and folded into digests (numbers as min/max). */
export interface Reading {
  name: string;
  value: string | number | boolean | null;
}

/** Everything an alert e-mail or a digest needs from one message, bounded in size. */
export interface AlertFacts {
  alertKey: string;
  deviceId: string;
  /** ISO 8601; null when the message had none (the checks stage reports that). */
  enqueuedTime: string | null;
  level: string | null;
  severity: string;
  /** The device group's value (e.g. the DeviceLocation enrichment), when recipients are grouped. */
  group: string | null;
  recipients: string[];
  readings: Reading[];
  /** Application properties (enrichments included), sorted by key, values as text. */
  properties: Array<[string, string]>;
}

/** Bounds on what one message contributes: a runaway payload must not become a huge e-mail or ledger record. */
export const FACT_LIMITS = {
  readings: 20,
  properties: 20,
  nameChars: 64,
  valueChars: 200,
  /** Nested objects are flattened to `a.b` up to this depth. */
  depth: 2,
} as const;

/** The alert key: the message identity, so every redelivery and re-send of one message maps to one alert. */
export function alertKeyOf(message: RoutedMessage): string {
  return messageIdentity(message);
}

export function matches(properties: Readonly<Record<string, PropertyValue>>, rule: PropertyMatch): boolean {
  for (const { property, values } of rule) {
    const value = lookupProperty(properties, [property]);
    if (value === undefined || value === null || !values.includes(String(value))) return false;
  }
  return true;
}

export function isAlert(message: Pick<RoutedMessage, 'properties'>, config: AlertsConfig): boolean {
  return matches(message.properties, config.when);
}

export function severityOf(message: RoutedMessage, config: AlertsConfig): string {
  for (const rule of config.severity.rules) {
    if (matches(message.properties, rule.when)) return rule.severity;
  }
  return config.severity.default;
}

export function groupOf(message: RoutedMessage, config: AlertsConfig): string | null {
  const byGroup = config.recipients.byGroup;
  if (byGroup === null) return null;
  const value = lookupProperty(message.properties, [byGroup.property]);
  return value === undefined || value === null ? null : boundText(String(value), FACT_LIMITS.valueChars);
}

/** Severity and group recipients together, in configuration order; the default list when neither gives any. */
export function recipientsFor(severity: string, group: string | null, config: AlertsConfig): string[] {
  const { recipients } = config;
  const chosen = [...(recipients.bySeverity[severity] ?? []), ...(group === null ? [] : (recipients.byGroup?.groups[group] ?? []))];
  const list = chosen.length > 0 ? chosen : [...recipients.default];
  return [...new Set(list)].slice(0, EMAIL_LIMITS.recipients);
}

/**
 * `enrichmentKeys`: the routing config's enrichments, which the e-mail keeps (with the properties the alert
 * configuration reads) when a message has more properties than it shows.
 */
export function alertFactsOf(message: RoutedMessage, config: AlertsConfig, enrichmentKeys: readonly string[] = []): AlertFacts {
  const severity = severityOf(message, config);
  const group = groupOf(message, config);
  const level = lookupProperty(message.properties, ['level']);
  return {
    alertKey: alertKeyOf(message),
    deviceId: message.deviceId ?? '',
    enqueuedTime: message.enqueuedTime?.toISOString() ?? null,
    level: level === undefined || level === null ? null : shortText(String(level)),
    severity,
    group,
    recipients: recipientsFor(severity, group, config),
    readings: readingsOf(message),
    properties: propertiesOf(message.properties, [...enrichmentKeys, ...keysReadBy(config)], twinNameOf(message)),
  };
}

/**
 * The body as readings: a JSON object's primitive fields (nested objects flattened to `a.b`, arrays shown as
 * JSON text), otherwise the whole body as one `body` reading. Bounded by {@link FACT_LIMITS}.
 */
export function readingsOf(message: Pick<RoutedMessage, 'decoded' | 'body'>): Reading[] {
  const decoded = message.decoded;
  if (decoded.kind === 'binary') return [{ name: 'body', value: `(${message.body.byteLength} bytes, not text)` }];
  if (decoded.kind === 'text') return [{ name: 'body', value: shortText(decoded.value) }];
  const value = decoded.value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [{ name: 'body', value: readingValue(value) }];
  const out: Reading[] = [];
  const omitted = flatten(value, '', 1, out);
  // Said, not dropped in silence: the reading that raised the alert may be one of those not shown.
  if (omitted > 0) out.push({ name: OMITTED_NAME, value: `${omitted} more reading${omitted === 1 ? '' : 's'} not shown` });
  return out;
}

/** The name of the last entry of a list cut at its limit, which says how many were left out (of one alert). */
export const OMITTED_NAME = '\u2026';

/** Fills `out` up to the limit; returns how many readings did not fit. */
function flatten(object: { [key: string]: JsonValue }, prefix: string, depth: number, out: Reading[]): number {
  let omitted = 0;
  for (const [key, value] of Object.entries(object)) {
    const name = boundText(`${prefix}${key}`, FACT_LIMITS.nameChars);
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && depth < FACT_LIMITS.depth) {
      omitted += flatten(value, `${name}.`, depth + 1, out);
    } else if (out.length >= FACT_LIMITS.readings) {
      omitted += 1;
    } else {
      out.push({ name, value: readingValue(value) });
    }
  }
  return omitted;
}

function readingValue(value: JsonValue): Reading['value'] {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string') return shortText(value);
  return shortText(JSON.stringify(value));
}

/** The properties shown, in name order: all, or over the limit the preferred ones (ignoring case) first. */
function propertiesOf(
  properties: Readonly<Record<string, PropertyValue>>,
  preferred: readonly string[],
  twin: TwinName,
): Array<[string, string]> {
  const all = Object.keys(properties).sort();
  let keys = all;
  if (keys.length > FACT_LIMITS.properties) {
    const wanted = new Set(preferred.map((k) => k.toLowerCase()));
    const first = keys.filter((k) => wanted.has(k.toLowerCase()));
    keys = [...first, ...keys.filter((k) => !wanted.has(k.toLowerCase()))].slice(0, FACT_LIMITS.properties).sort();
  }
  const shown: Array<[string, string]> = keys.map((key) => [boundText(key, FACT_LIMITS.nameChars), propertyText(properties[key]!, twin)]);
  const omitted = all.length - keys.length;
  if (omitted > 0) shown.push([OMITTED_NAME, `${omitted} more propert${omitted === 1 ? 'y' : 'ies'} not shown`]);
  return shown;
}

/** The twin IoT Hub enriches a message from: a module's message from its module twin, never the device's. */
type TwinName = 'device twin' | 'module twin';

function twinNameOf(message: RoutedMessage): TwinName {
  return moduleOf(message) === undefined ? 'device twin' : 'module twin';
}

/**
 * A property as the e-mail shows it. An enrichment IoT Hub could not resolve keeps its `$twin.` placeholder as the
 * value; shown bare, it reads like a location or a group.
 */
function propertyText(value: PropertyValue, twin: TwinName): string {
  const text = String(value);
  return shortText(/^\$twin\./i.test(text) ? `${text} (not resolved: the ${twin} has no such value)` : text);
}

/** The properties the alert configuration decides by: level, the group property, the rules' conditions. */
function keysReadBy(config: AlertsConfig): string[] {
  const rules = [config.when, ...config.severity.rules.map((r) => r.when)];
  return ['level', ...(config.recipients.byGroup === null ? [] : [config.recipients.byGroup.property]), ...rules.flatMap((r) => r.map((m) => m.property))];
}

function shortText(value: string): string {
  return boundText(value, FACT_LIMITS.valueChars);
}
