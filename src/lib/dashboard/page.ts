/**
 * The dashboard's HTML: one response holding the shell, the stylesheet and the client script (clientScript.ts),
 * which fills the shell from `dashboard/data`. It holds no data and no key; the only values written into it are the
 * page's own path and the configured window sizes, both escaped.
 *
 * Why inline with a nonce rather than separate asset routes: every HTTP function of this app requires a function
 * key, and a browser loading `<script src>` or `<link href>` cannot attach one unless the page writes the key into
 * its own markup, which it must never do. A per-response nonce lets the Content-Security-Policy allow exactly this
 * script and this stylesheet, and nothing else inline or from anywhere.
 */
import type { AggregationConfig } from '../aggregate/aggregationConfig.js';
import { CLIENT_SCRIPT } from './clientScript.js';
import { defaultRangeFor, MAX_DEVICE_FILTER, MAX_POINTS, pointsOf, RANGE_PRESETS } from './dashboardParams.js';
import { DASHBOARD_CSS } from './styles.js';

/** A line over a baseline, as a data URI: the browser's icon request is answered without another route. */
const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#0b5cad"/>' +
  '<path d="M5 22l6-7 5 4 6-9 5 5" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"/></svg>';
export const ICON_DATA_URI = `data:image/svg+xml,${encodeURIComponent(ICON_SVG)}`;

/**
 * The policy for a page carrying `nonce`. `require-trusted-types-for 'script'` makes Chromium refuse every
 * HTML-string sink (innerHTML and friends), so "device data only ever goes in as text" is enforced by the browser,
 * not only by review. `img-src data:` is for the icon alone: images cannot run script.
 */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
  ].join('; ');
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const UNIT_NAMES: Readonly<Record<string, [string, string]>> = {
  s: ['second', 'seconds'],
  m: ['minute', 'minutes'],
  h: ['hour', 'hours'],
  d: ['day', 'days'],
};

/** `1m` → "1 minute", `15m` → "15 minutes". */
export function windowLabel(label: string): string {
  const match = /^(\d+)([smhd])$/.exec(label);
  if (match === null) return label;
  const n = Number(match[1]);
  const [one, many] = UNIT_NAMES[match[2]!]!;
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * The page for a dashboard served at `pagePath` (the request's own path, e.g. `/api/dashboard`, so that a custom
 * route prefix in host.json needs no setting here), with `nonce` on its script and stylesheet.
 */
export function renderDashboardPage(pagePath: string, aggregation: AggregationConfig, nonce: string): string {
  const base = escapeHtml(pagePath.replace(/\/+$/, ''));
  const n = escapeHtml(nonce);
  const firstWindow = aggregation.windows[0];
  const defaultRange = firstWindow === undefined ? RANGE_PRESETS[1]! : defaultRangeFor(firstWindow);
  const windowOptions = aggregation.windows
    .map(
      (w, i) =>
        `<option value="${escapeHtml(w.label)}" data-ms="${w.ms}" data-default-range="${escapeHtml(defaultRangeFor(w).value)}"${i === 0 ? ' selected' : ''}>${escapeHtml(windowLabel(w.label))}</option>`,
    )
    .join('');
  const rangeOptions = RANGE_PRESETS.map((p) => {
    const usable = firstWindow === undefined || (p.ms >= firstWindow.ms && pointsOf(p.ms, firstWindow) <= MAX_POINTS);
    return `<option value="${p.value}" data-ms="${p.ms}"${p.value === defaultRange.value ? ' selected' : ''}${usable ? '' : ' disabled'}>${escapeHtml(p.label)}</option>`;
  }).join('');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>IoT routing dashboard</title>
<link rel="icon" href="${escapeHtml(ICON_DATA_URI)}" type="image/svg+xml">
<style nonce="${n}">
${DASHBOARD_CSS}
</style>
</head>
<body>
<a class="skip" href="#telemetry">Skip to the charts</a>
<header class="top">
  <h1>IoT routing dashboard</h1>
  <p class="status-line" id="updated" tabindex="-1">Loading…</p>
</header>
<p id="live" class="visually-hidden" role="status" aria-live="polite"></p>
<div id="error" class="error" role="alert" hidden></div>
<form id="key-form" class="key-form" hidden>
  <label for="function-key">Function key</label>
  <input id="function-key" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required>
  <button type="submit">Show the data</button>
</form>
<form id="controls" class="controls" data-data-url="${base}/data" data-max-points="${MAX_POINTS}" data-max-devices="${MAX_DEVICE_FILTER}" novalidate>
  <div class="control">
    <label for="window">Window size</label>
    <select id="window" name="window">${windowOptions}</select>
  </div>
  <div class="control">
    <label for="range">Time range</label>
    <select id="range" name="range" aria-describedby="range-hint">${rangeOptions}</select>
  </div>
  <div class="control refresh">
    <label class="check"><input type="checkbox" id="auto-refresh" checked> Refresh every 10 seconds</label>
    <button type="button" id="refresh">Refresh now</button>
  </div>
  <p class="hint" id="range-hint">Ranges with more than ${MAX_POINTS} windows need a larger window size. Times are shown in your time zone.</p>
  <fieldset class="devices" aria-describedby="devices-hint">
    <legend>Devices</legend>
    <p class="hint" id="devices-hint">Compare up to ${MAX_DEVICE_FILTER} devices; with none chosen, the first ${MAX_DEVICE_FILTER} are shown.</p>
    <div class="device-list" id="device-list">
      <label class="check"><input type="checkbox" id="all-devices" checked> All devices</label>
    </div>
  </fieldset>
</form>
<main id="main">
  <section class="card" id="telemetry" aria-labelledby="telemetry-heading">
    <h2 id="telemetry-heading">Telemetry</h2>
    <p class="caption" id="telemetry-caption"></p>
    <div class="empty" id="empty" hidden>
      <p><strong>No reports in this range.</strong> A window is reported once its first message is counted; if devices are sending, check the time range, the device filter and the quarantine below. Locally, <code>npm start</code> runs simulated devices.</p>
      <p id="empty-detail"></p>
    </div>
    <div class="charts" id="charts"></div>
  </section>
  <section class="card" aria-labelledby="alerts-heading">
    <h2 id="alerts-heading">Latest critical alerts</h2>
    <div id="alerts"><p class="caption">Loading…</p></div>
    <div id="refused-digests" class="refused" hidden></div>
  </section>
  <section class="card" aria-labelledby="counts-heading">
    <h2 id="counts-heading">Messages</h2>
    <div class="counts" id="counts"><p class="caption">Loading…</p></div>
  </section>
  <section class="card" aria-labelledby="quarantine-heading">
    <h2 id="quarantine-heading">Top quarantine reasons</h2>
    <div id="quarantine"><p class="caption">Loading…</p></div>
  </section>
  <section class="card" aria-labelledby="notes-heading">
    <h2 id="notes-heading">About these numbers</h2>
    <ul class="notes" id="notes"></ul>
  </section>
</main>
<noscript><p class="error">This dashboard draws its charts with JavaScript. The same numbers are at <a href="${base}/data">${base}/data</a> as JSON (add your function key as <code>?code=</code>).</p></noscript>
<script nonce="${n}">
${CLIENT_SCRIPT}
</script>
</body>
</html>
`;
}
