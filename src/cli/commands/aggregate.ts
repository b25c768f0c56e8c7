import { createReadStream } from 'node:fs';
import { LEVEL_WHEN_ABSENT, parseWindowSize, withWindow, type AggregationConfig } from '../../lib/aggregate/aggregationConfig.js';
import { loadAggregationConfigFile } from '../../lib/aggregate/aggregationConfigFile.js';
import { createBackfill } from '../../lib/aggregate/backfill.js';
import { reportsToCsv, type WindowReport } from '../../lib/aggregate/reports.js';
import { describeQuarantined, quarantineHints } from '../../lib/aggregate/telemetryStream.js';
import { NO_LEVEL } from '../../lib/aggregate/windowSummary.js';
import { systemClock } from '../../lib/ports.js';
import { damageLine, EXIT, parseCommandArgs, routingConfigPath, UsageError, type CliIo } from '../io.js';

export const aggregateUsage = `iot-routing aggregate <file...> [--window 1m] [--format csv|json] [--device ID] [--config PATH]
                     [--levels normal,storage] [--fields temperature,humidity]
  Computes the windowed reports the telemetryStream function produces, from archive files (IoT Hub Avro, Event Hubs
  Capture Avro or JSON lines), with the same checks, identities and arithmetic. Messages are counted once by
  identity, so a file given twice or a file with repeated records gives the same output as once. --window picks
  the report size (default the smallest configured window); --levels overrides aggregation.levels.aggregate (archive
  files usually hold level "storage"); --fields overrides aggregation.fields. Reports go to stdout, the counters to
  stderr. Exit 0, or 2 when a file is truncated or corrupt (every complete record is still counted).`;

function list(value: string | undefined, flag: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = [...new Set(value.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  if (items.length === 0) throw new UsageError(`${flag} needs at least one name`);
  return items;
}

/**
 * The levels of the reported messages that were counted without their fields. Archive files mostly hold the storage
 * route's level, which the stream does not aggregate, so a backfill without --levels would print windows with no
 * field statistics and not say why. A message without a level is named as the aggregator counts it, for --levels.
 */
function levelsWithoutFields(reports: readonly WindowReport[], aggregateLevels: readonly string[]): string[] {
  const levels = new Set<string>();
  for (const report of reports) {
    for (const level of Object.keys(report.byLevel)) {
      const named = level === NO_LEVEL ? LEVEL_WHEN_ABSENT : level;
      if (!aggregateLevels.includes(named)) levels.add(named);
    }
  }
  return [...levels].sort();
}

export async function aggregateCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      window: { type: 'string' },
      format: { type: 'string', default: 'csv' },
      device: { type: 'string' },
      config: { type: 'string' },
      levels: { type: 'string' },
      fields: { type: 'string' },
    },
  });
  if (positionals.length === 0) throw new UsageError('aggregate takes at least one archive file');
  if (values.format !== 'csv' && values.format !== 'json') throw new UsageError(`--format must be csv or json, not "${values.format}"`);
  const loaded = await loadAggregationConfigFile(await routingConfigPath(values.config));
  let config: AggregationConfig = loaded.aggregation;
  if (values.window !== undefined) {
    const widened = withWindow(config, values.window);
    if ('errors' in widened) throw new UsageError(`--window: ${widened.errors.join('; ')}`);
    config = widened.value;
  }
  const levels = list(values.levels, '--levels');
  const fields = list(values.fields, '--fields');
  config = { ...config, ...(levels === undefined ? {} : { aggregateLevels: levels }), ...(fields === undefined ? {} : { fields: fields.sort() }) };
  const requested = values.window === undefined ? undefined : parseWindowSize(values.window);
  const window = requested === undefined ? config.windows[0] : config.windows.find((w) => w.ms === requested?.ms);
  if (window === undefined) throw new UsageError(`--window: "${values.window ?? ''}" is not a window size`);

  const backfill = createBackfill({ checks: loaded.checks, config, clock: systemClock });
  let damaged = false;
  for (const file of positionals) {
    const result = await backfill.addArchive(file, createReadStream(file, { highWaterMark: 1 << 20 }));
    if (result.damage !== null) {
      damaged = true;
      io.stderr.write(damageLine(file, result.damage, result.records));
    }
  }
  const reports = await backfill.reports(window, values.device);
  if (values.format === 'csv') io.stdout.write(reportsToCsv(reports));
  else io.stdout.write(`${JSON.stringify({ window: window.label, count: reports.length, reports })}\n`);

  const t = backfill.totals;
  io.stderr.write(
    `aggregate: ${positionals.length} file${positionals.length === 1 ? '' : 's'} (${loaded.source}): received ${t.received} = aggregated ${t.aggregated} + other levels ${t.countedOtherLevel} + quarantined ${describeQuarantined(t.quarantined, t.quarantinedBy)} + duplicates ${t.duplicates}; ${reports.length} window${reports.length === 1 ? '' : 's'} of ${window.label}\n`,
  );
  // What to do about what was left out (`iot-routing check --endpoint events` shows it message by message).
  for (const line of quarantineHints(t.quarantinedBy)) io.stderr.write(`${line}\n`);
  const unaggregated = levelsWithoutFields(reports, config.aggregateLevels);
  if (unaggregated.length > 0) {
    io.stderr.write(
      `  levels ${unaggregated.join(', ')}: counted in messages and byLevel, without field statistics (aggregated: ${config.aggregateLevels.join(', ')}); --levels ${[...config.aggregateLevels, ...unaggregated].join(',')} aggregates them too\n`,
    );
  }
  return damaged ? EXIT.damaged : EXIT.ok;
}
