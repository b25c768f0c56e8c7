/**
 * The dashboard over a reports container written with another base window, against Azurite: the reports were
 * written with routing.config.json's 1-minute windows, then the configuration moved to 5-minute ones with the same
 * REPORTS_CONTAINER. Read so, base windows of the new size are absent and roll-ups look theirs up under the wrong
 * size: the data route must refuse, as GET /api/reports does, instead of answering empty charts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { aggregationConfigOf } from '../../src/lib/aggregate/aggregationConfig.js';
import { createReportsEndpoint } from '../../src/lib/aggregate/reportsQuery.js';
import { blobWindowStore } from '../../src/lib/aggregate/windowStore.js';
import type { DashboardData } from '../../src/lib/dashboard/dashboardData.js';
import { createDashboardHandlers } from '../../src/lib/dashboard/dashboardEndpoint.js';
import { ManualClock } from '../../src/lib/ports.js';
import { createServices, type Services } from '../../src/lib/runtime.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { useTempDirs } from '../support/tempDirs.js';
import { seedDashboard } from './dashboardSeed.js';

const azurite = useAzurite();
const tempDir = useTempDirs();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const END = Date.parse('2024-03-01T10:30:00Z');
const DEVICES = ['pump-1', 'pump-2'] as const;

let written: Services;
let moved: Services;

beforeAll(async () => {
  const clock = new ManualClock(END);
  const env = {
    AzureWebJobsStorage: azurite().connectionString,
    REPORTS_CONTAINER: uniqueContainerName('reports'),
    QUARANTINE_CONTAINER: uniqueContainerName('quarantine'),
    ALERTS_CONTAINER: uniqueContainerName('alerts'),
    ARCHIVE_CONTAINER: uniqueContainerName('archive'),
    ARCHIVE_INDEX_CONTAINER: uniqueContainerName('archive-index'),
    IOTHUB_SERVICE_CONNECTION: '',
  };
  written = await createServices(env, { clock });
  await seedDashboard(written, { endMs: END, devices: DEVICES, windows: 6, clock });
  clock.set(END + 20_000);

  // The operator's routing.config.json, moved to a 5-minute base window; REPORTS_CONTAINER left as it was.
  const routing = JSON.parse(await readFile(path.join(ROOT, 'routing.config.json'), 'utf8')) as { aggregation: { windows: string[] } };
  routing.aggregation.windows = ['5m', '1h'];
  const configPath = path.join(await tempDir('dashboard-base-window-'), 'routing.config.json');
  await writeFile(configPath, JSON.stringify(routing));
  moved = await createServices({ ...env, ROUTING_CONFIG_PATH: configPath }, { clock });
});

describe('GET /api/dashboard/data over a reports container written with another base window', () => {
  it('answers 503 Misconfigured with the problem GET /api/reports names, instead of empty charts', async () => {
    const before = await createDashboardHandlers(async () => written).data([['range', '1h']]);
    expect(before.status).toBe(200);
    expect((JSON.parse(before.body) as DashboardData).devices).toEqual([...DEVICES]);

    const handlers = createDashboardHandlers(async () => moved);
    for (const params of [[['range', '1h']], [['window', '1h'], ['range', '24h']]] as Array<Array<[string, string]>>) {
      const response = await handlers.data(params);
      expect(response.status, response.body).toBe(503);
      expect(response.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      const body = JSON.parse(response.body) as { error: string; problems: string[] };
      expect(body.error).toBe('Misconfigured');
      expect(body.problems).toEqual([expect.stringMatching(/REPORTS_CONTAINER.* 1m base window.* smallest window is 5m/)]);

      // The same words the reports endpoint answers with for the same container and configuration.
      const reports = createReportsEndpoint({
        windows: blobWindowStore(moved.store, moved.config.settings.reportsContainer),
        config: aggregationConfigOf(moved.config.routing),
        clock: moved.clock,
      });
      const refused = await reports([]);
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body)).toEqual(body);
    }
  });
});
