/**
 * `iot-routing quarantine replay` end to end against Azurite: messages the telemetry stream quarantined under a
 * strict rule are replayed after the rule is fixed, through the same handler, into the same reports; replaying
 * again changes nothing; a dry run and a rule still unmet leave the records where they are.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { reportsCommand } from '../../src/cli/commands/reports.js';
import { EXIT } from '../../src/cli/io.js';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { useAzurite } from '../support/azurite.js';
import { runCommand } from '../support/cli.js';
import { replayFixture, siteEvents, siteRule, type ReplayFixture } from '../support/replayFixture.js';
import { useTempDirs } from '../support/tempDirs.js';

const azurite = useAzurite();
const tempDir = useTempDirs();
let fixture: ReplayFixture;

const cli = (args: string[]) => fixture.cli(args);

async function report(): Promise<{ deviceId: string; messages: number; fields: { temperature?: { count: number; sum: number } } }[]> {
  const run = await runCommand(
    reportsCommand,
    ['--from', '2024-05-01T12:00:00Z', '--to', '2024-05-01T12:01:00Z', '--format', 'json', '--config', fixture.config('fixed')],
    fixture.env,
  );
  expect(run.code).toBe(EXIT.ok);
  return (JSON.parse(run.stdout) as { reports: Array<{ deviceId: string; messages: number; fields: { temperature?: { count: number; sum: number } } }> }).reports;
}

beforeAll(async () => {
  fixture = await replayFixture(tempDir, azurite().connectionString, (dir) => ({ strict: siteRule(dir, ['Lyon']), fixed: siteRule(dir, ['Lyon', 'lyon']) }));
  // The stream under the strict rule: pump-7 spells its site in lower case, and is quarantined.
  const services = await fixture.services('strict');
  const result = await telemetryStreamFromServices(services).processBatch(
    siteEvents([
      ['pump-7', 'lyon', 1],
      ['pump-8', 'Lyon', 2],
      ['pump-7', 'lyon', 3],
    ]),
  );
  expect(result).toMatchObject({ received: 3, aggregated: 1, quarantined: 2, quarantinedBy: { EnrichmentMismatch: 2 } });
  // And one critical alert from pump-7, quarantined by the same rule on the critical queue.
  const alert = decodeServiceBusMessage(Buffer.from('{"temperature":91.5}'), {
    messageId: 'alarm-1',
    contentType: 'application/json',
    enqueuedTimeUtc: '2024-05-01T12:00:30.000',
    applicationProperties: { 'iothub-connection-device-id': 'pump-7', level: 'critical', site: 'lyon' },
  });
  expect(await createAlertServices(services).handler.handle(alert)).toMatchObject({ outcome: 'quarantined', reasons: ['EnrichmentMismatch'] });
});

describe('iot-routing quarantine replay', () => {
  it('leaves everything in place on a dry run or while the rule is unchanged, and says why', async () => {
    const dry = await cli(['replay', '--dry-run', '--config', fixture.config('fixed'), '--format', 'ndjson']);
    expect(dry.code).toBe(EXIT.ok);
    expect(dry.stdout.trimEnd().split('\n').map((line) => (JSON.parse(line) as { outcome: string }).outcome)).toEqual([
      'would-replay',
      'would-replay',
      'would-replay',
    ]);
    expect(dry.stderr).toContain('dry run: 3 would go through, 0 would stay quarantined, 0 skipped');

    const unchanged = await cli(['replay', '--config', fixture.config('strict')]);
    expect(unchanged.code).toBe(EXIT.wouldQuarantine);
    expect(unchanged.stdout).toMatch(/^quarantined +messages\/events\/2024\/05\/01\/\S+ {2}EnrichmentMismatch$/m);
    expect(unchanged.stdout).toMatch(/^quarantined +messages\/criticalQueue\/2024\/05\/01\/\S+ {2}EnrichmentMismatch$/m);
    expect(unchanged.stderr).toContain('replayed 0, still quarantined 3, skipped 0');
    expect((await cli(['list'])).stderr).toContain('3 quarantined records');
    await expect(readdir(join(fixture.dir, 'outbox'))).rejects.toThrow();
    expect((await report()).map((r) => r.deviceId)).toEqual(['pump-8']);
  });

  it('replays a critical alert through the alert path once the rule is fixed: one e-mail, however often it is replayed', async () => {
    const replayed = await cli(['replay', '--endpoint', 'criticalQueue', '--device', 'pump-7', '--config', fixture.config('fixed')]);
    expect(replayed.code).toBe(EXIT.ok);
    expect(replayed.stdout).toMatch(/^replayed +messages\/criticalQueue\/2024\/05\/01\/\S+ {2}sent$/m);
    expect(await readdir(join(fixture.dir, 'outbox'))).toHaveLength(1);
    expect((await cli(['list', '--endpoint', 'criticalQueue'])).stderr).toContain('0 quarantined records');
    expect((await cli(['replay', '--endpoint', 'criticalQueue', '--config', fixture.config('fixed')])).stderr).toContain('replayed 0');
    expect(await readdir(join(fixture.dir, 'outbox'))).toHaveLength(1);
  });

  it('replays into the same reports once the rule is fixed, deletes the records, and a second replay changes nothing', async () => {
    const replayed = await cli(['replay', '--endpoint', 'events', '--config', fixture.config('fixed'), '--format', 'ndjson']);
    expect(replayed.code).toBe(EXIT.ok);
    const results = replayed.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { outcome: string; deviceId: string; detail: string });
    expect(results).toEqual([
      expect.objectContaining({ outcome: 'replayed', deviceId: 'pump-7', detail: expect.stringMatching(/^aggregated/) }),
      expect.objectContaining({ outcome: 'replayed', deviceId: 'pump-7', detail: expect.stringMatching(/^aggregated/) }),
    ]);
    expect((await cli(['list', '--endpoint', 'events'])).stderr).toContain('0 quarantined records');
    const reports = await report();
    expect(reports.map((r) => [r.deviceId, r.messages, r.fields.temperature?.sum])).toEqual([
      ['pump-7', 2, 44],
      ['pump-8', 1, 22],
    ]);

    const again = await cli(['replay', '--config', fixture.config('fixed')]);
    expect(again.code).toBe(EXIT.ok);
    expect(again.stderr).toContain('replayed 0, still quarantined 0, skipped 0');
    expect(await report()).toEqual(reports);
  });

  it('refuses an endpoint it cannot replay and a run without a configuration to apply', async () => {
    await expect(cli(['replay', '--endpoint', 'archive', '--config', fixture.config('fixed')])).rejects.toThrow(
      '--endpoint must be one of events, criticalQueue for replay, not "archive"',
    );
    await expect(cli(['list', '--dry-run'])).rejects.toThrow('--dry-run and --config are for quarantine replay');
  });
});
