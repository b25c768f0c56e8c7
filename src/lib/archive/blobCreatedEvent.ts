/**
 * Which archive blob a storage account's Event Grid event asks archiveIngest to index.
 *
 * The event (Event Grid schema, one per delivery) names the blob in its `subject`:
 * `/blobServices/default/containers/{container}/blobs/{name}`. The name there is the blob's name as stored, not
 * percent-encoded (`data.url` is the encoded form), so it is taken literally: a blob really named `a%20b.avro` is
 * read as `a%20b.avro`, never as `a b.avro`. Decoding would make the two names one and read the wrong blob.
 *
 * What is not an archive blob to index is a value, never an exception: throwing would make the host answer 500 and
 * Event Grid redeliver the same event for up to a day, which cannot help an event that will never be valid.
 */

export const BLOB_CREATED_EVENT_TYPE = 'Microsoft.Storage.BlobCreated';

const SUBJECT = /^\/blobServices\/default\/containers\/([^/]+)\/blobs\/(.*)$/s;
/** How much of a malformed event a log line quotes. */
const RECEIVED_CHARS = 2000;

export type IgnoredEventReason = 'other-event-type' | 'other-container' | 'empty-name' | 'directory';

export type BlobCreatedTarget =
  /** Ingest indexes whichever version is current when it reads, not the version the event was raised for. */
  | { kind: 'ingest'; blobName: string }
  /** A well-formed event this function does not act on (the subscription's filters normally keep them away). */
  | { kind: 'ignored'; reason: IgnoredEventReason; detail: string }
  /** Not an event of the shape Event Grid sends; `received` quotes it for the log. */
  | { kind: 'malformed'; problem: string; received: string };

/** The blob a BlobCreated event for `archiveContainer` names, or why there is none. */
export function blobCreatedTarget(event: unknown, archiveContainer: string): BlobCreatedTarget {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return malformed('the event is not a JSON object', event);
  }
  const fields = event as Record<string, unknown>;
  const { subject, eventType } = fields;
  if (typeof eventType !== 'string' || eventType === '') return malformed('the event has no eventType', event);
  if (typeof subject !== 'string' || subject === '') return malformed('the event has no subject', event);
  if (eventType !== BLOB_CREATED_EVENT_TYPE) {
    return { kind: 'ignored', reason: 'other-event-type', detail: `${eventType} for ${subject}` };
  }
  const match = SUBJECT.exec(subject);
  if (match === null) {
    return malformed('the subject is not /blobServices/default/containers/{container}/blobs/{name}', event);
  }
  const container = match[1]!;
  const blobName = match[2]!;
  if (container !== archiveContainer) {
    return { kind: 'ignored', reason: 'other-container', detail: `container ${container}, not ${archiveContainer}: ${subject}` };
  }
  if (blobName === '') return { kind: 'ignored', reason: 'empty-name', detail: subject };
  // Hierarchical-namespace accounts raise events for directories too; a name ending in '/' is never an archive file.
  if (blobName.endsWith('/')) return { kind: 'ignored', reason: 'directory', detail: subject };
  return { kind: 'ingest', blobName };
}

function malformed(problem: string, event: unknown): BlobCreatedTarget {
  let received: string;
  try {
    received = JSON.stringify(event) ?? String(event);
  } catch {
    received = String(event);
  }
  if (received.length > RECEIVED_CHARS) received = `${received.slice(0, RECEIVED_CHARS)}... (${received.length} characters)`;
  return { kind: 'malformed', problem, received };
}
