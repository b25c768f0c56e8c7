import { ENDPOINT_NAMES } from '../../lib/checks/reasons.js';
import { connectionFrom } from '../../lib/config.js';
import { systemClock } from '../../lib/ports.js';
import { AzureBlobStore } from '../../lib/storage/azureBlobStore.js';
import { REPLAYABLE_ENDPOINTS, replayableReasonCodes, replayDepsFromServices, replayQuarantined, type ReplayableEndpoint } from '../../lib/quarantineReplay.js';
import { ARCHIVE_DAMAGE_CODES, createQuarantine, quarantineReasonCodes } from '../../lib/storage/quarantine.js';
import { appServices, blobServiceOf, EXIT, parseCommandArgs, UsageError, writeLine, type CliIo } from '../io.js';

export const quarantineUsage = `iot-routing quarantine list [--endpoint E] [--reason CODE] [--device ID] [--format table|ndjson]
iot-routing quarantine show <name>
  Reads the quarantine container. Storage: --connection-string CS, else the AzureWebJobsStorage setting (or its
  identity-based AzureWebJobsStorage__accountName form). Container: --container, else QUARANTINE_CONTAINER, else
  quarantine. \`show\` prints the whole record: reasons with hints, properties, provenance and the original body.
  Exit 0; 1 for usage errors, a name not found and storage refusing the connection's credentials; 4 when storage
  did not answer (check the connection, then run it again).
iot-routing quarantine replay [--endpoint events|criticalQueue] [--reason CODE] [--device ID] [--dry-run] [--config PATH]
  After fixing the cause (the device, or routing.config.json's checks), hands each quarantined message back to the
  handler of its endpoint with today's configuration (--config, else ./routing.config.json) and the app settings in
  the environment (AzureWebJobsStorage, REPORTS_CONTAINER, and the alert settings for criticalQueue). A message the
  handler takes is deleted from the quarantine; one the checks still refuse stays, with today's reasons. Replaying
  twice changes nothing (reports and alerts dedupe by message identity). --dry-run says what would happen
  without acting (checks with twins resolved, windows, the alert ledger's verdicts, the settings the run needs).
  Records are listed before the first is replayed: narrow a large quarantine with --endpoint, --device or --reason.
  Exit 0 when every message went through or was skipped (archive records, refused digests), 3 when some stay
  quarantined, 4 when some failed for a transient reason or storage did not answer (run it again), 1 for usage and
  configuration errors.`;

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
      'dry-run': { type: 'boolean', default: false },
      config: { type: 'string' },
    },
  });
  const [action, ...rest] = positionals;
  if (action !== 'list' && action !== 'show' && action !== 'replay') throw new UsageError('quarantine takes list, show or replay');
  if (values.format !== 'table' && values.format !== 'ndjson') throw new UsageError('--format must be table or ndjson');
  const settings = values['connection-string'] === undefined ? io.env : { AzureWebJobsStorage: values['connection-string'] };
  if (connectionFrom(settings, 'AzureWebJobsStorage') === null) {
    throw new UsageError('no storage: pass --connection-string or set AzureWebJobsStorage');
  }
  const container = values.container ?? io.env['QUARANTINE_CONTAINER'] ?? 'quarantine';
  if (action === 'replay') {
    if (rest.length > 0) throw new UsageError('quarantine replay takes no positional arguments');
    return replay(io, { ...io.env, ...settings, QUARANTINE_CONTAINER: container }, values);
  }
  if (values['dry-run'] || values.config !== undefined) throw new UsageError('--dry-run and --config are for quarantine replay');
  const quarantine = createQuarantine(new AzureBlobStore(blobServiceOf(io, settings)), container, systemClock);

  if (action === 'show') {
    const name = rest[0];
    if (name === undefined || rest.length > 1) throw new UsageError('quarantine show takes one blob name (see quarantine list)');
    const record = await quarantine.get(name);
    if (record === null) {
      io.stderr.write(`quarantine: no record named ${name} in container ${container}\n`);
      return EXIT.usage;
    }
    await writeLine(io.stdout, JSON.stringify(record.value, null, 2));
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
        : // When it was quarantined, as the dashboard dates it: a replay that refuses it again rewrites the record
          // (today's reasons), which moves Last-Modified but keeps quarantinedAt; earlier builds stored none.
          `${(item.quarantinedAt ?? item.lastModified).toISOString()}  ${item.endpoint.padEnd(13)} ${(item.deviceId ?? '-').padEnd(24)} ${item.reasons.join(',').padEnd(40)} ${item.name}`,
    );
  }
  io.stderr.write(`${count} quarantined record${count === 1 ? '' : 's'} in ${container}\n`);
  return EXIT.ok;
}

async function replay(
  io: CliIo,
  env: Record<string, string | undefined>,
  values: { endpoint?: string | undefined; reason?: string | undefined; device?: string | undefined; format: string; 'dry-run': boolean; config?: string | undefined },
): Promise<number> {
  if (values.endpoint !== undefined && !(REPLAYABLE_ENDPOINTS as readonly string[]).includes(values.endpoint)) {
    throw new UsageError(`--endpoint must be one of ${REPLAYABLE_ENDPOINTS.join(', ')} for replay, not "${values.endpoint}"`);
  }
  const codes = replayableReasonCodes();
  if (values.reason !== undefined && !codes.includes(values.reason)) {
    const archive = (ARCHIVE_DAMAGE_CODES as readonly string[]).includes(values.reason);
    throw new UsageError(
      archive
        ? `--reason ${values.reason} marks a damaged archive blob, which replay does not read: restore or rewrite the blob (ingest judges it again; iot-routing archive index catches up any it missed), or read it with iot-routing aggregate`
        : `--reason must be a reason code (${codes.join(', ')}), not "${values.reason}"`,
    );
  }
  // The replay applies the configuration that is meant to let these messages through: it must be the one given.
  const services = await appServices(env, values.config, 'replay applies routing.config.json');
  const results = replayQuarantined(
    replayDepsFromServices(services, { dryRun: values['dry-run'] }),
    {
      ...(values.endpoint !== undefined ? { endpoint: values.endpoint as ReplayableEndpoint } : {}),
      ...(values.reason !== undefined ? { reason: values.reason } : {}),
      ...(values.device !== undefined ? { deviceId: values.device } : {}),
    },
  );
  const counts = { replayed: 0, 'would-replay': 0, quarantined: 0, skipped: 0, failed: 0 };
  for await (const result of results) {
    counts[result.outcome] += 1;
    const what =
      result.outcome === 'replayed'
        ? result.detail
        : result.outcome === 'quarantined'
          ? result.reasons.join(',')
          : result.outcome === 'skipped'
            ? result.why
            : result.outcome === 'failed'
              ? result.error
              : '';
    await writeLine(io.stdout, values.format === 'ndjson' ? JSON.stringify(result) : `${result.outcome.padEnd(12)} ${result.name}  ${what}`.trimEnd());
  }
  const failed = counts.failed > 0 ? `, failed ${counts.failed}` : '';
  const summary = values['dry-run']
    ? `dry run: ${counts['would-replay']} would go through, ${counts.quarantined} would stay quarantined, ${counts.skipped} skipped${failed}`
    : `replayed ${counts.replayed}, still quarantined ${counts.quarantined}, skipped ${counts.skipped}${failed}`;
  io.stderr.write(`${summary}\n`);
  if (counts.quarantined > 0) {
    io.stderr.write('still quarantined: see why with `iot-routing quarantine show <name>`; an EmailRejected alert is sent again only after its ledger/<alertKey>.json in the alerts container is deleted\n');
  }
  if (counts.failed > 0) io.stderr.write('failed: a transient error (storage, a service, an alert still owned by another run); run the replay again\n');
  return counts.failed > 0 ? EXIT.transient : counts.quarantined > 0 ? EXIT.wouldQuarantine : EXIT.ok;
}
