import { describe, expect, it } from 'vitest';
import { DEFAULT_AGGREGATION_CONFIG } from '../../src/lib/aggregate/aggregationConfig.js';
import type { DashboardData } from '../../src/lib/dashboard/dashboardData.js';
import { createDashboardDataEndpoint, createDashboardHandlers, cspNonce, pageResponse } from '../../src/lib/dashboard/dashboardEndpoint.js';
import { configInvalid, RoutingError } from '../../src/lib/errors.js';
import { ManualClock } from '../../src/lib/ports.js';
import { createServices } from '../../src/lib/runtime.js';
import { MemoryBlobStore } from '../../src/lib/storage/memoryBlobStore.js';

const clock = new ManualClock('2024-03-01T10:30:00Z');

describe('createDashboardDataEndpoint', () => {
  it('answers 400 for bad parameters without reading anything', async () => {
    let reads = 0;
    const endpoint = createDashboardDataEndpoint({
      source: async () => {
        reads++;
        return {} as DashboardData;
      },
      aggregation: DEFAULT_AGGREGATION_CONFIG,
      clock,
    });
    const response = await endpoint([['window', '2m']]);
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body)).toEqual({ error: 'BadRequest', problems: ['window: "2m" is not a configured window (1m)'] });
    expect(reads).toBe(0);
  });

  it('answers 503 with Retry-After when storage is unavailable, and 400 for a query storage refuses', async () => {
    const failing = (error: Error) =>
      createDashboardDataEndpoint({ source: () => Promise.reject(error), aggregation: DEFAULT_AGGREGATION_CONFIG, clock });
    const busy = await failing(new RoutingError('StorageUnavailable', 'Azurite is down', { retryAfterSeconds: 7 }))([]);
    expect(busy).toMatchObject({ status: 503, headers: { 'retry-after': '7', 'cache-control': 'no-store' } });
    expect(JSON.parse(busy.body)).toEqual({ error: 'StorageUnavailable', problems: ['Azurite is down'] });
    const usage = await failing(new RoutingError('UsageInvalid', 'more than 1441 windows match'))([]);
    expect(usage.status).toBe(400);
    await expect(failing(new TypeError('a bug'))([])).rejects.toThrow('a bug');
  });
});

describe('createDashboardHandlers', () => {
  it('answers 503 naming every configuration problem for the data, and none on the page, which needs no key', async () => {
    const handlers = createDashboardHandlers(() =>
      Promise.reject(configInvalid('Configuration is invalid', ['AzureWebJobsStorage is not set', 'routes[0].condition: <unexpected>'])),
    );
    const page = await handlers.page('/api/dashboard');
    expect(page.status).toBe(503);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('GET /api/health with a function key lists');
    expect(page.body).not.toContain('AzureWebJobsStorage');
    const data = await handlers.data([]);
    expect(data.status).toBe(503);
    expect(JSON.parse(data.body)).toEqual({ error: 'Misconfigured', problems: ['AzureWebJobsStorage is not set', 'routes[0].condition: <unexpected>'] });
    // A configuration error naming one problem is that problem.
    const single = createDashboardHandlers(() => Promise.reject(new RoutingError('ConfigInvalid', 'AzureWebJobsStorage is not a valid storage connection string')));
    expect(JSON.parse((await single.data([])).body)).toEqual({ error: 'Misconfigured', problems: ['AzureWebJobsStorage is not a valid storage connection string'] });
  });

  it('builds its data source once per set of services and serves an empty store', async () => {
    const services = await createServices({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }, { store: new MemoryBlobStore({ clock }), clock });
    let loads = 0;
    const handlers = createDashboardHandlers(async () => {
      loads++;
      return services;
    });
    const first = await handlers.data([['range', '15m']]);
    const second = await handlers.data([]);
    expect([first.status, second.status, loads]).toEqual([200, 200, 2]);
    const body = JSON.parse(first.body) as DashboardData;
    // routing.config.json names the archive container, so the (empty) archive is counted.
    expect(body).toMatchObject({ window: '1m', range: '15m', devices: [], routes: { events: 0, criticalQueue: 0, archive: 0 } });
  });
});

describe('pageResponse', () => {
  it('gives every page its own nonce, in the policy and on the script', () => {
    const [a, b] = [pageResponse('/api/dashboard', DEFAULT_AGGREGATION_CONFIG), pageResponse('/api/dashboard', DEFAULT_AGGREGATION_CONFIG)];
    const nonceOf = (csp: string | undefined) => /script-src 'nonce-([^']+)'/.exec(csp ?? '')?.[1];
    const [x, y] = [nonceOf(a.headers['content-security-policy']), nonceOf(b.headers['content-security-policy'])];
    expect(x).toMatch(/^[A-Za-z0-9+/]{24}$/);
    expect(x).not.toBe(y);
    expect(a.body).toContain(`<script nonce="${x}">`);
    expect(a.headers).toMatchObject({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY' });
    expect(cspNonce()).toHaveLength(24);
  });
});
