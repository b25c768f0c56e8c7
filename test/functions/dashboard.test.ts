/**
 * GET /api/dashboard, /api/dashboard/data and /api/dashboard/assets/{name}, called as the host calls them (a real
 * HttpRequest and InvocationContext) over data the product's own paths wrote to Azurite: telemetry through the
 * stream handler (each batch twice), alerts through the ledger, a refused alert and broken messages through the
 * quarantine, archive blobs through archiveIngest. Only the registration is intercepted.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONS } from '../../src/lib/checks/reasons.js';
import type { DashboardData } from '../../src/lib/dashboard/dashboardData.js';
import { CLIENT_SCRIPT } from '../../src/lib/dashboard/clientScript.js';
import { DASHBOARD_CSS } from '../../src/lib/dashboard/styles.js';
import { ManualClock } from '../../src/lib/ports.js';
import { processServices } from '../../src/lib/runtime.js';
import { installProcessClock } from '../../src/local/clock.js';
import { FIELDS, MINUTE, seedDashboard, type Seeded } from '../dashboard/dashboardSeed.js';
import { uniqueContainerName, useAzurite } from '../support/azurite.js';
import { captureRegistrations, registration, type Registration } from '../support/registrations.js';

const azurite = useAzurite();
const saved = { ...process.env };
const END = Date.parse('2024-03-01T10:30:00Z');
const NOW = END + 20_000;
const DEVICES = ['pump-1', 'pump-2', "valve(3)'="] as const;
const WINDOWS = 12;
const clock = new ManualClock(END);
let restoreClock: () => void = () => {};
let registrations: Registration[];
let seeded: Seeded;

beforeAll(async () => {
  Object.assign(process.env, {
    AzureWebJobsStorage: azurite().connectionString,
    REPORTS_CONTAINER: uniqueContainerName('reports'),
    QUARANTINE_CONTAINER: uniqueContainerName('quarantine'),
    ALERTS_CONTAINER: uniqueContainerName('alerts'),
    ARCHIVE_CONTAINER: uniqueContainerName('archive'),
    ARCHIVE_INDEX_CONTAINER: uniqueContainerName('archive-index'),
    IOTHUB_SERVICE_CONNECTION: '',
  });
  // The handlers build their services with processServices(), whose clock is the process clock: pointing it at a
  // manual clock (as the local runtime does) makes "the last hour" a known range.
  restoreClock = installProcessClock(clock);
  registrations = (await captureRegistrations()).registrations;
  seeded = await seedDashboard(await processServices(), { endMs: END, devices: DEVICES, windows: WINDOWS, clock });
  clock.set(NOW);
});

afterAll(() => {
  restoreClock();
  process.env = saved;
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

async function call(name: string, url: string, params: Record<string, string> = {}): Promise<Answer> {
  const request = new HttpRequest({ method: 'GET', url, params });
  const response = (await registration(registrations, name).options.handler(request, new InvocationContext({ functionName: name }))) as HttpResponseInit;
  return { status: response.status ?? 200, headers: response.headers as Record<string, string>, text: String(response.body) };
}

async function data(query = ''): Promise<DashboardData> {
  const answer = await call('dashboardData', `http://localhost:7071/api/dashboard/data${query}`);
  expect(answer.status, answer.text).toBe(200);
  return JSON.parse(answer.text) as DashboardData;
}

describe('dashboard registrations', () => {
  it('registers the page without a key (it holds no data) and its data behind the function key', () => {
    const pick = (name: string) => ({ kind: registration(registrations, name).kind, ...registration(registrations, name).options, handler: undefined });
    expect(pick('dashboard')).toMatchObject({ kind: 'http', methods: ['GET'], authLevel: 'anonymous', route: 'dashboard' });
    expect(pick('dashboardData')).toMatchObject({ kind: 'http', methods: ['GET'], authLevel: 'function', route: 'dashboard/data' });
    expect(registrations.filter((r) => r.name.startsWith('dashboard')).map((r) => r.name).sort()).toEqual(['dashboard', 'dashboardData']);
  });
});

describe('GET /api/dashboard', () => {
  it('serves the page with its script and stylesheet under a per-response nonce, and never the key it was opened with', async () => {
    const page = await call('dashboard', 'http://localhost:7071/api/dashboard?code=s3cr3t-key&deviceId=pump-1');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = page.headers['content-security-policy']!;
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`style-src 'nonce-${nonce}'`);
    expect(csp).not.toMatch(/unsafe-|https?:/);
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.text).not.toContain('s3cr3t-key');
    expect(page.text).toContain(`<script nonce="${nonce}">\n${CLIENT_SCRIPT}\n</script>`);
    expect(page.text).toContain(`<style nonce="${nonce}">\n${DASHBOARD_CSS}\n</style>`);
    expect(page.text).toContain('data-data-url="/api/dashboard/data"');
    // routing.config.json configures one window size, 1m.
    expect(page.text).toContain('<option value="1m" data-ms="60000" data-default-range="1h" selected>1 minute</option>');
    expect(page.text).not.toMatch(/(?:src|href)="https?:/);
    const again = await call('dashboard', 'http://localhost:7071/api/dashboard');
    expect(again.headers['content-security-policy']).not.toBe(csp);
  });
});

describe('GET /api/dashboard/data', () => {
  it('charts every device and field: one point per window, the mean of the window, replays counted once', async () => {
    const body = await data();
    expect(body).toMatchObject({ window: '1m', windows: ['1m'], range: '1h', to: new Date(NOW).toISOString(), from: new Date(NOW - 3_600_000).toISOString() });
    expect(body.devices).toEqual([...DEVICES].sort());
    expect(body.charted).toEqual([...DEVICES].sort());
    expect(body.fields).toEqual([...FIELDS]);
    for (const [i, deviceId] of DEVICES.entries()) {
      for (const field of FIELDS) {
        const points = body.series[deviceId]![field]!;
        expect(points.map((p) => Date.parse(p.t))).toEqual(seeded.windowStarts);
        points.forEach((p, w) => {
          const values = seeded.values(i, w, field);
          expect(p.count).toBe(values.length);
          expect(p.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 9);
          expect([p.min, p.max]).toEqual([Math.min(...values), Math.max(...values)]);
        });
      }
    }
  });

  it('lists the latest critical alerts newest first with their status, leaving digest records out', async () => {
    const body = await data();
    expect(body.alerts.map((a) => [a.deviceId, a.status])).toEqual([...seeded.alerts].reverse().map((a) => [a.deviceId, a.state]));
    expect(body.alerts.map((a) => a.time)).toEqual([4, 7, 10].map((m) => new Date(END - m * MINUTE).toISOString()));
    expect(body.alerts[0]).toEqual({ time: expect.any(String), deviceId: DEVICES[2], status: 'failed', attempts: 1, error: 'recipient rejected' });
    expect(body.alerts[1]).toEqual({ time: expect.any(String), deviceId: 'pump-2', status: 'digested', attempts: 1, dueAt: '2024-03-01T10:35:00.000Z' });
    expect(body.alerts[2]).toEqual({ time: expect.any(String), deviceId: 'pump-1', status: 'sent', attempts: 1 });
  });

  it('counts messages per route and per check outcome, a refused alert once', async () => {
    const body = await data();
    expect(seeded.events.quarantined).toBe(2);
    expect(seeded.archive.quarantine).toBeGreaterThan(0);
    expect(body.routes).toEqual({
      events: seeded.events.counted + seeded.events.quarantined,
      criticalQueue: seeded.alerts.length,
      archive: seeded.archive.records,
    });
    expect(body.outcomes).toEqual({
      accept: seeded.events.counted + seeded.archive.accept,
      warn: seeded.archive.warn,
      // The broken telemetry, the refused alert and what archiveIngest quarantined.
      quarantine: seeded.events.quarantined + 1 + seeded.archive.quarantine,
    });
    expect(body.coverage.archive).toEqual({ blobs: 2, indexed: 2, limited: false });
  });

  it('ranks quarantine reasons as the quarantine lists them, each with its hint', async () => {
    const body = await data();
    const tally = new Map<string, number>();
    let entries = 0;
    for await (const item of (await processServices()).quarantine.list()) {
      entries += 1;
      for (const code of item.reasons) tally.set(code, (tally.get(code) ?? 0) + 1);
    }
    const expected = [...tally].sort(([a, x], [b, y]) => y - x || a.localeCompare(b)).slice(0, 5);
    expect(body.quarantineTop.map((r) => [r.code, r.count])).toEqual(expected);
    const bodyNotJson = body.quarantineTop.find((r) => r.code === 'BodyNotJson');
    expect(bodyNotJson).toEqual({ code: 'BodyNotJson', count: 2, summary: REASONS.BodyNotJson.summary, hint: REASONS.BodyNotJson.hint });
    expect(body.coverage.quarantine).toEqual({ days: ['2024-03-01'], scanned: entries, limited: false });
  });

  it('narrows everything to the chosen devices, given as repeated deviceId parameters', async () => {
    const body = await data(`?deviceId=${encodeURIComponent(DEVICES[2])}&deviceId=pump-1&code=ignored`);
    expect(body.charted).toEqual([DEVICES[2], 'pump-1']);
    expect(Object.keys(body.series)).toEqual([DEVICES[2], 'pump-1']);
    expect(body.devices).toEqual([...DEVICES].sort());
    expect(body.alerts.map((a) => a.deviceId)).toEqual([DEVICES[2], 'pump-1']);
    expect(body.routes).toEqual({ events: 2 * WINDOWS * 3 + seeded.events.quarantined, criticalQueue: 2, archive: null });
    expect(body.quarantineTop.map((r) => r.code).sort()).toEqual(['BodyNotJson', 'EmailRejected']);
    expect(body.notes.join(' ')).toContain('not per device');
  });

  it('shows an empty range as empty, not as an error', async () => {
    const body = await data('?from=2024-02-01T00:00:00Z&to=2024-02-01T06:00:00Z');
    expect(body.devices).toEqual([]);
    expect(body.fields).toEqual([]);
    expect(body.alerts).toEqual([]);
    expect(body.routes).toEqual({ events: 0, criticalQueue: 0, archive: 0 });
  });

  it('answers 400 naming every bad parameter at once', async () => {
    const answer = await call('dashboardData', 'http://localhost:7071/api/dashboard/data?window=7m&deviceId=bad%20id&limit=3&range=1h&range=2h');
    expect(answer.status).toBe(400);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    const { error, problems } = JSON.parse(answer.text) as { error: string; problems: string[] };
    expect(error).toBe('BadRequest');
    expect(problems).toEqual([
      expect.stringMatching(/^deviceId: "bad id" is not an IoT Hub device id/),
      'limit: unknown parameter (allowed: window, range, from, to, deviceId)',
      'range: given more than once',
      'window: "7m" is not a configured window (1m)',
    ]);
    const tooMany = await call('dashboardData', 'http://localhost:7071/api/dashboard/data?range=7d');
    expect(tooMany.status).toBe(400);
    expect(tooMany.text).toContain('10080 windows of 1m; at most 1440 per chart');
  });
});
