import { describe, expect, it } from 'vitest';
import { instantParameter, instantProblem, parseInstant } from '../src/lib/instant.js';

describe('parseInstant', () => {
  it('reads ISO 8601 with a zone, or a date as UTC midnight', () => {
    expect(parseInstant('2024-03-01T10:00:00Z')).toBe(Date.UTC(2024, 2, 1, 10));
    expect(parseInstant('2024-03-01T10:00Z')).toBe(Date.UTC(2024, 2, 1, 10));
    expect(parseInstant('2024-03-01T12:00:00.5+02:00')).toBe(Date.UTC(2024, 2, 1, 10, 0, 0, 500));
    expect(parseInstant('2024-05-01T12:00:00.1234567Z')).toBe(Date.UTC(2024, 4, 1, 12, 0, 0, 123));
    expect(parseInstant('2024-03-01')).toBe(Date.UTC(2024, 2, 1));
    // RFC 3339 allows both letters in lower case.
    expect(parseInstant('2024-03-01t10:00:00z')).toBe(Date.UTC(2024, 2, 1, 10));
  });

  it('refuses a time without a zone, one that does not exist, and anything else', () => {
    for (const bad of ['2024-03-01T10:00:00', '2024-02-30', '2023-02-29T00:00Z', '03/01/2024', 'now', '2024-03-01T24:00:00Z', '2024-03-01T10:60Z', '2024-03-01T10:00:00+25:00', '2024-03-01T10:00+05:99', '2024-03-01T10:00:00.1234567890Z']) {
      expect(parseInstant(bad), bad).toBeNull();
    }
  });
});

describe('instantProblem', () => {
  it('names the parameter and the forms it takes, and clips what was sent', () => {
    expect(instantProblem('from', 'yesterday', 'url')).toBe('from: "yesterday" is not an ISO 8601 time with a zone (2024-03-01T10:00:00Z) or a date (2024-03-01)');
    expect(instantProblem('to', 'x'.repeat(200), 'url')).toContain(`"${'x'.repeat(77)}..."`);
  });

  it('says how to write the offset when a URL turned its "+" into a space', () => {
    // What `?from=2024-05-01T12:00:00+02:00` arrives as, unencoded.
    expect(instantProblem('from', '2024-05-01T12:00:00 02:00', 'url')).toMatch(/; a "\+" in a URL reads as a space: write the offset as %2B02:00, or use Z$/);
    expect(instantProblem('from', '2024-05-01 12:00', 'url')).not.toContain('%2B');
    // A command line decodes nothing: "%2B02:00" there would be refused again.
    expect(instantProblem('--from', '2024-05-01T12:00:00 02:00', 'flags')).not.toContain('%2B');
  });

  it('adds the problem to the list a route reports at once', () => {
    const errors: string[] = [];
    expect(instantParameter('from', undefined, errors, 'url')).toBeUndefined();
    expect(instantParameter('from', '2024-03-01', errors, 'url')).toBe(Date.UTC(2024, 2, 1));
    expect(instantParameter('to', 'soon', errors, 'url')).toBeUndefined();
    expect(errors).toEqual([instantProblem('to', 'soon', 'url')]);
  });
});
