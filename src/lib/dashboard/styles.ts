/**
 * The dashboard's stylesheet, inlined into the page under the CSP nonce (the build compiles only .ts, so it is a
 * string constant). Colours come from theme.ts. Layout: one column on phones, charts in two columns from 1100 px;
 * touch targets of at least 44 px; focus always visible; no motion.
 */
import { themeCss } from './theme.js';

const LAYOUT = `
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", Arial, sans-serif;
}
a { color: var(--link); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
code { font-family: ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.9em; overflow-wrap: anywhere; }

.skip { position: absolute; left: 0.5rem; top: -3rem; background: var(--surface); color: var(--link); padding: 0.5rem 0.75rem; z-index: 10; }
.skip:focus { top: 0.5rem; }
.visually-hidden {
  position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

.top { padding: 1rem 1.25rem 0.5rem; display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.25rem 1.5rem; }
.top h1 { margin: 0; font-size: 1.5rem; }
.status-line { margin: 0; color: var(--muted); }
.error { margin: 0.5rem 1.25rem; padding: 0.75rem 1rem; border: 2px solid var(--error); border-radius: 6px; background: var(--surface); color: var(--text); }
.error p { margin: 0 0 0.25rem; }
.error ul { margin: 0; padding-left: 1.25rem; }
.key-form:not([hidden]) { margin: 0.5rem 1.25rem; display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 0.75rem; }
.key-form label { font-weight: 600; }
.key-form input { min-width: min(22rem, 100%); }

.controls {
  margin: 0 1.25rem; padding: 0.75rem 1rem; background: var(--surface); border: 1px solid var(--border); border-radius: 8px;
  display: flex; flex-wrap: wrap; gap: 0.75rem 1.5rem; align-items: flex-end;
}
.control { display: flex; flex-direction: column; gap: 0.25rem; }
.control > label:not(.check), .devices legend { font-weight: 600; }
select, button, .key-form input {
  font: inherit; min-height: 44px; padding: 0.4rem 0.6rem; border-radius: 6px; border: 1px solid var(--muted);
  background: var(--surface); color: var(--text);
}
button { cursor: pointer; }
.devices { border: 0; margin: 0; padding: 0; min-width: 0; flex: 1 1 100%; }
.refresh { flex-direction: row; flex-wrap: wrap; align-items: center; gap: 0.25rem 1rem; }
.device-list { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; max-height: 9.5rem; overflow-y: auto; }
.check { display: inline-flex; align-items: center; gap: 0.4rem; min-height: 44px; overflow-wrap: anywhere; }
.check input { width: 1.25rem; height: 1.25rem; margin: 0; accent-color: var(--link); flex: none; }
.hint { color: var(--muted); font-size: 0.875rem; margin: 0; }

main { padding: 1rem 1.25rem 2rem; display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); }
section.card { background: var(--surface); border: 1px solid var(--border); border-radius: 8px; padding: 1rem; min-width: 0; }
section.card h2 { margin: 0 0 0.5rem; font-size: 1.2rem; }
.caption { margin: 0 0 0.75rem; color: var(--muted); }
.empty { padding: 1.5rem 1rem; border: 2px dashed var(--border); border-radius: 8px; text-align: center; color: var(--text); }
.empty p { margin: 0.25rem 0; }

.charts { display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); }
figure.chart { margin: 0; min-width: 0; }
figure.chart figcaption { font-weight: 600; margin-bottom: 0.25rem; overflow-wrap: anywhere; }
figure.chart figcaption .unit { font-weight: 400; color: var(--muted); }
svg.plot { display: block; width: 100%; height: auto; }
svg.plot text { fill: var(--muted); font-size: 12px; }
svg.plot .grid { stroke: var(--grid); stroke-width: 1; }
svg.plot .axis { stroke: var(--axis); stroke-width: 1; }
svg.plot .line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg.plot .marker { stroke: none; }
.legend { list-style: none; margin: 0.25rem 0 0.5rem; padding: 0; display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; }
.legend li { display: inline-flex; align-items: center; gap: 0.4rem; overflow-wrap: anywhere; }
.legend svg { flex: none; }
.legend line { stroke-width: 3; }

details { margin-top: 0.25rem; }
summary { cursor: pointer; min-height: 44px; display: flex; align-items: center; color: var(--link); }
.table-wrap { overflow-x: auto; max-height: 24rem; overflow-y: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.9375rem; }
caption { text-align: left; color: var(--muted); padding-bottom: 0.25rem; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-weight: 600; position: sticky; top: 0; background: var(--surface); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.device { overflow-wrap: break-word; word-break: normal; max-width: 14rem; }
td.time { white-space: nowrap; }
table.alerts .detail { display: block; color: var(--muted); font-size: 0.875rem; overflow-wrap: anywhere; }

.badge { display: inline-block; font-weight: 600; white-space: nowrap; }
.badge::before { content: ""; display: inline-block; width: 0.6rem; height: 0.6rem; border-radius: 50%; margin-right: 0.35rem; background: currentColor; vertical-align: 0.05em; }
.status-sent { color: var(--sent); }
.status-digested { color: var(--digested); }
.status-failed { color: var(--failed); }
.status-in-progress { color: var(--in-progress); }

.counts { display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); }
.counts table td.bar-cell { width: 40%; }
.counts svg rect { fill: var(--bar); }

.refused { margin-top: 1rem; border-left: 4px solid var(--failed); padding-left: 0.75rem; }
.refused h3 { margin: 0; font-size: 1rem; }
.refused p { margin: 0.25rem 0; }
ol.reasons { margin: 0; padding: 0; list-style: none; display: grid; gap: 0.75rem; }
ol.reasons li { border-left: 4px solid var(--border); padding-left: 0.75rem; }
ol.reasons h3 { margin: 0; font-size: 1rem; overflow-wrap: anywhere; }
ol.reasons p { margin: 0.15rem 0; }
ol.reasons .count { color: var(--muted); }
ul.notes { margin: 0; padding-left: 1.25rem; color: var(--muted); }

@media (min-width: 700px) {
  .counts { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}
@media (min-width: 1100px) {
  main { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  #telemetry { grid-column: 1 / -1; }
  .charts { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}
@media (max-width: 600px) {
  .top, .controls, main { margin-left: 0; margin-right: 0; }
  .top { padding: 0.75rem 0.75rem 0.25rem; }
  .controls { margin: 0 0.5rem; flex-direction: column; align-items: stretch; }
  .devices { flex: none; }
  .control select { width: 100%; }
  main { padding: 0.75rem 0.5rem 1.5rem; }
  section.card { padding: 0.75rem; }
  th, td { padding: 0.3rem 0.4rem; }
  td.device { max-width: 8rem; overflow-wrap: anywhere; }
}
@media (forced-colors: active) {
  svg.plot .line { stroke: CanvasText; }
  .badge::before { forced-color-adjust: none; }
}
`;

export const DASHBOARD_CSS = `${themeCss()}\n${LAYOUT}`;
