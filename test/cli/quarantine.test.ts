import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { quarantineCommand } from '../../src/cli/commands/quarantine.js';
import { EXIT } from '../../src/cli/io.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import { ManualClock, systemClock } from '../../src/lib/ports.js';
import { AzureBlobStore } from '../../src/lib/storage/azureBlobStore.js';
import { createQuarantine, reasonFor } from '../../src/lib/storage/quarantine.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { runCommand, type CliRun } from '../support/cli.js';

const azurite = useAzurite();
const container = uniqueContainerName('quarantine');

beforeAll(async () => {
  const quarantine = createQuarantine(new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString)), container, systemClock);
  const [message] = decodeEventHubBatch([Buffer.from('{"temperature":')], {
    systemPropertiesArray: [{ 'iothub-connection-device-id': 'pump-7', 'iothub-enqueuedtime': '2024-05-01T12:00:00.000Z', 'message-id': 'm-1' }],
    propertiesArray: [{}],
  });
  await quarantine.putMessage(message!, 'events', [reasonFor('BodyNotJson', 'the body ends after "temperature":')]);
});

function quarantineCli(args: string[]): Promise<CliRun> {
  return runCommand(quarantineCommand, [...args, '--container', container], { AzureWebJobsStorage: azurite().connectionString });
}

describe('iot-routing quarantine', () => {
  it('lists what was quarantined, filtered by endpoint, reason and device', async () => {
    const all = await quarantineCli(['list', '--format', 'ndjson']);
    expect(all.code).toBe(EXIT.ok);
    const [entry] = all.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { endpoint: string; deviceId: string; reasons: string[]; name: string });
    expect(entry).toMatchObject({ endpoint: 'events', deviceId: 'pump-7', reasons: ['BodyNotJson'] });
    expect(all.stderr).toBe(`1 quarantined record in ${container}\n`);
    expect((await quarantineCli(['list', '--endpoint', 'events', '--reason', 'BodyNotJson', '--device', 'pump-7'])).stdout).toContain(entry!.name);
    expect((await quarantineCli(['list', '--endpoint', 'archive'])).stderr).toBe(`0 quarantined records in ${container}\n`);
    const shown = await quarantineCli(['show', entry!.name]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ kind: 'message', reasons: [expect.objectContaining({ code: 'BodyNotJson', hint: expect.any(String) })] });
  });

  it('dates a record by when it was quarantined (the app clock, which a rewrite by a replay keeps), not by Last-Modified', async () => {
    const dated = uniqueContainerName('quarantine');
    const quarantinedAt = '2024-05-01T12:05:00.000Z';
    const store = new AzureBlobStore(BlobServiceClient.fromConnectionString(azurite().connectionString));
    const [message] = decodeEventHubBatch([Buffer.from('{"t":')], {
      systemPropertiesArray: [{ 'iothub-connection-device-id': 'pump-8', 'iothub-enqueuedtime': '2024-05-01T12:00:00.000Z', 'message-id': 'm-2' }],
      propertiesArray: [{}],
    });
    await createQuarantine(store, dated, new ManualClock(quarantinedAt)).putMessage(message!, 'events', [reasonFor('BodyNotJson', 'cut short')]);
    const run = await runCommand(quarantineCommand, ['list', '--container', dated], { AzureWebJobsStorage: azurite().connectionString });
    expect(run.stdout).toMatch(new RegExp(`^${quarantinedAt}  events +pump-8 +BodyNotJson +messages/events/2024/05/01/`));
  });

  it('takes the storage connection in every form the app reads it (`:` for `__` here), refusing only a blank one', async () => {
    // Past the storage check, replay stops at the configuration file, before any request.
    await expect(
      runCommand(quarantineCommand, ['replay', '--config', '/nonexistent/routing.config.json'], { 'AzureWebJobsStorage:accountName': 'account' }),
    ).rejects.toThrow(/nonexistent\/routing\.config\.json: .*no such file/);
    await expect(runCommand(quarantineCommand, ['list'], { AzureWebJobsStorage: ' ' })).rejects.toThrow(/no storage: pass --connection-string/);
  });

  it('refuses a filter no entry can match, naming the values that can, instead of listing nothing', async () => {
    await expect(quarantineCli(['list', '--endpoint', 'event'])).rejects.toThrow('--endpoint must be one of events, criticalQueue, archive, not "event"');
    await expect(quarantineCli(['list', '--reason', 'BodyNotJSON'])).rejects.toThrow(/--reason must be a reason code \(.*BodyNotJson.*ArchiveTruncated.*EmailRejected\), not "BodyNotJSON"/);
  });
});
