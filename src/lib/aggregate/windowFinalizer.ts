/**
 * Closes the windows of idle partitions. A partition's watermark moves with the enqueued times of the messages it
 * delivers; a partition that delivers nothing would keep its last windows open forever. IoT Hub stamps enqueued
 * times with its own clock and delivers within seconds, so once a partition has been idle for
 * `idlePartitionSeconds`, anything it delivers later for a window that ended more than the allowed lateness ago is
 * late by any measure: the timer moves the watermark to `now - allowedLateness`.
 *
 * A stalled consumer looks the same as an idle partition. Messages it delivers after catching up are then late
 * arrivals: still counted exactly once, recorded, and their windows get a new revision. Nothing is dropped.
 */
import type { Clock } from '../ports.js';
import type { Services } from '../runtime.js';
import { aggregationConfigOf, type AggregationConfig } from './aggregationConfig.js';
import { watermarkOf } from './windowAggregator.js';
import { blobWindowStore, decodePartitionDoc, type PartitionDoc, type WindowStore } from './windowStore.js';
import { isoSeconds, PARTITIONS_PREFIX, parsePartitionDocName } from './windows.js';

export interface WindowFinalizerDeps {
  windows: WindowStore;
  config: AggregationConfig;
  clock: Clock;
}

export interface FinalizeResult {
  partitions: number;
  /** Idle partitions whose watermark moved, with the new watermark (windows ending at or before it are final). */
  advanced: Array<{ partition: string; watermark: string }>;
}

export interface WindowFinalizer {
  finalizeIdlePartitions(): Promise<FinalizeResult>;
}

export function createWindowFinalizer(deps: WindowFinalizerDeps): WindowFinalizer {
  const { windows, config, clock } = deps;
  return {
    async finalizeIdlePartitions() {
      const now = clock.now().getTime();
      const target = now - config.allowedLatenessMs;
      const result: FinalizeResult = { partitions: 0, advanced: [] };
      if (!Number.isFinite(target)) return result;
      for await (const name of windows.list(PARTITIONS_PREFIX)) {
        const partition = parsePartitionDocName(name);
        if (partition === null) continue;
        result.partitions += 1;
        const { changed, value } = await windows.update<PartitionDoc>(
          name,
          (current) => {
            // Invariant: clockWatermark only grows, and only while the partition is idle; a batch that arrives
            // meanwhile changes the ETag, so this write is re-evaluated against it.
            if (current === undefined || now - current.lastBatchAt < config.idlePartitionMs) return undefined;
            if ((current.clockWatermark ?? -Infinity) >= target) return undefined;
            current.clockWatermark = target;
            return current;
          },
          decodePartitionDoc,
        );
        if (changed && value !== undefined) {
          result.advanced.push({ partition, watermark: isoSeconds(watermarkOf(value, config.allowedLatenessMs)) });
        }
      }
      return result;
    },
  };
}

export function windowFinalizerFromServices(services: Services): WindowFinalizer {
  return createWindowFinalizer({
    windows: blobWindowStore(services.store, services.config.settings.reportsContainer),
    config: aggregationConfigOf(services.config.routing),
    clock: services.clock,
  });
}
