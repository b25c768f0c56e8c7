/**
 * `npm start -- [flags]`: a value a flag does not take is refused with what it does take, so that the newcomer's
 * `--duration 2m` or `--legacy-share 20%` says how to write it instead of only that it is wrong.
 */
import { describe, expect, it } from 'vitest';
import { parseLocalArgs } from '../../src/local/main.js';

describe('npm start flags', () => {
  it('reads the README scripted run', () => {
    expect(parseLocalArgs(['--duration', '120', '--seed', '42', '--speedup', '60', '--summary', '.local/summary.json'])).toEqual({
      durationSeconds: 120,
      seed: 42,
      speedup: 60,
      summaryPath: '.local/summary.json',
    });
  });

  it.each([
    [['--duration', '2m'], '--duration: expected simulated seconds, a number above 0 (120, not 2m), got "2m"'],
    [['--duration', '0'], '--duration: expected simulated seconds, a number above 0 (120, not 2m), got "0"'],
    [['--legacy-share', '20%'], '--legacy-share: expected a share from 0 to 1 (0.2, not 20%), got "20%"'],
    [['--devices', '2.5'], '--devices: expected a whole number from 0 to 10000, got "2.5"'],
    [['--port', ''], '--port: expected a whole number from 0 to 65535 (0 picks a free one), got ""'],
    [['--resend', '1'], '--resend: expected a probability from 0 to below 1, got "1"'],
  ])('refuses %j saying what the flag takes', (argv, message) => {
    expect(() => parseLocalArgs(argv)).toThrow(message);
  });
});
