/**
 * A validating single-pass scan of a JSON text's UTF-8 bytes that picks out the top-level numeric members without
 * building the object. Telemetry aggregation needs only those numbers, and decoding plus JSON.parse of the whole
 * body costs several times more than this scan.
 *
 * The scan answers only when it can vouch for JSON.parse: anything it does not handle gives `undefined`, and the
 * caller parses as before.
 *
 * Written for V8: the common path (keys seen before, plain numbers, strings without escapes) is one function with
 * its loops written out, byte constants as literals, and everything rarer (escapes, non-ASCII, exponents, nested
 * values, new keys) in functions of its own.
 */

/**
 * Top-level members of a JSON object whose values are numbers, in the order `for...in` enumerates the object
 * JSON.parse would build, with the values JSON.parse gives (possibly non-finite, e.g. 1e400 -> Infinity, -0 stays
 * -0).
 */
export interface TopLevelNumbers {
  readonly names: readonly string[];
  readonly values: readonly number[];
}

/** Containers nested deeper than this (the top-level object is depth 1) are left to JSON.parse. */
export const MAX_SCAN_DEPTH = 64;
/** Top-level members of any kind: duplicate keys are found by comparing each key with those before it. */
export const MAX_SCAN_MEMBERS = 128;
/** Top-level numeric members. */
export const MAX_SCAN_NUMBERS = 64;

/**
 * Scans bytes[start, end) as one JSON text. Returns the numbers when, and only when, it can guarantee that
 * JSON.parse(utf8 decoding of those bytes) succeeds and yields a plain object (not an array/primitive). Returns
 * undefined for anything it does not handle (invalid JSON, top-level non-object, and any case it chooses not to
 * handle): the caller then takes the existing JSON.parse path, so "undefined" is always safe.
 *
 * Declined although valid: keys holding escapes, keys made only of digits (array indices, which `for...in` lists
 * first), duplicate top-level keys (the last value wins at the first one's position), a `__proto__` key, nesting
 * deeper than MAX_SCAN_DEPTH, more than MAX_SCAN_MEMBERS top-level members or MAX_SCAN_NUMBERS numeric ones.
 * Non-ASCII bytes are accepted inside strings (keys too) when they are well-formed UTF-8 (what `buffer.isUtf8`
 * accepts: no overlong forms, surrogates or code points beyond U+10FFFF), so that an accepted body is valid UTF-8
 * as well as valid JSON.
 *
 * `names` holds the same string instances from call to call for the same keys, and is the very same frozen array
 * as the previous call's when the numeric keys are the same. `values` is new on every call.
 */
export function scanTopLevelNumbers(bytes: Uint8Array, start: number, end: number): TopLevelNumbers | undefined {
  if (!(start >= 0 && end <= bytes.length && start <= end)) return undefined;
  let i = skipWhitespace(bytes, start, end);
  if (i >= end || bytes[i] !== 0x7b /* { */) return undefined;
  i = skipWhitespace(bytes, i + 1, end);
  if (i >= end) return undefined;
  /** The previous call's names; `names` stays undefined while this object's numeric keys so far are a prefix. */
  const previous = lastNames;
  // Module-level bindings copied to locals: read in the loops, each read is a context load and a dead-zone check
  // (about a tenth of the scan's time on the sample body).
  const keys = slotKeys;
  const slots = slotBytes;
  const starts = keyStarts;
  const lengths = keyLengths;
  const stringBytes = STRING_BYTES;
  const verified = verifiedSlots;
  const scanned = scannedNumber;
  let names: string[] | undefined;
  let count = 0;
  const values = scratchValues;
  if (bytes[i] === 0x7d /* } */) return finish(bytes, i + 1, end, names, count, values);
  let members = 0;
  /** Every key so far was the one its slot held: with `verifiedSlots`, duplicates are then impossible. */
  let allHits = true;
  /** Every key so far is in its slot now, so that the slots can be marked distinct at the end. */
  let allInSlots = true;
  for (;;) {
    if (bytes[i] !== 0x22 /* " */ || members === MAX_SCAN_MEMBERS) return undefined;
    const keyStart = i + 1;
    // Devices send the same keys in the same order every time: the key this position held last is tried first,
    // its closing quote, then its bytes. A match proves the key valid, as it was when it was remembered.
    let key: string | undefined = keys[members]!;
    const slotLength = key.length;
    let keyEnd = keyStart + slotLength;
    let hit = false;
    if (keyEnd < end && bytes[keyEnd] === 0x22) {
      // No slot byte is a quote, so the closing quote just checked stops the loop if nothing before it does.
      const base = members * SLOT_STRIDE;
      let k = 0;
      while (bytes[keyStart + k] === slots[base + k]) k++;
      hit = k === slotLength;
    }
    if (!hit) {
      allHits = false;
      keyEnd = scanKey(bytes, keyStart, end);
      if (keyEnd < 0) return undefined;
      const found = newKey(bytes, keyStart, keyEnd, members);
      if (found === null) return undefined;
      key = found;
      if (keys[members] !== key) allInSlots = false;
    }
    const keyLength = keyEnd - keyStart;
    if (!(allHits && members < verified) && isDuplicate(bytes, keyStart, keyLength, members)) return undefined;
    starts[members] = keyStart;
    lengths[members] = keyLength;
    members++;

    i = keyEnd + 1;
    if (i < end && bytes[i] !== 0x3a /* : */) i = skipWhitespace(bytes, i, end);
    if (i >= end || bytes[i] !== 0x3a) return undefined;
    i++;
    if (i < end && bytes[i]! <= 0x20) i = skipWhitespace(bytes, i, end);
    if (i >= end) return undefined;
    let c = bytes[i]!;
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      // A number, validated and converted exactly (see scanNumber).
      i = scanNumber(bytes, i, end, true);
      if (i < 0) return undefined;
      const value = scanned[0]!;
      if (count === MAX_SCAN_NUMBERS) return undefined;
      key ??= utf8Slice.call(bytes, keyStart, keyEnd);
      if (names === undefined) {
        if (previous[count] !== key) {
          names = previous.slice(0, count);
          names.push(key);
        }
      } else {
        names.push(key);
      }
      values[count] = value;
      count++;
    } else if (c === 0x22) {
      // A string: plain bytes in line, escapes and non-ASCII by skipString.
      i++;
      while (i < end && stringBytes[bytes[i]!] === PLAIN) i++;
      if (i < end && bytes[i] === 0x22) {
        i++;
      } else {
        i = skipString(bytes, i, end);
        if (i < 0) return undefined;
      }
    } else {
      i = skipValue(bytes, i, end, 2);
      if (i < 0) return undefined;
    }
    if (i < end && bytes[i]! <= 0x20) i = skipWhitespace(bytes, i, end);
    if (i >= end) return undefined;
    c = bytes[i]!;
    if (c === 0x7d) {
      if (allInSlots && members > verifiedSlots) verifiedSlots = members;
      return finish(bytes, i + 1, end, names, count, values);
    }
    if (c !== 0x2c /* , */) return undefined;
    i = skipWhitespace(bytes, i + 1, end);
    if (i >= end) return undefined;
  }
}

/** After the closing brace: only whitespace may follow. `names` undefined means the previous call's first `count`. */
function finish(
  bytes: Uint8Array,
  i: number,
  end: number,
  names: string[] | undefined,
  count: number,
  values: number[],
): TopLevelNumbers | undefined {
  if (skipWhitespace(bytes, i, end) !== end) return undefined;
  if (names === undefined && count === lastNames.length) return { names: lastNames, values: values.slice(0, count) };
  const result = names ?? lastNames.slice(0, count);
  lastNames = Object.freeze(result);
  return { names: result, values: values.slice(0, count) };
}

/**
 * The values of the scan in progress; the result gets an exact-size copy. A list that grew by `push` would allocate
 * room for 17 numbers for the first and be several times the size of the copy.
 */
const scratchValues: number[] = [];
// Filled with a fraction so that the list holds unboxed doubles from the start (V8's PACKED_DOUBLE_ELEMENTS).
for (let n = 0; n < MAX_SCAN_NUMBERS; n++) scratchValues.push(0.5);

// ---------------------------------------------------------------------------------------------------------------
// Top-level keys

/** The numeric keys of the last object scanned, handed out again while objects keep the same ones. */
let lastNames: readonly string[] = Object.freeze([]);

/**
 * The key each member position held last, with its bytes: only ASCII keys of at most MAX_SLOT_KEY_LENGTH bytes
 * that passed every check below, so that matching a slot's bytes proves a key valid. Slots start as the empty key.
 */
const MAX_SLOT_KEY_LENGTH = 64;
/** One byte more than the longest key, so that a comparison past a slot's key reads its own slot. */
const SLOT_STRIDE = MAX_SLOT_KEY_LENGTH + 1;
const slotKeys: string[] = new Array<string>(MAX_SCAN_MEMBERS).fill('');
const slotBytes = new Uint8Array(MAX_SCAN_MEMBERS * SLOT_STRIDE);
/**
 * Slots [0, verifiedSlots) hold pairwise distinct keys: they were filled by one object that had no duplicates, and
 * not written since. An object whose keys so far all matched their slots below this cannot repeat a key.
 */
let verifiedSlots = 0;

/** Each key so far of the object being scanned: where it starts and its byte length. */
const keyStarts = new Int32Array(MAX_SCAN_MEMBERS);
const keyLengths = new Int32Array(MAX_SCAN_MEMBERS);

/** Whether the key `scanKey` found last is ASCII. */
let scannedAscii = true;

/**
 * After the opening quote of a key: the position of its closing quote, or -1 for an escape (declined: the key's
 * bytes would not be its text), a control character or ill-formed UTF-8.
 */
function scanKey(bytes: Uint8Array, i: number, end: number): number {
  let ascii = true;
  for (;;) {
    while (i < end && STRING_BYTES[bytes[i]!] === PLAIN) i++;
    if (i >= end) return -1;
    const kind = STRING_BYTES[bytes[i]!];
    if (kind === CLOSE) break;
    if (kind !== LEAD) return -1;
    const n = utf8SequenceLength(bytes, i, end);
    if (n === 0) return -1;
    ascii = false;
    i += n;
  }
  scannedAscii = ascii;
  return i;
}

/**
 * A key that did not match its slot, found by `scanKey`: null when the scan declines it (an array index, which
 * `for...in` lists first, or `__proto__`); its string when it is ASCII, remembered in slot `member` when short
 * enough; undefined for a non-ASCII key, which is decoded only if its value is a number.
 */
function newKey(bytes: Uint8Array, keyStart: number, keyEnd: number, member: number): string | null | undefined {
  const length = keyEnd - keyStart;
  if (length > 0 && allDigits(bytes, keyStart, keyEnd)) return null;
  if (length === 9 && isProtoKey(bytes, keyStart)) return null;
  if (!scannedAscii) return undefined;
  const key = asciiKey(bytes, keyStart, keyEnd);
  if (length > MAX_SLOT_KEY_LENGTH) return key;
  slotKeys[member] = key;
  slotBytes.set(bytes.subarray(keyStart, keyEnd), member * SLOT_STRIDE);
  if (verifiedSlots > member) verifiedSlots = member;
  return key;
}

/** JSON.parse keeps the last value of a repeated key at the first one's position; such objects are declined. */
function isDuplicate(bytes: Uint8Array, keyStart: number, keyLength: number, members: number): boolean {
  for (let m = 0; m < members; m++) {
    if (keyLengths[m] !== keyLength) continue;
    const other = keyStarts[m]!;
    let k = 0;
    while (k < keyLength && bytes[other + k] === bytes[keyStart + k]) k++;
    if (k === keyLength) return true;
  }
  return false;
}

function allDigits(bytes: Uint8Array, start: number, end: number): boolean {
  for (let k = start; k < end; k++) {
    const c = bytes[k]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** `__proto__`, which an object literal or an assignment built from the names would treat as the prototype. */
const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

function isProtoKey(bytes: Uint8Array, at: number): boolean {
  for (let k = 0; k < 9; k++) if (bytes[at + k] !== PROTO[k]) return false;
  return true;
}

/**
 * ASCII keys decoded before, so that keys seen again at another position (devices with different key sets taking
 * turns) give the same string instance without decoding: a direct-mapped table by length and three bytes, each
 * entry checked against the bytes.
 */
const KEY_CACHE_BITS = 8;
const keyCache: string[] = new Array<string>(1 << KEY_CACHE_BITS).fill('');

function asciiKey(bytes: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length === 0) return '';
  const mix = (length << 24) ^ (bytes[start]! << 16) ^ (bytes[start + (length >> 1)]! << 8) ^ bytes[end - 1]!;
  const slot = Math.imul(mix, 0x9e3779b1) >>> (32 - KEY_CACHE_BITS);
  const cached = keyCache[slot]!;
  if (cached.length === length) {
    let k = 0;
    while (k < length && bytes[start + k] === cached.charCodeAt(k)) k++;
    if (k === length) return cached;
  }
  const key = latin1Slice.call(bytes, start, end);
  keyCache[slot] = key;
  return key;
}

type Slice = (this: Uint8Array, start: number, end: number) => string;
/** Buffer's native decoders without `toString`'s argument checks; they accept any Uint8Array. */
const bufferPrototype = Buffer.prototype as unknown as { latin1Slice?: Slice; utf8Slice?: Slice };
const latin1Slice: Slice =
  bufferPrototype.latin1Slice ??
  function (this: Uint8Array, start: number, end: number): string {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString('latin1', start, end);
  };
const utf8Slice: Slice =
  bufferPrototype.utf8Slice ??
  function (this: Uint8Array, start: number, end: number): string {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString('utf8', start, end);
  };

// ---------------------------------------------------------------------------------------------------------------
// Grammar

/** JSON's whitespace is space, tab, line feed and carriage return only. */
function skipWhitespace(bytes: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = bytes[i]!;
    if (c > 0x20 || (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09)) break;
    i++;
  }
  return i;
}

/** Validates the value at `i` (not whitespace) nested at `depth`; the position after it, or -1. */
function skipValue(bytes: Uint8Array, i: number, end: number, depth: number): number {
  const c = bytes[i];
  switch (c) {
    case 0x22:
      return skipString(bytes, i + 1, end);
    case 0x7b:
      return depth > MAX_SCAN_DEPTH ? -1 : skipObject(bytes, i + 1, end, depth);
    case 0x5b /* [ */:
      return depth > MAX_SCAN_DEPTH ? -1 : skipArray(bytes, i + 1, end, depth);
    case 0x74 /* t */:
      return i + 3 < end && bytes[i + 1] === 0x72 && bytes[i + 2] === 0x75 && bytes[i + 3] === 0x65 ? i + 4 : -1;
    case 0x66 /* f */:
      return i + 4 < end && bytes[i + 1] === 0x61 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x73 && bytes[i + 4] === 0x65
        ? i + 5
        : -1;
    case 0x6e /* n */:
      return i + 3 < end && bytes[i + 1] === 0x75 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x6c ? i + 4 : -1;
    default:
      return c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39) ? scanNumber(bytes, i, end, false) : -1;
  }
}

/** After the `{`. */
function skipObject(bytes: Uint8Array, i: number, end: number, depth: number): number {
  i = skipWhitespace(bytes, i, end);
  if (i < end && bytes[i] === 0x7d) return i + 1;
  for (;;) {
    if (i >= end || bytes[i] !== 0x22) return -1;
    i = skipString(bytes, i + 1, end);
    if (i < 0) return -1;
    i = skipWhitespace(bytes, i, end);
    if (i >= end || bytes[i] !== 0x3a) return -1;
    i = skipWhitespace(bytes, i + 1, end);
    if (i >= end) return -1;
    i = skipValue(bytes, i, end, depth + 1);
    if (i < 0) return -1;
    i = skipWhitespace(bytes, i, end);
    if (i >= end) return -1;
    const c = bytes[i];
    if (c === 0x7d) return i + 1;
    if (c !== 0x2c) return -1;
    i = skipWhitespace(bytes, i + 1, end);
  }
}

/** After the `[`. */
function skipArray(bytes: Uint8Array, i: number, end: number, depth: number): number {
  i = skipWhitespace(bytes, i, end);
  if (i < end && bytes[i] === 0x5d /* ] */) return i + 1;
  for (;;) {
    if (i >= end) return -1;
    i = skipValue(bytes, i, end, depth + 1);
    if (i < 0) return -1;
    i = skipWhitespace(bytes, i, end);
    if (i >= end) return -1;
    const c = bytes[i];
    if (c === 0x5d) return i + 1;
    if (c !== 0x2c) return -1;
    i = skipWhitespace(bytes, i + 1, end);
  }
}

/** What a byte means inside a string. */
const PLAIN = 0;
const CLOSE = 1;
const ESCAPE = 2;
const CONTROL = 3;
const LEAD = 4;
const STRING_BYTES = new Uint8Array(256).map((_, c) =>
  c === 0x22 ? CLOSE : c === 0x5c ? ESCAPE : c < 0x20 ? CONTROL : c >= 0x80 ? LEAD : PLAIN,
);

/** Inside a string (after the opening quote, or anywhere after it): the position after the closing quote, or -1. */
function skipString(bytes: Uint8Array, i: number, end: number): number {
  for (;;) {
    while (i < end && STRING_BYTES[bytes[i]!] === PLAIN) i++;
    if (i >= end) return -1;
    const kind = STRING_BYTES[bytes[i]!];
    if (kind === CLOSE) return i + 1;
    if (kind === LEAD) {
      const n = utf8SequenceLength(bytes, i, end);
      if (n === 0) return -1;
      i += n;
    } else if (kind === ESCAPE) {
      if (i + 1 >= end) return -1;
      const e = bytes[i + 1]!;
      if (e === 0x75 /* u */) {
        if (i + 5 >= end) return -1;
        if (!isHex(bytes[i + 2]!) || !isHex(bytes[i + 3]!) || !isHex(bytes[i + 4]!) || !isHex(bytes[i + 5]!)) return -1;
        i += 6;
      } else if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x2f /* / */ ||
        e === 0x62 /* b */ ||
        e === 0x66 /* f */ ||
        e === 0x6e /* n */ ||
        e === 0x72 /* r */ ||
        e === 0x74 /* t */
      ) {
        i += 2;
      } else {
        return -1;
      }
    } else {
      return -1;
    }
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/**
 * The length of the well-formed UTF-8 sequence starting with the non-ASCII byte at `i` (Unicode table 3-7: no
 * overlong forms, no surrogates, nothing beyond U+10FFFF), or 0.
 */
function utf8SequenceLength(bytes: Uint8Array, i: number, end: number): number {
  const c = bytes[i]!;
  if (c < 0xc2) return 0;
  if (c < 0xe0) return i + 1 < end && isContinuation(bytes[i + 1]!) ? 2 : 0;
  if (c < 0xf0) {
    if (i + 2 >= end) return 0;
    const c1 = bytes[i + 1]!;
    const low = c === 0xe0 ? 0xa0 : 0x80;
    const high = c === 0xed ? 0x9f : 0xbf;
    return c1 >= low && c1 <= high && isContinuation(bytes[i + 2]!) ? 3 : 0;
  }
  if (c < 0xf5) {
    if (i + 3 >= end) return 0;
    const c1 = bytes[i + 1]!;
    const low = c === 0xf0 ? 0x90 : 0x80;
    const high = c === 0xf4 ? 0x8f : 0xbf;
    return c1 >= low && c1 <= high && isContinuation(bytes[i + 2]!) && isContinuation(bytes[i + 3]!) ? 4 : 0;
  }
  return 0;
}

function isContinuation(c: number): boolean {
  return (c & 0xc0) === 0x80;
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers

/**
 * The value of the last number `scanNumber` converted, in `[0]`: a typed array holds it unboxed, where a module
 * variable would box every value in a new heap number.
 */
const scannedNumber = new Float64Array(1);

/** 10^0 ... 10^22, every one exactly representable as a double. */
const POWERS_OF_TEN = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/** Significands of at most this many digits are below 2^53, so accumulated exactly. */
const EXACT_DIGITS = 15;
/** Larger exponents are not accumulated further: a capped exponent sends the conversion to Number(). */
const EXPONENT_CAP = 100_000;

/**
 * Validates the number at `i` (a `-` or a digit) by RFC 8259: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
 * The position after it, or -1; with `convert`, its value is left in `scannedNumber[0]`.
 *
 * A significand of at most 15 significant digits (so below 2^53, accumulated exactly) with a decimal exponent of
 * at most 22 either way (so 10^|e| is exact) is converted by Clinger's fast path: one correctly rounded
 * multiplication or division of exact operands gives the correctly rounded result, as JSON.parse does.
 * Everything else goes through Number() of the literal's text, which rounds correctly too. The sign is applied
 * last, so `-0` stays -0.
 */
function scanNumber(bytes: Uint8Array, i: number, end: number, convert: boolean): number {
  const from = i;
  let negative = false;
  if (bytes[i] === 0x2d) {
    negative = true;
    i++;
    if (i >= end) return -1;
  }
  let significand = 0;
  let significantDigits = 0;
  let c = bytes[i]!;
  if (c === 0x30) {
    i++;
  } else if (c > 0x30 && c <= 0x39) {
    do {
      significand = significand * 10 + (c - 0x30);
      significantDigits++;
      i++;
    } while (i < end && (c = bytes[i]!) >= 0x30 && c <= 0x39);
  } else {
    return -1;
  }
  let fractionDigits = 0;
  if (i < end && bytes[i] === 0x2e) {
    i++;
    if (i >= end || (c = bytes[i]!) < 0x30 || c > 0x39) return -1;
    do {
      if (significand !== 0 || c !== 0x30) {
        significand = significand * 10 + (c - 0x30);
        significantDigits++;
      }
      fractionDigits++;
      i++;
    } while (i < end && (c = bytes[i]!) >= 0x30 && c <= 0x39);
  }
  let exponent = 0;
  if (i < end && (bytes[i]! | 0x20) === 0x65) {
    i++;
    let exponentNegative = false;
    if (i < end && (bytes[i] === 0x2b /* + */ || bytes[i] === 0x2d)) {
      exponentNegative = bytes[i] === 0x2d;
      i++;
    }
    if (i >= end || (c = bytes[i]!) < 0x30 || c > 0x39) return -1;
    do {
      if (exponent < EXPONENT_CAP) exponent = exponent * 10 + (c - 0x30);
      i++;
    } while (i < end && (c = bytes[i]!) >= 0x30 && c <= 0x39);
    if (exponentNegative) exponent = -exponent;
  }
  if (!convert) return i;
  if (significand === 0) {
    scannedNumber[0] = negative ? -0 : 0;
    return i;
  }
  const scale = exponent - fractionDigits;
  let value: number;
  // A capped exponent is not the literal's: with as many fraction digits, `scale` could still look small.
  if (significantDigits <= EXACT_DIGITS && scale >= -22 && scale <= 22 && Math.abs(exponent) < EXPONENT_CAP) {
    value = scale >= 0 ? significand * POWERS_OF_TEN[scale]! : significand / POWERS_OF_TEN[-scale]!;
    if (negative) value = -value;
  } else {
    value = Number(latin1Slice.call(bytes, from, i));
  }
  scannedNumber[0] = value;
  return i;
}
