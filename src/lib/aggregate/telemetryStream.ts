/**
 * The telemetry stream handler: what the Event Hubs-triggered `telemetryStream` function, the local runtime and the
 * CLI's backfill run on a batch of decoded messages from IoT Hub's built-in endpoint. Admit (twins, checks,
 * quarantine), then aggregate into windows.
 *
 * Never throws for a bad message (it is quarantined and the batch continues). Throws only transient failures
 * (storage), so the trigger's retry policy applies the whole batch again, which is safe: every write is idempotent.
 */
import { admit, type AdmitDeps, type AdmittedMessage } from '../checks/admit.js';
import { REASONS, type ReasonCode } from '../checks/reasons.js';
import type { RoutedMessage } from '../message/RoutedMessage.js';
import type { Services } from '../runtime.js';
import { reasonFor, type Quarantine } from '../storage/quarantine.js';
import { aggregationConfigOf } from './aggregationConfig.js';
import { verifyBaseWindow } from './baseWindow.js';
import { createWindowAggregator, type WindowAggregator } from './windowAggregator.js';
import { blobWindowStore } from './windowStore.js';

export interface TelemetryStreamDeps {
  admit: AdmitDeps;
  quarantine: Quarantine;
  aggregator: WindowAggregator;
}

/**
 * Conservation: `received = aggregated + countedOtherLevel + quarantined + duplicates`. `late` is a subset of the
 * counted ones.
 */
export interface TelemetryBatchResult {
  partitions: string[];
  received: number;
  aggregated: number;
  countedOtherLevel: number;
  quarantined: number;
  /** The quarantined ones by the codes that quarantined them (see `AdmitResult.quarantinedBy`). */
  quarantinedBy: Partial<Record<ReasonCode, number>>;
  duplicates: number;
  late: number;
  baseWindows: number;
  rollupWindows: number;
}

export interface ProcessBatchOptions {
  /** The partition to account the batch to; default each message's Event Hubs partition. */
  partition?: string;
}

export interface TelemetryStreamHandler {
  processBatch(messages: readonly RoutedMessage[], options?: ProcessBatchOptions): Promise<TelemetryBatchResult>;
}

/** Messages that reach us without an Event Hubs partition (a local runtime that does not set one). */
const UNKNOWN_PARTITION = 'unknown';

export function createTelemetryStreamHandler(deps: TelemetryStreamDeps): TelemetryStreamHandler {
  return {
    async processBatch(messages, options = {}) {
      const admitted = await admit(messages, 'events', deps.admit);
      const byPartition = new Map<string, AdmittedMessage[]>();
      // Every partition that delivered something, even if all of it was quarantined: its `lastBatchAt` says it is
      // not idle.
      for (const message of messages) {
        const partition = partitionOf(message, options);
        if (!byPartition.has(partition)) byPartition.set(partition, []);
      }
      for (const item of admitted.admitted) byPartition.get(partitionOf(item.message, options))?.push(item);

      const result: TelemetryBatchResult = {
        partitions: [...byPartition.keys()],
        received: messages.length,
        aggregated: 0,
        countedOtherLevel: 0,
        quarantined: admitted.quarantined,
        quarantinedBy: admitted.quarantinedBy,
        duplicates: 0,
        late: 0,
        baseWindows: 0,
        rollupWindows: 0,
      };
      for (const [partition, items] of byPartition) {
        const aggregate = await deps.aggregator.aggregate(items, partition);
        for (const { admitted: { delivered }, code } of aggregate.unwindowable) {
          // As delivered, like every quarantined message (admit.ts).
          await deps.quarantine.putMessage(delivered, 'events', [
            reasonFor(code, 'a window is per device and enqueued time; this message has no value for one of them'),
          ]);
          result.quarantinedBy[code] = (result.quarantinedBy[code] ?? 0) + 1;
        }
        result.aggregated += aggregate.aggregated;
        result.countedOtherLevel += aggregate.countedOtherLevel;
        result.quarantined += aggregate.unwindowable.length;
        result.duplicates += aggregate.duplicates;
        result.late += aggregate.late;
        result.baseWindows += aggregate.baseWindows;
        result.rollupWindows += aggregate.rollupWindows;
      }
      return result;
    },
  };
}

function partitionOf(message: RoutedMessage, options: ProcessBatchOptions): string {
  if (options.partition !== undefined) return options.partition;
  return (message.source.kind === 'eventHub' ? message.source.partitionId : null) ?? UNKNOWN_PARTITION;
}

/** The handler with the process's ports: blob storage from AzureWebJobsStorage, container from REPORTS_CONTAINER. */
export function telemetryStreamFromServices(services: Services): TelemetryStreamHandler {
  return createTelemetryStreamHandler({
    admit: services.admitDeps,
    quarantine: services.quarantine,
    aggregator: createWindowAggregator({
      windows: blobWindowStore(services.store, services.config.settings.reportsContainer),
      config: aggregationConfigOf(services.config.routing),
      clock: services.clock,
    }),
  });
}

/** For `GET /api/health`: ConfigInvalid when the reports container was written with another base window. */
export function verifyStoredConfiguration(services: Services): Promise<void> {
  const base = aggregationConfigOf(services.config.routing).windows[0]!;
  return verifyBaseWindow(blobWindowStore(services.store, services.config.settings.reportsContainer), base);
}

/** One log line that shows the conservation equation holding. */
export function describeBatch(result: TelemetryBatchResult): string {
  return (
    `telemetryStream partition ${result.partitions.join(',') || '-'}: received ${result.received} = aggregated ` +
    `${result.aggregated} + other levels ${result.countedOtherLevel} + quarantined ${describeQuarantined(result.quarantined, result.quarantinedBy)} + ` +
    `duplicates ${result.duplicates}; late ${result.late}; windows ${result.baseWindows} base, ${result.rollupWindows} roll-up`
  );
}

/** `3 (DeviceIdMissing 2, BodyNotJson 1)`: the count, with the codes behind it, most frequent first. */
export function describeQuarantined(count: number, by: Readonly<Partial<Record<ReasonCode, number>>>): string {
  const codes = (Object.keys(by) as ReasonCode[]).sort((a, b) => by[b]! - by[a]! || (a < b ? -1 : 1));
  return codes.length === 0 ? String(count) : `${count} (${codes.map((code) => `${code} ${by[code]!}`).join(', ')})`;
}

/** What to do about each code of `by`, one line each, for a person reading a command's summary. */
export function quarantineHints(by: Readonly<Partial<Record<ReasonCode, number>>>): string[] {
  return (Object.keys(by) as ReasonCode[]).sort().map((code) => `  ${code}: ${REASONS[code].hint}`);
}
