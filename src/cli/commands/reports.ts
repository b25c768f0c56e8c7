import { reportsContainerOf } from '../../lib/aggregate/aggregationConfig.js';
import { loadAggregationConfigFile } from '../../lib/aggregate/aggregationConfigFile.js';
import { verifyBaseWindow } from '../../lib/aggregate/baseWindow.js';
import { readReports } from '../../lib/aggregate/reports.js';
import { parseReportsQuery, renderReports } from '../../lib/aggregate/reportsQuery.js';
import { blobWindowStore } from '../../lib/aggregate/windowStore.js';
import { isRoutingError } from '../../lib/errors.js';
import { systemClock } from '../../lib/ports.js';
import { AzureBlobStore } from '../../lib/storage/azureBlobStore.js';
import { blobServiceOf, EXIT, parseCommandArgs, routingConfigPath, UsageError, type CliIo } from '../io.js';

export const reportsUsage = `iot-routing reports [--device ID] [--from TIME] [--to TIME] [--window 1m] [--format csv|json] [--config PATH]
  Reads the windowed reports the telemetryStream function wrote to the reports container (AzureWebJobsStorage,
  REPORTS_CONTAINER), merging every partition's partial, exactly as GET /api/reports does. Windows starting in
  [--from, --to) (ISO 8601 with a zone, or a date; default the last 24 hours; --from alone means the 24 hours after
  it, --to alone the 24 hours before it; at most 31 days). --window is one of
  the configured aggregation.windows (default the smallest), whose smallest must be the base window the container
  was written with. Exit 0; 1 for usage and configuration errors; 4 when storage did not answer (check
  AzureWebJobsStorage, then run it again).`;

export async function reportsCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    allowPositionals: false,
    options: {
      device: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      window: { type: 'string' },
      format: { type: 'string', default: 'csv' },
      config: { type: 'string' },
    },
  });
  const { aggregation } = await loadAggregationConfigFile(await routingConfigPath(values.config));
  const params: Array<[string, string]> = [];
  const flags = { deviceId: values.device, from: values.from, to: values.to, window: values.window, format: values.format };
  for (const [name, value] of Object.entries(flags)) if (value !== undefined) params.push([name, value]);
  const parsed = parseReportsQuery(params, aggregation, systemClock.now(), 'flags');
  if ('errors' in parsed) {
    const flag = (problem: string) => problem.replace(/^deviceId:/, '--device:').replace(/^(from|to|window|format)\b/, '--$1');
    throw new UsageError(parsed.errors.map(flag).join('\n'));
  }

  const windows = blobWindowStore(new AzureBlobStore(blobServiceOf(io)), reportsContainerOf(io.env));
  // A container read with another base window than it was written with answers empty or partial reports, silently;
  // ConfigInvalid says so (exit 1), as it does for the function.
  await verifyBaseWindow(windows, aggregation.windows[0]!);
  try {
    io.stdout.write(renderReports(parsed.value, await readReports(windows, aggregation, parsed.value.query)).body);
  } catch (error) {
    if (isRoutingError(error) && error.code === 'UsageInvalid') throw new UsageError(error.message);
    throw error;
  }
  return EXIT.ok;
}
