import { app, type InvocationContext } from '@azure/functions';
import { ingestDepsFromServices } from '../lib/archive/archiveDeps.js';
import { createArchiveIngestHandler, type ArchiveIngestHandler, type IngestSummary } from '../lib/archive/ingest.js';
import { processServices, type Services } from '../lib/runtime.js';

/**
 * The blob the host hands over is ignored: the Node library delivers a blob trigger's content as one Buffer the
 * host has already downloaded (IoT Hub chunks go up to 500 MB), and decoding from it would hold the whole blob in
 * memory. The handler re-reads the blob as a stream through @azure/storage-blob, and pins the version it indexes by
 * the ETag of that read. SDK-type bindings (`sdkBinding: true` with the preview package
 * @azure/functions-extensions-blob) would skip the host's download; see docs/adr/0008.
 */
export function archiveIngestHandler(getServices: () => Promise<Services> = processServices) {
  let cached: { services: Services; ingest: ArchiveIngestHandler } | undefined;
  return async (_content: unknown, context: InvocationContext): Promise<IngestSummary> => {
    const services = await getServices();
    if (cached?.services !== services) cached = { services, ingest: createArchiveIngestHandler(ingestDepsFromServices(services)) };
    const name = blobName(context);
    const summary = await cached.ingest(name);
    const damage = summary.damage === null ? '' : `; ${summary.damage.code} at byte ${summary.damage.byteOffset}, quarantined`;
    context.log(
      `archiveIngest ${name} (${summary.etag ?? 'gone'}): ${summary.outcome}, ${summary.format ?? 'no'} format, ` +
        `${summary.records} records, ${summary.quarantined} quarantined${damage}`,
    );
    return summary;
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

app.storageBlob('archiveIngest', {
  path: '%ARCHIVE_CONTAINER%/{name}',
  // One storage account for IoT Hub's container and ours (DESIGN.md section 5).
  connection: 'AzureWebJobsStorage',
  // EventGrid is the production setting: seconds instead of minutes of latency and no container scans. Polling
  // (LogsAndContainerScan) needs no Event Grid subscription, so it is the default for local runs.
  source: process.env['ARCHIVE_TRIGGER_SOURCE'] === 'EventGrid' ? 'EventGrid' : 'LogsAndContainerScan',
  handler: archiveIngestHandler(),
});
