/**
 * `iot-routing quarantine replay` of messages today's configuration still refuses, against Azurite: the record left
 * behind says today's reasons (in `show`, and to `list --reason`), a critical message is reported with the codes
 * that quarantine it only, and the dry run foresees what the alert ledger decides (an alert the e-mail service
 * refused, under its own key or a module alert's earlier one, unless it is no longer an alert). Refusals come from
 * the real ACS client against the loopback stand-in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/io.js';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { createAcsEmailSender } from '../../src/lib/alerts/acsEmailSender.js';
import { createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { legacyMessageIdentity } from '../../src/lib/message/identity.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { acs, startAcsEmailStandIn, type AcsEmailStandIn } from '../support/acsEmailStandIn.js';
import { useAzurite } from '../support/azurite.js';
import { replayConfig, replayFixture, type ReplayFixture } from '../support/replayFixture.js';
import { useTempDirs } from '../support/tempDirs.js';

const azurite = useAzurite();
const tempDir = useTempDirs();
let fixture: ReplayFixture;
const cli = (args: string[]) => fixture.cli(args);

beforeAll(async () => {
  fixture = await replayFixture(tempDir, azurite().connectionString, (dir) => ({
    strict: replayConfig(dir, [{ key: 'site', oneOf: ['Lyon'] }], { EnrichmentMismatch: 'quarantine' }),
    // Fixed the site rule, but now also requires a zone enrichment, which the message lacks.
    zone: replayConfig(dir, [{ key: 'site', oneOf: ['Lyon', 'lyon'] }, { key: 'zone' }], { EnrichmentMismatch: 'quarantine', EnrichmentMissing: 'quarantine' }),
    open: replayConfig(dir, [], {}),
    // Only level "fatal" is an alert today.
    fatalOnly: replayConfig(dir, [], {}, { level: 'fatal' }),
  }));
  const services = await fixture.services('strict');
  const batch = decodeEventHubBatch([Buffer.from('{"temperature":20}')], {
    partitionContext: { partitionId: '1' },
    systemPropertiesArray: [{ 'iothub-connection-device-id': 'pump-7', 'iothub-enqueuedtime': '2024-05-01T12:00:01.000Z', 'message-id': 'm1', 'content-type': 'application/json', 'content-encoding': 'utf-8' }],
    propertiesArray: [{ site: 'lyon' }],
  });
  expect(await telemetryStreamFromServices(services).processBatch(batch)).toMatchObject({ quarantined: 1 });
  // A critical alert whose body is not JSON (a warning on criticalQueue) and whose site is wrong (quarantine).
  const alert = decodeServiceBusMessage(Buffer.from('{"temperature":91.5'), {
    messageId: 'alarm-1',
    contentType: 'application/json',
    enqueuedTimeUtc: '2024-05-01T12:00:30.000',
    applicationProperties: { 'iothub-connection-device-id': 'pump-9', level: 'critical', site: 'lyon' },
  });
  expect(await createAlertServices(services).handler.handle(alert)).toMatchObject({ outcome: 'quarantined' });
});

describe('quarantine replay: what a still-refused record says afterwards', () => {
  it("keeps today's reasons in the record it leaves (list --reason / show agree with the replay output)", async () => {
    const [before] = (await cli(['list', '--endpoint', 'events', '--format', 'ndjson'])).stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { name: string });
    const first = JSON.parse((await cli(['show', before!.name])).stdout) as { quarantinedAt: string };
    const run = await cli(['replay', '--endpoint', 'events', '--config', fixture.config('zone'), '--format', 'ndjson']);
    expect(run.code).toBe(EXIT.wouldQuarantine);
    const [result] = run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { name: string; reasons: string[] });
    expect(result!.reasons).toEqual(['EnrichmentMissing']);
    // The record the user is told to `show` says so too, and --reason finds it under today's code only.
    const listed = await cli(['list', '--endpoint', 'events', '--reason', 'EnrichmentMissing']);
    expect(listed.stderr).toContain('1 quarantined record');
    expect((await cli(['list', '--endpoint', 'events', '--reason', 'EnrichmentMismatch'])).stderr).toContain('0 quarantined records');
    const shown = JSON.parse((await cli(['show', result!.name])).stdout) as { reasons: Array<{ code: string }>; quarantinedAt: string };
    expect(shown.reasons.map((r) => r.code)).toEqual(['EnrichmentMissing']);
    // When it was first quarantined stays.
    expect(result!.name).toBe(before!.name);
    expect(shown.quarantinedAt).toBe(first.quarantinedAt);
  });

  it('reports only the codes that quarantine a critical message, as the dry run does', async () => {
    const dry = await cli(['replay', '--endpoint', 'criticalQueue', '--dry-run', '--config', fixture.config('strict'), '--format', 'ndjson']);
    const wet = await cli(['replay', '--endpoint', 'criticalQueue', '--config', fixture.config('strict'), '--format', 'ndjson']);
    const reasons = (out: string) => (JSON.parse(out.trimEnd()) as { reasons: string[] }).reasons;
    expect(reasons(dry.stdout)).toEqual(['EnrichmentMismatch']);
    expect(reasons(wet.stdout)).toEqual(['EnrichmentMismatch']);
  });

  describe('alerts the e-mail service refused', () => {
    let standIn: AcsEmailStandIn;
    beforeAll(async () => {
      standIn = await startAcsEmailStandIn();
    });
    afterAll(() => standIn.stop());

    /** Handles `alert` with the real ACS client against a stand-in that refuses it (400): EmailRejected, ledger failed. */
    async function refuse(alert: RoutedMessage): Promise<void> {
      standIn.script(acs.badRequest());
      const sender = createAcsEmailSender(
        { connectionString: standIn.connectionString },
        { pollIntervalMs: 5, clientOptions: { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } } },
      );
      const { handler } = createAlertServices(await fixture.services('open'), { sender });
      expect(await handler.handle(alert)).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    }

    const critical = (device: string, id: string, extra: Record<string, string> = {}): RoutedMessage =>
      decodeServiceBusMessage(Buffer.from('{"temperature":95}'), {
        messageId: id,
        contentType: 'application/json',
        enqueuedTimeUtc: '2024-05-01T12:00:40.000',
        applicationProperties: { 'iothub-connection-device-id': device, level: 'critical', ...extra },
      });

    async function outcomes(device: string, config: string): Promise<{ dry: unknown; replay: unknown }> {
      const args = ['replay', '--endpoint', 'criticalQueue', '--device', device, '--config', fixture.config(config), '--format', 'ndjson'];
      const parse = (out: string) => JSON.parse(out.trimEnd()) as unknown;
      const dry = parse((await cli([...args, '--dry-run'])).stdout);
      return { dry, replay: parse((await cli(args)).stdout) };
    }

    it('stays refused while the ledger keeps the verdict, and the dry run says so', async () => {
      await refuse(critical('pump-20', 'refused-1'));
      const { dry, replay } = await outcomes('pump-20', 'open');
      expect(dry).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
      expect(replay).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    });

    it('goes through once today\'s policy no longer makes it an alert, and the dry run says so', async () => {
      await refuse(critical('pump-21', 'refused-2'));
      const { dry, replay } = await outcomes('pump-21', 'fatalOnly');
      expect(dry).toMatchObject({ outcome: 'would-replay' });
      expect(replay).toMatchObject({ outcome: 'replayed', detail: 'notAlert' });
    });

    it("a module's alert refused under its earlier key stays refused, and the dry run says so", async () => {
      const services = await fixture.services('open');
      const alert = critical('edge-1', 'module-1', { 'iothub-connection-module-id': 'sensor' });
      // Refused before identities named the module: its failed ledger record is under the earlier key.
      const { ledger } = createAlertServices(services).stores;
      const claim = await ledger.claim(legacyMessageIdentity(alert)!, { kind: 'alert', deviceId: 'edge-1', operationId: 'op-before-upgrade' });
      if (claim.status !== 'claimed') throw new Error('not claimed');
      await ledger.finish(claim, { state: 'failed', error: 'refused before the upgrade' });
      await services.quarantine.putMessage(alert, 'criticalQueue', [{ code: 'EmailRejected', detail: 'refused before the upgrade', hint: 'fix the recipients' }]);
      const { dry, replay } = await outcomes('edge-1', 'open');
      expect(dry).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
      expect(replay).toMatchObject({ outcome: 'quarantined', reasons: ['EmailRejected'] });
    });
  });
});
