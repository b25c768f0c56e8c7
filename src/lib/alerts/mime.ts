/**
 * Just enough RFC 5322 / MIME to write an alert e-mail as a `.eml` file that mail clients open: a
 * multipart/alternative message with a text and an HTML part, both UTF-8 and quoted-printable, and RFC 2047
 * encoded words for non-ASCII header values.
 *
 * Header safety does not depend on callers: every header value passes through {@link sanitizeHeader} here, and
 * addresses are only written after {@link checkEmailMessage} accepted them.
 */

import { sanitizeHeader, type EmailMessage } from './email.js';

const CRLF = '\r\n';
/** RFC 5322 recommends header lines of at most 78 characters; folding keeps us there. */
const SOFT_LINE = 78;
/** Quoted-printable lines are at most 76 characters, the soft-break `=` included (RFC 2045 6.7). */
const QP_LINE = 76;
/**
 * Bytes per encoded word: 42 bytes are 56 base64 characters, so `=?UTF-8?B?...?=` is 68 characters and fits after
 * a short header name within {@link SOFT_LINE}.
 */
const WORD_BYTES = 42;

export interface EmlOptions {
  /** The Date header. Comes from the caller's clock so output is reproducible. */
  date: Date;
}

/**
 * Renders a message already accepted by `checkEmailMessage` as CRLF-terminated RFC 5322 text.
 *
 * The MIME boundary starts with `=_`, which quoted-printable output can never contain (every literal `=` is
 * encoded as `=3D`), so no body can end a part early, whatever the device sent.
 */
export function renderEml(message: EmailMessage, options: EmlOptions): string {
  const boundary = `=_alt_${message.operationId}`;
  const domain = message.from.slice(message.from.lastIndexOf('@') + 1);
  const lines: string[] = [
    `Date: ${formatRfc5322Date(options.date)}`,
    addressHeader('From', [message.from]),
    addressHeader('To', message.to),
  ];
  if (message.cc !== undefined && message.cc.length > 0) lines.push(addressHeader('Cc', message.cc));
  lines.push(textHeader('Subject', message.subject));
  lines.push(`Message-ID: <${message.operationId}@${domain}>`);
  lines.push('MIME-Version: 1.0');
  for (const [name, value] of Object.entries(message.headers ?? {})) lines.push(textHeader(name, value));
  lines.push(`Content-Type: multipart/alternative;${CRLF} boundary="${boundary}"`);
  lines.push('');
  lines.push('This is a multi-part message in MIME format.');
  for (const [type, body] of [
    ['text/plain', message.text],
    ['text/html', message.html],
  ] as const) {
    lines.push(`--${boundary}`);
    lines.push(`Content-Type: ${type}; charset=utf-8`);
    lines.push('Content-Transfer-Encoding: quoted-printable');
    lines.push('');
    lines.push(encodeQuotedPrintable(body));
  }
  lines.push(`--${boundary}--`);
  return lines.join(CRLF) + CRLF;
}

/** `Tue, 01 Jul 2025 10:00:00 +0000`: the RFC 5322 date-time, always in UTC. */
export function formatRfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** An address list header, folded between addresses. Addresses are plain ASCII (`isEmailAddress`). */
function addressHeader(name: string, addresses: readonly string[]): string {
  let line = `${name}: `;
  const out: string[] = [];
  addresses.forEach((address, i) => {
    const piece = i < addresses.length - 1 ? `${address},` : address;
    const separator = i === 0 ? '' : ' ';
    if (i > 0 && line.length + separator.length + piece.length > SOFT_LINE) {
      out.push(line);
      line = ` ${piece}`;
    } else {
      line += separator + piece;
    }
  });
  out.push(line);
  return out.join(CRLF);
}

/**
 * An unstructured header (Subject, X-...). Short printable ASCII is written as is; anything else becomes folded
 * encoded words, which also keeps long values within line limits.
 */
export function textHeader(name: string, rawValue: string): string {
  const value = sanitizeHeader(rawValue);
  const plain = `${name}: ${value}`;
  if (/^[\x20-\x7e]*$/.test(value) && !value.includes('=?') && plain.length <= SOFT_LINE) return plain;
  const words = encodedWords(value);
  if (words.length === 0) return `${name}: `;
  return `${name}: ${words.join(`${CRLF} `)}`;
}

/** RFC 2047 B-encoded words, each holding whole characters only. */
export function encodedWords(value: string): string[] {
  const words: string[] = [];
  let chunk: Buffer[] = [];
  let size = 0;
  const flush = (): void => {
    if (size === 0) return;
    words.push(`=?UTF-8?B?${Buffer.concat(chunk).toString('base64')}?=`);
    chunk = [];
    size = 0;
  };
  for (const character of value) {
    const bytes = Buffer.from(character, 'utf8');
    if (size + bytes.length > WORD_BYTES) flush();
    chunk.push(bytes);
    size += bytes.length;
  }
  flush();
  return words;
}

/**
 * Quoted-printable (RFC 2045 6.7) of UTF-8 text. Any line break in the input (CRLF, CR or LF) becomes a CRLF hard
 * break; lines are soft-broken to at most 76 characters; trailing space and tab are encoded so transports cannot
 * strip them; a line starting with `From ` is encoded so mbox tools do not mangle it.
 */
export function encodeQuotedPrintable(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => encodeQpLine(line))
    .join(CRLF);
}

function encodeQpLine(line: string): string {
  const bytes = Buffer.from(line, 'utf8');
  const tokens: string[] = [];
  bytes.forEach((byte, i) => {
    const last = i === bytes.length - 1;
    const literal =
      (byte >= 33 && byte <= 126 && byte !== 61) || ((byte === 32 || byte === 9) && !last);
    const fromAtStart = i === 0 && line.startsWith('From ');
    const escaped = `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    tokens.push(literal && !fromAtStart ? String.fromCharCode(byte) : escaped);
  });
  const out: string[] = [];
  let current = '';
  for (const token of tokens) {
    // Keep room for the soft-break `=`.
    if (current.length + token.length > QP_LINE - 1) {
      out.push(`${current}=`);
      current = '';
    }
    current += token;
  }
  out.push(current);
  return out.join(CRLF);
}
