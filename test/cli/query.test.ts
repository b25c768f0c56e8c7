import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { queryCommand, queryUsage } from '../../src/cli/commands/query.js';
import { EXIT } from '../../src/cli/io.js';
import { DEFAULT_ARCHIVE_CONFIG } from '../../src/lib/archive/config.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { FIXTURE_HUB, independentDecode, recordKey, writeArchive, type WrittenBlob } from '../support/archiveFixtures.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const azurite = useAzurite();
const container = uniqueContainerName('archive');
const START = Date.UTC(2024, 4, 1, 12, 0);
let blobs: WrittenBlob[];
/** The fixtures' hub, whose enrichment the checks expect (the repository's routing.config.json names another). */
let config: string;

beforeAll(async () => {
  config = join(await tempDir('query-cli-'), 'routing.config.json');
  await writeFile(config, JSON.stringify({ iotHubName: FIXTURE_HUB }));
  const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
  blobs = await writeArchive(store, container, DEFAULT_ARCHIVE_CONFIG.fileNameFormat, [
    { partition: '0', minute: START, records: 25, encoding: 'avro' },
    { partition: '1', minute: START, records: 25, encoding: 'avro' },
    { partition: '0', minute: START + 60_000, records: 25, encoding: 'avro-deflate' },
  ]);
  // A blob cut short, out of the ranges queried below: its complete records are answered, the damage reported.
  const cut = (await writeArchive(store, container, DEFAULT_ARCHIVE_CONFIG.fileNameFormat, [{ partition: '1', minute: START + 90 * 60_000, records: 60, encoding: 'avro' }]))[0]!;
  await store.put(container, cut.name, cut.bytes.subarray(0, cut.bytes.length - 30));
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function query(args: string[], options: { tty?: boolean; container?: string } = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), options.tty === true ? { isTTY: true, columns: 100 } : {});
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await queryCommand(['--container', options.container ?? container, '--config', config, ...args], { stdout, stderr, env: { AzureWebJobsStorage: azurite().connectionString } });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

const first = (): WrittenBlob[] => blobs;
const RANGE = ['--from', new Date(START).toISOString(), '--to', new Date(START + 120_000).toISOString()];

describe('iot-routing query', () => {
  it('prints NDJSON equal to an independent decode, the summary on stderr, and no progress bar off a terminal', async () => {
    const run = await query([...RANGE, '--device', 'device-03', '--device', 'device-05', '--where', 'temperature>-5']);
    expect(run.code).toBe(EXIT.ok);
    const keys = run.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { deviceId: string; messageId: string; enqueuedTime: string; properties: Record<string, string>; body: { value: unknown } })
      .map((r) => recordKey({ deviceId: r.deviceId, messageId: r.messageId, enqueuedTime: r.enqueuedTime, level: r.properties['level'] ?? null, body: r.body.value }));
    const want: string[] = [];
    for (const blob of first()) {
      for (const r of await independentDecode(blob.bytes)) {
        if ((r.deviceId === 'device-03' || r.deviceId === 'device-05') && (r.body as { temperature: number }).temperature > -5) want.push(recordKey(r));
      }
    }
    expect(want.length).toBeGreaterThan(0);
    expect(keys).toEqual(want);
    expect(run.stderr).toMatch(new RegExp(`^${want.length} records from \\d+ blobs read`));
    expect(run.stderr).not.toContain('\r');
  });

  it('writes CSV and draws a progress bar on stderr when it is a terminal', async () => {
    const run = await query([...RANGE, '--format', 'csv', '--level', 'storage'], { tty: true });
    expect(run.code).toBe(EXIT.ok);
    const rows = run.stdout.split('\r\n').filter((r) => r !== '');
    expect(rows[0]).toMatch(/^deviceId,enqueuedTime,/);
    expect(rows.length).toBeGreaterThan(1);
    expect(run.stderr).toMatch(/\rquery \[[#.]{24}\] \d+\/\d+\+? blobs/);
  });

  it('stops at --limit and continues from the token it prints', async () => {
    const all = (await query(RANGE)).stdout.trimEnd().split('\n');
    const page1 = await query([...RANGE, '--limit', '30']);
    const token = /--continuation (\S+)/.exec(page1.stderr)?.[1];
    expect(token).toBeDefined();
    const page2 = await query([...RANGE, '--continuation', token!]);
    expect([...page1.stdout.trimEnd().split('\n'), ...page2.stdout.trimEnd().split('\n')]).toEqual(all);
    expect(page2.stderr).not.toContain('--continuation');
  });

  it('answers the rest of the archive when a blob is damaged, reporting it and exiting 2', async () => {
    const run = await query(['--format', 'json']);
    expect(run.code).toBe(EXIT.damaged);
    expect(run.stderr).toMatch(/13\/30: ArchiveTruncated at byte \d+/);
    const answer = JSON.parse(run.stdout) as { records: unknown[]; summary: { damaged: Array<{ recordsBeforeDamage: number }> } };
    expect(answer.records.length).toBe(75 + answer.summary.damaged[0]!.recordsBeforeDamage);
  });

  it('says when the container does not exist, naming the account\'s nearest ones, instead of answering nothing', async () => {
    const misspelt = `${container}x`;
    await expect(query(RANGE, { container: misspelt })).rejects.toThrow(
      new RegExp(`--container: the storage account has no container "${misspelt}" \\(nearest: ${container}[,)]`),
    );
    // An existing container with nothing in the range is an answer, not an error.
    const empty = await query(['--from', '2020-01-01T00:00:00Z', '--to', '2020-01-01T01:00:00Z']);
    expect(empty.code).toBe(EXIT.ok);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toMatch(/^0 records from 0 blobs read \(0 listed/);
  });

  it('rejects bad arguments with a usage error', async () => {
    await expect(query(['--from', '2024-05-01T12:00'])).rejects.toThrow(/--from: "2024-05-01T12:00" is not an ISO 8601 time with a zone/);
    // A "+" turned into a space is a URL's doing: a command line decodes nothing, so "%2B02:00" would be refused again.
    await expect(query(['--from', '2024-05-01T12:00:00 02:00'])).rejects.toThrow(
      /^--from: "2024-05-01T12:00:00 02:00" is not an ISO 8601 time with a zone \(2024-03-01T10:00:00Z\) or a date \(2024-03-01\)$/,
    );
    await expect(query(['--format', 'xml'])).rejects.toThrow(/--format must be json, ndjson, csv/);
    await expect(query(['--where', 'temperature'])).rejects.toThrow(/--where/);
    await expect(query(['--limit', '0'])).rejects.toThrow(/--limit must be a whole number/);
    await expect(query([...RANGE, '--continuation', 'abc'])).rejects.toThrow(/--continuation: continuation is not a token/);
    // What parseArgs alone lets pass, and the HTTP API refuses: the last of two values winning, an empty value.
    await expect(query([...RANGE, '--from', new Date(START + 60_000).toISOString()])).rejects.toThrow(/--from is given more than once/);
    await expect(query([...RANGE, '--level', ''])).rejects.toThrow(/--level needs a value/);
    await expect(query([...RANGE, '--device', ' '])).rejects.toThrow(/--device needs a value/);
    await expect(queryCommand([], { stdout: new PassThrough(), stderr: new PassThrough(), env: {} })).rejects.toThrow(/--connection-string is required/);
    expect(queryUsage).toMatch(/^iot-routing query --connection-string CS --container NAME/);
  });
});
