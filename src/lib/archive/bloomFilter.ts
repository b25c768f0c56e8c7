/**
 * A Bloom filter over device ids, for manifests of blobs with more devices than are worth listing. "Maybe" means
 * the blob is read; "no" is certain, so a false positive costs one download and never a missed record.
 */

export interface BloomFilterJson {
  /** Number of bits. */
  m: number;
  /** Number of hash functions. */
  k: number;
  /** The bit array, base64. */
  bits: string;
}

/** Sized for a 1% false-positive rate: about 9.6 bits per item and 7 hashes. */
export function buildBloomFilter(items: Iterable<string>, count: number): BloomFilterJson {
  const m = Math.max(64, Math.ceil((-count * Math.log(0.01)) / (Math.LN2 * Math.LN2)));
  const k = 7;
  const bits = new Uint8Array(Math.ceil(m / 8));
  for (const item of items) {
    const [h1, h2] = hashes(item);
    for (let i = 0; i < k; i++) {
      const bit = (h1 + i * h2) % m;
      bits[bit >>> 3]! |= 1 << (bit & 7);
    }
  }
  return { m, k, bits: Buffer.from(bits).toString('base64') };
}

/** A membership test over a stored filter; decodes the bits once. */
export function bloomFilterTest(filter: BloomFilterJson): (item: string) => boolean {
  const bits = Buffer.from(filter.bits, 'base64');
  const { m, k } = filter;
  return (item) => {
    const [h1, h2] = hashes(item);
    for (let i = 0; i < k; i++) {
      const bit = (h1 + i * h2) % m;
      if (((bits[bit >>> 3] ?? 0) & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  };
}

export function isBloomFilterJson(value: unknown): value is BloomFilterJson {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['m'] === 'number' &&
    Number.isSafeInteger(v['m']) &&
    v['m'] > 0 &&
    typeof v['k'] === 'number' &&
    Number.isSafeInteger(v['k']) &&
    v['k'] > 0 &&
    v['k'] <= 32 &&
    typeof v['bits'] === 'string' &&
    Buffer.from(v['bits'], 'base64').length * 8 >= v['m']
  );
}

/** Two independent 32-bit FNV-1a hashes (different offset bases) for double hashing; the second is made odd. */
function hashes(text: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
    b = (b ^ (b >>> 15)) >>> 0;
  }
  return [a, (b | 1) >>> 0];
}
