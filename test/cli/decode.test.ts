import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { iotHubAvroFile } from '../support/avroFiles.js';
import { casePath, CASES_SKIP_REASON, HAVE_CASES } from '../support/cases.js';
import { runCli } from '../support/cli.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;

beforeAll(async () => {
  dir = await tempDir('iot-routing-decode-');
});

function lines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(!HAVE_CASES)(`iot-routing decode on Azure-written files${HAVE_CASES ? '' : ` (skipped: ${CASES_SKIP_REASON})`}`, () => {
  it.each([
    ['avro/bluefrog-eh-archive-05.avro', 1],
    ['avro/cloudbreadpapa-event_hub_sample.avro', 300],
    ['avro/cosh-ehcapture-54.avro', 380],
    ['avro/cosh-ehcapture-empty.avro', 0],
    ['avro/metered-billing-p9-16-50-12.avro', 1],
    ['avro/metered-billing-p9-17-10-12.avro', 20],
    ['json/chgeuer-chgpiothub-00-2021-05-07-08-12.json', 3],
    ['json/leo-charles-brut-09_56_01.json', 4],
    ['json/leo-charles-brut-10_04_01.json', 1],
  ])('%s decodes to %i messages and exits 0', async (file, count) => {
    const run = await runCli(['decode', casePath(file)]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(lines(run.stdout)).toHaveLength(count);
  });

  it('prints the normalized fields for a Capture record', async () => {
    const run = await runCli(['decode', casePath('avro/cosh-ehcapture-54.avro')]);
    const records = lines(run.stdout);
    expect(records[0]).toMatchObject({
      deviceId: null,
      enqueuedTime: '2017-10-16T18:18:55.000Z',
      body: { kind: 'json', value: expect.objectContaining({ ID: 122921 }) },
      source: { kind: 'blob', index: 0, format: 'avro-capture', sequenceNumber: 8180 },
    });
    expect(records.at(-1)).toMatchObject({ source: { index: 379, sequenceNumber: 8559 } });
  });

  it('prints IoT Hub JSON records with base64 bodies decoded and the storage base64 recorded', async () => {
    const run = await runCli(['decode', casePath('json/chgeuer-chgpiothub-00-2021-05-07-08-12.json'), '--format', 'json']);
    const records = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    expect(records).toHaveLength(3);
    expect(records[0]).toMatchObject({
      deviceId: 'simulatedDevice',
      enqueuedTime: '2021-05-07T08:12:19.695Z',
      body: { kind: 'text', value: 'Ping from Az CLI IoT Extension', decodedFrom: { base64: 'storage' } },
      source: { format: 'json-lines', index: 0 },
    });
  });
});

describe('iot-routing decode exit codes', () => {
  it('round-trips a generated IoT Hub Avro file (deflate) with exit 0', async () => {
    const file = path.join(dir, 'hub-deflate');
    await writeFile(file, await iotHubAvroFile({ records: 250, codec: 'deflate', blockSize: 4096 }));
    const run = await runCli(['decode', file]);
    expect(run.code).toBe(0);
    const records = lines(run.stdout);
    expect(records).toHaveLength(250);
    expect(records[0]).toMatchObject({ source: { format: 'avro-iothub', index: 0 }, body: { kind: 'json' } });
  });

  it('exits 2 on a truncated file after printing every complete record, with the reason on stderr', async () => {
    const whole = await iotHubAvroFile({ records: 100, blockSize: 2048 });
    const file = path.join(dir, 'truncated');
    await writeFile(file, whole.subarray(0, whole.length - 100));
    const run = await runCli(['decode', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/ArchiveTruncated at byte \d+/);
    const printed = lines(run.stdout).length;
    expect(printed).toBeGreaterThan(0);
    expect(printed).toBeLessThan(100);
    expect(run.stderr).toContain(`(${printed} complete records read)`);
  });

  it('exits 2 on a file that is neither Avro nor JSON lines', async () => {
    const file = path.join(dir, 'garbage.bin');
    await writeFile(file, Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
    const run = await runCli(['decode', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ArchiveFormatUnknown');
  });

  it('decodes a zero-byte blob (IoT Hub writes one for an empty batch) to nothing, exit 0', async () => {
    const file = path.join(dir, 'empty');
    await writeFile(file, '');
    expect(await runCli(['decode', file])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it.each([[['decode']], [['decode', 'a', 'b']], [['decode', 'x', '--format', 'xml']], [['decode', '--nope', 'x']], [['frobnicate']]])(
    'exits 1 on usage errors: %j',
    async (args) => {
      const run = await runCli(args);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/iot-routing/);
    },
  );

  it('exits 1 when the file does not exist', async () => {
    const run = await runCli(['decode', path.join(dir, 'missing')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('ENOENT');
  });

  it('exits 1 naming the problem when a file is a directory', async () => {
    const run = await runCli(['decode', dir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('EISDIR');
  });

  it('stops quietly when its reader goes away, as `| head` does', async () => {
    const file = path.join(dir, 'many');
    await writeFile(file, await iotHubAvroFile({ records: 20_000 }));
    const child = spawn(process.execPath, [path.join(root, 'bin/iot-routing.js'), 'decode', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    // Read one chunk, then close the pipe as head does after its lines.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('runs as the installed bin (built by npm install), as a user would call it', async () => {
    const file = path.join(dir, 'bin-check');
    await writeFile(file, await iotHubAvroFile({ records: 3 }));
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bin/iot-routing.js'), 'decode', file]);
    expect(lines(stdout)).toHaveLength(3);
    // The module behind it runs as a script too, once (not a second time because the bin imported it).
    const direct = await promisify(execFile)(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'decode', file]);
    expect(direct.stdout).toBe(stdout);
  });
});
