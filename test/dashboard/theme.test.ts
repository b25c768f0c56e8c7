/**
 * WCAG 2.2 contrast of every colour pair the dashboard draws, in both schemes: text 4.5:1 (1.4.3) against the
 * surfaces it sits on; chart lines, axes, bars, status marks and the focus ring 3:1 (1.4.11) against the chart and
 * card surface.
 */
import { describe, expect, it } from 'vitest';
import { contrastRatio, DARK, DASHES, LIGHT, relativeLuminance, themeCss, type Theme } from '../../src/lib/dashboard/theme.js';

describe('contrastRatio', () => {
  it('matches the WCAG definition at its known points', () => {
    expect(contrastRatio('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrastRatio('#ffffff', '#ffffff')).toBe(1);
    // WebAIM's reference: #767676 on white is the lightest grey that passes 4.5:1.
    expect(contrastRatio('#767676', '#ffffff')).toBeCloseTo(4.54, 2);
    expect(relativeLuminance('#FFFFFF')).toBe(1);
    expect(() => relativeLuminance('red')).toThrow('not a #rrggbb colour');
  });
});

describe.each([
  ['light', LIGHT],
  ['dark', DARK],
] as Array<[string, Theme]>)('the %s theme', (_name, theme) => {
  it('gives text at least 4.5:1 on the page and on cards', () => {
    for (const background of [theme.background, theme.surface]) {
      for (const [what, colour] of [
        ['text', theme.text],
        ['muted text', theme.muted],
        ['links', theme.link],
        ['sent', theme.status.sent],
        ['digested', theme.status.digested],
        ['failed', theme.status.failed],
        ['in progress', theme.status.inProgress],
      ] as const) {
        expect(contrastRatio(colour, background), `${what} ${colour} on ${background}`).toBeGreaterThanOrEqual(4.5);
      }
    }
  });

  it('gives every series, the axes, the bars, the error border and the focus ring at least 3:1 on cards', () => {
    for (const [what, colour] of [
      ...theme.series.map((c, i) => [`series ${i}`, c] as const),
      ['axis', theme.axis],
      ['bar', theme.bar],
      ['focus', theme.focus],
      ['error', theme.status.error],
    ] as const) {
      expect(contrastRatio(colour, theme.surface), `${what} ${colour}`).toBeGreaterThanOrEqual(3);
    }
  });

  it('has twelve series colours, as many as the filter allows devices, all different', () => {
    expect(theme.series).toHaveLength(12);
    expect(new Set(theme.series).size).toBe(12);
  });
});

describe('themeCss', () => {
  it('declares both schemes and a colour and dash class per series', () => {
    const css = themeCss();
    expect(css).toContain('@media (prefers-color-scheme: dark)');
    expect(css).toContain(`--s11: ${LIGHT.series[11]};`);
    expect(css).toContain(`--s11: ${DARK.series[11]};`);
    expect(css).toContain('.series-11 { stroke: var(--s11); color: var(--s11); }');
    expect(css).toContain(`.dash-${DASHES.length - 1} { stroke-dasharray: ${DASHES[DASHES.length - 1]}; }`);
  });
});
