/**
 * Reason codes the checks stage reports, with the outcome each gets by default on each endpoint and a hint a person
 * can act on. routing.config.json may override any outcome per endpoint (`checks.endpoints.<name>.outcomes`).
 *
 * How the defaults were chosen:
 * - `quarantine` takes a message out of its path (no alert, no aggregate, no index entry) but keeps its original
 *   bytes for replay. It is for messages the path cannot use correctly, or must not act on.
 * - `warn` lets the message continue and records the finding (counters, archive index, logs). It is for data-quality
 *   problems whose cause is usually a hub or device setting that affects every message at once: quarantining those
 *   by default would turn one configuration slip into a silent outage of the whole path.
 * - The critical queue leans to `warn` for body problems: an alert with an unreadable body still reaches a person,
 *   a quarantined one does not.
 */

export type Outcome = 'accept' | 'warn' | 'quarantine';
export const OUTCOMES: readonly Outcome[] = ['accept', 'warn', 'quarantine'];

/** The three endpoints of the reference routing set-up (DESIGN.md section 1). */
export type EndpointName = 'events' | 'criticalQueue' | 'archive';
export const ENDPOINT_NAMES: readonly EndpointName[] = ['events', 'criticalQueue', 'archive'];

export type ReasonCode =
  | 'EnrichmentMissing'
  | 'EnrichmentUnresolved'
  | 'EnrichmentMismatch'
  | 'EnrichmentKeyInvalid'
  | 'BodyBase64'
  | 'BodyNotJson'
  | 'BodyEncodingUnsupported'
  | 'LevelMissing'
  | 'DeviceIdMissing'
  | 'MessageTooLarge'
  | 'EnqueuedTimeInvalid';

export interface ReasonInfo {
  /** One line saying what the code means, for listings (`iot-routing check`, the archive index). */
  summary: string;
  /** What a person should change, on the device or in IoT Hub, so the finding goes away. */
  hint: string;
  defaultOutcome: Readonly<Record<EndpointName, Outcome>>;
}

const everywhere = (outcome: Outcome): Record<EndpointName, Outcome> => ({
  events: outcome,
  criticalQueue: outcome,
  archive: outcome,
});

/**
 * IoT Hub accepts enrichment keys made only of these characters, at most 64 of them. Its own tutorial sample shows a
 * key with a space ("device location"), which the portal and the service reject.
 */
export const ENRICHMENT_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/** IoT Hub's limit for a device-to-cloud message (body and properties together). */
export const IOT_HUB_MAX_MESSAGE_BYTES = 262_144;

export const REASONS: Readonly<Record<ReasonCode, ReasonInfo>> = {
  EnrichmentMissing: {
    summary: 'an enrichment routing.config.json requires on this endpoint is not on the message',
    hint:
      'Add the enrichment in IoT Hub (Hub settings > Message routing > Enrich messages, or `az iot hub message-enrichment create`) ' +
      'and select this endpoint for it: enrichments are stamped only on messages to the endpoints they list, and only on ' +
      'messages routed after the change. If the key is present under another spelling, use the same key in IoT Hub and in ' +
      'routing.config.json.',
    // Usually a hub setting not yet deployed: every message is affected, so warn rather than stop the path.
    defaultOutcome: everywhere('warn'),
  },
  EnrichmentUnresolved: {
    summary: 'an enrichment value is the literal placeholder text ($twin... or $iothubname): IoT Hub could not resolve it',
    hint:
      'IoT Hub stamps the enrichment value text itself (for example "$twin.tags.location") when it cannot resolve it. ' +
      'Either the device twin has no such tag or property (paths are case-sensitive: check `az iot hub device-twin show`), ' +
      'or the twin was changed less than five minutes ago (twin changes can take up to five minutes to reach enrichments). ' +
      'Set the tag on the twin (`az iot hub device-twin update --tags \'{"location":"..."}\'`) or fix the enrichment value; ' +
      'only $iothubname, $twin.tags, $twin.properties.desired and $twin.properties.reported are supported, and only for ' +
      'primitive values.',
    // The message itself is fine and the cause is often the five-minute twin delay, which heals on its own: warn.
    defaultOutcome: everywhere('warn'),
  },
  EnrichmentMismatch: {
    summary: 'an enrichment value does not match the equals, pattern or oneOf rule routing.config.json gives it',
    hint:
      'The message carries a different value than routing.config.json expects: it may come from another hub or customer, ' +
      'or the enrichment (or the twin tag behind it) was changed. Correct the enrichment value in IoT Hub, or update the ' +
      'expectation in routing.config.json if the new value is right.',
    // A value the operator explicitly pinned and got wrong suggests the message does not belong here (another
    // customer's id): e-mailing or aggregating it would be a leak, so hold it where it can be replayed.
    defaultOutcome: everywhere('quarantine'),
  },
  EnrichmentKeyInvalid: {
    summary: 'an enrichment key has characters IoT Hub does not allow (only letters, digits, -, _ and .)',
    hint:
      'IoT Hub enrichment keys may contain only letters, digits, hyphen (-), underscore (_) and period (.), at most 64 ' +
      'characters: rename the key (for example "device location" to "deviceLocation") in IoT Hub and in ' +
      'routing.config.json. Samples that show keys with spaces, including the routing tutorial\'s, cannot be reproduced.',
    // The value may still be usable; the fix is a rename.
    defaultOutcome: everywhere('warn'),
  },
  BodyBase64: {
    summary: 'the body was stored or sent as base64 and had to be unwrapped before decoding',
    hint:
      'IoT Hub stored the body as base64 because the message did not declare it: set contentType=application/json and ' +
      'contentEncoding=UTF-8 on the device (message.contentType / message.contentEncoding, or $.ct=application%2Fjson&$.ce=utf-8 ' +
      'in the MQTT topic). Routing queries on $body also need both. If the device itself base64-encodes its payload, ' +
      'send the JSON bytes instead.',
    // The body was decoded anyway; only storage size and $body routing suffer.
    defaultOutcome: everywhere('warn'),
  },
  BodyNotJson: {
    summary: 'the body is declared or looks like JSON but does not parse',
    hint:
      'Fix the device serializer so it sends valid JSON, or stop declaring contentType=application/json for bodies that ' +
      'are not JSON.',
    defaultOutcome: {
      // Aggregation reads fields from the JSON body: without them the message cannot be counted correctly.
      events: 'quarantine',
      // The alert can still show the text to a person.
      criticalQueue: 'warn',
      // The record is still indexed by device and time; its text stays searchable.
      archive: 'warn',
    },
  },
  BodyEncodingUnsupported: {
    summary: 'the body is in a character set that cannot be decoded, or its bytes are not valid in the declared one',
    hint:
      'Encode the body as UTF-8 and set contentEncoding=UTF-8 on the device (IoT Hub also accepts UTF-16 and UTF-32). ' +
      'Check that the declared contentEncoding matches how the bytes were actually written.',
    defaultOutcome: {
      events: 'quarantine',
      // An alert with its bytes shown raw still reaches a person.
      criticalQueue: 'warn',
      // Nothing in the body can be indexed or queried.
      archive: 'quarantine',
    },
  },
  LevelMissing: {
    summary: 'the message has no `level` application property although this endpoint is routed by level',
    hint:
      'IoT Hub routes to this endpoint by a query on `level` (for example level="critical"), so a message without it means ' +
      'the route query is not the one this deployment assumes (compare with `iot-routing check-routes`), or the device ' +
      'puts the level in the body: routing queries on `level` read application properties, so set it with ' +
      'message.properties.add("level", "critical").',
    // Only checked where `requireLevel` is on (critical queue and archive by default; on the events endpoint an
    // absent level means "normal"). IoT Hub did route the message here, so it is still handled.
    defaultOutcome: everywhere('warn'),
  },
  DeviceIdMissing: {
    summary: 'the message has no device id (iothub-connection-device-id / connectionDeviceId)',
    hint:
      'Messages routed by IoT Hub always carry iothub-connection-device-id: this one was written to the endpoint by ' +
      'something else (directly to the queue or Event Hub, or an Event Hubs Capture of a non-IoT Hub sender). Check who ' +
      'holds send rights on the endpoint.',
    // Reports, alerts and the index are all per device, and an unauthenticated sender must not trigger alerts.
    defaultOutcome: everywhere('quarantine'),
  },
  MessageTooLarge: {
    summary: 'the body is larger than the endpoint allows (IoT Hub limits device-to-cloud messages to 256 KB)',
    hint:
      'IoT Hub rejects device-to-cloud messages over 256 KB, so this one did not come through IoT Hub as sent, or the ' +
      'endpoint shape was misread. Devices with large payloads should use file upload; if this endpoint legitimately ' +
      'receives larger messages (Event Hubs Capture allows 1 MB), raise maxBodyBytes for it in routing.config.json.',
    // Not a message IoT Hub could have delivered: do not act on it, and keep oversize bodies out of e-mails.
    defaultOutcome: everywhere('quarantine'),
  },
  EnqueuedTimeInvalid: {
    summary: 'the enqueued time is absent, unparseable, before 2010 or more than a day in the future',
    hint:
      'IoT Hub sets the enqueued time itself (iothub-enqueuedtime); when it is missing or absurd the message did not come ' +
      'from IoT Hub, or the reader took the wrong field or unit (seconds read as milliseconds). Check the endpoint shape ' +
      'with `iot-routing decode`.',
    defaultOutcome: {
      // Windows and the archive index are keyed by time: a message without one lands in the wrong place.
      events: 'quarantine',
      // Routing to Service Bus may omit iothub-enqueuedtime; an alert is worth more than its timestamp.
      criticalQueue: 'warn',
      archive: 'quarantine',
    },
  },
};

export const REASON_CODES = Object.keys(REASONS) as readonly ReasonCode[];

/** BodyBase64's hint for a body that is not JSON: the JSON declaration its own hint advises would not fit it. */
export const BODY_BASE64_NOT_JSON_HINT =
  'IoT Hub stores a body it was not told is UTF-8 JSON as base64; this one is not JSON, so that is expected and it was ' +
  'decoded. If it should be JSON, fix the device serializer and set contentType=application/json and ' +
  'contentEncoding=UTF-8; otherwise nothing needs to change (routing queries cannot read $body of non-JSON messages).';

/**
 * EnrichmentUnresolved's hint for an IoT Edge module's message: IoT Hub enriches it from the module twin, which
 * inherits nothing from the device twin (learn.microsoft.com/azure/iot-hub/iot-hub-message-enrichments-overview,
 * "Limitations"), so the device-twin advice of the general hint would not fix it.
 */
export const ENRICHMENT_UNRESOLVED_MODULE_HINT =
  'This message was sent by an IoT Edge module: IoT Hub enriches a module\'s messages from the module twin, which ' +
  'inherits no tags from the device twin. Either the module twin has no such tag or property (paths are ' +
  'case-sensitive: check `az iot hub module-twin show -d <device> -m <module>`), the module is no longer registered ' +
  '(IoT Edge deployments re-create modules), or the twin was changed less than five minutes ago. Set the tag on the ' +
  'module twin (`az iot hub module-twin update -d <device> -m <module> --tags \'{"location":"..."}\'`; a device twin ' +
  'tag does not reach module messages) or fix the enrichment value; only $iothubname, $twin.tags, ' +
  '$twin.properties.desired and $twin.properties.reported are supported, and only for primitive values.';

export function isReasonCode(value: string): value is ReasonCode {
  return Object.hasOwn(REASONS, value);
}

const SEVERITY: Readonly<Record<Outcome, number>> = { accept: 0, warn: 1, quarantine: 2 };

export function moreSevere(a: Outcome, b: Outcome): Outcome {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}
