/**
 * `iot-routing quarantine replay` of messages today's configuration still refuses, against Azurite: the record left
 * behind says today's reasons (in `show`, and to `list --reason`), and a critical message is reported with the
 * codes that quarantine it only, as the dry run reports it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/io.js';
import { telemetryStreamFromServices } from '../../src/lib/aggregate/telemetryStream.js';
import { createAlertServices } from '../../src/lib/alerts/alertServices.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { decodeServiceBusMessage } from '../../src/lib/message/serviceBus.js';
import { useAzurite } from '../support/azurite.js';
import { replayConfig, replayFixture, type ReplayFixture } from '../support/replayFixture.js';

const azurite = useAzurite();
let fixture: ReplayFixture;
const cli = (args: string[]) => fixture.cli(args);

beforeAll(async () => {
  fixture = await replayFixture(azurite().connectionString, (dir) => ({
    strict: replayConfig(dir, [{ key: 'site', oneOf: ['Lyon'] }], { EnrichmentMismatch: 'quarantine' }),
    // Fixed the site rule, but now also requires a zone enrichment, which the message lacks.
    zone: replayConfig(dir, [{ key: 'site', oneOf: ['Lyon', 'lyon'] }, { key: 'zone' }], { EnrichmentMismatch: 'quarantine', EnrichmentMissing: 'quarantine' }),
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

afterAll(() => fixture.remove());

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
});
