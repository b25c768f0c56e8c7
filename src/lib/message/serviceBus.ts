import { bodyBytesOf } from './body.js';
import { metadataValue, toPropertyMap, toRoutedMessage, toSafeInteger } from './normalize.js';
import type { PropertyValue, RoutedMessage } from './RoutedMessage.js';

/**
 * Decodes one message from a Service Bus queue that IoT Hub routes to, as the Functions Node library v4 hands it to
 * `app.serviceBusQueue` (register with `dataType: 'binary'` to get the device's bytes rather than a string).
 *
 * What the host sends (Microsoft.Azure.WebJobs.Extensions.ServiceBus 5.x, `ServiceBusTriggerBindingStrategy`):
 * `ApplicationProperties` (and the same map again as `UserProperties`, for older functions), `MessageId`,
 * `ContentType`, `CorrelationId`, `DeliveryCount`, `SequenceNumber`, `EnqueuedTimeUtc`, `EnqueuedTime`,
 * `LockToken`, `ExpiresAtUtc`, `Subject`/`Label`, `To`, `ReplyTo`, session and partition keys. The Node library
 * lower-cases each key's first letter, recursively (so a device property `Level` arrives as `level`), and
 * JSON-parses string values that parse (so a numeric `messageId` arrives as a number).
 *
 * What IoT Hub puts there: the application properties carry `iothub-connection-device-id`,
 * `iothub-connection-auth-method`, `iothub-connection-auth-generation-id`, `iothub-message-source` (and
 * `iothub-connection-module-id` for modules) next to the device's own properties and the route's enrichments;
 * `iothub-enqueuedtime` is usually absent on this endpoint, so the Service Bus enqueued time stands in for it.
 * The device's `message-id`, `correlation-id` and `content-type` become the Service Bus message's own.
 *
 * The `iothub-*` application properties become `systemProperties`, together with the Service Bus message's id,
 * correlation id and content type under their AMQP names (`message-id`, `correlation-id`, `content-type`), the
 * keys the Event Hubs path has, so checks read both paths alike. Everything else is `properties`.
 *
 * Never throws: missing metadata gives null source fields and empty maps, as on the Event Hubs path.
 */
export function decodeServiceBusMessage(
  message: unknown,
  triggerMetadata: Record<string, unknown>,
  queue?: string,
): RoutedMessage {
  const metadata: Record<string, unknown> =
    typeof triggerMetadata === 'object' && triggerMetadata !== null ? triggerMetadata : {};
  const applicationProperties = toPropertyMap(
    metadataValue(metadata, 'applicationProperties') ?? metadataValue(metadata, 'userProperties'),
  );
  const systemEntries: Array<[string, PropertyValue]> = [];
  const propertyEntries: Array<[string, PropertyValue]> = [];
  for (const entry of Object.entries(applicationProperties)) {
    (entry[0].toLowerCase().startsWith('iothub-') ? systemEntries : propertyEntries).push(entry);
  }
  const messageId = text(metadataValue(metadata, 'messageId'));
  const correlationId = text(metadataValue(metadata, 'correlationId'));
  const contentType = text(metadataValue(metadata, 'contentType'));
  if (messageId !== undefined) systemEntries.push(['message-id', messageId]);
  if (correlationId !== undefined) systemEntries.push(['correlation-id', correlationId]);
  if (contentType !== undefined) systemEntries.push(['content-type', contentType]);

  return toRoutedMessage({
    systemProperties: Object.fromEntries(systemEntries),
    properties: Object.fromEntries(propertyEntries),
    body: bodyBytesOf(message),
    enqueuedTimeFallbacks: [metadataValue(metadata, 'enqueuedTimeUtc'), metadataValue(metadata, 'enqueuedTime')],
    contentType,
    messageId,
    source: {
      kind: 'serviceBus',
      queue: queue === undefined || queue === '' ? null : queue,
      sequenceNumber: toSafeInteger(metadataValue(metadata, 'sequenceNumber')),
      deliveryCount: toSafeInteger(metadataValue(metadata, 'deliveryCount')),
    },
  });
}

/**
 * Ids and content types are strings to Service Bus; the Node library may have parsed a numeric one. A safe integer
 * reads back as the digits that were sent (give or take a "1e3"); any other number may not: "12345678901234567890"
 * and "12345678901234567891" both arrive as 12345678901234567000, "1.50" as 1.5. Such an id is dropped rather than
 * guessed, so that two messages never share one (the identity then comes from the content, which is exact).
 */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && !Object.is(value, -0)) return String(value);
  return undefined;
}
