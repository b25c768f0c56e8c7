import { describe, expect, it } from 'vitest';
import { parseAggregationConfig } from '../../src/lib/aggregate/aggregationConfig.js';
import { CLIENT_SCRIPT } from '../../src/lib/dashboard/clientScript.js';
import { dashboardCsp, escapeHtml, ICON_DATA_URI, renderDashboardPage, windowLabel } from '../../src/lib/dashboard/page.js';
import { DASHBOARD_CSS } from '../../src/lib/dashboard/styles.js';

function aggregation(windows: string[]) {
  const parsed = parseAggregationConfig({ windows });
  if ('errors' in parsed) throw new Error(parsed.errors.join('; '));
  return parsed.value;
}

const NONCE = 'bm9uY2Utb2YtdGhlLXRlc3Q=';

describe('renderDashboardPage', () => {
  it('carries its script and stylesheet under the nonce, and fetches data below its own path', () => {
    const page = renderDashboardPage('/custom/dashboard/', aggregation(['1m']), NONCE);
    expect(page).toContain(`<script nonce="${NONCE}">\n${CLIENT_SCRIPT}\n</script>`);
    expect(page).toContain(`<style nonce="${NONCE}">\n${DASHBOARD_CSS}\n</style>`);
    expect(page).toContain('data-data-url="/custom/dashboard/data"');
    // Nothing else inline: the CSP allows only what carries the nonce.
    expect(page.match(/<script\b/g)).toHaveLength(1);
    expect(page.match(/<style\b/g)).toHaveLength(1);
    expect(page).not.toMatch(/\sstyle=|\son[a-z]+=/);
  });

  it('escapes the path it is given', () => {
    const page = renderDashboardPage('/api/dashboard"><script>alert(1)</script>', aggregation(['1m']), NONCE);
    expect(page).not.toContain('<script>alert(1)');
    expect(page).toContain('/api/dashboard&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;/data');
  });

  it('offers every configured window with its default range, and disables ranges the smallest window cannot chart', () => {
    const page = renderDashboardPage('/api/dashboard', aggregation(['1m', '15m', '1h']), NONCE);
    expect(page).toContain('<option value="1m" data-ms="60000" data-default-range="1h" selected>1 minute</option>');
    expect(page).toContain('<option value="15m" data-ms="900000" data-default-range="24h">15 minutes</option>');
    expect(page).toContain('<option value="1h" data-ms="3600000" data-default-range="24h">1 hour</option>');
    expect(page).toContain('<option value="1h" data-ms="3600000" selected>Last hour</option>');
    expect(page).toContain('<option value="7d" data-ms="604800000" disabled>Last 7 days</option>');
  });

  it('labels every control and has one main landmark and the empty-state text', () => {
    const page = renderDashboardPage('/api/dashboard', aggregation(['1m']), NONCE);
    for (const id of ['window', 'range']) expect(page).toMatch(new RegExp(`<label for="${id}">[^<]+</label>\\s*<select id="${id}"`));
    expect(page).toContain('<legend>Devices</legend>');
    expect(page).toContain('<label class="check"><input type="checkbox" id="all-devices" checked> All devices</label>');
    expect(page).toContain('<label class="check"><input type="checkbox" id="auto-refresh" checked> Refresh every 10 seconds</label>');
    expect(page.match(/<main\b/g)).toHaveLength(1);
    expect(page).toContain('<html lang="en">');
    expect(page).toContain('role="status" aria-live="polite"');
    expect(page).toContain('<strong>No reports in this range.</strong>');
    expect(page).toContain('Locally, <code>npm start</code> runs simulated devices.');
  });
});

describe('windowLabel', () => {
  it('spells window sizes out', () => {
    expect(['1m', '15m', '1h', '2d', '30s', '90x'].map(windowLabel)).toEqual(['1 minute', '15 minutes', '1 hour', '2 days', '30 seconds', '90x']);
  });
});

describe('escapeHtml', () => {
  it('escapes the five characters that matter in text and attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});

describe('the client script', () => {
  it('is valid JavaScript', () => {
    expect(() => new Function(CLIENT_SCRIPT)).not.toThrow();
  });

  it('survived being a String.raw constant and being inlined: no backquote, no dollar-brace, no closing tag', () => {
    expect(CLIENT_SCRIPT).not.toContain('`');
    expect(CLIENT_SCRIPT).not.toContain('${');
    expect(CLIENT_SCRIPT.toLowerCase()).not.toMatch(/<\/script|<!--/);
    expect(DASHBOARD_CSS.toLowerCase()).not.toContain('</style');
  });

  it('uses no HTML-string sink and no dynamic code', () => {
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'setTimeout(\'', 'srcdoc']) {
      expect(CLIENT_SCRIPT, sink).not.toContain(sink);
    }
  });

  it('sends the key as a header and keeps it out of the data URL', () => {
    expect(CLIENT_SCRIPT).toContain("headers['x-functions-key'] = functionKey");
    expect(CLIENT_SCRIPT).toContain("for (const name of ['window', 'range', 'from', 'to', 'deviceId']) url.searchParams.delete(name);");
  });
});

describe('the page resources', () => {
  it('reference nothing remote', () => {
    for (const [name, text] of [['script', CLIENT_SCRIPT], ['stylesheet', DASHBOARD_CSS], ['icon', decodeURIComponent(ICON_DATA_URI)]] as const) {
      expect(text, name).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
      expect(text, name).not.toMatch(/@import|url\(/);
    }
  });

  it('are covered by a CSP that allows the nonce and nothing else inline or from elsewhere', () => {
    expect(dashboardCsp(NONCE).split('; ')).toEqual([
      "default-src 'none'",
      `script-src 'nonce-${NONCE}'`,
      `style-src 'nonce-${NONCE}'`,
      "connect-src 'self'",
      'img-src data:',
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
      "require-trusted-types-for 'script'",
    ]);
  });

  it('lay out one column on phones and keep touch targets at 44 px', () => {
    expect(DASHBOARD_CSS).toMatch(/@media \(max-width: 600px\)/);
    expect(DASHBOARD_CSS).toMatch(/main \{ padding: [^}]*grid-template-columns: minmax\(0, 1fr\); \}/);
    expect(DASHBOARD_CSS).toContain('min-height: 44px');
    expect(DASHBOARD_CSS).toContain(':focus-visible { outline: 3px solid var(--focus)');
  });
});
