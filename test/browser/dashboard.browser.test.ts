/**
 * The dashboard in a real browser: Debian's headless Chromium (never a downloaded one), driven by playwright-core,
 * against the local runtime (`runLocal`, what `npm start` runs) serving the registered functions over HTTP.
 *
 * The page is opened before there is any data (empty state), then data is written through the product's paths
 * while it stays open, and the page must pick it up by its own refresh. Checked: no console error, no failed
 * request and no CSP violation; each chart holds one vertex per (device, window) written; the device filter
 * changes that; the key travels as a header; device ids render as text; a phone-width page does not scroll
 * sideways. Screenshots go to test-artifacts/.
 *
 * Needs /usr/bin/chromium (.ci/run installs Debian's `chromium` package); skipped with that reason otherwise.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { parseWindowSize } from '../../src/lib/aggregate/aggregationConfig.js';
import { BASE_WINDOW_DOC, claimBaseWindow } from '../../src/lib/aggregate/baseWindow.js';
import { blobWindowStore } from '../../src/lib/aggregate/windowStore.js';
import { createAlertStores } from '../../src/lib/alerts/alertStores.js';
import { DIGEST_REJECTED_HINT } from '../../src/lib/alerts/digestRunner.js';
import { runLocal, type RunningLocal } from '../../src/local/main.js';
import { FIELDS, seedDashboard } from '../dashboard/dashboardSeed.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const START = Date.parse('2024-03-01T10:30:00Z');
const DEVICES = ['pump-1', 'pump-2', "valve(3)'="] as const;
const WINDOWS = 12;
/** An id no IoT Hub would accept, written by something else that can reach the endpoint: it must stay text. */
const HOSTILE_DEVICE = '<img src=x onerror="window.__xss=1">';
const KEY = 'local-test-key';

const skipReason = existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (.ci/run installs Debian's chromium package)`;
if (skipReason !== null) console.warn(`dashboard browser test skipped: ${skipReason}`);

/**
 * The few DOM members the functions below use. They run in the page (playwright serialises them), and the project
 * compiles without the DOM library, so they are declared here for these functions only.
 */
interface PageElement {
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  textContent: string | null;
}
declare const document: {
  getElementById(id: string): PageElement | null;
  documentElement: { scrollWidth: number };
  body: unknown;
};
declare const window: { __xss?: number };
declare function getComputedStyle(element: unknown): { backgroundColor: string };

interface ChartCounts {
  field: string;
  lines: number;
  vertices: number;
}

/** Vertices of every line in every chart, read from the drawn SVG path data (one M or L per point). */
function chartCounts(page: Page): Promise<ChartCounts[]> {
  return page.$$eval('#charts svg.plot', (plots: PageElement[]) =>
    plots.map((plot) => {
      const lines = Array.from(plot.querySelectorAll('path.line'));
      return {
        field: plot.getAttribute('data-field') ?? '',
        lines: lines.length,
        vertices: lines.reduce((n, line) => n + (line.getAttribute('d')?.match(/[ML]/g)?.length ?? 0), 0),
      };
    }),
  );
}

async function exercise(runtime: RunningLocal, browser: Browser): Promise<void> {
  const problems: string[] = [];
  const dataRequests: Array<{ url: string; key: string | undefined }> = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', locale: 'en-GB' });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.endsWith('/dashboard/data')) dataRequests.push({ url: request.url(), key: request.headers()['x-functions-key'] });
  });

  // A reports container written with another base window (here 5 minutes, where routing.config.json says 1): the
  // data route refuses to read it, and the page shows why rather than empty charts. Its own page: the 503 is expected.
  const reportsWindows = blobWindowStore(runtime.store, runtime.services.config.settings.reportsContainer);
  const recorded = await runtime.store.get(runtime.services.config.settings.reportsContainer, BASE_WINDOW_DOC);
  if (recorded !== null) await runtime.store.delete(runtime.services.config.settings.reportsContainer, BASE_WINDOW_DOC);
  await claimBaseWindow(reportsWindows, parseWindowSize('5m')!, runtime.services.clock.now());
  const misconfigured = await context.newPage();
  await misconfigured.goto(`${runtime.baseUrl}/dashboard?code=${KEY}`);
  await expect.poll(() => misconfigured.locator('#error').isVisible(), { timeout: 15_000 }).toBe(true);
  const refusal = await misconfigured.locator('#error').innerText();
  expect(refusal).toContain("The app's configuration must be fixed before the dashboard can show its data:");
  expect(refusal).toMatch(/REPORTS_CONTAINER.* 5m base window.* smallest window is 1m/);
  expect(await misconfigured.locator('#empty').isVisible()).toBe(false);
  expect(await chartCounts(misconfigured)).toEqual([]);
  await misconfigured.close();
  await runtime.store.delete(runtime.services.config.settings.reportsContainer, BASE_WINDOW_DOC);
  if (recorded !== null) await runtime.store.put(runtime.services.config.settings.reportsContainer, BASE_WINDOW_DOC, recorded.body);

  // Before any data: the empty state says what to do.
  await page.goto(`${runtime.baseUrl}/dashboard?code=${KEY}`);
  await expect.poll(() => page.locator('#empty').isVisible()).toBe(true);
  // True in Azure and for a past range as much as before the first run of npm start.
  expect(await page.locator('#empty').innerText()).toContain('No reports in this range. A window is reported once its first message is counted');
  expect(await chartCounts(page)).toEqual([]);

  // Data arrives while the page is open; its own refresh (every 10 s) must show it.
  const seeded = await seedDashboard(runtime.services, { endMs: START, devices: DEVICES, windows: WINDOWS });
  const stores = createAlertStores(runtime.store, runtime.services.config.settings.alerts.container, runtime.services.clock, runtime.services.config.routing.alerts);
  await stores.ledger.claim('hostile', { kind: 'alert', deviceId: HOSTILE_DEVICE, operationId: 'op-hostile' });
  // A digest e-mail the e-mail service refused, as the digest runner quarantines it.
  await runtime.services.quarantine.putDigest({
    identity: 'digest-refused-1',
    deviceId: 'pump-2',
    reasons: [{ code: 'EmailRejected', detail: 'InvalidRecipient: The recipient address is not valid.', hint: DIGEST_REJECTED_HINT }],
    digest: {
      operationId: 'op-digest',
      alerts: 7,
      firstTime: new Date(runtime.services.clock.now().getTime() - 20 * 60_000).toISOString(),
      lastTime: new Date(runtime.services.clock.now().getTime() - 6 * 60_000).toISOString(),
      severities: [],
      recipients: ['ops@contoso.example'],
      readings: [],
      recentAlertKeys: [],
    },
  });
  await page.waitForSelector('#charts svg.plot path.line', { timeout: 15_000 });
  await expect.poll(() => page.locator('#alerts tbody tr').count(), { timeout: 15_000 }).toBe(4);
  // Shown with the alerts, apart from them: device, alerts it held, the reason and the hint.
  const refused = page.locator('#refused-digests');
  await expect.poll(() => refused.isVisible(), { timeout: 15_000 }).toBe(true);
  expect(await refused.locator('tbody tr').count()).toBe(1);
  const refusedRow = await refused.locator('tbody tr').innerText();
  for (const text of ['pump-2', '7 alerts', 'EmailRejected', 'The recipient address is not valid.']) expect(refusedRow).toContain(text);
  expect(await refused.innerText()).toContain('1 digest e-mail was refused in this range');
  expect(await refused.innerText()).toContain(DIGEST_REJECTED_HINT.slice(0, 60));

  const all = await chartCounts(page);
  expect(all).toEqual(FIELDS.map((field) => ({ field, lines: DEVICES.length, vertices: DEVICES.length * seeded.windowStarts.length })));
  expect(await page.locator('#empty').isVisible()).toBe(false);

  // The text alternative: each chart's table lists the same values.
  const temperature = page.locator('#charts figure', { has: page.locator('svg[data-field="temperature"]') });
  await temperature.getByText('Table of the temperature values').click();
  // Polled: the page's 10-second refresh may redraw the charts (and their tables) between the click and the count.
  await expect.poll(() => temperature.locator('tbody tr').count()).toBe(DEVICES.length * WINDOWS);
  // Every control has a label; each chart is an image with a name and a description.
  await expect.poll(() => page.getByLabel('Window size').inputValue()).toBe('1m');
  await expect.poll(() => page.getByLabel('Time range').inputValue()).toBe('1h');
  const described = await page.$$eval('#charts svg.plot', (plots: PageElement[]) =>
    plots.every((p) => p.getAttribute('role') === 'img' && (p.getAttribute('aria-labelledby') ?? '').split(' ').every((id) => (document.getElementById(id)?.textContent ?? '') !== '')),
  );
  expect(described).toBe(true);

  // Device ids are text: the hostile one shows literally and runs nothing.
  expect(await page.locator('#alerts').innerText()).toContain(HOSTILE_DEVICE);
  expect(await page.locator('#alerts img').count()).toBe(0);
  expect(await page.evaluate(() => window.__xss)).toBeUndefined();

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // The device filter narrows the charts to one line per chart.
  const filtered = page.waitForResponse((response) => response.url().includes('deviceId=pump-2') && response.ok());
  await page.getByLabel('pump-2', { exact: true }).check();
  await filtered;
  await expect.poll(() => chartCounts(page)).toEqual(FIELDS.map((field) => ({ field, lines: 1, vertices: WINDOWS })));
  expect(await page.getByLabel('All devices').isChecked()).toBe(false);
  const address = new URL(page.url());
  expect(address.searchParams.getAll('deviceId')).toEqual(['pump-2']);
  expect(address.searchParams.get('code')).toBe(KEY);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-filtered.png'), fullPage: true });

  // The key went as a header on every data call, never in the URL.
  expect(dataRequests.length).toBeGreaterThanOrEqual(3);
  for (const request of dataRequests) {
    expect(request.key).toBe(KEY);
    expect(new URL(request.url).searchParams.has('code')).toBe(false);
  }

  // Opened without a key, as from an alert e-mail's link, in Azure (where the data route checks keys): the page asks
  // for one, and sends what is typed as the header, never in a data URL.
  const keyless = await context.newPage();
  const keyed: Array<string | undefined> = [];
  await keyless.route('**/dashboard/data?**', async (route) => {
    const key = route.request().headers()['x-functions-key'];
    keyed.push(key);
    if (key !== 'typed-key') await route.fulfill({ status: 401, body: '' });
    else await route.continue();
  });
  expect(await page.locator('#key-form').isHidden()).toBe(true);
  await keyless.goto(`${runtime.baseUrl}/dashboard?deviceId=pump-1`);
  await keyless.getByLabel('Function key').waitFor();
  // The message alone: nothing else (a null child once showed as the text "null").
  expect(await keyless.locator('#error').textContent()).toBe(
    "The dashboard's data needs one of the app's function keys (in the Azure portal: the function app, App keys): enter it.",
  );
  await keyless.getByLabel('Function key').fill('wrong-key');
  await keyless.getByRole('button', { name: 'Show the data' }).click();
  await expect.poll(() => keyless.locator('#error').textContent()).toBe('The function key was not accepted: enter another one.');
  // A second wrong key is said again (the alert region is rewritten), not swallowed as a repeat.
  await keyless.evaluate(() => {
    const box = document.getElementById('error') as unknown as { textContent: string | null };
    box.textContent = '';
  });
  await keyless.getByLabel('Function key').fill('wrong-again');
  await keyless.getByRole('button', { name: 'Show the data' }).click();
  await expect.poll(() => keyless.locator('#error').textContent()).toBe('The function key was not accepted: enter another one.');
  await keyless.getByLabel('Function key').fill('typed-key');
  await keyless.getByRole('button', { name: 'Show the data' }).click();
  await keyless.waitForSelector('#charts svg.plot path.line');
  expect(await keyless.locator('#key-form').isHidden()).toBe(true);
  expect(await keyless.locator('#error').isHidden()).toBe(true);
  // Focus was in the form that just closed: it goes to the status line, not to the body.
  expect(await keyless.evaluate(() => (document as unknown as { activeElement: { id: string } | null }).activeElement?.id)).toBe('updated');
  expect(keyed.slice(0, 4)).toEqual([undefined, 'wrong-key', 'wrong-again', 'typed-key']);
  expect(new URL(keyless.url()).searchParams.get('code')).toBe('typed-key');
  await keyless.close();

  // A count behind a scan that stopped at its limit reads "at least"; the others stay plain numbers.
  const bounded = await context.newPage();
  await bounded.route('**/dashboard/data?**', async (route) => {
    const response = await route.fetch();
    const data = (await response.json()) as { lowerBounds: string[]; coverage: object };
    expect(data.lowerBounds).toEqual([]);
    // As when the newest ledger records used up the read budget before the range was reached.
    await route.fulfill({ response, json: { ...data, lowerBounds: ['criticalQueue'], alerts: [], coverage: { ...data.coverage, alerts: { listed: 900, read: 500, limited: true } } } });
  });
  await bounded.goto(`${runtime.baseUrl}/dashboard?code=${KEY}`);
  const criticalRow = bounded.locator('#counts tr', { hasText: 'Critical queue' });
  // What is read: "at least 4" to a screen reader (the sign is hidden from it), "≥ 4" on screen.
  await expect.poll(() => criticalRow.locator('td.num').textContent()).toMatch(/^\u2265\u2009at least \d+$/);
  expect(await criticalRow.locator('td.num [aria-hidden="true"]').textContent()).toBe('\u2265\u2009');
  expect(await criticalRow.locator('td.num [title]').getAttribute('title')).toBe('At least: a scan stopped at its limit (see the notes below)');
  expect(await bounded.locator('#counts tr', { hasText: 'Events (built-in endpoint)' }).locator('td.num').innerText()).toMatch(/^\d[\d,]*$/);
  // No alert found in a cut scan is not "no alerts".
  expect(await bounded.locator('#alerts').innerText()).toMatch(/^None found among the newest 500 alert records; older ones in .* were not read \(see the notes\)\.$/);
  await bounded.close();

  // A phone: one column, nothing wider than the screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, timezoneId: 'UTC', locale: 'en-GB' });
  const small = await phone.newPage();
  small.on('console', (message) => {
    if (message.type() === 'error') problems.push(`phone console error: ${message.text()}`);
  });
  await small.goto(`${runtime.baseUrl}/dashboard?code=${KEY}`);
  await small.waitForSelector('#charts svg.plot path.line');
  expect(await chartCounts(small)).toEqual(all);
  expect(await small.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  await small.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  await phone.close();

  // prefers-color-scheme: dark gets the dark palette (its contrast is checked in test/dashboard/theme.test.ts).
  const dark = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'dark', timezoneId: 'UTC', locale: 'en-GB' });
  const night = await dark.newPage();
  await night.goto(`${runtime.baseUrl}/dashboard?code=${KEY}&deviceId=pump-1&deviceId=${encodeURIComponent(DEVICES[2])}`);
  await night.waitForSelector('#charts svg.plot path.line');
  expect(await chartCounts(night)).toEqual(FIELDS.map((field) => ({ field, lines: 2, vertices: 2 * WINDOWS })));
  expect(await night.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(15, 18, 22)');
  await night.screenshot({ path: path.join(ARTIFACTS, 'dashboard-dark.png'), fullPage: true });
  await dark.close();

  expect(problems).toEqual([]);
  await context.close();
}

describe.skipIf(skipReason !== null)('dashboard in headless Chromium, served by the local runtime', () => {
  it(
    'shows the empty state, then charts with one vertex per device and window, narrowed by the device filter',
    async () => {
      const state = await mkdtemp(path.join(tmpdir(), 'iot-routing-dashboard-'));
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        await runLocal({
          devices: 0,
          durationSeconds: 1,
          speedup: 1,
          startTime: new Date(START),
          inMemoryAzurite: true,
          port: 0,
          stateDirectory: state,
          outboxDirectory: path.join(state, 'outbox'),
          output: null,
          beforeStop: (runtime) => exercise(runtime, browser),
        });
      } finally {
        await browser.close();
        await rm(state, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
