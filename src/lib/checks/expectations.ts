/**
 * The `checks` section of routing.config.json: what each endpoint expects of its messages, and the outcome each
 * reason code gets there. Validated once at start-up; everything the hot path needs (compiled patterns, lower-cased
 * keys, merged outcome tables) is prepared here so that checking a message compiles and allocates nothing.
 *
 * ```json
 * "checks": {
 *   "unresolvedPlaceholders": true,
 *   "endpoints": {
 *     "criticalQueue": {
 *       "enrichments": [
 *         { "key": "customerID", "equals": "6ce345b8-1e4a-411e-9398-d34587459a3a" },
 *         { "key": "DeviceLocation", "oneOf": ["Lyon", "Paris"] },
 *         { "key": "iothubname", "pattern": "^Contoso" , "required": false }
 *       ],
 *       "outcomes": { "EnrichmentMissing": "quarantine" },
 *       "requireLevel": true,
 *       "maxBodyBytes": 262144
 *     }
 *   }
 * }
 * ```
 */
import { editDistance } from '../editDistance.js';
import {
  ENDPOINT_NAMES,
  ENRICHMENT_KEY,
  IOT_HUB_MAX_MESSAGE_BYTES,
  OUTCOMES,
  REASON_CODES,
  REASONS,
  isReasonCode,
  type EndpointName,
  type Outcome,
  type ReasonCode,
} from './reasons.js';

export type { EndpointName, Outcome, ReasonCode } from './reasons.js';

export type EnrichmentRule =
  /** Only presence is checked. */
  | { kind: 'present' }
  | { kind: 'equals'; value: string }
  /** Unanchored, as JSON Schema's `pattern`: write `^...$` to match the whole value. */
  | { kind: 'pattern'; source: string; regex: RegExp }
  | { kind: 'oneOf'; values: readonly string[] };

export interface EnrichmentExpectation {
  /** The key as configured; matched against application properties ignoring case, as IoT Hub does. */
  key: string;
  /** The key wrapped for `lookupProperty`, prepared once. */
  lookupNames: readonly [string];
  /** Lower case without separators, to recognise the same key spelled differently ("device location"). */
  looseKey: string;
  /** When false, an absent enrichment is fine but a present one must still satisfy the rule. */
  required: boolean;
  rule: EnrichmentRule;
}

export interface EndpointChecks {
  enrichments: readonly EnrichmentExpectation[];
  /** Every reason code's outcome on this endpoint: the defaults with the configured overrides applied. */
  outcomes: Readonly<Record<ReasonCode, Outcome>>;
  /** Whether a message without a `level` application property is reported (LevelMissing). */
  requireLevel: boolean;
  /** Bodies above this many bytes are reported (MessageTooLarge). */
  maxBodyBytes: number;
}

export interface ChecksConfig {
  /**
   * Report any application property whose value is an unresolved `$twin...` / `$iothubname` placeholder, configured
   * or not. Placeholders in the values of configured enrichments are reported even when this is off.
   */
  unresolvedPlaceholders: boolean;
  endpoints: Readonly<Record<EndpointName, EndpointChecks>>;
}

/** Level is required where routes select by it; on the built-in endpoint (fallback route) no level means "normal". */
const REQUIRE_LEVEL_DEFAULT: Readonly<Record<EndpointName, boolean>> = {
  events: false,
  criticalQueue: true,
  archive: true,
};

/** Lower case, letters and digits only: "Device Location", "device-location" and "deviceLocation" meet here. */
export function looseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export type ParseResult = { value: ChecksConfig } | { errors: string[] };

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value}"`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function suggest(name: string, known: readonly string[]): string {
  const close = known.find((k) => editDistance(k, name) <= 2);
  return close === undefined ? `expected one of ${known.join(', ')}` : `did you mean ${close}?`;
}

function unknownKeys(object: JsonObject, allowed: readonly string[], at: string, errors: string[]): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) errors.push(`${at}.${key}: unknown setting; ${suggest(key, allowed)}`);
  }
}

/** Enrichment values are strings; numbers and booleans in the config mean their text, as IoT Hub stamps it. */
function ruleValue(value: unknown, at: string, errors: string[]): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  errors.push(`${at}: expected a string, got ${describe(value)}`);
  return undefined;
}

function parseEnrichment(raw: unknown, at: string, errors: string[]): EnrichmentExpectation | undefined {
  if (!isObject(raw)) {
    errors.push(`${at}: expected an object like { "key": "customerID", "equals": "..." }, got ${describe(raw)}`);
    return undefined;
  }
  unknownKeys(raw, ['key', 'equals', 'pattern', 'oneOf', 'required'], at, errors);
  const before = errors.length;

  const key = raw['key'];
  if (typeof key !== 'string' || key === '') {
    errors.push(`${at}.key: expected a non-empty string, got ${describe(key)}`);
  } else if (!ENRICHMENT_KEY.test(key)) {
    errors.push(
      `${at}.key: "${key}" is not a key IoT Hub accepts for an enrichment (only letters, digits, -, _ and ., at most 64 characters)`,
    );
  }

  const required = raw['required'];
  if (required !== undefined && typeof required !== 'boolean') {
    errors.push(`${at}.required: expected true or false, got ${describe(required)}`);
  }

  const given = (['equals', 'pattern', 'oneOf'] as const).filter((name) => raw[name] !== undefined);
  if (given.length > 1) errors.push(`${at}: give at most one of equals, pattern and oneOf (found ${given.join(', ')})`);

  let rule: EnrichmentRule = { kind: 'present' };
  if (raw['equals'] !== undefined) {
    const value = ruleValue(raw['equals'], `${at}.equals`, errors);
    if (value !== undefined) rule = { kind: 'equals', value };
  }
  if (raw['pattern'] !== undefined) {
    const source = raw['pattern'];
    if (typeof source !== 'string' || source === '') {
      errors.push(`${at}.pattern: expected a regular expression as a non-empty string, got ${describe(source)}`);
    } else {
      try {
        rule = { kind: 'pattern', source, regex: new RegExp(source) };
      } catch (error) {
        const reason = (error instanceof Error ? error.message : String(error)).replace(/^invalid regular expression: /i, '');
        errors.push(`${at}.pattern: invalid regular expression: ${reason}`);
      }
    }
  }
  if (raw['oneOf'] !== undefined) {
    const list = raw['oneOf'];
    if (!Array.isArray(list) || list.length === 0) {
      errors.push(`${at}.oneOf: expected a non-empty array of strings, got ${describe(list)}`);
    } else {
      const values = list.map((item, i) => ruleValue(item, `${at}.oneOf[${i}]`, errors));
      if (values.every((v): v is string => v !== undefined)) rule = { kind: 'oneOf', values };
    }
  }

  if (errors.length > before || typeof key !== 'string') return undefined;
  return { key, lookupNames: [key], looseKey: looseKey(key), required: required !== false, rule };
}

function parseOutcomes(raw: unknown, endpoint: EndpointName, at: string, errors: string[]): Record<ReasonCode, Outcome> {
  const outcomes = {} as Record<ReasonCode, Outcome>;
  for (const code of REASON_CODES) outcomes[code] = REASONS[code].defaultOutcome[endpoint];
  if (raw === undefined) return outcomes;
  if (!isObject(raw)) {
    errors.push(`${at}: expected an object mapping reason codes to ${OUTCOMES.join(', ')}, got ${describe(raw)}`);
    return outcomes;
  }
  for (const [code, outcome] of Object.entries(raw)) {
    if (!isReasonCode(code)) {
      errors.push(`${at}.${code}: unknown reason code; ${suggest(code, REASON_CODES)}`);
      continue;
    }
    if (typeof outcome !== 'string' || !(OUTCOMES as readonly string[]).includes(outcome)) {
      errors.push(`${at}.${code}: expected one of ${OUTCOMES.join(', ')}, got ${describe(outcome)}`);
      continue;
    }
    outcomes[code] = outcome as Outcome;
  }
  return outcomes;
}

function parseEndpoint(raw: unknown, endpoint: EndpointName, at: string, errors: string[]): EndpointChecks {
  const object = raw === undefined ? {} : raw;
  if (!isObject(object)) {
    errors.push(`${at}: expected an object, got ${describe(object)}`);
    return parseEndpoint(undefined, endpoint, at, errors);
  }
  unknownKeys(object, ['enrichments', 'outcomes', 'requireLevel', 'maxBodyBytes'], at, errors);

  const enrichments: EnrichmentExpectation[] = [];
  const rawEnrichments = object['enrichments'];
  if (rawEnrichments !== undefined && !Array.isArray(rawEnrichments)) {
    errors.push(`${at}.enrichments: expected an array, got ${describe(rawEnrichments)}`);
  }
  // Keys are compared ignoring case at run time, so two that differ only by case would check the same property.
  const firstIndexByKey = new Map<string, number>();
  for (const [i, item] of (Array.isArray(rawEnrichments) ? rawEnrichments : []).entries()) {
    const here = `${at}.enrichments[${i}]`;
    const expectation = parseEnrichment(item, here, errors);
    const key = isObject(item) && typeof item['key'] === 'string' ? item['key'].toLowerCase() : undefined;
    if (key !== undefined) {
      const first = firstIndexByKey.get(key);
      if (first !== undefined) {
        errors.push(`${here}.key: repeats enrichments[${first}] (keys are compared ignoring case, as IoT Hub does)`);
        continue;
      }
      firstIndexByKey.set(key, i);
    }
    if (expectation !== undefined) enrichments.push(expectation);
  }

  const requireLevel = object['requireLevel'];
  if (requireLevel !== undefined && typeof requireLevel !== 'boolean') {
    errors.push(`${at}.requireLevel: expected true or false, got ${describe(requireLevel)}`);
  }

  const maxBodyBytes = object['maxBodyBytes'];
  if (maxBodyBytes !== undefined && !(Number.isSafeInteger(maxBodyBytes) && (maxBodyBytes as number) > 0)) {
    errors.push(`${at}.maxBodyBytes: expected a positive whole number of bytes, got ${describe(maxBodyBytes)}`);
  }

  return {
    enrichments,
    outcomes: parseOutcomes(object['outcomes'], endpoint, `${at}.outcomes`, errors),
    requireLevel: typeof requireLevel === 'boolean' ? requireLevel : REQUIRE_LEVEL_DEFAULT[endpoint],
    maxBodyBytes:
      typeof maxBodyBytes === 'number' && Number.isSafeInteger(maxBodyBytes) && maxBodyBytes > 0
        ? maxBodyBytes
        : IOT_HUB_MAX_MESSAGE_BYTES,
  };
}

/**
 * Validates the `checks` section (`undefined` means "all defaults") and reports every problem at once, each with
 * its JSON path, e.g. `checks.endpoints.criticalQueue.enrichments[1].pattern: invalid regular expression: ...`.
 */
export function parseChecksConfig(raw: unknown, path = 'checks'): ParseResult {
  const errors: string[] = [];
  const object = raw === undefined ? {} : raw;
  if (!isObject(object)) return { errors: [`${path}: expected an object, got ${describe(object)}`] };
  unknownKeys(object, ['unresolvedPlaceholders', 'endpoints'], path, errors);

  const unresolvedPlaceholders = object['unresolvedPlaceholders'];
  if (unresolvedPlaceholders !== undefined && typeof unresolvedPlaceholders !== 'boolean') {
    errors.push(`${path}.unresolvedPlaceholders: expected true or false, got ${describe(unresolvedPlaceholders)}`);
  }

  const rawEndpoints = object['endpoints'] === undefined ? {} : object['endpoints'];
  if (!isObject(rawEndpoints)) {
    errors.push(`${path}.endpoints: expected an object keyed by ${ENDPOINT_NAMES.join(', ')}, got ${describe(rawEndpoints)}`);
  } else {
    unknownKeys(rawEndpoints, ENDPOINT_NAMES, `${path}.endpoints`, errors);
  }
  const endpointsObject = isObject(rawEndpoints) ? rawEndpoints : {};
  const endpoints = {} as Record<EndpointName, EndpointChecks>;
  for (const name of ENDPOINT_NAMES) {
    endpoints[name] = parseEndpoint(endpointsObject[name], name, `${path}.endpoints.${name}`, errors);
  }

  if (errors.length > 0) return { errors };
  return { value: { unresolvedPlaceholders: unresolvedPlaceholders !== false, endpoints } };
}

/** The configuration used when routing.config.json has no `checks` section. */
export function defaultChecksConfig(): ChecksConfig {
  const parsed = parseChecksConfig(undefined);
  // Cannot happen: the empty section is valid by construction; a test holds this.
  if ('errors' in parsed) throw new Error(`default checks config is invalid: ${parsed.errors.join('; ')}`);
  return parsed.value;
}
