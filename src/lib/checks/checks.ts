/**
 * The checks stage every path runs after decoding: one outcome per message (accept, warn, quarantine) with the
 * findings behind it. Runs on every message of the hot path, so it compiles nothing (config did), allocates nothing
 * when the message is fine, and never throws: a bad message is a finding, not an exception (STYLE.md 2).
 */
import { moduleOf } from '../message/identity.js';
import { lookupProperty } from '../message/normalize.js';
import type { PropertyValue, RoutedMessage } from '../message/RoutedMessage.js';
import type { ChecksConfig, EndpointChecks, EnrichmentExpectation } from './expectations.js';
import { looseKey } from './expectations.js';
import { BODY_BASE64_NOT_JSON_HINT, ENRICHMENT_KEY, ENRICHMENT_UNRESOLVED_MODULE_HINT, REASONS, moreSevere, type EndpointName, type Outcome, type ReasonCode } from './reasons.js';

export interface Finding {
  code: ReasonCode;
  /** The outcome this code has on the endpoint checked (defaults merged with routing.config.json). */
  outcome: Outcome;
  /** What was found on this message, with the values involved. */
  detail: string;
  /** What a person should change so it goes away. */
  hint: string;
  /** The application property concerned, with the key as the message spells it (or as configured when absent). */
  property?: string;
}

export interface CheckResult {
  /** The most severe outcome among the findings; `accept` when there are none. */
  outcome: Outcome;
  findings: readonly Finding[];
}

/** Shared by every clean message so that the common case allocates nothing. Frozen: callers cannot change it. */
const CLEAN: CheckResult = Object.freeze({ outcome: 'accept', findings: Object.freeze([]) as readonly Finding[] });

/**
 * What IoT Hub stamps when it cannot resolve an enrichment: the value text itself. Only `$iothubname` and `$twin.*`
 * are enrichment variables (`$body` is a routing-query feature, not an enrichment value), so only they are
 * recognised; case is ignored because a mistyped `$Twin.tags.x` is stamped literally too.
 */
const PLACEHOLDER = /^\$(?:twin\.|iothubname$)/i;
const DOLLAR = 36;

const LEVEL_NAMES = ['level'] as const;

/** 2010-01-01: earlier than any IoT Hub or Event Hubs message; such times are zero defaults or seconds-as-ms mix-ups. */
const EARLIEST_ENQUEUED_MS = Date.UTC(2010, 0, 1);
const FUTURE_TOLERANCE_MS = 24 * 60 * 60 * 1000;
const SHOWN_VALUE_CHARS = 80;

/** True when a property value is an enrichment placeholder IoT Hub could not resolve (e.g. "$twin.tags.location"). */
export function isUnresolvedPlaceholder(value: PropertyValue | undefined): value is string {
  return typeof value === 'string' && value.charCodeAt(0) === DOLLAR && PLACEHOLDER.test(value);
}

function shown(value: PropertyValue): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > SHOWN_VALUE_CHARS ? `${text.slice(0, SHOWN_VALUE_CHARS)}...` : text);
}

function add(
  findings: Finding[] | undefined,
  endpoint: EndpointChecks,
  code: ReasonCode,
  detail: string,
  property?: string,
  hint: string = REASONS[code].hint,
): Finding[] {
  const finding: Finding = { code, outcome: endpoint.outcomes[code], detail, hint };
  if (property !== undefined) finding.property = property;
  if (findings === undefined) return [finding];
  findings.push(finding);
  return findings;
}

/** A module's message is enriched from its module twin: the finding says so, and its hint points there. */
function unresolvedFrom(message: RoutedMessage): string {
  const module = moduleOf(message);
  return module === undefined ? '' : ` (sent by module "${module}", enriched from its module twin)`;
}

function unresolvedHint(message: RoutedMessage): string | undefined {
  return moduleOf(message) === undefined ? undefined : ENRICHMENT_UNRESOLVED_MODULE_HINT;
}

function ruleFailure(expectation: EnrichmentExpectation, value: PropertyValue): string | undefined {
  const text = typeof value === 'string' ? value : String(value);
  const rule = expectation.rule;
  switch (rule.kind) {
    case 'present':
      return undefined;
    case 'equals':
      return text === rule.value ? undefined : `expected ${shown(rule.value)}`;
    case 'pattern':
      return rule.regex.test(text) ? undefined : `expected to match /${rule.source}/`;
    case 'oneOf':
      return rule.values.includes(text) ? undefined : `expected one of ${rule.values.map(shown).join(', ')}`;
  }
}

/** Failure path only: names a property that is the expected one spelled differently, which explains most "missing". */
function nearMiss(properties: Readonly<Record<string, PropertyValue>>, expectation: EnrichmentExpectation): string | undefined {
  for (const key of Object.keys(properties)) {
    if (looseKey(key) === expectation.looseKey) return key;
  }
  return undefined;
}

function matchesExpectedLoosely(key: string, endpoint: EndpointChecks): boolean {
  if (endpoint.enrichments.length === 0) return false;
  const loose = looseKey(key);
  return endpoint.enrichments.some((e) => e.looseKey === loose);
}

function checkEnqueuedTime(time: unknown, now: Date | undefined): string | undefined {
  if (time === null || time === undefined) {
    return 'no enqueued time: iothub-enqueuedtime / enqueuedTime / EnqueuedTimeUtc is absent or unparseable';
  }
  const ms = time instanceof Date ? time.getTime() : Number.NaN;
  if (Number.isNaN(ms)) return 'the enqueued time is not a valid instant';
  if (ms < EARLIEST_ENQUEUED_MS) return `the enqueued time ${new Date(ms).toISOString()} is before 2010`;
  if (now !== undefined && ms > now.getTime() + FUTURE_TOLERANCE_MS) {
    return `the enqueued time ${new Date(ms).toISOString()} is more than a day after ${now.toISOString()}`;
  }
  return undefined;
}

/**
 * Checks one decoded message for the endpoint it arrived on.
 *
 * Enrichment rules, precisely:
 * - EnrichmentUnresolved: any application property whose value is an unresolved placeholder (see
 *   `isUnresolvedPlaceholder`), configured or not, unless `unresolvedPlaceholders` is off, in which case only
 *   configured enrichments are examined. Such a value is not also judged by equals/pattern/oneOf: the cause to fix
 *   is the unresolved twin path, and a twin change less than five minutes old should not get a message quarantined
 *   as a mismatch.
 * - EnrichmentMissing: a required configured enrichment absent (or null); property names compare ignoring case.
 * - EnrichmentMismatch: a configured enrichment present but failing its rule (values compare exactly).
 * - EnrichmentKeyInvalid: a property whose key has characters IoT Hub forbids in enrichment keys and which is
 *   evidently an enrichment: its value is a placeholder, or its key is a configured enrichment key spelled with other
 *   separators ("device location" for "deviceLocation"). Other device properties may use any key, so they are not
 *   reported. Configured keys themselves are validated by `parseChecksConfig`.
 *
 * @param now when given, enqueued times more than a day after it are reported; the caller's clock, so that this
 *   stays deterministic.
 */
export function checkMessage(message: RoutedMessage, endpointName: EndpointName, config: ChecksConfig, now?: Date): CheckResult {
  const endpoint = config.endpoints[endpointName];
  const properties = message.properties;
  let findings: Finding[] | undefined;

  if (message.deviceId === null || message.deviceId === '') {
    findings = add(findings, endpoint, 'DeviceIdMissing', 'no device id: iothub-connection-device-id / connectionDeviceId is absent');
  }

  const timeProblem = checkEnqueuedTime(message.enqueuedTime, now);
  if (timeProblem !== undefined) findings = add(findings, endpoint, 'EnqueuedTimeInvalid', timeProblem);

  const bodyBytes = message.body.byteLength;
  if (bodyBytes > endpoint.maxBodyBytes) {
    findings = add(
      findings,
      endpoint,
      'MessageTooLarge',
      `the body is ${bodyBytes} bytes, over this endpoint's limit of ${endpoint.maxBodyBytes}`,
    );
  }

  const decoded = message.decoded;
  const from = decoded.decodedFrom;
  if (from.base64 === 'storage') {
    findings = add(
      findings,
      endpoint,
      'BodyBase64',
      `the endpoint stored the body as base64 (contentType: ${message.contentType ?? 'not set'}, contentEncoding: ` +
        `${message.contentEncoding ?? 'not set'}); decoded as ${decoded.kind}`,
      undefined,
      // Declaring a text body as JSON would make the events path refuse it as BodyNotJson: the JSON advice is for JSON.
      decoded.kind === 'json' ? undefined : BODY_BASE64_NOT_JSON_HINT,
    );
  } else if (from.base64 === 'detected') {
    findings = add(
      findings,
      endpoint,
      'BodyBase64',
      `the body bytes are base64 text wrapping the payload (the device encoded it); decoded as ${decoded.kind}`,
    );
  }
  if (from.problem !== undefined) findings = add(findings, endpoint, from.problem.code, from.problem.detail);

  if (endpoint.requireLevel) {
    const level = lookupProperty(properties, LEVEL_NAMES);
    if (level === undefined || level === null || level === '') {
      findings = add(findings, endpoint, 'LevelMissing', 'no `level` application property', 'level');
    }
  }

  for (const expectation of endpoint.enrichments) {
    const value = lookupProperty(properties, expectation.lookupNames);
    if (value === undefined || value === null) {
      if (!expectation.required) continue;
      const other = nearMiss(properties, expectation);
      const detail =
        other === undefined
          ? `enrichment "${expectation.key}" is not on the message`
          : `enrichment "${expectation.key}" is not on the message; "${other}" is, which is the same key spelled differently`;
      findings = add(findings, endpoint, 'EnrichmentMissing', detail, expectation.key);
    } else if (isUnresolvedPlaceholder(value)) {
      // With placeholder reporting on, the scan below reports this property once.
      if (!config.unresolvedPlaceholders) {
        findings = add(
          findings,
          endpoint,
          'EnrichmentUnresolved',
          `enrichment "${expectation.key}" is ${shown(value)}${unresolvedFrom(message)}`,
          expectation.key,
          unresolvedHint(message),
        );
      }
    } else {
      const failure = ruleFailure(expectation, value);
      if (failure !== undefined) {
        findings = add(
          findings,
          endpoint,
          'EnrichmentMismatch',
          `enrichment "${expectation.key}" is ${shown(value)}, ${failure}`,
          expectation.key,
        );
      }
    }
  }

  for (const key in properties) {
    if (!Object.hasOwn(properties, key)) continue;
    const value = properties[key];
    const placeholder = isUnresolvedPlaceholder(value);
    if (placeholder && config.unresolvedPlaceholders) {
      findings = add(
        findings,
        endpoint,
        'EnrichmentUnresolved',
        `"${key}" is ${shown(value)}: IoT Hub could not resolve it${unresolvedFrom(message)}`,
        key,
        unresolvedHint(message),
      );
    }
    if ((placeholder || endpoint.enrichments.length > 0) && !ENRICHMENT_KEY.test(key)) {
      if (placeholder || matchesExpectedLoosely(key, endpoint)) {
        findings = add(
          findings,
          endpoint,
          'EnrichmentKeyInvalid',
          `"${key}" is not a key IoT Hub accepts for an enrichment (only letters, digits, -, _ and ., at most 64)`,
          key,
        );
      }
    }
  }

  if (findings === undefined) return CLEAN;
  let outcome: Outcome = 'accept';
  for (const finding of findings) outcome = moreSevere(outcome, finding.outcome);
  return { outcome, findings };
}
