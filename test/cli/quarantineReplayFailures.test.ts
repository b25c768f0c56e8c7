/**
 * `iot-routing quarantine replay` when things go wrong, against Azurite: a transient storage failure on one record
 * and an alert still owned by an interrupted run are that record's outcome (`failed`, exit 4) while the rest is
 * replayed; so is a record another replay rewrote meanwhile, which stays; a dry run fails as the run would when the
 * alert settings are missing; archive damage codes are refused.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { EXIT, UsageError } from '../../src/cli/io.js';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { alertKeyOf } from '../../src/lib/alerts/alertPolicy.js';
import { alertsConfigOf, createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { createAlertStores } from '../../src/lib/alerts/alertStores.js';
import { RoutingError } from '../../src/lib/errors.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { replayDepsFromServices, replayQuarantined, type ReplayDeps, type ReplayResult } from '../../src/lib/quarantineReplay.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { useAzurite } from '../support/azurite.js';
import { runCli } from '../support/cli.js';
import { replayFixture, siteEvents, siteRule, type ReplayFixture } from '../support/replayFixture.js';
import { useTempDirs } from '../support/tempDirs.js';

const azurite = useAzurite();
const tempDir = useTempDirs();

const alarm = (id: string) =>
  decodeServiceBusMessage(Buffer.from('{"temperature":91.5}'), {
    messageId: id,
    contentType: 'application/json',
    enqueuedTimeUtc: '2024-05-01T12:00:30.000',
    applicationProperties: { 'iothub-connection-device-id': 'pump-7', level: 'critical', site: 'lyon' },
  });

let fixture: ReplayFixture;

async function seed(f: ReplayFixture): Promise<void> {
  const services = await f.services('strict');
  await telemetryStreamFromServices(services).processBatch(siteEvents([['pump-7', 'lyon', 1], ['pump-7', 'lyon', 2]]));
  await createAlertServices(services).handler.handle(alarm('alarm-1'));
}

beforeAll(async () => {
  fixture = await replayFixture(tempDir, azurite().connectionString, (dir) => ({
    strict: siteRule(dir, ['Lyon']),
    fixed: siteRule(dir, ['Lyon', 'lyon']),
    // The fixed rule as it is deployed: alerts sent with ACS (the settings are the app's, not in this shell).
    fixedAcs: { ...(siteRule(dir, ['Lyon', 'lyon']) as { alerts: object }), alerts: { ...(siteRule(dir, []) as { alerts: object }).alerts, sender: 'acs' } },
  }));
  await seed(fixture);
});

describe('quarantine replay when things go wrong', () => {
  it('refuses --reason codes that replay can never act on (archive damage), as it refuses --endpoint archive', async () => {
    await expect(fixture.cli(['replay', '--reason', 'ArchiveTruncated', '--config', fixture.config('fixed')])).rejects.toThrow(UsageError);
    await expect(fixture.cli(['replay', '--reason', 'ArchiveCorrupt', '--config', fixture.config('fixed')])).rejects.toThrow(/damaged archive blob/);
  });

  it('dry run foresees what the real run needs: alert settings (a dry run says "would go through", the run fails)', async () => {
    const env = { ...fixture.env };
    const dry = await runCli(['quarantine', 'replay', '--dry-run', '--endpoint', 'criticalQueue', '--config', fixture.config('fixedAcs')], env);
    const real = await runCli(['quarantine', 'replay', '--endpoint', 'criticalQueue', '--config', fixture.config('fixedAcs')], env);
    // The real run cannot replay anything: ACS settings are missing.
    expect(real.code).toBe(EXIT.usage);
    expect(real.stderr).toContain('ACS');
    // The dry run should say so too, rather than "1 would go through" with exit 0.
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: EXIT.usage, stderr: expect.stringContaining('ACS') });
  });

  it('a transient storage failure mid-run ends with a summary and an exit code, not an unhandled exception', async () => {
    const f = await replayFixture(tempDir, azurite().connectionString, (dir) => ({ strict: siteRule(dir, ['Lyon']), fixed: siteRule(dir, ['Lyon', 'lyon']) }));
    await seed(f);
    const spy = vi.spyOn(AzureBlobStore.prototype, 'delete');
    spy.mockImplementationOnce(async () => {
      throw new RoutingError('StorageUnavailable', 'storage returned 503 (simulated)');
    });
    const run = await runCli(['quarantine', 'replay', '--config', f.config('fixed')], f.env);
    spy.mockRestore();
    // The record whose deletion failed is reported and left; the others are replayed; the summary says so.
    expect(run.code, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(EXIT.transient);
    expect(run.stdout).toMatch(/^failed +messages\/criticalQueue\/\S+ {2}storage returned 503 \(simulated\)$/m);
    expect(run.stderr).toContain('replayed 2, still quarantined 0, skipped 0, failed 1');
    expect(run.stderr).toContain('run the replay again');
  });

  it('one alert still owned by an interrupted run (Ctrl+C) does not stop the replay of everything after it', async () => {
    const f = await replayFixture(tempDir, azurite().connectionString, (dir) => ({ strict: siteRule(dir, ['Lyon']), fixed: siteRule(dir, ['Lyon', 'lyon']) }));
    await seed(f);
    // What a replay killed mid-send leaves: the alert's ledger record in progress, its lease running.
    const services = await f.services('fixed');
    const ledger = createAlertStores(services.store, services.config.settings.alerts.container, services.clock, alertsConfigOf(services.config)).ledger;
    const key = alertKeyOf(alarm('alarm-1'));
    expect((await ledger.claim(key, { kind: 'alert', deviceId: 'pump-7', operationId: 'op-1' })).status).toBe('claimed');

    const started = Date.now();
    const run = await runCli(['quarantine', 'replay', '--config', f.config('fixed'), '--format', 'ndjson'], f.env);
    const tookMs = Date.now() - started;
    // The busy alert is reported as failed (its record stays), the two telemetry messages are replayed.
    expect(run.code, `after ${tookMs} ms\nstdout:\n${run.stdout}`).toBe(EXIT.transient);
    expect(run.stdout.match(/"outcome":"replayed"/g)).toHaveLength(2);
    expect(run.stdout.match(/"outcome":"failed"/g)).toHaveLength(1);
    expect((await f.cli(['list', '--endpoint', 'criticalQueue'])).stderr).toContain('1 quarantined record');
  });

  it('keeps a record another replay rewrote while this one replayed it, and says so; the next replay settles it', async () => {
    const f = await replayFixture(tempDir, azurite().connectionString, (dir) => ({
      strict: siteRule(dir, ['Lyon']),
      fixed: siteRule(dir, ['Lyon', 'lyon']),
      elsewhere: siteRule(dir, ['Paris']),
    }));
    await telemetryStreamFromServices(await f.services('strict')).processBatch(siteEvents([['pump-7', 'lyon', 1]]));
    const fixed = replayDepsFromServices(await f.services('fixed'));
    const elsewhere = await f.services('elsewhere');
    const others: ReplayResult[] = [];
    // Between this replay's read of the record and its delete, a replay with another configuration refuses the
    // message again and rewrites the record with its reasons (Quarantine.forReplay).
    const racing: ReplayDeps = {
      ...fixed,
      handlers: async (endpoint, quarantine) => {
        const { events } = await fixed.handlers(endpoint, quarantine);
        return {
          events: {
            processBatch: async (messages, options) => {
              if (others.length === 0) others.push(...(await all(replayQuarantined(replayDepsFromServices(elsewhere)))));
              return events!.processBatch(messages, options);
            },
          },
        };
      },
    };

    const results = await all(replayQuarantined(racing));
    expect(others).toEqual([expect.objectContaining({ outcome: 'quarantined', reasons: ['EnrichmentMismatch'] })]);
    expect(results).toEqual([
      expect.objectContaining({ outcome: 'failed', error: expect.stringMatching(/^aggregated, but the record changed while it was replayed/) }),
    ]);
    // The other replay's verdict stands: the record is there, with its reasons.
    const [item] = await all(elsewhere.quarantine.list());
    const record = (await elsewhere.quarantine.get(item!.name))?.value;
    expect(record?.reasons.map((r) => r.detail).join()).toContain('Paris');

    // Run again: the message is already counted, and the record this replay reads is deleted.
    expect(await all(replayQuarantined(fixed))).toEqual([expect.objectContaining({ outcome: 'replayed', detail: 'duplicate (already counted)' })]);
    expect(await all(elsewhere.quarantine.list())).toEqual([]);
  });
});

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
