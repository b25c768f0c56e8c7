/**
 * The registered Event Hubs function, called as the host calls it: a real InvocationContext carrying the trigger
 * metadata of an IoT Hub batch, Buffers as bodies (dataType binary), storage on Azurite. Only the registration is
 * intercepted, to get hold of the options and handler.
 */
import { InvocationContext, type EventHubFunctionOptions, type TimerFunctionOptions } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseAggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { readReports } from '../../src/lib/aggregate/reports.js';
import { blobWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration } from '../support/registrations.js';

const azurite = useAzurite();
const reportsContainer = uniqueContainerName('reports');
const saved = { ...process.env };

let options: EventHubFunctionOptions;
let timerOptions: TimerFunctionOptions;

beforeAll(async () => {
  process.env['AzureWebJobsStorage'] = azurite().connectionString;
  process.env['REPORTS_CONTAINER'] = reportsContainer;
  process.env['QUARANTINE_CONTAINER'] = uniqueContainerName('quarantine');
  const { registrations } = await captureRegistrations();
  options = registration(registrations, 'telemetryStream').options as unknown as EventHubFunctionOptions;
  timerOptions = registration(registrations, 'finalizeWindows').options as unknown as TimerFunctionOptions;
});

afterAll(() => {
  process.env = saved;
});

// 50 s into the previous minute: the messages below (40 s to 38 s before it) then share one 1-minute window
// whatever the wall clock says when the test runs.
const now = Math.floor(Date.now() / 60_000) * 60_000 - 10_000;
const enqueued = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();

/** An IoT Hub batch from partition 3 as the Node library hands it over (keys camel-cased, bodies as Buffers). */
function invocation(ids: readonly string[], overrides: { iothubname?: string } = {}) {
  const messages = ids.map((id, i) => Buffer.from(JSON.stringify({ temperature: 20 + i, humidity: 50 })));
  const context = new InvocationContext({
    functionName: 'telemetryStream',
    triggerMetadata: {
      partitionContext: { consumerGroup: '$Default', eventHubName: 'iothub-ehub-x', partitionId: '3' },
      sequenceNumberArray: ids.map((_, i) => 100 + i),
      enqueuedTimeUtcArray: ids.map(() => enqueued(30)),
      propertiesArray: ids.map(() => ({ iothubname: overrides.iothubname ?? 'ContosoTestHub' })),
      systemPropertiesArray: ids.map((id, i) => ({
        'iothub-connection-device-id': 'thermostat-7',
        'iothub-enqueuedtime': enqueued(40 - i),
        'iothub-message-source': 'Telemetry',
        'message-id': id,
        'content-type': 'application/json',
        'content-encoding': 'UTF-8',
        'x-opt-sequence-number': 100 + i,
      })),
    },
  });
  const logged: string[] = [];
  vi.spyOn(context, 'log').mockImplementation((...args: unknown[]) => void logged.push(args.join(' ')));
  return { messages, context, logged };
}

describe('telemetryStream function', () => {
  it('registers a batched, binary Event Hubs trigger on the built-in endpoint with an exponential retry', () => {
    expect(options).toMatchObject({
      connection: 'IOTHUB_EVENTS_CONNECTION',
      eventHubName: '%IOTHUB_EVENTS_NAME%',
      consumerGroup: '%IOTHUB_EVENTS_CONSUMER_GROUP%',
      cardinality: 'many',
      dataType: 'binary',
      retry: { strategy: 'exponentialBackoff', maxRetryCount: -1 },
    });
    expect(typeof options.handler).toBe('function');
    expect(timerOptions.schedule).toBe('0 * * * * *');
  });

  it('aggregates a batch, logs the conservation line, and counts a replayed batch as duplicates', async () => {
    const first = invocation(['a', 'b', 'c']);
    await options.handler(first.messages, first.context);
    expect(first.logged).toEqual([
      'telemetryStream partition 3: received 3 = aggregated 3 + other levels 0 + quarantined 0 + duplicates 0; late 0; windows 1 base, 0 roll-up',
    ]);

    // The host replays the batch after a restart, with IoT Hub's re-send of "b" added.
    const replay = invocation(['a', 'b', 'c', 'b']);
    await options.handler(replay.messages, replay.context);
    expect(replay.logged[0]).toContain('received 4 = aggregated 0 + other levels 0 + quarantined 0 + duplicates 4');

    const config = parseAggregationConfig(undefined);
    if ('errors' in config) throw new Error('default config');
    const store = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: azurite().connectionString }));
    const reports = await readReports(blobWindowStore(store, reportsContainer), config.value, {
      window: config.value.windows[0]!,
      deviceId: 'thermostat-7',
    });
    expect(reports.reduce((n, r) => n + r.messages, 0)).toBe(3);
    expect(reports.flatMap((r) => Object.keys(r.fields))).toContain('temperature');
  });

  it('quarantines a message whose enrichment does not match and still finishes the batch', async () => {
    const batch = invocation(['from-another-hub'], { iothubname: 'OtherHub' });
    await options.handler(batch.messages, batch.context);
    expect(batch.logged[0]).toContain('received 1 = aggregated 0 + other levels 0 + quarantined 1 (EnrichmentMismatch 1) + duplicates 0');
  });

  it('the finalize timer runs against the same storage', async () => {
    const context = new InvocationContext({ functionName: 'finalizeWindows' });
    const logged: string[] = [];
    vi.spyOn(context, 'log').mockImplementation((...args: unknown[]) => void logged.push(args.join(' ')));
    const timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } };
    await timerOptions.handler(timer, context);
    // Partition 3 saw a batch moments ago, so it is not idle and keeps its watermark.
    expect(logged).toEqual(['finalizeWindows: 1 partitions, 0 idle advanced']);
  });
});
