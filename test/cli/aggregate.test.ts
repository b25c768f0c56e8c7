import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateCommand } from '../../src/cli/commands/aggregate.js';
import { reportsCommand } from '../../src/cli/commands/reports.js';
import { UsageError, type CliIo } from '../../src/cli/io.js';
import { parseAggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { readReports, reportsToCsv } from '../../src/lib/aggregate/reports.js';
import { createTelemetryStreamHandler } from '../../src/lib/aggregate/telemetryStream.js';
import { createWindowAggregator } from '../../src/lib/aggregate/windowAggregator.js';
import { createWindowFinalizer } from '../../src/lib/aggregate/windowFinalizer.js';
import { blobWindowStore, memoryWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { readArchive } from '../../src/lib/message/readArchive.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import { iotHubAvroFile } from '../support/avroFiles.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';

const azurite = useAzurite();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function io(env: Record<string, string | undefined> = {}): CliIo & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  return { stdout, stderr, env, out: () => Buffer.concat(out).toString('utf8'), err: () => Buffer.concat(err).toString('utf8') };
}

/** Runs with a routing.config.json of defaults, not the repository's (whose hub name the fixtures do not carry). */
async function aggregate(args: string[]): Promise<Run> {
  const cli = io();
  const code = await aggregateCommand([...args, '--config', config], cli);
  return { code, stdout: cli.out(), stderr: cli.err() };
}

let dir: string;
let config: string;
let avro: string;
let avroBytes: Buffer;
let jsonLines: string;
let jsonLinesDuplicated: string;

/** IoT Hub's JSON storage encoding: Body is the JSON value itself when contentType/contentEncoding were declared. */
function jsonLine(i: number): string {
  const enqueuedTime = new Date(Date.UTC(2024, 2, 1, 10, 0, 0) + i * 9_000).toISOString();
  return JSON.stringify({
    EnqueuedTimeUtc: enqueuedTime,
    Properties: { level: i % 5 === 0 ? 'critical' : 'normal' },
    SystemProperties: {
      connectionDeviceId: `sensor-${i % 2}`,
      enqueuedTime,
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      ...(i % 3 === 0 ? {} : { messageId: `j-${i}` }),
    },
    Body: { temperature: 15 + ((i * 37) % 11) / 4, pressure: 1000 + i },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aggregate-cli-'));
  config = join(dir, 'routing.config.json');
  await writeFile(config, '{}');
  avro = join(dir, 'archive.avro');
  avroBytes = await iotHubAvroFile({ records: 600, codec: 'deflate', blockSize: 8_192 });
  await writeFile(avro, avroBytes);
  const lines = Array.from({ length: 40 }, (_, i) => jsonLine(i));
  jsonLines = join(dir, 'archive.json');
  await writeFile(jsonLines, `${lines.join('\n')}\n`);
  jsonLinesDuplicated = join(dir, 'duplicated.json');
  // IoT Hub's re-sends end up in the archive as repeated records, in any order.
  await writeFile(jsonLinesDuplicated, `${[...lines, ...lines.slice(5, 25).reverse(), lines[0]].join('\n')}\n`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('iot-routing aggregate', () => {
  it('prints CSV reports with the documented columns and the conservation line on stderr', async () => {
    const run = await aggregate([jsonLines]);
    expect(run.code).toBe(0);
    const [header, ...rows] = run.stdout.trim().split('\n');
    expect(header?.startsWith('deviceId,windowStart,windowEnd,field,count,min,max,mean')).toBe(true);
    expect(rows.length).toBeGreaterThan(0);
    const status = header!.split(',').indexOf('status');
    expect(rows.every((r) => r.split(',')[status] === 'final')).toBe(true);
    expect(run.stderr).toMatch(/received 40 = aggregated 32 \+ other levels 8 \+ quarantined 0 \+ duplicates 0; \d+ windows of 1m/);
  });

  it('gives the same output for a file given twice, and for a file with duplicated records', async () => {
    const once = await aggregate([jsonLines]);
    const twice = await aggregate([jsonLines, jsonLines]);
    const duplicated = await aggregate([jsonLinesDuplicated]);
    expect(twice.stdout).toBe(once.stdout);
    expect(duplicated.stdout).toBe(once.stdout);
    expect(twice.stderr).toContain('duplicates 40');
    expect(duplicated.stderr).toContain('duplicates 21');
  });

  it('is independent of file order and reads Avro and JSON lines alike', async () => {
    const forward = await aggregate([avro, jsonLines, '--levels', 'normal,storage', '--format', 'json']);
    const backward = await aggregate([jsonLines, avro, '--levels', 'normal,storage', '--format', 'json']);
    expect(forward.code).toBe(0);
    expect(backward.stdout).toBe(forward.stdout);
    const body = JSON.parse(forward.stdout) as { window: string; count: number; reports: Array<{ deviceId: string; byLevel: Record<string, number> }> };
    expect(body.window).toBe('1m');
    const levels = body.reports.reduce<Record<string, number>>((acc, r) => {
      for (const [level, n] of Object.entries(r.byLevel)) acc[level] = (acc[level] ?? 0) + n;
      return acc;
    }, {});
    expect(levels).toEqual({ critical: 208, normal: 232, storage: 200 });
  });

  it('computes roll-ups for --window as the stream does, and narrows to --device', async () => {
    const run = await aggregate([avro, '--window', '1h', '--device', 'device-007']);
    expect(run.code).toBe(0);
    const rows = run.stdout.trim().split('\n').slice(1);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.startsWith('device-007,2024-05-01T12:00:00Z,2024-05-01T13:00:00Z,'))).toBe(true);
  });

  it('computes the same reports as the telemetry stream handler for the same messages', async () => {
    const cli = await aggregate([avro, '--levels', 'normal,storage']);
    const parsed = parseAggregationConfig({ levels: { aggregate: ['normal', 'storage'] } });
    if ('errors' in parsed) throw new Error(parsed.errors.join());
    const clock = new ManualClock('2024-05-02T00:00:00Z');
    const windows = memoryWindowStore();
    const quarantine = createQuarantine(new MemoryBlobStore({ clock }), 'quarantine', clock);
    const stream = createTelemetryStreamHandler({
      admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
      quarantine,
      aggregator: createWindowAggregator({ windows, config: parsed.value, clock }),
    });
    for await (const event of readArchive((async function* () { yield avroBytes; })(), { name: 'archive.avro' })) {
      if (event.type === 'records') await stream.processBatch(event.messages, { partition: '0' });
    }
    // The stream closes its windows when the partition goes idle; the backfill has seen all its input.
    clock.advance(60_000);
    await createWindowFinalizer({ windows, config: parsed.value, clock }).finalizeIdlePartitions();
    const reports = await readReports(windows, parsed.value, { window: parsed.value.windows[0]! });
    expect(cli.stdout).toBe(reportsToCsv(reports));
  });

  it('reports a truncated file with exit 2 and still counts every record before the damage', async () => {
    const truncated = join(dir, 'truncated.avro');
    await writeFile(truncated, avroBytes.subarray(0, Math.floor(avroBytes.length * 0.6)));
    const run = await aggregate([truncated]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ArchiveTruncated');
    expect(run.stdout.trim().split('\n').length).toBeGreaterThan(1);
  });

  it('skips a corrupt JSON line, counts the records on both sides of it and says how many it read', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => jsonLine(i));
    const corrupt = join(dir, 'corrupt.json');
    await writeFile(corrupt, `${[...lines.slice(0, 10), '{"not": "a record"', ...lines.slice(10)].join('\n')}\n`);
    const run = await aggregate([corrupt]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('the first is line 11');
    expect(run.stderr).toContain('(40 complete records read)');
    expect(run.stdout).toBe((await aggregate([jsonLines])).stdout);
  });

  it('says why records were quarantined and what to change, per reason code', async () => {
    const lines = Array.from({ length: 6 }, (_, i) => jsonLine(i));
    // Two records of a sender that is not an IoT Hub device (Event Hubs Capture of another producer has no device id).
    const anonymous = (i: number) => {
      const record = JSON.parse(jsonLine(i)) as { SystemProperties: Record<string, unknown> };
      delete record.SystemProperties['connectionDeviceId'];
      return JSON.stringify(record);
    };
    const file = join(dir, 'anonymous.json');
    await writeFile(file, `${[...lines, anonymous(10), anonymous(11)].join('\n')}\n`);
    const run = await aggregate([file]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('quarantined 2 (DeviceIdMissing 2)');
    expect(run.stderr).toMatch(/\n {2}DeviceIdMissing: \S.*\n/);
  });

  it('says which levels it counted without field statistics and how to aggregate them', async () => {
    // IoT Hub's storage route archives level "storage": without --levels, every record counts without its fields.
    const storage = join(dir, 'storage-level.json');
    await writeFile(storage, `${Array.from({ length: 10 }, (_, i) => jsonLine(i).replace(/"level":"(normal|critical)"/, '"level":"storage"')).join('\n')}\n`);
    const run = await aggregate([storage]);
    expect(run.stderr).toContain('received 10 = aggregated 0 + other levels 10');
    expect(run.stderr).toMatch(/\n {2}levels storage: counted in messages and byLevel, without field statistics \(aggregated: normal\); --levels normal,storage aggregates them too\n/);
    expect((await aggregate([storage, '--levels', 'normal,storage'])).stderr).not.toContain('without field statistics');

    const mixed = await aggregate([jsonLines]);
    expect(mixed.stderr).toMatch(/\n {2}levels critical: .*--levels normal,critical aggregates them too\n/);
  });

  it('names messages without a level "normal" in that hint, the name --levels takes for them', async () => {
    const unlevelled = join(dir, 'no-level.json');
    await writeFile(unlevelled, `${Array.from({ length: 6 }, (_, i) => jsonLine(i).replace(/"Properties":\{"level":"(normal|critical)"\}/, '"Properties":{}')).join('\n')}\n`);
    const run = await aggregate([unlevelled, '--levels', 'storage']);
    expect(run.stderr).toContain('received 6 = aggregated 0 + other levels 6');
    expect(run.stderr).toMatch(/\n {2}levels normal: counted in messages and byLevel, without field statistics \(aggregated: storage\); --levels storage,normal aggregates them too\n/);
    // The advice works as given.
    const advised = await aggregate([unlevelled, '--levels', 'storage,normal']);
    expect(advised.stderr).toContain('received 6 = aggregated 6');
    expect(advised.stderr).not.toContain('without field statistics');
  });

  it('takes windows, levels and fields from the aggregation section of --config', async () => {
    const custom = join(dir, 'custom.config.json');
    await writeFile(custom, JSON.stringify({ aggregation: { windows: ['1m', '1h'], levels: { aggregate: ['storage'] }, fields: ['humidity'] } }));
    const cli = io();
    expect(await aggregateCommand([avro, '--config', custom, '--window', '60m', '--format', 'json'], cli)).toBe(0);
    const body = JSON.parse(cli.out()) as { window: string; reports: Array<{ fields: Record<string, { count: number }> }> };
    expect(body.window).toBe('1h');
    expect(new Set(body.reports.flatMap((r) => Object.keys(r.fields)))).toEqual(new Set(['humidity']));
    expect(body.reports.reduce((n, r) => n + (r.fields['humidity']?.count ?? 0), 0)).toBe(200);

    await writeFile(custom, JSON.stringify({ aggregation: { windows: ['7m'] } }));
    await expect(aggregateCommand([avro, '--config', custom], io())).rejects.toMatchObject({ code: 'ConfigInvalid' });
  });

  it('rejects usage errors', async () => {
    await expect(aggregate([])).rejects.toBeInstanceOf(UsageError);
    await expect(aggregate([jsonLines, '--window', '7m'])).rejects.toThrow(/does not divide a day/);
    await expect(aggregate([jsonLines, '--format', 'xml'])).rejects.toThrow(/csv or json/);
  });
});

describe('iot-routing reports', () => {
  it('reads what the stream wrote to storage, as GET /api/reports does', async () => {
    const env = { AzureWebJobsStorage: azurite().connectionString, REPORTS_CONTAINER: uniqueContainerName('reports') };
    const store = new AzureBlobStore(blobServiceClientFromSettings(env));
    const parsed = parseAggregationConfig(undefined);
    if ('errors' in parsed) throw new Error(parsed.errors.join());
    const clock = new ManualClock('2024-03-01T12:00:00Z');
    const quarantine = createQuarantine(store, uniqueContainerName('quarantine'), clock);
    const stream = createTelemetryStreamHandler({
      admit: { checks: defaultChecksConfig(), quarantine, now: () => clock.now() },
      quarantine,
      aggregator: createWindowAggregator({ windows: blobWindowStore(store, env.REPORTS_CONTAINER), config: parsed.value, clock }),
    });
    const messages: RoutedMessage[] = [];
    for await (const event of readArchive((async function* () { yield Buffer.from(`${Array.from({ length: 40 }, (_, i) => jsonLine(i)).join('\n')}\n`); })(), { name: 'x' })) {
      if (event.type === 'records') messages.push(...event.messages);
    }
    await stream.processBatch(messages, { partition: '0' });

    const cli = io(env);
    const code = await reportsCommand(['--device', 'sensor-1', '--from', '2024-03-01T10:00:00Z', '--to', '2024-03-01T10:03:00Z'], cli);
    expect(code).toBe(0);
    const rows = cli.out().trim().split('\n');
    expect(rows[0]?.startsWith('deviceId,windowStart,windowEnd,field,count,min,max,mean')).toBe(true);
    // sensor-1 sends every 18 s: windows 10:00, 10:01, 10:02, each with temperature and pressure rows.
    expect(rows.slice(1).map((r) => r.split(',').slice(0, 4).join(','))).toEqual([
      'sensor-1,2024-03-01T10:00:00Z,2024-03-01T10:01:00Z,pressure',
      'sensor-1,2024-03-01T10:00:00Z,2024-03-01T10:01:00Z,temperature',
      'sensor-1,2024-03-01T10:01:00Z,2024-03-01T10:02:00Z,pressure',
      'sensor-1,2024-03-01T10:01:00Z,2024-03-01T10:02:00Z,temperature',
      'sensor-1,2024-03-01T10:02:00Z,2024-03-01T10:03:00Z,pressure',
      'sensor-1,2024-03-01T10:02:00Z,2024-03-01T10:03:00Z,temperature',
    ]);

    const json = io(env);
    await reportsCommand(['--device', 'sensor-1', '--from', '2024-03-01T10:00:00Z', '--to', '2024-03-01T10:01:00Z', '--format', 'json'], json);
    expect(JSON.parse(json.out())).toMatchObject({ window: '1m', deviceId: 'sensor-1', count: 1 });
  });

  it('refuses to read a container written with another base window, naming REPORTS_CONTAINER', async () => {
    const env = { AzureWebJobsStorage: azurite().connectionString, REPORTS_CONTAINER: uniqueContainerName('reports') };
    const store = new AzureBlobStore(blobServiceClientFromSettings(env));
    const parsed = parseAggregationConfig(undefined);
    if ('errors' in parsed) throw new Error(parsed.errors.join());
    const clock = new ManualClock('2024-03-01T12:00:00Z');
    const aggregator = createWindowAggregator({ windows: blobWindowStore(store, env.REPORTS_CONTAINER), config: parsed.value, clock });
    const messages: RoutedMessage[] = [];
    for await (const event of readArchive((async function* () { yield Buffer.from(`${jsonLine(1)}\n`); })(), { name: 'x' })) {
      if (event.type === 'records') messages.push(...event.messages);
    }
    await aggregator.aggregate(messages.map((message) => ({ message, delivered: message, check: { outcome: 'accept', findings: [] }, twinResolved: [] })), '0');

    // The operator's copy of routing.config.json has moved to 5-minute windows; this container holds 1-minute ones.
    const moved = join(dir, 'moved.config.json');
    await writeFile(moved, JSON.stringify({ aggregation: { windows: ['5m'] } }));
    const cli = io(env);
    await expect(reportsCommand(['--from', '2024-03-01', '--config', moved], cli)).rejects.toMatchObject({
      code: 'ConfigInvalid',
      message: expect.stringMatching(/REPORTS_CONTAINER.* 1m base window.* smallest window is 5m/),
    });
    expect(cli.out()).toBe('');
  });

  it('turns bad flags into a usage error that names them', async () => {
    const cli = io({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
    await expect(reportsCommand(['--from', 'monday', '--window', '5m'], cli)).rejects.toThrow(/--from: .*\n--window: /s);
  });

  it('refuses a --device with a space without the URL advice, which on a command line names another device', async () => {
    // GET /api/reports decodes %2B to "+"; a command line does not, and "%" is allowed in device ids: "pump%2B7" is
    // taken as is and reads a device that does not exist, an empty report instead of pump+7's.
    const cli = io({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
    const refused = reportsCommand(['--device', 'pump 7'], cli);
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await expect(refused).rejects.toThrow(/^--device: "pump 7" is not an IoT Hub device id \(1-128 characters: .*\)$/);
  });

  it('refuses a --from with a space for a "+" without the URL advice, which a command line does not decode', async () => {
    const cli = io({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' });
    const refused = reportsCommand(['--from', '2024-03-01T12:00:00 02:00'], cli);
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await expect(refused).rejects.toThrow(/^--from: "2024-03-01T12:00:00 02:00" is not an ISO 8601 time with a zone \(.*\) or a date \(2024-03-01\)$/);
  });
});
