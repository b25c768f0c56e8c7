/**
 * The local hub: what IoT Hub does between a device and the endpoints. It stamps the system properties IoT Hub
 * stamps, evaluates the routes of routing.config.json (IoT Hub's routing query language, src/lib/routing) against
 * the message and its device twin, applies the enrichments listed for each endpoint, and hands one copy to each
 * endpoint the message matched (once per endpoint, however many routes chose it), or to `events` through the
 * fallback route.
 *
 * At-least-once: IoT Hub may deliver a message to an endpoint more than once (DESIGN.md section 4). With a re-send
 * probability, the hub delivers an exact copy again a little later: same system properties, same enqueued time,
 * same message id. The handlers must suppress those; the runtime counts them.
 */
import { createHash } from 'node:crypto';
import type { EndpointName, EnrichmentConfig } from '../lib/config.js';
import { decodeBody } from '../lib/message/body.js';
import { applyEnrichments } from '../lib/routing/enrich.js';
import type { RouteTwin } from '../lib/routing/evaluate.js';
import { evaluateRoutes, type CompiledRoute, type RoutesEvaluation } from '../lib/routing/routes.js';
import type { Random } from './random.js';

/** What a device sends: its body bytes, the declarations it chose to set, and application properties. */
export interface DeviceMessage {
  deviceId: string;
  moduleId?: string;
  body: Uint8Array;
  contentType?: string;
  contentEncoding?: string;
  /** Application properties; strings on the wire, as every IoT Hub transport carries them. */
  properties: Record<string, string>;
  messageId?: string;
  correlationId?: string;
}

/** One delivery of a routed message to one endpoint. */
export interface HubMessage {
  /** Position of the device message in this hub's input, from 1. Local bookkeeping only: never an identity. */
  sequence: number;
  endpoint: EndpointName;
  /** 0 for the first delivery; 1, 2, ... for at-least-once re-sends of the same message. */
  resend: number;
  deviceId: string;
  moduleId?: string;
  /** `iothub-enqueuedtime`: when the hub accepted the message. Re-sends keep it. */
  enqueuedTime: Date;
  /** When this copy reached the endpoint (simulated): the enqueued time, later for a re-send. */
  deliveredAt: Date;
  body: Uint8Array;
  contentType?: string;
  contentEncoding?: string;
  messageId?: string;
  correlationId?: string;
  /** The device's application properties, then the enrichments stamped for this endpoint. */
  properties: Record<string, string>;
  /** Enrichments alone, for tests and the status line. */
  enrichments: Record<string, string>;
  /** IoT Hub's system properties under their AMQP names (`iothub-connection-device-id`, `message-id`, ...). */
  systemProperties: Record<string, string>;
}

export interface HubEndpoint {
  /** Must not throw for a message: an endpoint that cannot take one records the failure itself. */
  deliver(message: HubMessage): void;
}

export interface Resends {
  /** Probability in [0, 1] that a delivery to an endpoint is repeated. */
  probability: number;
  random: Random;
  /** Re-sends come this long after the message (simulated ms), drawn uniformly; default 1-10 s. */
  delayMs?: { min: number; max: number };
  /** Runs `deliver` after `delayMs` of simulated time, so a re-send lands in a later batch or blob. */
  schedule(delayMs: number, deliver: () => void): void;
}

export interface HubOptions {
  iotHubName: string;
  routes: readonly CompiledRoute[];
  fallbackRoute: boolean;
  enrichments: readonly EnrichmentConfig[];
  /**
   * The twin a message is enriched and routed by: the device twin for a device's message, the module twin for a
   * module's (IoT Hub never falls back to the device twin for a module); undefined when there is none.
   */
  twinOf(deviceId: string, moduleId: string | undefined): RouteTwin | undefined;
  endpoints: Partial<Record<EndpointName, HubEndpoint>>;
  resends?: Resends;
}

export interface RoutedRecord {
  message: DeviceMessage;
  sequence: number;
  enqueuedTime: Date;
  systemProperties: Record<string, string>;
  evaluation: RoutesEvaluation;
  /** What each endpoint received on the first delivery. */
  deliveries: HubMessage[];
}

export interface HubStats {
  sent: number;
  /** Distinct messages delivered per endpoint (re-sends not counted). */
  routed: Record<EndpointName, number>;
  /** Extra deliveries per endpoint from at-least-once re-sends. */
  resent: Record<EndpointName, number>;
  /** Messages no route matched while the fallback route was off: IoT Hub drops them. */
  dropped: number;
  /** Messages routed to an endpoint this hub has no sink for. */
  undeliverable: number;
}

/** IoT Hub's value for a SAS-authenticated device connection, as it appears on routed messages. */
export const SAS_AUTH_METHOD = '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}';

/** A stable 18-digit generation id per device, like the one IoT Hub assigns when the identity is created. */
export function generationIdOf(deviceId: string): string {
  const digest = createHash('sha256').update(deviceId).digest();
  return `6385${(digest.readBigUInt64BE(0) % 100_000_000_000_000n).toString().padStart(14, '0')}`;
}

export function emptyByEndpoint(): Record<EndpointName, number> {
  return { events: 0, criticalQueue: 0, archive: 0 };
}

export class LocalHub {
  readonly stats: HubStats = {
    sent: 0,
    routed: emptyByEndpoint(),
    resent: emptyByEndpoint(),
    dropped: 0,
    undeliverable: 0,
  };
  readonly #options: HubOptions;

  constructor(options: HubOptions) {
    this.#options = options;
  }

  get iotHubName(): string {
    return this.#options.iotHubName;
  }

  /** Accepts one device message at `enqueuedTime` (simulated) and delivers it to every endpoint it routes to. */
  send(message: DeviceMessage, enqueuedTime: Date): RoutedRecord {
    const options = this.#options;
    const sequence = ++this.stats.sent;
    const systemProperties = stampSystemProperties(message, enqueuedTime);
    const twin = options.twinOf(message.deviceId, message.moduleId);
    const evaluation = evaluateRoutes(
      options.routes,
      options.fallbackRoute,
      {
        message: {
          properties: message.properties,
          systemProperties,
          decoded: decodeBody(message.body, { contentType: message.contentType, contentEncoding: message.contentEncoding }),
          contentType: message.contentType,
          contentEncoding: message.contentEncoding,
          deviceId: message.deviceId,
          moduleId: message.moduleId,
          messageId: message.messageId,
          enqueuedTime,
        },
        twin,
      },
      // Explaining misses re-resolves every reference; the CLI's check-routes explains, the hot path does not.
      { explain: false },
    );
    if (evaluation.endpoints.length === 0) this.stats.dropped++;

    const deliveries: HubMessage[] = [];
    for (const endpoint of evaluation.endpoints) {
      const sink = options.endpoints[endpoint];
      if (sink === undefined) {
        this.stats.undeliverable++;
        continue;
      }
      // Enrichments are per endpoint and come after routing: a route query never sees them.
      const enrichments = applyEnrichments(options.enrichments, endpoint, { iotHubName: options.iotHubName, twin });
      const delivery: HubMessage = {
        sequence,
        endpoint,
        resend: 0,
        deviceId: message.deviceId,
        ...(message.moduleId !== undefined ? { moduleId: message.moduleId } : {}),
        enqueuedTime,
        deliveredAt: enqueuedTime,
        body: message.body,
        ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
        ...(message.contentEncoding !== undefined ? { contentEncoding: message.contentEncoding } : {}),
        ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
        ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
        // Assumption: an enrichment whose key equals a device property replaces it, as the key names one
        // application property on the delivered message.
        properties: { ...message.properties, ...enrichments },
        enrichments,
        systemProperties,
      };
      deliveries.push(delivery);
      this.stats.routed[endpoint]++;
      sink.deliver(delivery);
      this.#maybeResend(sink, delivery);
    }
    return { message, sequence, enqueuedTime, systemProperties, evaluation, deliveries };
  }

  #maybeResend(sink: HubEndpoint, delivery: HubMessage): void {
    const resends = this.#options.resends;
    if (resends === undefined || resends.probability <= 0) return;
    // IoT Hub's re-sends look like [1,2,1,2,3]: a copy can come again, and again; each repeat is its own draw.
    let copies = 0;
    while (copies < 3 && resends.random() < resends.probability) copies++;
    const { min, max } = resends.delayMs ?? { min: 1_000, max: 10_000 };
    for (let n = 1; n <= copies; n++) {
      const delay = min + resends.random() * (max - min);
      resends.schedule(delay, () => {
        this.stats.resent[delivery.endpoint]++;
        sink.deliver({ ...delivery, resend: n, deliveredAt: new Date(delivery.enqueuedTime.getTime() + Math.round(delay)) });
      });
    }
  }
}

/** The system properties IoT Hub stamps on a device-to-cloud message, under the names the AMQP endpoints use. */
export function stampSystemProperties(message: DeviceMessage, enqueuedTime: Date): Record<string, string> {
  const system: Record<string, string> = {
    'iothub-connection-device-id': message.deviceId,
    ...(message.moduleId !== undefined ? { 'iothub-connection-module-id': message.moduleId } : {}),
    'iothub-connection-auth-method': SAS_AUTH_METHOD,
    'iothub-connection-auth-generation-id': generationIdOf(message.deviceId),
    'iothub-enqueuedtime': enqueuedTime.toISOString(),
    'iothub-message-source': 'Telemetry',
  };
  if (message.messageId !== undefined) system['message-id'] = message.messageId;
  if (message.correlationId !== undefined) system['correlation-id'] = message.correlationId;
  if (message.contentType !== undefined) system['content-type'] = message.contentType;
  if (message.contentEncoding !== undefined) system['content-encoding'] = message.contentEncoding;
  return system;
}
