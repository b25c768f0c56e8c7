import { app, type InvocationContext } from '@azure/functions';
import { ingestDepsFromServices } from '../lib/archive/archiveDeps.js';
import { blobCreatedTarget } from '../lib/archive/blobCreatedEvent.js';
import { archiveTriggerSourceOf } from '../lib/archive/config.js';
import { createArchiveIngestHandler, describeIngest, type ArchiveIngestHandler, type IngestSummary } from '../lib/archive/ingest.js';
import { processServices, type Services } from '../lib/runtime.js';

/**
 * Exactly one registration ingests, chosen by ARCHIVE_TRIGGER_SOURCE when this module loads (docs/adr/0008):
 * - `EventGrid` (production): an Event Grid trigger on the storage account's BlobCreated events. The host hands
 *   over the event only, never the blob, so the blob is read once, as a stream, by the handler.
 * - anything else: the polling blob trigger (LogsAndContainerScan), for plans that run it. The Node library hands
 *   a blob trigger its content as one Buffer the host has already downloaded (up to IoT Hub's 500 MiB chunk); it
 *   is ignored and the blob re-read as a stream, but the host's download and buffer remain.
 * Both call the same ingest, which reads the blob itself and pins the version it indexes by the ETag of that read.
 */

type LoggedIngest = (name: string, context: InvocationContext) => Promise<IngestSummary>;

/**
 * The one ingest both registrations share (by blob name, its summary logged) and the archive container it reads,
 * built once per services rather than per invocation.
 */
function sharedIngest(getServices: () => Promise<Services>): () => Promise<{ container: string; ingest: LoggedIngest }> {
  let cached: { services: Services; container: string; ingest: LoggedIngest } | undefined;
  return async () => {
    const services = await getServices();
    if (cached?.services !== services) {
      const deps = ingestDepsFromServices(services);
      cached = { services, container: deps.archive.container, ingest: loggedIngest(createArchiveIngestHandler(deps)) };
    }
    return cached;
  };
}

function loggedIngest(ingest: ArchiveIngestHandler): LoggedIngest {
  return async (name, context) => {
    const summary = await ingest(name);
    context.log(`archiveIngest ${name} (${summary.etag ?? 'gone'}): ${summary.outcome}, ${summary.format ?? 'no'} format, ${describeIngest(summary)}`);
    return summary;
  };
}

/** The polling blob trigger's handler: the host's buffer is ignored, the blob named by the trigger re-read. */
export function archiveIngestHandler(getServices: () => Promise<Services> = processServices) {
  const current = sharedIngest(getServices);
  return async (_content: unknown, context: InvocationContext): Promise<IngestSummary> => {
    const name = blobName(context);
    return (await current()).ingest(name, context);
  };
}

export type ArchiveEventOutcome = IngestSummary | { outcome: 'ignored' | 'malformed'; reason: string };

/**
 * The Event Grid trigger's handler. Delivery is at least once: Event Grid redelivers an event the host answered
 * with an error (the host answers 500 when this throws) or did not answer within 30 seconds, on its retry
 * schedule, for up to 30 attempts / 24 hours (the subscription's retry policy). Redelivery changes nothing: ingest is
 * idempotent by (name, ETag) — an indexed version is recognised from its manifest before any download, quarantine
 * records are keyed by message identity, and the manifest is written conditionally (manifest.ts) — so a storage
 * failure is thrown for Event Grid to retry. An event that can never name an archive blob is logged and answered
 * as handled: retrying it would only repeat the log line for a day.
 */
export function archiveEventGridHandler(getServices: () => Promise<Services> = processServices) {
  const current = sharedIngest(getServices);
  return async (event: unknown, context: InvocationContext): Promise<ArchiveEventOutcome> => {
    const { container, ingest } = await current();
    const target = blobCreatedTarget(event, container);
    if (target.kind === 'malformed') {
      // Nothing to quarantine (no blob is named), so the log line is the record, with what a person can do.
      context.error(
        `archiveIngest: event not handled (${target.problem}); no blob was indexed from it: check the Event Grid ` +
          `subscription's schema (EventGridSchema) and filters, then run \`iot-routing archive index\` to index any ` +
          `blob it announced; received: ${target.received}`,
      );
      return { outcome: 'malformed', reason: target.problem };
    }
    if (target.kind === 'ignored') {
      context.log(`archiveIngest: event ignored (${target.reason}): ${target.detail}`);
      return { outcome: 'ignored', reason: target.reason };
    }
    return ingest(target.blobName, context);
  };
}

/** `{name}` from the trigger path; `blobTrigger` ("container/name") as a fallback for hosts that omit it. */
function blobName(context: InvocationContext): string {
  const metadata = context.triggerMetadata ?? {};
  const name = metadata['name'];
  if (typeof name === 'string' && name !== '') return name;
  const path = metadata['blobTrigger'];
  if (typeof path === 'string' && path.includes('/')) return path.slice(path.indexOf('/') + 1);
  throw new Error('archiveIngest: the trigger metadata has neither {name} nor blobTrigger');
}

if (archiveTriggerSourceOf(process.env) === 'EventGrid') {
  // The infra template subscribes /runtime/webhooks/eventgrid?functionName=archiveIngest to BlobCreated events of
  // the archive container; the subject names the blob (src/lib/archive/blobCreatedEvent.ts).
  app.eventGrid('archiveIngest', { handler: archiveEventGridHandler() });
} else {
  app.storageBlob('archiveIngest', {
    path: '%ARCHIVE_CONTAINER%/{name}',
    // One storage account for IoT Hub's container and ours (DESIGN.md section 5).
    connection: 'AzureWebJobsStorage',
    // Polling needs no Event Grid subscription: local runs and plans that run polling blob triggers (not Flex
    // Consumption). Its cost is the host's download of every blob into memory, on top of the handler's stream.
    source: 'LogsAndContainerScan',
    handler: archiveIngestHandler(),
  });
}
