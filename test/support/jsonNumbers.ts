/**
 * The independent reference for jsonScan.ts: what its contract promises, computed the obvious way. Shared by the
 * scanner's tests and the body decoder's.
 */

export interface Numbers {
  names: string[];
  values: number[];
}

/** What the contract promises: JSON.parse of the UTF-8 text, an object, and its numeric members in for...in order. */
export function topLevelNumbersOracle(bytes: Uint8Array): Numbers | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const object = parsed as Record<string, unknown>;
  const names: string[] = [];
  const values: number[] = [];
  for (const name in object) {
    const value = object[name];
    if (typeof value === 'number') {
      names.push(name);
      values.push(value);
    }
  }
  return { names, values };
}
