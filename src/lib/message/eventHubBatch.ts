import { bodyBytesOf } from './body.js';
import { isPlainPropertyValue, metadataValue, toPropertyMap, toRoutedMessage, toSafeInteger } from './normalize.js';
import type { PropertyValue, RoutedMessage } from './RoutedMessage.js';

/**
 * Decodes an Event Hubs trigger batch (IoT Hub's built-in, Event Hub-compatible endpoint) as the Functions Node
 * library v4 hands it to a function registered with `app.eventHub({ cardinality: 'many', dataType: 'binary' })`.
 *
 * What the host sends (Microsoft.Azure.WebJobs.Extensions.EventHubs 5.x, `EventHubTriggerBindingStrategy`):
 * `PartitionContext` (`FullyQualifiedNamespace`, `EventHubName`, `ConsumerGroup`, `PartitionId`) and, per event,
 * `PartitionKeyArray`, `OffsetArray`, `SequenceNumberArray`, `EnqueuedTimeUtcArray`, `PropertiesArray` (the
 * application properties, enrichments included) and `SystemPropertiesArray`. Each system property map is the
 * event's AMQP annotations and properties (`iothub-connection-device-id`, `iothub-connection-auth-method`,
 * `iothub-connection-auth-generation-id`, `iothub-enqueuedtime`, `iothub-message-source`, `x-opt-sequence-number`,
 * `x-opt-offset`, `x-opt-enqueued-time`, and `message-id`, `content-type`, `content-encoding`, `correlation-id`
 * when the device set them) plus `SequenceNumber`, `Offset`, `PartitionKey` and `EnqueuedTimeUtc`.
 *
 * What the Node library does to it (`fromRpcTriggerMetadata`): the first letter of every key is lower-cased,
 * recursively, so the application property `Level` arrives as `level` (that letter's original case cannot be
 * recovered), `SequenceNumber` as `sequenceNumber`, while `iothub-*` and `x-opt-*` keys are unchanged. String
 * metadata that parses as JSON is parsed, so offsets can arrive as numbers. Bodies are not touched: Buffers for
 * `dataType: 'binary'`; for other data types strings, or values the library JSON-parsed, which are re-serialised.
 *
 * Never throws. A malformed entry still becomes a message with whatever could be read: missing or short metadata
 * arrays give null source fields and an empty property map, a missing body gives zero bytes, an unparseable time
 * gives a null `enqueuedTime`, a missing device id gives a null `deviceId` (the checks stage reports it).
 */
export function decodeEventHubBatch(
  messages: readonly unknown[],
  triggerMetadata: Record<string, unknown>,
): RoutedMessage[] {
  const metadata: Record<string, unknown> = isRecord(triggerMetadata) ? triggerMetadata : {};
  const systemPropertiesArray = arrayOf(metadataValue(metadata, 'systemPropertiesArray'));
  const propertiesArray = arrayOf(metadataValue(metadata, 'propertiesArray'));
  const enqueuedTimes = arrayOf(metadataValue(metadata, 'enqueuedTimeUtcArray'));
  const sequenceNumbers = arrayOf(metadataValue(metadata, 'sequenceNumberArray'));
  const offsets = arrayOf(metadataValue(metadata, 'offsetArray'));
  const partitionContext = metadataValue(metadata, 'partitionContext');
  const partitionId = isRecord(partitionContext) ? text(metadataValue(partitionContext, 'partitionId')) : null;

  const list = Array.isArray(messages) ? messages : [];
  // toRoutedMessage reads the candidates and keeps nothing of them, so one list serves every message.
  const fallbacks: unknown[] = [undefined, undefined, undefined];
  return list.map((body, i) => {
    const systemProperties = hostMap(systemPropertiesArray[i]);
    // iothub-enqueuedtime (the hub's time) is preferred by toRoutedMessage; these are the Event Hub's own.
    fallbacks[0] = enqueuedTimes[i];
    fallbacks[1] = systemProperties['x-opt-enqueued-time'];
    fallbacks[2] = systemProperties['enqueuedTimeUtc'];
    return toRoutedMessage({
      systemProperties,
      properties: propertyMap(propertiesArray[i]),
      body: bodyBytesOf(body),
      enqueuedTimeFallbacks: fallbacks,
      source: {
        kind: 'eventHub',
        partitionId,
        sequenceNumber: toSafeInteger(
          sequenceNumbers[i] ?? systemProperties['x-opt-sequence-number'] ?? systemProperties['sequenceNumber'],
        ),
        offset: offsetText(offsets[i], systemProperties),
      },
    });
  });
}

/**
 * A system property map of a trigger batch, for `toRoutedMessage`: the host's plain objects as they are, for it to
 * check while it reads them (it converts a map holding anything but `PropertyValue`s), so that the fifteen or so
 * system properties of an event are neither copied nor walked twice. Anything else becomes a plain copy here.
 */
function hostMap(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return {};
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return toPropertyMap(value);
  return value as Record<string, unknown>;
}

/**
 * `toPropertyMap` for the application properties of a trigger batch: the same own enumerable string keys in the
 * same order, each value converted by `toPropertyValue`. The host's maps are plain objects holding strings,
 * numbers and nulls almost always, and then the map is used as it is (it is never mutated: a message that needs
 * other properties gets a new map) instead of being copied. Anything else goes through `toPropertyMap`, which copies.
 */
function propertyMap(value: unknown): Record<string, PropertyValue> {
  if (typeof value !== 'object' || value === null) return {};
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return toPropertyMap(value);
  const map = value as Record<string, unknown>;
  // for...in reads values through V8's enum cache; an inherited key it may visit (a polluted Object.prototype) is
  // only checked here, never copied, so no own-property test is needed.
  for (const key in map) {
    if (!isPlainPropertyValue(map[key])) return toPropertyMap(value);
  }
  // Symbol-keyed properties are not looked for (the host never sends one, and the lookup costs as much as the loop
  // above): nothing reads them, JSON.stringify and Object.keys skip them, so one would change no result.
  return map as Record<string, PropertyValue>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function arrayOf(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

/**
 * `text(offset ?? systemProperties['x-opt-offset'] ?? systemProperties['offset'])`. The host sends an event's offset
 * twice: in OffsetArray as a .NET long, so a number here, and as the `x-opt-offset` annotation, a string. When that
 * string is exactly the number's decimal form (what `String` would make of it), it is the answer as it is: turning
 * the number into a string costs more than checking its digits, several times more once offsets pass 2^31.
 */
function offsetText(offset: unknown, systemProperties: Record<string, unknown>): string | null {
  if (typeof offset === 'number') {
    const annotated = systemProperties['x-opt-offset'];
    if (typeof annotated === 'string' && isDecimalOf(annotated, offset)) return annotated;
  }
  return text(offset ?? systemProperties['x-opt-offset'] ?? systemProperties['offset']);
}

/** Longer digit strings could exceed 2^53 (not exact as a sum of digits); real offsets are far shorter. */
const MAX_EXACT_DIGITS = 15;

/**
 * Whether `digits` is `String(value)`: for a non-negative integer below 10^15 that is its decimal digits with no
 * leading zero (`0` itself excepted), no sign, exponent or fraction.
 */
function isDecimalOf(digits: string, value: number): boolean {
  const length = digits.length;
  if (length === 0 || length > MAX_EXACT_DIGITS) return false;
  if (length > 1 && digits.charCodeAt(0) === 48 /* 0 */) return false;
  let n = 0;
  for (let k = 0; k < length; k++) {
    const digit = digits.charCodeAt(k) - 48;
    if (digit >>> 0 > 9) return false;
    n = n * 10 + digit;
  }
  return n === value;
}

/** Offsets and partition ids are strings to Event Hubs; the Node library may have parsed a numeric one. */
function text(value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}
