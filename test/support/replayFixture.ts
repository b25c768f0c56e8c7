/**
 * What the `quarantine replay` CLI tests share: a temporary directory of routing.config.json variants, app settings
 * naming fresh containers in Azurite, the CLI run with them, and the services a given config variant builds (to
 * quarantine messages the way the functions do before replaying them).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quarantineCommand } from '../../src/cli/commands/quarantine.js';
import { decodeEventHubBatch } from '../../src/lib/message/eventHubBatch.js';
import type { RoutedMessage } from '../../src/lib/message/RoutedMessage.js';
import { createServices, type Services } from '../../src/lib/runtime.js';
import { uniqueContainerName } from './azurite.js';
import { runCommand, type CliRun } from './cli.js';

export interface ReplayFixture {
  dir: string;
  env: Record<string, string>;
  /** The path of a config variant written by `replayFixture`. */
  config(name: string): string;
  cli(args: string[]): Promise<CliRun>;
  services(configName: string): Promise<Services>;
}

/**
 * A config with `rules` (enrichment expectations) and `outcomes` on the events and critical endpoints, one-minute
 * windows, and alerts written to an outbox under `dir`.
 */
export function replayConfig(dir: string, rules: object[], outcomes: object, alertsWhen?: object): object {
  const rule = { enrichments: rules, outcomes };
  return {
    aggregation: { windows: ['1m'] },
    checks: { endpoints: { events: rule, criticalQueue: rule } },
    alerts: {
      from: 'alerts@contoso.example',
      recipients: { default: ['ops@contoso.example'] },
      sender: 'outbox',
      outboxDirectory: join(dir, 'outbox'),
      ...(alertsWhen === undefined ? {} : { when: alertsWhen }),
    },
  };
}

/** `tempDir`: the test file's `useTempDirs()`, which removes the fixture's directory after the file's tests. */
export async function replayFixture(
  tempDir: (prefix: string) => Promise<string>,
  connectionString: string,
  configs: (dir: string) => Record<string, object>,
): Promise<ReplayFixture> {
  const dir = await tempDir('replay-');
  for (const [name, config] of Object.entries(configs(dir))) await writeFile(join(dir, `${name}.json`), JSON.stringify(config));
  const env = {
    AzureWebJobsStorage: connectionString,
    REPORTS_CONTAINER: uniqueContainerName('reports'),
    QUARANTINE_CONTAINER: uniqueContainerName('quarantine'),
    ALERTS_CONTAINER: uniqueContainerName('alerts'),
  };
  const config = (name: string): string => join(dir, `${name}.json`);
  return {
    dir,
    env,
    config,
    cli: (args) => runCommand(quarantineCommand, args, env),
    services: (name) => createServices({ ...env, ROUTING_CONFIG_PATH: config(name) }, { root: dir }),
  };
}

/** `site` must be one of `allowed` on the events and critical endpoints, or the message is quarantined. */
export function siteRule(dir: string, allowed: string[]): object {
  return replayConfig(dir, [{ key: 'site', oneOf: allowed }], { EnrichmentMismatch: 'quarantine' });
}

/** A trigger batch from partition 1: per message its device, `site` enrichment and second of 2024-05-01T12:00. */
export function siteEvents(sites: Array<[device: string, site: string, second: number]>): RoutedMessage[] {
  return decodeEventHubBatch(
    sites.map(([, , second]) => Buffer.from(JSON.stringify({ temperature: 20 + second }))),
    {
      partitionContext: { partitionId: '1' },
      systemPropertiesArray: sites.map(([device, , second]) => ({
        'iothub-connection-device-id': device,
        'iothub-enqueuedtime': `2024-05-01T12:00:${String(second).padStart(2, '0')}.000Z`,
        'message-id': `${device}-${second}`,
        'content-type': 'application/json',
        'content-encoding': 'utf-8',
      })),
      propertiesArray: sites.map(([, site]) => ({ site })),
    },
  );
}
