/**
 * The dashboard's colours, light and dark, in one place so that a test can check every pair the page draws against
 * WCAG 2.2 contrast: text 4.5:1 (1.4.3), lines, axes and status marks 3:1 against the chart background (1.4.11).
 * The stylesheet is generated from these values, so what is tested is what is served.
 *
 * Series are told apart by colour and by dash pattern together (1.4.1: colour is never the only cue), and every
 * line is named in a legend and a table.
 */

export interface Theme {
  background: string;
  /** Cards, charts and tables sit on this. */
  surface: string;
  text: string;
  muted: string;
  border: string;
  grid: string;
  axis: string;
  link: string;
  focus: string;
  status: { sent: string; digested: string; failed: string; inProgress: string; error: string };
  /** Bars of the counts. */
  bar: string;
  series: readonly string[];
}

export const LIGHT: Theme = {
  background: '#f4f6f8',
  surface: '#ffffff',
  text: '#1b1f24',
  muted: '#4b5563',
  border: '#c5ccd6',
  grid: '#e3e7ec',
  axis: '#5b6470',
  link: '#0b5cad',
  focus: '#0b5cad',
  status: { sent: '#1a7f37', digested: '#8a5300', failed: '#b42318', inProgress: '#4b5563', error: '#b42318' },
  bar: '#3d6fa8',
  series: [
    '#1f6fb2',
    '#c4410c',
    '#2b7a3b',
    '#a4262c',
    '#6b3fa0',
    '#8a5a00',
    '#0f7480',
    '#b0307a',
    '#52606d',
    '#5c7a00',
    '#3949ab',
    '#7a4e2d',
  ],
};

export const DARK: Theme = {
  background: '#0f1216',
  surface: '#181c22',
  text: '#e6e9ee',
  muted: '#aab2bd',
  border: '#3a424d',
  grid: '#2a3038',
  axis: '#8f99a6',
  link: '#7cbcff',
  focus: '#7cbcff',
  status: { sent: '#6fd08c', digested: '#e3b341', failed: '#ff8a8a', inProgress: '#aab2bd', error: '#ff8a8a' },
  bar: '#6ea8e8',
  series: [
    '#6cb6ff',
    '#ff9a5c',
    '#6fd08c',
    '#ff7b83',
    '#c19cf0',
    '#e3b341',
    '#4fd1d9',
    '#f48fc8',
    '#b7c2cf',
    '#b5d25c',
    '#8c9eff',
    '#d7a47a',
  ],
};

/** Dash patterns cycled with the colours, so two lines never differ by colour alone. */
export const DASHES: readonly string[] = ['', '7 4', '2 3', '9 3 2 3'];

/** WCAG 2.2 relative luminance of a `#rrggbb` colour. */
export function relativeLuminance(hex: string): number {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (match === null) throw new RangeError(`not a #rrggbb colour: ${hex}`);
  const [r, g, b] = [match[1]!, match[2]!, match[3]!].map((h) => {
    const c = parseInt(h, 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrastRatio(a: string, b: string): number {
  const [x, y] = [relativeLuminance(a), relativeLuminance(b)];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

function variables(theme: Theme): string {
  const lines = [
    `--bg: ${theme.background};`,
    `--surface: ${theme.surface};`,
    `--text: ${theme.text};`,
    `--muted: ${theme.muted};`,
    `--border: ${theme.border};`,
    `--grid: ${theme.grid};`,
    `--axis: ${theme.axis};`,
    `--link: ${theme.link};`,
    `--focus: ${theme.focus};`,
    `--bar: ${theme.bar};`,
    `--sent: ${theme.status.sent};`,
    `--digested: ${theme.status.digested};`,
    `--failed: ${theme.status.failed};`,
    `--in-progress: ${theme.status.inProgress};`,
    `--error: ${theme.status.error};`,
    ...theme.series.map((colour, i) => `--s${i}: ${colour};`),
  ];
  return lines.map((l) => `  ${l}`).join('\n');
}

/** `.series-N` colours and `.dash-N` patterns for the chart lines, markers and legend swatches. */
function seriesRules(count: number): string {
  const rules: string[] = [];
  for (let i = 0; i < count; i++) {
    rules.push(`.series-${i} { stroke: var(--s${i}); color: var(--s${i}); }`);
    rules.push(`.marker.series-${i} { fill: var(--s${i}); }`);
  }
  DASHES.forEach((dash, i) => {
    rules.push(`.dash-${i} { stroke-dasharray: ${dash === '' ? 'none' : dash}; }`);
  });
  return rules.join('\n');
}

export function themeCss(): string {
  return [
    `:root {\n  color-scheme: light dark;\n${variables(LIGHT)}\n}`,
    `@media (prefers-color-scheme: dark) {\n:root {\n${variables(DARK)}\n}\n}`,
    seriesRules(Math.min(LIGHT.series.length, DARK.series.length)),
  ].join('\n');
}
