/**
 * IoT Hub's built-in endpoint (the fallback route's traffic) → effectively-once windowed reports.
 * Registration and payload adaptation only; the work is `createTelemetryStreamHandler` in src/lib/aggregate.
 */
import { app, type EventHubFunctionOptions, type InvocationContext } from '@azure/functions';
import { describeBatch, telemetryStreamFromServices, type TelemetryStreamHandler } from '../lib/aggregate/telemetryStream.js';
import { decodeEventHubBatch } from '../lib/message/eventHubBatch.js';
import { processServices } from '../lib/runtime.js';

let handler: Promise<TelemetryStreamHandler> | undefined;

function telemetryStreamHandler(): Promise<TelemetryStreamHandler> {
  handler ??= processServices()
    .then(telemetryStreamFromServices)
    .catch((error: unknown) => {
      handler = undefined; // a fixed app setting takes effect on the next batch
      throw error;
    });
  return handler;
}

export async function telemetryStream(messages: unknown, context: InvocationContext): Promise<void> {
  const batch = decodeEventHubBatch(Array.isArray(messages) ? messages : [messages], context.triggerMetadata ?? {});
  const result = await (await telemetryStreamHandler()).processBatch(batch);
  context.log(describeBatch(result));
}

/**
 * `dataType: 'binary'` keeps the device's bytes (the library would otherwise hand over strings or re-parsed JSON).
 * The binding accepts it although the TypeScript options type does not list it, hence the spread.
 */
const trigger = {
  connection: 'IOTHUB_EVENTS_CONNECTION',
  eventHubName: '%IOTHUB_EVENTS_NAME%',
  consumerGroup: '%IOTHUB_EVENTS_CONSUMER_GROUP%',
  cardinality: 'many',
  dataType: 'binary',
} as const;

export const telemetryStreamOptions: EventHubFunctionOptions = {
  ...trigger,
  // The Event Hubs trigger checkpoints a batch that failed for good, which would lose its messages from every
  // report. Only transient storage failures throw (bad messages are quarantined), so retry until storage is back:
  // a stalled partition is visible and loses nothing; re-applying a batch is idempotent.
  retry: { strategy: 'exponentialBackoff', maxRetryCount: -1, minimumInterval: { seconds: 2 }, maximumInterval: { minutes: 5 } },
  handler: telemetryStream,
};

app.eventHub('telemetryStream', telemetryStreamOptions);
