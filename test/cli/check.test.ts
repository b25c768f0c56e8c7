import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { admit } from '../../src/lib/checks/admit.js';
import { defaultChecksConfig } from '../../src/lib/checks/expectations.js';
import { readArchive } from '../../src/lib/message/readArchive.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { ManualClock } from '../../src/lib/ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { createQuarantine } from '../../src/lib/storage/quarantine.js';
import { useAzurite, uniqueContainerName } from '../support/azurite.js';
import { casePath, CASES_SKIP_REASON, HAVE_CASES } from '../support/cases.js';
import { runCli } from '../support/cli.js';
import { useTempDirs } from '../support/tempDirs.js';

const tempDir = useTempDirs();

let dir: string;
beforeAll(async () => {
  dir = await tempDir('iot-routing-check-');
});

/** One IoT Hub JSON-encoded record, as the storage endpoint writes it, with a JSON body. */
function jsonLine(deviceId: string, properties: Record<string, string>, body: unknown = { temperature: 25 }): string {
  return JSON.stringify({
    EnqueuedTimeUtc: '2026-11-20T10:00:00.1230000Z',
    Properties: properties,
    SystemProperties: {
      connectionDeviceId: deviceId,
      connectionAuthMethod: '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
      connectionDeviceGenerationId: '638000000000000000',
      contentType: 'application/json',
      contentEncoding: 'UTF-8',
      enqueuedTime: '2026-11-20T10:00:00.1230000Z',
    },
    Body: body,
  });
}

describe.skipIf(!HAVE_CASES)(`iot-routing check on IoT Hub JSON files${HAVE_CASES ? '' : ` (skipped: ${CASES_SKIP_REASON})`}`, () => {
  it.each([
    ['json/chgeuer-chgpiothub-00-2021-05-07-08-12.json', 3, 'text'],
    ['json/leo-charles-brut-09_56_01.json', 4, 'json'],
    ['json/leo-charles-brut-10_04_01.json', 1, 'json'],
  ])('%s: every base64 body is flagged BodyBase64 and still decoded', async (file, count, kind) => {
    const run = await runCli(['check', casePath(file), '--format', 'ndjson']);
    const results = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { findings: Array<{ code: string; hint: string }>; outcome: string });
    expect(results).toHaveLength(count);
    for (const result of results) {
      const base64 = result.findings.find((f) => f.code === 'BodyBase64');
      expect(base64?.hint).toContain('contentType=application/json');
      expect(base64?.hint).toContain('contentEncoding=UTF-8');
      expect(result.outcome).toBe('warn');
    }
    // Nothing is quarantined on these files: only warnings.
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`${count} message${count === 1 ? '' : 's'} checked as endpoint archive`);
    // The summary gives the findings' own advice: for text bodies, not "declare them JSON".
    expect(run.stderr.includes('this one is not JSON')).toBe(kind === 'text');
    // And the bodies are still decoded to what the device sent.
    const decoded = await runCli(['decode', casePath(file)]);
    for (const line of decoded.stdout.trim().split('\n')) {
      expect(JSON.parse(line)).toMatchObject({ body: { kind, decodedFrom: { base64: 'storage' } } });
    }
  });
});

describe('iot-routing check', () => {
  it('flags "device location": "$twin.tags.location" as EnrichmentUnresolved with no configuration at all', async () => {
    const file = path.join(dir, 'unresolved.json');
    await writeFile(file, `${jsonLine('dev-1', { level: 'storage', 'device location': '$twin.tags.location' })}\n`);
    const cwd = process.cwd();
    process.chdir(dir); // no routing.config.json here: built-in defaults
    try {
      const run = await runCli(['check', file]);
      expect(run.stdout).toContain('built-in defaults');
      expect(run.stdout).toMatch(/#0 dev-1 2026-11-20T10:00:00\.123Z warn .*EnrichmentUnresolved\(device location\)/);
      expect(run.stdout).toContain('EnrichmentKeyInvalid');
      expect(run.stdout).toContain('hint: IoT Hub stamps the enrichment value text itself');
      expect(run.code).toBe(0);
    } finally {
      process.chdir(cwd);
    }
  });

  it('exits 3 when something would be quarantined, with a summary by reason code', async () => {
    const config = path.join(dir, 'pinned.config.json');
    await writeFile(
      config,
      JSON.stringify({ checks: { endpoints: { archive: { enrichments: [{ key: 'customerID', equals: 'c-1' }] } } } }),
    );
    const file = path.join(dir, 'mixed.json');
    await writeFile(
      file,
      [
        jsonLine('dev-1', { level: 'storage', customerID: 'c-1' }),
        jsonLine('dev-2', { level: 'storage', CUSTOMERID: 'c-2' }), // case-insensitive lookup, wrong value
        jsonLine('dev-3', { level: 'storage' }),
      ].join('\n'),
    );
    const run = await runCli(['check', file, '--config', config]);
    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/#0 dev-1 \S+ accept\n/);
    expect(run.stdout).toMatch(/#1 dev-2 \S+ quarantine EnrichmentMismatch\(customerID\)/);
    expect(run.stdout).toMatch(/#2 dev-3 \S+ warn EnrichmentMissing\(customerID\)/);
    expect(run.stdout).toContain('3 messages checked as endpoint archive');
    expect(run.stdout).toMatch(/EnrichmentMismatch x1 \(quarantine\)/);
  });

  it('exits 3 on a damaged file and 1 on a bad --endpoint', async () => {
    const file = path.join(dir, 'cut.json');
    await writeFile(file, jsonLine('dev-1', { level: 'storage' }).slice(0, 80));
    const run = await runCli(['check', file]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain('ArchiveTruncated');
    expect((await runCli(['check', file, '--endpoint', 'nowhere'])).code).toBe(1);
  });
});

describe('quarantine in Azure storage (Azurite)', () => {
  const azurite = useAzurite();

  it('keeps one record per bad message however often it is replayed, and lists and shows it', async () => {
    const { connectionString } = azurite();
    const container = uniqueContainerName('quarantine');
    const store = new AzureBlobStore(blobServiceClientFromSettings({ AzureWebJobsStorage: connectionString }));
    const clock = new ManualClock('2026-11-22T00:00:00Z');
    const deps = {
      checks: defaultChecksConfig(),
      quarantine: createQuarantine(store, container, clock),
      now: () => clock.now(),
    };
    const file = path.join(dir, 'bad.json');
    await writeFile(
      file,
      `${JSON.stringify({ EnqueuedTimeUtc: '2026-11-20T10:00:00.0000000Z', Properties: { level: 'storage' }, SystemProperties: {}, Body: 'aGVsbG8=' })}\n`,
    );
    const messages: RoutedMessage[] = [];
    for await (const event of readArchive((await import('node:fs')).createReadStream(file), { name: 'bad.json' })) {
      if (event.type === 'records') messages.push(...event.messages);
    }
    for (let i = 0; i < 4; i += 1) expect((await admit(messages, 'archive', deps)).quarantined).toBe(1);

    const env = { AzureWebJobsStorage: connectionString, QUARANTINE_CONTAINER: container };
    const list = await runCli(['quarantine', 'list', '--format', 'ndjson'], env);
    expect(list.code).toBe(0);
    const items = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; reasons: string[] });
    expect(items).toHaveLength(1);
    expect(items[0]!.reasons).toContain('DeviceIdMissing');
    expect((await runCli(['quarantine', 'list', '--reason', 'MessageTooLarge', '--format', 'ndjson'], env)).stdout).toBe('');

    const show = await runCli(['quarantine', 'show', items[0]!.name], env);
    expect(JSON.parse(show.stdout)).toMatchObject({
      kind: 'message',
      endpoint: 'archive',
      deviceId: null,
      bodyBase64: Buffer.from('hello').toString('base64'),
      source: { kind: 'blob', blobName: 'bad.json', index: 0 },
      reasons: expect.arrayContaining([expect.objectContaining({ code: 'DeviceIdMissing' })]),
    });
  });
});
