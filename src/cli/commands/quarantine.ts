import { ENDPOINT_NAMES } from '../../lib/checks/reasons.js';
import { systemClock } from '../../lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../lib/storage/azureBlobStore.js';
import { createQuarantine, quarantineReasonCodes } from '../../lib/storage/quarantine.js';
import { EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';

export const quarantineUsage = `iot-routing quarantine list [--endpoint E] [--reason CODE] [--device ID] [--format table|ndjson]
iot-routing quarantine show <name>
  Reads the quarantine container. Storage: --connection-string CS, else the AzureWebJobsStorage setting (or its
  identity-based AzureWebJobsStorage__accountName form). Container: --container, else QUARANTINE_CONTAINER, else
  quarantine. \`show\` prints the whole record: reasons with hints, properties, provenance and the original body.`;

export async function quarantineCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    options: {
      'connection-string': { type: 'string' },
      container: { type: 'string' },
      endpoint: { type: 'string' },
      reason: { type: 'string' },
      device: { type: 'string' },
      format: { type: 'string', default: 'table' },
    },
  });
  const [action, ...rest] = positionals;
  if (action !== 'list' && action !== 'show') throw new UsageError('quarantine takes list or show');
  if (values.format !== 'table' && values.format !== 'ndjson') throw new UsageError('--format must be table or ndjson');
  const settings = values['connection-string'] === undefined ? io.env : { AzureWebJobsStorage: values['connection-string'] };
  if (settings['AzureWebJobsStorage'] === undefined && settings['AzureWebJobsStorage__accountName'] === undefined) {
    throw new UsageError('no storage: pass --connection-string or set AzureWebJobsStorage');
  }
  const container = values.container ?? io.env['QUARANTINE_CONTAINER'] ?? 'quarantine';
  const quarantine = createQuarantine(new AzureBlobStore(blobServiceClientFromSettings(settings)), container, systemClock);

  if (action === 'show') {
    const name = rest[0];
    if (name === undefined || rest.length > 1) throw new UsageError('quarantine show takes one blob name (see quarantine list)');
    const entry = await quarantine.get(name);
    if (entry === null) {
      io.stderr.write(`quarantine: no record named ${name} in container ${container}\n`);
      return EXIT.usage;
    }
    await writeLine(io.stdout, JSON.stringify(entry, null, 2));
    return EXIT.ok;
  }

  if (rest.length > 0) throw new UsageError('quarantine list takes no positional arguments');
  // A misspelt filter would list nothing and read as "nothing quarantined".
  if (values.endpoint !== undefined && !(ENDPOINT_NAMES as readonly string[]).includes(values.endpoint)) {
    throw new UsageError(`--endpoint must be one of ${ENDPOINT_NAMES.join(', ')}, not "${values.endpoint}"`);
  }
  const codes = quarantineReasonCodes();
  if (values.reason !== undefined && !(codes as readonly string[]).includes(values.reason)) {
    throw new UsageError(`--reason must be a reason code (${codes.join(', ')}), not "${values.reason}"`);
  }
  let count = 0;
  for await (const item of quarantine.list({
    ...(values.endpoint !== undefined ? { endpoint: values.endpoint } : {}),
    ...(values.reason !== undefined ? { reason: values.reason } : {}),
    ...(values.device !== undefined ? { deviceId: values.device } : {}),
  })) {
    count += 1;
    await writeLine(
      io.stdout,
      values.format === 'ndjson'
        ? JSON.stringify(item)
        : `${item.lastModified.toISOString()}  ${item.endpoint.padEnd(13)} ${(item.deviceId ?? '-').padEnd(24)} ${item.reasons.join(',').padEnd(40)} ${item.name}`,
    );
  }
  io.stderr.write(`${count} quarantined record${count === 1 ? '' : 's'} in ${container}\n`);
  return EXIT.ok;
}
