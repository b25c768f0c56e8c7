/**
 * Backfill: the same reports the stream produces, computed from archive files (IoT Hub Avro, Event Hubs Capture
 * Avro, JSON lines) with the same handler: admit, then aggregate by identity. Runs in memory; nothing is written
 * to storage. Every file is accounted to one pseudo-partition, and lateness is unbounded (a backfill sees its
 * input in file order, not arrival order, so "late" would only describe the order of the command line), which
 * makes the output independent of file order: aggregating a file twice, or a file with duplicated records, gives
 * the same reports as once.
 */
import { addCounts } from '../checks/admit.js';
import type { ChecksConfig } from '../checks/expectations.js';
import type { ArchiveDamage } from '../message/archive.js';
import { readArchive } from '../message/readArchive.js';
import type { Clock } from '../ports.js';
import { createQuarantine } from '../storage/quarantine.js';
import { MemoryBlobStore } from '../storage/memoryBlobStore.js';
import type { AggregationConfig, WindowSize } from './aggregationConfig.js';
import { readReports, type WindowReport } from './reports.js';
import { createTelemetryStreamHandler, type TelemetryBatchResult } from './telemetryStream.js';
import { createWindowAggregator } from './windowAggregator.js';
import { memoryWindowStore } from './windowStore.js';

export const BACKFILL_PARTITION = 'backfill';

export interface BackfillDeps {
  checks: ChecksConfig;
  config: AggregationConfig;
  /** The checks' "now" (enqueued times more than a day ahead are reported). */
  clock: Clock;
}

export interface BackfillFileResult {
  name: string;
  records: number;
  damage: ArchiveDamage | null;
}

export interface Backfill {
  /** Reads one archive to its end; damage is reported, and every record before it is aggregated. */
  addArchive(name: string, chunks: AsyncIterable<Uint8Array>): Promise<BackfillFileResult>;
  /** Counters over every archive added so far (the same conservation as the stream). */
  readonly totals: TelemetryBatchResult;
  reports(window: WindowSize, deviceId?: string): Promise<WindowReport[]>;
}

export function createBackfill(deps: BackfillDeps): Backfill {
  const config: AggregationConfig = { ...deps.config, allowedLatenessMs: Infinity };
  const windows = memoryWindowStore();
  const quarantine = createQuarantine(new MemoryBlobStore({ clock: deps.clock }), 'quarantine', deps.clock);
  const handler = createTelemetryStreamHandler({
    admit: { checks: deps.checks, quarantine, now: () => deps.clock.now() },
    quarantine,
    aggregator: createWindowAggregator({ windows, config, clock: deps.clock }),
  });
  const totals: TelemetryBatchResult = {
    partitions: [BACKFILL_PARTITION],
    received: 0,
    aggregated: 0,
    countedOtherLevel: 0,
    quarantined: 0,
    quarantinedBy: {},
    duplicates: 0,
    late: 0,
    baseWindows: 0,
    rollupWindows: 0,
  };
  return {
    totals,
    async addArchive(name, chunks) {
      let damage: ArchiveDamage | null = null;
      let records = 0;
      for await (const event of readArchive(chunks, { name })) {
        if (event.type === 'end') {
          damage = event.summary.damage;
          continue;
        }
        records += event.messages.length;
        const result = await handler.processBatch(event.messages, { partition: BACKFILL_PARTITION });
        totals.received += result.received;
        totals.aggregated += result.aggregated;
        totals.countedOtherLevel += result.countedOtherLevel;
        totals.quarantined += result.quarantined;
        addCounts(totals.quarantinedBy, result.quarantinedBy);
        totals.duplicates += result.duplicates;
        totals.late += result.late;
        totals.baseWindows += result.baseWindows;
        totals.rollupWindows += result.rollupWindows;
      }
      return { name, records, damage };
    },
    reports(window, deviceId) {
      return readReports(windows, config, { window, ...(deviceId === undefined ? {} : { deviceId }) }, {
        assumeFinal: true,
        maxReports: Number.MAX_SAFE_INTEGER,
      });
    },
  };
}
