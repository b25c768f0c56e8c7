import { isUtf8 } from 'node:buffer';
import { scanTopLevelNumbers, type TopLevelNumbers } from './jsonScan.js';
import type { BodyDecoding, BodyProblem, Charset, DecodedBody, JsonValue } from './RoutedMessage.js';

export interface BodyDeclaration {
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  /** The endpoint stored these bytes as base64 and they were already unwrapped by the caller. */
  storedAsBase64?: boolean;
}

/**
 * Turns body bytes into a decoded view. Never throws: undecodable bytes become `binary`, with a `problem` when a
 * declaration promised something the bytes do not keep.
 *
 * Declared bodies (IoT Hub's `contentType` / `contentEncoding`, which devices set so that routing queries can read
 * `$body`):
 * - `contentEncoding` names the character set (`UTF-8`, `utf-16`, `UTF-32BE`, ... in any case); a `charset`
 *   parameter of `contentType` is used when `contentEncoding` is absent. `utf-16` / `utf-32` without endianness
 *   take it from the byte-order mark, else from where the zero bytes fall, else little-endian.
 * - A charset we cannot decode, or bytes that are not valid in the declared one, give `binary` with
 *   `BodyEncodingUnsupported`; the detail names the offending byte offset.
 * - `application/json` (or any `+json` type) that does not parse gives `text` with `BodyNotJson` and the parse
 *   error's position. `text/*` gives text.
 *
 * Undeclared bodies are sniffed: byte-order marks, then BOM-less UTF-32 / UTF-16 by their zero-byte pattern (a
 * tutorial device sent BOM-less UTF-32LE JSON), then strict UTF-8. Text that starts like JSON is parsed; text that is
 * only a base64 wrapper around JSON or readable text is unwrapped (see {@link unwrapBase64}). Anything else that is
 * not printable text is `binary`.
 *
 * `storedAsBase64` records `base64: 'storage'`. If the unwrapped bytes are themselves base64 text, `detected` is
 * recorded instead: the device's own wrapping is what a person has to fix, and the storage layer is evident from
 * the message's source and its missing declaration.
 */
export function decodeBody(bytes: Uint8Array, declaration: BodyDeclaration = {}): DecodedBody {
  return decodeDeclaredBody(bytes, declaration.contentType, declaration.contentEncoding, declaration.storedAsBase64 === true);
}

/** `decodeBody` with the declaration as arguments, for decoders that call it per record. */
export function decodeDeclaredBody(
  bytes: Uint8Array,
  contentType: string | undefined,
  contentEncoding: string | undefined,
  storedAsBase64: boolean,
): DecodedBody {
  const storage = storedAsBase64 ? ('storage' as const) : null;
  const declared = declarationOf(contentType, contentEncoding);
  if (declared.utf8Json) {
    const fast = declaredUtf8Json(bytes, storage);
    if (fast !== undefined) return fast;
  }
  const media = declared.media;
  const encodingLabel = declared.encodingLabel;
  const encodingSource = declared.encodingSource;

  if (encodingLabel === undefined && media.kind === 'other') return decodeUndeclared(bytes, storage, true);

  let decoded: TextResult;
  if (encodingLabel === undefined) {
    // A JSON or text/* type without a charset: RFC 8259 makes JSON UTF-8, but sniffing costs little and finds the
    // UTF-16/32 bodies of senders that forgot contentEncoding.
    decoded = decodeSniffed(bytes);
  } else {
    const requested = declared.requested;
    if (requested === undefined) {
      return binary(bytes, storage, false, {
        code: 'BodyEncodingUnsupported',
        detail: `${encodingSource} "${encodingLabel}" is not a character set this decoder reads (UTF-8, UTF-16, UTF-32, optionally LE/BE)`,
      });
    }
    decoded = decodeText(bytes, requested);
  }
  if ('failure' in decoded) {
    const what =
      encodingLabel === undefined
        ? `contentType "${contentType ?? ''}" without a charset, read as UTF-8`
        : `${encodingSource} "${encodingLabel}"`;
    return binary(bytes, storage, false, { code: 'BodyEncodingUnsupported', detail: `${what}: ${decoded.failure()}` });
  }
  const decodedFrom: BodyDecoding = { base64: storage, charset: decoded.charset, bom: decoded.bom, declared: true };
  const text = decoded.text;

  if (media.kind === 'json') {
    const parsed = parseJson(text);
    if ('value' in parsed) return { kind: 'json', value: parsed.value, decodedFrom };
    decodedFrom.problem = {
      code: 'BodyNotJson',
      detail: `contentType "${contentType ?? ''}" but the body does not parse: ${parsed.error}`,
    };
    return { kind: 'text', value: text, decodedFrom };
  }
  if (media.kind === 'text') return { kind: 'text', value: text, decodedFrom };

  // Only a charset was declared: the content type is unknown, so JSON is recognised but not required.
  if (mayStartJson(text)) {
    const parsed = parseJson(text);
    if ('value' in parsed) return { kind: 'json', value: parsed.value, decodedFrom };
  }
  return { kind: 'text', value: text, decodedFrom };
}

/**
 * The bytes of a trigger payload as the Functions Node library hands it over: a Buffer for `dataType: 'binary'`, a
 * string, or (for string data that happened to parse as JSON) an already-parsed value, which is re-serialised. The
 * re-serialised form is compact JSON, so its bytes may differ from what the device sent; register triggers with
 * `dataType: 'binary'` to keep the original bytes.
 */
export function bodyBytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value === undefined) return new Uint8Array(0);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // A value JSON cannot represent (a cycle, a BigInt) cannot have come from the host; keep what String() says.
  }
  return Buffer.from(json ?? String(value), 'utf8');
}

// ---------------------------------------------------------------------------------------------------------------
// Declarations

type MediaKind = 'json' | 'text' | 'other';

interface MediaType {
  kind: MediaKind;
  charset: string | undefined;
}

/**
 * A fleet sends a handful of distinct declarations, so parsed ones are remembered; the bound keeps a sender that
 * makes up a new content type per message from growing it without limit.
 */
const MEMO_LIMIT = 256;
const mediaTypes = new Map<string, MediaType>();
const charsetLabels = new Map<string, RequestedCharset | undefined>();

function memo<V>(cache: Map<string, V>, key: string, compute: (key: string) => V): V {
  if (cache.has(key)) return cache.get(key) as V;
  const value = compute(key);
  if (cache.size >= MEMO_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}

function parseContentType(contentType: string | undefined): MediaType {
  if (contentType === undefined) return { kind: 'other', charset: undefined };
  return memo(mediaTypes, contentType, parseMediaType);
}

function parseMediaType(contentType: string): MediaType {
  const value = nonEmpty(contentType);
  if (value === undefined) return { kind: 'other', charset: undefined };
  const [typePart = '', ...params] = value.split(';');
  const type = typePart.trim().toLowerCase();
  let charset: string | undefined;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    charset = nonEmpty(param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
  }
  const kind: MediaKind =
    type === 'application/json' || type.endsWith('+json') ? 'json' : type.startsWith('text/') ? 'text' : 'other';
  return { kind, charset };
}

/** A body declaration, parsed once per distinct (contentType, contentEncoding) pair. */
interface Declaration {
  media: MediaType;
  /** `contentEncoding`, else the contentType's `charset` parameter. */
  encodingLabel: string | undefined;
  encodingSource: 'contentEncoding' | 'the contentType charset';
  /** Undefined when there is no label or it names a charset we cannot read. */
  requested: RequestedCharset | undefined;
  /** JSON that is UTF-8 by declaration or by default (no charset, so sniffed, and JSON.parse rejects NUL bytes). */
  utf8Json: boolean;
}

/**
 * The declaration last asked about. Devices of a fleet repeat one declaration, and the Avro reader hands over the
 * very same string instances record after record, so this comparison is usually two pointer checks.
 */
let lastDeclaration: { contentType: string | undefined; contentEncoding: string | undefined; value: Declaration } | undefined;

function declarationOf(contentType: string | undefined, contentEncoding: string | undefined): Declaration {
  const last = lastDeclaration;
  if (last !== undefined && last.contentType === contentType && last.contentEncoding === contentEncoding) return last.value;
  const media = parseContentType(contentType);
  const encoding = nonEmpty(contentEncoding);
  const encodingLabel = encoding ?? media.charset;
  const requested = encodingLabel === undefined ? undefined : charsetFromLabel(encodingLabel);
  const value: Declaration = {
    media,
    encodingLabel,
    encodingSource: encoding !== undefined ? 'contentEncoding' : 'the contentType charset',
    requested,
    utf8Json: media.kind === 'json' && (encodingLabel === undefined || requested === 'utf-8'),
  };
  lastDeclaration = { contentType, contentEncoding, value };
  return value;
}

type Utf8Slice = (this: Uint8Array, start: number, end: number) => string;
/** Buffer's native decoder without `toString`'s argument checks (as in AvroCursor); it accepts any Uint8Array. */
const utf8Slice: Utf8Slice =
  (Buffer.prototype as unknown as { utf8Slice?: Utf8Slice }).utf8Slice ??
  function (this: Uint8Array, start: number, end: number): string {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString('utf8', start, end);
  };

/**
 * The dominant case, UTF-8 JSON declared as such, without the general path's intermediate results. Undefined means
 * "let the general path decide" (a byte-order mark of any charset, invalid UTF-8, or JSON that does not parse), so
 * every body gets the answer the general path would give.
 *
 * A JSON object, the telemetry case, is first scanned without decoding (see jsonScan.ts): when the scan vouches
 * for the body (valid UTF-8, valid JSON, an object) the answer is a {@link LazyJsonBody} holding the top-level
 * numbers, and JSON.parse runs only if someone reads `value`. Otherwise, as before, validity is checked on the
 * decoded text: V8's decoder turns every ill-formed sequence into U+FFFD, so text without U+FFFD proves valid UTF-8
 * (a one-byte string, the usual ASCII body, answers that without a scan). Only text holding U+FFFD, which may have
 * been written as such, needs `isUtf8`.
 */
function declaredUtf8Json(bytes: Uint8Array, base64: 'storage' | null): DecodedBody | undefined {
  const first = bytes[0];
  // Every byte-order mark starts with one of these (UTF-8 EF, UTF-16 FE/FF, UTF-32 FF/00); an empty body is text.
  if (first === undefined || first === 0xef || first === 0xfe || first === 0xff || first === 0x00) return undefined;
  const numbers = scanTopLevelNumbers(bytes, 0, bytes.length);
  if (numbers !== undefined) return new LazyJsonBody(bytes, numbers, base64 === null ? DECLARED_UTF8 : DECLARED_UTF8_STORED_AS_BASE64);
  const text = utf8Slice.call(bytes, 0, bytes.length);
  if (text.includes('\ufffd') && !isUtf8(bytes)) return undefined;
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
  // The scanner declines bodies nested deeper than it reads, so a deep one gets here: the general path reports it.
  if (nestedDeeperThan(value, MAX_JSON_DEPTH)) return undefined;
  return { kind: 'json', value, decodedFrom: { base64, charset: 'utf-8', bom: false, declared: true } };
}

/** What every scanned body was decoded from: shared (frozen), as nothing amends a decoding that had no problem. */
const DECLARED_UTF8: BodyDecoding = Object.freeze({ base64: null, charset: 'utf-8', bom: false, declared: true });
const DECLARED_UTF8_STORED_AS_BASE64: BodyDecoding = Object.freeze({ base64: 'storage', charset: 'utf-8', bom: false, declared: true });

/**
 * A JSON object body the scanner vouched for (valid UTF-8, valid JSON, an object): its `value` is JSON.parse'd on
 * first read and kept, and aggregation reads `numbers` instead, so most telemetry bodies are never parsed.
 *
 * `kind` and `decodedFrom` are own data properties; `value` and `numbers` are accessors on the prototype, shared by
 * every instance. Defining `value` as an own accessor per instance (so that spreads and `Object.keys` saw it) cost
 * a fifth of the Event Hubs decoder's time: V8 gives such objects slow property stores. So, as the model says
 * (RoutedMessage.ts), a decoded body is read by its fields, never spread or enumerated: `JSON.stringify` gives
 * the eager path's text (`toJSON`, keys `kind`, `value`, `decodedFrom`), and {@link plainBody} the eager path's
 * object where a plain one is needed. `numbers` and the parse state never appear in either.
 *
 * Why a class: an accessor closing over per-message state (an object literal getter) is a new function per
 * message, and V8 then gives every object its own map. One prototype, private fields, one map for all.
 */
class LazyJsonBody {
  readonly #bytes: Uint8Array;
  readonly #numbers: TopLevelNumbers;
  #parsed: JsonValue | undefined = undefined;
  readonly kind: 'json';
  readonly decodedFrom: BodyDecoding;

  constructor(bytes: Uint8Array, numbers: TopLevelNumbers, decodedFrom: BodyDecoding) {
    this.#bytes = bytes;
    this.#numbers = numbers;
    this.kind = 'json';
    this.decodedFrom = decodedFrom;
  }

  /** The body as JSON.parse gives it, parsed on first read and kept. */
  get value(): JsonValue {
    let parsed = this.#parsed;
    if (parsed === undefined) {
      const bytes = this.#bytes;
      parsed = JSON.parse(utf8Slice.call(bytes, 0, bytes.length)) as JsonValue;
      this.#parsed = parsed;
    }
    return parsed;
  }

  /** The top-level numeric members, which the scan found without parsing. */
  get numbers(): TopLevelNumbers {
    return this.#numbers;
  }

  /** What JSON.stringify writes: the eager path's object. */
  toJSON(): DecodedBody {
    return { kind: 'json', value: this.value, decodedFrom: this.decodedFrom };
  }
}

/**
 * A decoded body as a plain object with own `kind`, `value` and `decodedFrom` (a lazily parsed one is parsed now):
 * for code and tests that compare, spread or enumerate bodies rather than read their fields.
 */
export function plainBody(decoded: DecodedBody): DecodedBody {
  return decoded instanceof LazyJsonBody ? decoded.toJSON() : decoded;
}

/** `utf-16` and `utf-32` leave the byte order to the bytes. */
type RequestedCharset = Charset | 'utf-16' | 'utf-32';

/**
 * A Map, not an object literal: a device's `contentEncoding: "constructor"` must not find Object's. ASCII is read as
 * the subset of UTF-8 it is, and `System.Text.UTF8Encoding` (what .NET's `Encoding.UTF8.ToString()` gives, which
 * devices send) as what it names: their bytes decode exactly, where refusing them quarantined every such message.
 */
const CHARSET_LABELS: ReadonlyMap<string, RequestedCharset> = new Map([
  ['ascii', 'utf-8'],
  ['usascii', 'utf-8'],
  ['systemtextutf8encoding', 'utf-8'],
  ['utf8', 'utf-8'],
  ['utf16', 'utf-16'],
  ['utf16le', 'utf-16le'],
  ['utf16be', 'utf-16be'],
  ['utf32', 'utf-32'],
  ['utf32le', 'utf-32le'],
  ['utf32be', 'utf-32be'],
]);

function charsetFromLabel(label: string): RequestedCharset | undefined {
  return memo(charsetLabels, label, (l) => CHARSET_LABELS.get(l.toLowerCase().replace(/[-_.\s]/g, '')));
}

function nonEmpty(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

// ---------------------------------------------------------------------------------------------------------------
// Character sets

const UTF16LE = new TextDecoder('utf-16le', { fatal: true, ignoreBOM: true });
const UTF16BE = new TextDecoder('utf-16be', { fatal: true, ignoreBOM: true });

interface Bom {
  charset: Charset;
  length: number;
}

/** UTF-32LE's mark starts with UTF-16LE's, so it must be tested first. */
function readBom(b: Uint8Array): Bom | undefined {
  for (const charset of BOM_ORDER) {
    const length = bomLength(b, charset);
    if (length > 0) return { charset, length };
  }
  return undefined;
}

const BOM_ORDER: readonly Charset[] = ['utf-32le', 'utf-32be', 'utf-8', 'utf-16le', 'utf-16be'];

/** Length of `charset`'s own byte-order mark at the start of `b`, or 0. */
function bomLength(b: Uint8Array, charset: Charset): number {
  switch (charset) {
    case 'utf-8':
      return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
    case 'utf-16le':
      return b.length >= 2 && b[0] === 0xff && b[1] === 0xfe ? 2 : 0;
    case 'utf-16be':
      return b.length >= 2 && b[0] === 0xfe && b[1] === 0xff ? 2 : 0;
    case 'utf-32le':
      return b.length >= 4 && b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0 ? 4 : 0;
    case 'utf-32be':
      return b.length >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff ? 4 : 0;
  }
}

/*
 * BOM-less UTF-32 and UTF-16 are recognised by where their zero bytes are. Device text is mostly ASCII, or at least
 * in the Basic Multilingual Plane, so a UTF-32 unit has a zero high byte and a second byte of at most 0x10, and
 * UTF-16 ASCII has a zero in every other byte. These are guesses: the caller still decodes strictly and checks the
 * result is printable, so binary that happens to match ends up binary anyway.
 */

function zeroPattern32(b: Uint8Array): 'utf-32le' | 'utf-32be' | undefined {
  const n = b.length;
  if (n < 4 || n % 4 !== 0) return undefined;
  let le = true;
  let be = true;
  for (let i = 0; i < n && (le || be); i += 4) {
    if (le && (b[i + 3] !== 0 || b[i + 2]! > 0x10)) le = false;
    if (be && (b[i] !== 0 || b[i + 1]! > 0x10)) be = false;
  }
  // All-zero units fit both patterns; the first unit decides, and all-zero input is left to UTF-8 (binary).
  if (le && b[0] !== 0) return 'utf-32le';
  if (be && b[3] !== 0) return 'utf-32be';
  return undefined;
}

function countZeros16(b: Uint8Array): { even: number; odd: number } {
  let even = 0;
  let odd = 0;
  for (let i = 0; i + 1 < b.length; i += 2) {
    if (b[i] === 0) even++;
    if (b[i + 1] === 0) odd++;
  }
  return { even, odd };
}

/** Undeclared, so strict: at least half the units carry a zero byte, always on the same side. */
function zeroPattern16(b: Uint8Array): 'utf-16le' | 'utf-16be' | undefined {
  if (b.length < 2 || b.length % 2 !== 0) return undefined;
  const { even, odd } = countZeros16(b);
  const units = b.length / 2;
  if (odd * 2 >= units && even === 0) return 'utf-16le';
  if (even * 2 >= units && odd === 0) return 'utf-16be';
  return undefined;
}

/** Declared UTF-16, so only the byte order is in question: the side with more zero bytes is the high byte. */
function zeroSide16(b: Uint8Array): 'utf-16le' | 'utf-16be' | undefined {
  const { even, odd } = countZeros16(b);
  return odd > even ? 'utf-16le' : even > odd ? 'utf-16be' : undefined;
}

/**
 * Decodes bytes whose charset nobody declared: byte-order mark, then zero-byte pattern (UTF-32 before UTF-16, whose
 * pattern UTF-32 text also fits), then UTF-8. A pattern guess that fails to decode or is not printable was wrong,
 * and UTF-8 gets its turn.
 */
function decodeSniffed(b: Uint8Array): TextResult {
  const bom = readBom(b);
  if (bom !== undefined) return decodeText(b, bom.charset);
  // Typical UTF-8 bodies have no zero byte at all; one native scan spares both pattern loops.
  const guess = b.indexOf(0) === -1 ? undefined : (zeroPattern32(b) ?? zeroPattern16(b));
  if (guess !== undefined) {
    const decoded = decodeText(b, guess);
    if (!('failure' in decoded) && isPrintable(decoded.text)) return decoded;
  }
  return decodeText(b, 'utf-8');
}

/**
 * A failure is described only when asked: undeclared bodies try several charsets and discard the reasons, and
 * finding the offending byte means scanning the body again.
 */
type TextResult = { text: string; charset: Charset; bom: boolean } | { failure: () => string };

/** `utf-16` / `utf-32` without endianness: the byte-order mark, else the zero-byte pattern, else little-endian. */
function resolveEndianness(b: Uint8Array, requested: RequestedCharset): Charset {
  if (requested === 'utf-16') {
    if (bomLength(b, 'utf-16be') > 0) return 'utf-16be';
    if (bomLength(b, 'utf-16le') > 0) return 'utf-16le';
    return zeroSide16(b) ?? 'utf-16le';
  }
  if (requested === 'utf-32') {
    if (bomLength(b, 'utf-32be') > 0) return 'utf-32be';
    if (bomLength(b, 'utf-32le') > 0) return 'utf-32le';
    return zeroPattern32(b) ?? 'utf-32le';
  }
  return requested;
}

function decodeText(b: Uint8Array, requested: RequestedCharset): TextResult {
  const charset = resolveEndianness(b, requested);
  const start = bomLength(b, charset);
  if (start === 0) {
    // Another encoding's mark means the declaration is wrong; naming it beats reporting the first bad byte.
    const other = readBom(b);
    if (other !== undefined) return { failure: () => `the bytes start with a ${other.charset.toUpperCase()} byte-order mark` };
  }
  const body = start === 0 ? b : b.subarray(start);
  switch (charset) {
    case 'utf-8':
      // isUtf8 validates natively without the exception a fatal TextDecoder throws on the (common) binary body.
      return isUtf8(body)
        ? { text: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'), charset, bom: start > 0 }
        : { failure: () => describeUtf8Error(body, start) };
    case 'utf-16le':
    case 'utf-16be':
      return decodeWith(charset === 'utf-16le' ? UTF16LE : UTF16BE, body, charset, start > 0, () =>
        describeUtf16Error(body, start, charset === 'utf-16le'),
      );
    case 'utf-32le':
    case 'utf-32be':
      return decodeUtf32(body, charset, start);
  }
}

function decodeWith(
  decoder: { decode(input: Uint8Array): string },
  body: Uint8Array,
  charset: Charset,
  bom: boolean,
  describe: () => string,
): TextResult {
  try {
    return { text: decoder.decode(body), charset, bom };
  } catch {
    return { failure: describe };
  }
}

/** Finds the first byte that breaks UTF-8, for an error a person can locate in a hex dump. Only runs on failure. */
function describeUtf8Error(b: Uint8Array, base: number): string {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let need: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else {
      return `byte 0x${hex(c)} at offset ${base + i} is not valid UTF-8`;
    }
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      if (i + k >= b.length) {
        return `the body ends inside the ${need + 1}-byte UTF-8 sequence at offset ${base + i}`;
      }
      const cont = b[i + k]!;
      if ((cont & 0xc0) !== 0x80) {
        return `byte 0x${hex(cont)} at offset ${base + i + k} is not a valid UTF-8 continuation of the sequence at offset ${base + i}`;
      }
      cp = (cp << 6) | (cont & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return `the UTF-8 sequence at offset ${base + i} encodes ${cp < min ? 'an overlong form' : `invalid code point U+${cp.toString(16).toUpperCase()}`}`;
    }
    i += need + 1;
  }
  return 'the bytes are not valid UTF-8';
}

function describeUtf16Error(b: Uint8Array, base: number, littleEndian: boolean): string {
  if (b.length % 2 !== 0) return `odd length (${b.length + base} bytes) for UTF-16`;
  for (let i = 0; i < b.length; i += 2) {
    const unit = littleEndian ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = i + 3 < b.length ? (littleEndian ? b[i + 2]! | (b[i + 3]! << 8) : (b[i + 2]! << 8) | b[i + 3]!) : -1;
      if (next < 0xdc00 || next > 0xdfff) return `unpaired UTF-16 high surrogate at offset ${base + i}`;
      i += 2;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return `unpaired UTF-16 low surrogate at offset ${base + i}`;
    }
  }
  return 'the bytes are not valid UTF-16';
}

/**
 * TextDecoder has no UTF-32. Code points are validated as strictly as the fatal decoders do for UTF-8/16 and
 * rewritten as UTF-16LE bytes, which Buffer turns into a string natively. A code point never needs more UTF-16
 * bytes than its four UTF-32 bytes, so the output fits in a buffer of the input's size.
 */
function decodeUtf32(b: Uint8Array, charset: 'utf-32le' | 'utf-32be', base: number): TextResult {
  if (b.length % 4 !== 0) return { failure: () => `length ${b.length + base} is not a multiple of 4 as UTF-32 needs` };
  const le = charset === 'utf-32le';
  const out = Buffer.allocUnsafe(b.length);
  let n = 0;
  const unit = (u: number): void => {
    out[n++] = u & 0xff;
    out[n++] = u >> 8;
  };
  for (let i = 0; i < b.length; i += 4) {
    const cp = le
      ? (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0
      : ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return { failure: () => `0x${cp.toString(16)} at offset ${base + i} is not a Unicode scalar value` };
    }
    if (cp < 0x10000) {
      unit(cp);
    } else {
      unit(0xd800 + ((cp - 0x10000) >> 10));
      unit(0xdc00 + ((cp - 0x10000) & 0x3ff));
    }
  }
  return { text: out.toString('utf16le', 0, n), charset, bom: base > 0 };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

// ---------------------------------------------------------------------------------------------------------------
// Undeclared bodies

function decodeUndeclared(bytes: Uint8Array, base64: BodyDecoding['base64'], detectBase64: boolean): DecodedBody {
  if (bytes.length === 0) {
    return { kind: 'text', value: '', decodedFrom: { base64, charset: 'utf-8', bom: false, declared: false } };
  }
  const decoded = decodeSniffed(bytes);
  if ('failure' in decoded || !isPrintable(decoded.text)) return binary(bytes, base64, false);
  const decodedFrom: BodyDecoding = { base64, charset: decoded.charset, bom: decoded.bom, declared: false };
  const text = decoded.text;

  if (mayStartJson(text)) {
    const parsed = parseJson(text);
    if ('value' in parsed) return { kind: 'json', value: parsed.value, decodedFrom };
    if (startsStructured(text)) {
      decodedFrom.problem = { code: 'BodyNotJson', detail: `the body looks like JSON but does not parse: ${parsed.error}` };
      return { kind: 'text', value: text, decodedFrom };
    }
  }
  if (detectBase64) {
    const unwrapped = unwrapBase64(text);
    if (unwrapped !== undefined) return unwrapped;
  }
  return { kind: 'text', value: text, decodedFrom };
}

const BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Recognises a body that is nothing but base64 text wrapping the real payload (devices that base64-encode before
 * sending, or tools that do it for them). The rule, chosen so that ordinary words and identifiers are never
 * unwrapped:
 *
 * 1. After trimming surrounding whitespace, the text uses only the base64 alphabet (`A-Z a-z 0-9 + /`, with `=`
 *    padding only at the end), its length is a multiple of 4 and at least 8.
 * 2. The decoded bytes must themselves decode (undeclared, strictly) to a JSON object or array: accepted as is.
 * 3. Or they decode to printable text, and the original "is not a plain word": it mixes upper- and lower-case
 *    letters and contains a digit, `+`, `/` or `=`. Real base64 of text nearly always does; words, hex ids and
 *    upper-case codes never do. Without this clause `ABCDabcd`-like tokens that happen to decode to printable bytes
 *    would be unwrapped.
 *
 * A JSON scalar inside counts as text for rule 3, so `"MTIzNDU2"` (base64 of `123456`) is unwrapped to the number
 * only because it also passes the plain-word test.
 */
function unwrapBase64(text: string): DecodedBody | undefined {
  const candidate = text.trim();
  if (candidate.length < 8 || candidate.length % 4 !== 0 || !BASE64_TEXT.test(candidate)) return undefined;
  const inner = decodeUndeclared(Buffer.from(candidate, 'base64'), 'detected', false);
  if (inner.kind === 'binary') return undefined;
  if (inner.kind === 'json' && typeof inner.value === 'object' && inner.value !== null) return inner;
  return isPlainWord(candidate) ? undefined : inner;
}

function isPlainWord(candidate: string): boolean {
  return !(/[A-Z]/.test(candidate) && /[a-z]/.test(candidate) && /[0-9+/=]/.test(candidate));
}

/** C0 controls other than tab, line feed and carriage return, DEL and C1 controls mark bytes that are not text. */
const NON_PRINTABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function isPrintable(text: string): boolean {
  return !NON_PRINTABLE.test(text);
}

// ---------------------------------------------------------------------------------------------------------------
// JSON

/** JSON.parse is only attempted when the first non-blank character can start a JSON text. */
function mayStartJson(text: string): boolean {
  const c = firstNonBlank(text);
  if (c === undefined) return false;
  if (c === 0x7b /* { */ || c === 0x5b /* [ */ || c === 0x22 /* " */ || c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
    return true;
  }
  // Bare literals are rare enough that a full trim is fine.
  if (c === 0x74 || c === 0x66 || c === 0x6e) {
    const t = text.trim();
    return t === 'true' || t === 'false' || t === 'null';
  }
  return false;
}

/** Text opening with `{` or `[` that fails to parse is reported; a sentence that starts with a digit is not. */
function startsStructured(text: string): boolean {
  const c = firstNonBlank(text);
  return c === 0x7b || c === 0x5b;
}

function firstNonBlank(text: string): number | undefined {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c;
  }
  return undefined;
}

function parseJson(text: string): { value: JsonValue } | { error: string } {
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // V8 names the position except when the input simply ends.
    return { error: /position \d+/.test(message) ? message : `${message} at position ${text.length}` };
  }
  return nestedDeeperThan(value, MAX_JSON_DEPTH) ? { error: DEPTH_ERROR } : { value };
}

/**
 * JSON nested deeper than this is not read as JSON (RFC 8259 lets a parser limit nesting). JSON.parse takes any
 * depth, but JSON.stringify and every recursive walk run out of stack a few thousand levels down: a 25 KB body of
 * nested objects would otherwise throw wherever it is written out (quarantine, archive answers, e-mails) instead of
 * being quarantined once, here. Telemetry is a few levels deep.
 */
export const MAX_JSON_DEPTH = 512;

export const DEPTH_ERROR = `it is nested more than ${MAX_JSON_DEPTH} levels deep, more than this app reads`;

/** Whether `value` has arrays or objects nested more than `max` levels deep; iterative, as it meets such values. */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const pending: unknown[] = [value];
  const depths: number[] = [1];
  while (pending.length > 0) {
    const node = pending.pop() as object;
    const depth = depths.pop()!;
    if (depth > max) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        pending.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------

function binary(
  bytes: Uint8Array,
  base64: BodyDecoding['base64'],
  declared: boolean,
  problem?: BodyProblem,
): DecodedBody {
  const decodedFrom: BodyDecoding = { base64, charset: null, bom: false, declared };
  if (problem !== undefined) decodedFrom.problem = problem;
  return {
    kind: 'binary',
    value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
    decodedFrom,
  };
}
