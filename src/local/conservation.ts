/**
 * Conservation, message by message: every message the hub delivered to an endpoint must end in exactly one of that
 * endpoint's outcomes, found in storage under the identity the handler gives it (src/lib/message/identity.ts):
 *
 * - events: counted in reports, or quarantined;
 * - criticalQueue: an alert ledger record that is sent or digested, a quarantine record (which also covers an
 *   e-mail the service rejected), or the dead-letter list;
 * - archive: a record of an archive blob that archiveIngest indexed, or quarantined.
 *
 * A message found in two outcomes is counted twice (`double`), one found in none is `missing`; either fails the
 * check. Re-sent copies share their original's identity, so a copy that changed nothing is a suppressed duplicate
 * (on the archive path IoT Hub stores copies as extra records, which are reported, not suppressed).
 */
import type { EndpointName } from '../lib/config.js';
import { messageIdentity } from '../lib/message/identity.js';
import type { HubMessage } from './hub.js';
import type { OutputSnapshot } from './outputs.js';
import { serviceBusMessageIdOf } from './queue.js';

/** The identity a handler gives this delivery after decoding it from the endpoint's payload. */
export function identityOn(endpoint: EndpointName, message: HubMessage): string {
  const messageId = endpoint === 'criticalQueue' ? serviceBusMessageIdOf(message) : message.messageId;
  return messageIdentity({
    deviceId: message.deviceId,
    ...(message.moduleId !== undefined ? { moduleId: message.moduleId } : {}),
    ...(messageId !== undefined ? { messageId } : {}),
    // The endpoints carry IoT Hub's enqueued time to the millisecond (Avro's seven digits end in zeros here).
    enqueuedTime: message.enqueuedTime,
    body: message.body,
  });
}

/** Deliveries per endpoint and identity, as the hub made them (re-sends included). */
export class DeliveryLog {
  readonly #byEndpoint: Record<EndpointName, Map<string, number>> = {
    events: new Map(),
    criticalQueue: new Map(),
    archive: new Map(),
  };

  /** Critical-queue messages the alert policy does not select: criticalAlerts completes them as `notAlert`. */
  readonly notAlert = new Set<string>();

  constructor(private readonly isAlert: (message: HubMessage) => boolean = () => true) {}

  record(message: HubMessage): string {
    const identity = identityOn(message.endpoint, message);
    if (message.endpoint === 'criticalQueue' && !this.isAlert(message)) this.notAlert.add(identity);
    const map = this.#byEndpoint[message.endpoint];
    map.set(identity, (map.get(identity) ?? 0) + 1);
    return identity;
  }

  deliveries(endpoint: EndpointName): ReadonlyMap<string, number> {
    return this.#byEndpoint[endpoint];
  }
}

export interface EndpointAccount {
  /** Distinct messages delivered to the endpoint. */
  routed: number;
  /** Deliveries, re-sends included. */
  deliveries: number;
  /** Distinct messages per outcome; each message in exactly one when `ok`. */
  outcomes: Record<string, number>;
  /** Messages found in more than one outcome. */
  double: number;
  /** Messages found in no outcome (lost, or still in flight). */
  missing: number;
  /** Up to five missing identities, for diagnosis. */
  missingExamples: string[];
  /** Extra copies of messages that ended in exactly one outcome. */
  duplicates: number;
  ok: boolean;
}

export interface ConservationInput {
  deliveries: DeliveryLog;
  snapshot: OutputSnapshot;
  /** Identities in the critical queue's dead-letter list. */
  deadLettered: ReadonlySet<string>;
  /** Identities held by archive blobs whose current version archiveIngest indexed. */
  indexedArchive: ReadonlySet<string>;
}

function account(deliveries: ReadonlyMap<string, number>, outcomesOf: (identity: string) => string[]): EndpointAccount {
  const outcomes: Record<string, number> = {};
  let double = 0;
  let missing = 0;
  let duplicates = 0;
  let total = 0;
  const missingExamples: string[] = [];
  for (const [identity, copies] of deliveries) {
    total += copies;
    const found = outcomesOf(identity);
    if (found.length === 0) {
      missing++;
      if (missingExamples.length < 5) missingExamples.push(identity);
      continue;
    }
    if (found.length > 1) double++;
    for (const outcome of found) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    if (found.length === 1) duplicates += copies - 1;
  }
  return { routed: deliveries.size, deliveries: total, outcomes, double, missing, missingExamples, duplicates, ok: double === 0 && missing === 0 };
}

export function conservation(input: ConservationInput): Record<EndpointName, EndpointAccount> {
  const { snapshot } = input;
  const quarantined = (endpoint: EndpointName) => snapshot.quarantined.get(endpoint) ?? new Set<string>();
  const q = { events: quarantined('events'), criticalQueue: quarantined('criticalQueue'), archive: quarantined('archive') };
  return {
    events: account(input.deliveries.deliveries('events'), (id) => {
      const found: string[] = [];
      if (snapshot.reported.has(id)) found.push('aggregated');
      if (q.events.has(id)) found.push('quarantined');
      return found;
    }),
    criticalQueue: account(input.deliveries.deliveries('criticalQueue'), (id) => {
      const found: string[] = [];
      const ledger = snapshot.ledger.get(id);
      // A rejected e-mail is recorded as failed in the ledger and quarantined; the quarantine record is its outcome.
      if (q.criticalQueue.has(id)) found.push('quarantined');
      if (ledger?.state === 'sent') found.push('emailed');
      if (ledger?.state === 'digested') found.push('digested');
      if (input.deadLettered.has(id)) found.push('deadLettered');
      // Completed without a record (criticalAlerts' notAlert), unless quarantined first or never completed; an
      // e-mail or digest for it as well would be counted twice, which is the defect it would be.
      if (input.deliveries.notAlert.has(id) && !q.criticalQueue.has(id) && !input.deadLettered.has(id)) found.push('notAlert');
      return found;
    }),
    archive: account(input.deliveries.deliveries('archive'), (id) => {
      const found: string[] = [];
      if (q.archive.has(id)) found.push('quarantined');
      else if (input.indexedArchive.has(id)) found.push('archived');
      return found;
    }),
  };
}
