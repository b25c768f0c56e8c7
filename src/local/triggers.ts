/**
 * Trigger payloads shaped as the Functions host sends them and the Node library (v4) hands them to a handler.
 * Sources for each shape are in test/fixtures/triggers (Event Hubs and Service Bus) and in the comments below; the
 * host's side is written with PascalCase keys and typed RPC data, the library's conversion is
 * {@link toNodeTriggerMetadata}.
 */
import type { PartitionContext, StreamEvent } from './eventStream.js';
import {
  dotnetDateTime,
  dotnetDateTimeOffset,
  payloadFor,
  rpc,
  toCamelCaseValue,
  toNodeTriggerMetadata,
  type RpcValue,
} from './invoke.js';
import type { QueuedMessage } from './queue.js';
import type { Registration } from './registrations.js';

export interface TriggerInvocation {
  input: unknown;
  triggerMetadata: Record<string, unknown>;
}

/**
 * The event's system properties as the host puts them in `SystemPropertiesArray` (Extensions.EventHubs 5.x): the
 * AMQP annotations and properties IoT Hub set, the `x-opt-*` annotations Event Hubs added, then `SequenceNumber`,
 * `Offset`, `PartitionKey` and `EnqueuedTimeUtc`.
 */
function eventSystemProperties(event: StreamEvent): Record<string, unknown> {
  return {
    ...event.message.systemProperties,
    'x-opt-sequence-number': event.sequenceNumber,
    'x-opt-offset': event.offset,
    'x-opt-enqueued-time': dotnetDateTimeOffset(event.enqueuedTime),
    SequenceNumber: event.sequenceNumber,
    Offset: Number(event.offset),
    PartitionKey: null,
    EnqueuedTimeUtc: dotnetDateTime(event.enqueuedTime),
  };
}

function partitionContextOf(context: PartitionContext): RpcValue {
  return rpc.json({
    IsCheckpointingAfterInvocation: true,
    FullyQualifiedNamespace: context.fullyQualifiedNamespace,
    EventHubName: context.eventHubName,
    ConsumerGroup: context.consumerGroup,
    PartitionId: context.partitionId,
  });
}

/**
 * One invocation per batch for `cardinality: 'many'` (the `*Array` metadata), one per event otherwise (the
 * singular names). Bodies follow the registration's `dataType`.
 */
export function eventHubInvocations(
  registration: Registration,
  context: PartitionContext,
  events: readonly StreamEvent[],
): TriggerInvocation[] {
  const dataType = registration.options['dataType'];
  if (registration.options['cardinality'] === 'many') {
    const host: Record<string, RpcValue> = {
      PartitionContext: partitionContextOf(context),
      PartitionKeyArray: rpc.json([]),
      OffsetArray: rpc.collectionString(events.map((e) => e.offset)),
      SequenceNumberArray: rpc.collectionSint64(events.map((e) => e.sequenceNumber)),
      EnqueuedTimeUtcArray: rpc.collectionString(events.map((e) => dotnetDateTime(e.enqueuedTime))),
      PropertiesArray: rpc.json(events.map((e) => e.message.properties)),
      SystemPropertiesArray: rpc.json(events.map(eventSystemProperties)),
    };
    return [{ input: events.map((e) => payloadFor(dataType, e.message.body)), triggerMetadata: toNodeTriggerMetadata(host) }];
  }
  return events.map((event) => ({
    input: payloadFor(dataType, event.message.body),
    triggerMetadata: toNodeTriggerMetadata({
      PartitionContext: partitionContextOf(context),
      Offset: rpc.string(event.offset),
      SequenceNumber: rpc.int(event.sequenceNumber),
      EnqueuedTimeUtc: rpc.string(dotnetDateTime(event.enqueuedTime)),
      Properties: rpc.json(event.message.properties),
      SystemProperties: rpc.json(eventSystemProperties(event)),
    }),
  }));
}

export interface ServiceBusEntity {
  fullyQualifiedNamespace: string;
  queueName: string;
}

/**
 * A peek-locked message as Extensions.ServiceBus 5.x binds it for single dispatch (`ServiceBusTriggerBindingStrategy`):
 * the message's own properties, `ApplicationProperties` and the same map as `UserProperties`, and the settlement
 * objects, which cannot cross to a Node worker and arrive as empty objects.
 */
export function serviceBusInvocation(registration: Registration, entity: ServiceBusEntity, message: QueuedMessage): TriggerInvocation {
  const host: Record<string, RpcValue> = {
    MessageReceiver: rpc.json({}),
    MessageSession: rpc.json({}),
    MessageActions: rpc.json({}),
    SessionActions: rpc.json({}),
    ReceiveActions: rpc.json({}),
    Client: rpc.json({ FullyQualifiedNamespace: entity.fullyQualifiedNamespace, Identifier: `local-${entity.queueName}`, IsClosed: false }),
    DeliveryCount: rpc.int(message.deliveryCount),
    DeadLetterSource: rpc.json(null),
    LockToken: rpc.string(message.lockToken ?? ''),
    ExpiresAtUtc: rpc.string(dotnetDateTime(message.expiresAt)),
    ExpiresAt: rpc.string(dotnetDateTimeOffset(message.expiresAt)),
    EnqueuedTimeUtc: rpc.string(dotnetDateTime(message.enqueuedTime)),
    EnqueuedTime: rpc.string(dotnetDateTimeOffset(message.enqueuedTime)),
    MessageId: rpc.string(message.messageId),
    ContentType: message.contentType === undefined ? rpc.json(null) : rpc.string(message.contentType),
    ReplyTo: rpc.json(null),
    SequenceNumber: rpc.int(message.sequenceNumber),
    To: rpc.json(null),
    Subject: rpc.json(null),
    Label: rpc.json(null),
    CorrelationId: message.correlationId === undefined ? rpc.json(null) : rpc.string(message.correlationId),
    ApplicationProperties: rpc.json(message.applicationProperties),
    UserProperties: rpc.json(message.applicationProperties),
    SessionId: rpc.json(null),
    ReplyToSessionId: rpc.json(null),
    PartitionKey: rpc.json(null),
    TransactionPartitionKey: rpc.json(null),
  };
  return { input: payloadFor(registration.options['dataType'], message.body), triggerMetadata: toNodeTriggerMetadata(host) };
}

export interface BlobInfo {
  container: string;
  name: string;
  uri: string;
  body: Uint8Array;
  etag: string;
  contentType: string;
  lastModified: Date;
}

/**
 * The blob trigger's binding data: `BlobTrigger` (`container/name`), `Uri`, `Properties` (the blob's properties),
 * `Metadata`, and one entry per `{token}` the registration's path binds (usually `{name}`).
 */
export function blobInvocation(registration: Registration, blob: BlobInfo, bindings: Readonly<Record<string, string>>): TriggerInvocation {
  const host: Record<string, RpcValue> = {
    BlobTrigger: rpc.string(`${blob.container}/${blob.name}`),
    Uri: rpc.string(blob.uri),
    Properties: rpc.json({
      BlobType: 'BlockBlob',
      ContentLength: blob.body.byteLength,
      ContentType: blob.contentType,
      ETag: blob.etag,
      LastModified: dotnetDateTimeOffset(blob.lastModified),
      CreatedOn: dotnetDateTimeOffset(blob.lastModified),
    }),
    Metadata: rpc.json({}),
  };
  for (const [token, value] of Object.entries(bindings)) host[token] = rpc.string(value);
  return { input: payloadFor(registration.options['dataType'], blob.body), triggerMetadata: toNodeTriggerMetadata(host) };
}

/**
 * Matches a blob against a blob trigger path (`container/{name}`, `container/prefix/{name}.avro`, with `%SETTING%`
 * already resolved). Returns the bound tokens, or null when the path does not select this blob. A `{token}` binds
 * any run of characters, slashes included, as the host's blob path matcher does for the last token.
 */
export function matchBlobPath(path: string, container: string, name: string): Record<string, string> | null {
  const slash = path.indexOf('/');
  const pathContainer = slash < 0 ? path : path.slice(0, slash);
  if (pathContainer !== container) return null;
  const pattern = slash < 0 ? '{name}' : path.slice(slash + 1);
  if (pattern === '') return {};
  const tokens: string[] = [];
  let regex = '^';
  let last = 0;
  for (const match of pattern.matchAll(/\{([^{}]+)\}/g)) {
    regex += escapeRegex(pattern.slice(last, match.index));
    tokens.push(match[1]!);
    regex += '(.+?)';
    last = match.index + match[0].length;
  }
  regex += `${escapeRegex(pattern.slice(last))}$`;
  const matched = new RegExp(regex, 's').exec(name);
  if (matched === null) return null;
  return Object.fromEntries(tokens.map((token, i) => [token, matched[i + 1]!]));
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The timer payload: the host's `TimerInfo` JSON, camel-cased by the library (it does so for timer inputs only). */
export function timerInput(last: Date | null, next: Date, isPastDue: boolean): unknown {
  return toCamelCaseValue({
    Schedule: { AdjustForDST: true },
    ScheduleStatus: {
      Last: (last ?? new Date(0)).toISOString(),
      Next: next.toISOString(),
      LastUpdated: (last ?? next).toISOString(),
    },
    IsPastDue: isPastDue,
  });
}
