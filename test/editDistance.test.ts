import { describe, expect, it } from 'vitest';
import { editDistance, nearest } from '../src/lib/editDistance.js';

describe('editDistance and nearest', () => {
  it('counts insertions, deletions and substitutions, ignoring case', () => {
    expect(editDistance('archive', 'archive')).toBe(0);
    expect(editDistance('archive', 'Archives')).toBe(1);
    expect(editDistance('archive', 'arhcive')).toBe(2);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('names the nearest first, ties in the order given', () => {
    expect(nearest('archiv', ['alerts', 'archive-2', 'reports', 'archive', 'quarantine'], 3)).toEqual(['archive', 'archive-2', 'alerts']);
  });
});
