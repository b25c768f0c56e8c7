/**
 * Message enrichments as IoT Hub stamps them.
 *
 * [enrich] learn.microsoft.com/azure/iot-hub/iot-hub-message-enrichments-overview:
 * - a value is a static string, `$iothubname`, or a twin path under `$twin.tags`, `$twin.properties.desired` or
 *   `$twin.properties.reported` ("only ... supported variables"); "only primitive types are supported";
 * - "Enrichments are applied per endpoint": only messages to the listed endpoints get them, as application
 *   properties;
 * - when the twin is missing (basic tier, no twin), the path does not exist, or it resolves to an object, "the
 *   message is stamped with the string `$twin.tags.location`" — the value text itself.
 */

import type { EndpointName, EnrichmentConfig } from '../config.js';
import type { RouteTwin } from './evaluate.js';

export type EnrichmentSource =
  | { kind: 'iothubname' }
  | { kind: 'twin'; section: 'tags' | 'desired' | 'reported'; path: string[] }
  | { kind: 'static' };

const IOTHUBNAME = '$iothubname';

/**
 * What an enrichment value refers to. Variable names compare ignoring case, like every name in IoT Hub's routing
 * language (an assumption: [enrich] only ever spells them in lower case). A `$twin` value outside the three
 * supported sections, or naming a section itself, is not a variable IoT Hub resolves, so it is stamped as text.
 */
export function classifyEnrichmentValue(value: string): EnrichmentSource {
  const lower = value.toLowerCase();
  if (lower === IOTHUBNAME) return { kind: 'iothubname' };
  if (!lower.startsWith('$twin.')) return { kind: 'static' };
  const segments = value.slice('$twin.'.length).split('.');
  if (segments.some((s) => s === '')) return { kind: 'static' };
  const [first = '', second = '', ...rest] = segments;
  if (first.toLowerCase() === 'tags' && second !== '') return { kind: 'twin', section: 'tags', path: [second, ...rest] };
  const section = second.toLowerCase();
  if (first.toLowerCase() === 'properties' && (section === 'desired' || section === 'reported') && rest.length > 0) {
    return { kind: 'twin', section, path: rest };
  }
  return { kind: 'static' };
}

export interface EnrichmentContext {
  /** The hub's name, stamped for `$iothubname`. */
  iotHubName: string;
  /** The device twin (the module twin for module messages: modules do not inherit device tags [enrich]). */
  twin?: RouteTwin | null | undefined;
}

/** Twin names are matched exactly first, then ignoring case, as routing queries match them. Own properties only. */
function member(container: unknown, key: string): unknown {
  if (typeof container !== 'object' || container === null || Array.isArray(container)) return undefined;
  const object = container as Record<string, unknown>;
  if (Object.hasOwn(object, key)) return object[key];
  const lower = key.toLowerCase();
  for (const candidate in object) {
    if (Object.hasOwn(object, candidate) && candidate.toLowerCase() === lower) return object[candidate];
  }
  return undefined;
}

/**
 * The value IoT Hub stamps for a twin path, or undefined when it would stamp the literal text. `null` counts as
 * missing: a twin property set to null is a deleted property.
 */
function twinValue(twin: RouteTwin, source: Extract<EnrichmentSource, { kind: 'twin' }>): string | undefined {
  let current: unknown = source.section === 'tags' ? twin.tags : member(twin.properties, source.section);
  for (const key of source.path) current = member(current, key);
  if (typeof current === 'string') return current;
  if (typeof current === 'number' && Number.isFinite(current)) return String(current);
  if (typeof current === 'boolean') return current ? 'true' : 'false';
  return undefined;
}

/** The value one enrichment stamps. */
export function enrichmentValue(value: string, context: EnrichmentContext): string {
  const source = classifyEnrichmentValue(value);
  switch (source.kind) {
    case 'static':
      return value;
    case 'iothubname':
      return context.iotHubName;
    case 'twin': {
      const twin = context.twin;
      return (twin === undefined || twin === null ? undefined : twinValue(twin, source)) ?? value;
    }
  }
}

/**
 * The application properties IoT Hub adds to a message delivered to `endpoint`. Only enrichments that list the
 * endpoint apply. The caller merges them into the message's properties; when two enrichments share a key the later
 * one wins here (config validation should reject the duplicate, as IoT Hub's keys are unique).
 */
export function applyEnrichments(
  enrichments: readonly EnrichmentConfig[],
  endpoint: EndpointName,
  context: EnrichmentContext,
): Record<string, string> {
  const stamped: Record<string, string> = {};
  for (const enrichment of enrichments) {
    if (!enrichment.endpoints.includes(endpoint)) continue;
    // defineProperty, not assignment: the key "__proto__" passes IoT Hub's key rule and must stay a plain property.
    Object.defineProperty(stamped, enrichment.key, {
      value: enrichmentValue(enrichment.value, context),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return stamped;
}
