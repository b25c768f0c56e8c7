/**
 * Deep equality for decoded bodies: a lazily parsed JSON body (body.ts) keeps `value` on its prototype, where
 * toEqual does not look, so bodies are compared as the plain objects `plainBody` gives: by `kind`, `value` and
 * `decodedFrom`, as the eager path builds them.
 */
import { expect } from 'vitest';
import { plainBody } from '../../src/lib/message/body.js';
import type { DecodedBody } from '../../src/lib/message/RoutedMessage.js';

function isDecodedBody(value: unknown): value is DecodedBody {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return (kind === 'json' || kind === 'text' || kind === 'binary') && 'decodedFrom' in value && 'value' in value;
}

expect.addEqualityTesters([
  function decodedBodies(a: unknown, b: unknown, customTesters) {
    if (!isDecodedBody(a) || !isDecodedBody(b)) return undefined;
    const plainA = plainBody(a);
    const plainB = plainBody(b);
    // Neither was lazy: leave them to the ordinary comparison.
    if (plainA === a && plainB === b) return undefined;
    return this.equals(plainA, plainB, customTesters);
  },
]);
