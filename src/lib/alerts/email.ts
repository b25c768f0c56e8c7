/**
 * The e-mail port: what the alert path asks of an e-mail service, and the checks every sender applies before a
 * message leaves the process.
 *
 * Contract of {@link EmailSender.send} (docs/adr/0005-email-senders.md):
 * - resolves `{ status: 'sent' }` when the service accepted the e-mail and finished its send operation;
 * - resolves `{ status: 'failed' }` for every permanent outcome: the service rejected the request (400, 401, 403,
 *   413, ...), the send operation ended `Failed`/`Canceled`, or the message broke a local rule (size, address,
 *   header). The caller records it and quarantines; it is never retried;
 * - throws a transient `RoutingError` (`EmailThrottled`, `EmailUnavailable`) when the same message may succeed
 *   later, so the trigger's redelivery applies. Anything else thrown is a bug, not a verdict on the e-mail.
 *
 * A repeated send with the same `operationId` must not produce a second e-mail: ACS is handed the id as its
 * `Operation-Id`, the outbox names its file after it.
 */

import { createHash } from 'node:crypto';

export interface EmailMessage {
  /**
   * A UUID derived from the alert key ({@link emailOperationId}). The same alert always gets the same id, so a send
   * repeated after a crash or a redelivery is recognised as the same operation instead of a second e-mail.
   */
  operationId: string;
  /** Sender address; for ACS it must belong to a verified domain of the resource. */
  from: string;
  to: string[];
  cc?: string[];
  /** Sanitised again by every sender ({@link sanitizeHeader}); callers should not rely on that alone. */
  subject: string;
  text: string;
  /** Already HTML-escaped by the renderer; senders pass it through unchanged. */
  html: string;
  /** Extra headers (`X-...`). Values are sanitised; names that would replace a structural header are refused. */
  headers?: Record<string, string>;
}

export interface SendSucceeded {
  status: 'sent';
  operationId: string;
  /** The provider's id for the send (the ACS operation id, or the .eml file name). */
  providerId?: string;
}

export interface SendFailed {
  status: 'failed';
  operationId: string;
  /** What went wrong, for the delivery record and the quarantine entry. */
  error: string;
  /** The provider's error code (`EmailDropped`, `InvalidRecipient`, `Denied`, ...) when it gave one. */
  providerCode?: string;
  /** The HTTP status of the rejected request; absent when the operation failed after being accepted. */
  httpStatus?: number;
}

export type SendResult = SendSucceeded | SendFailed;

export interface EmailSender {
  send(message: EmailMessage): Promise<SendResult>;
  /**
   * What became of an earlier send under `message.operationId`, without sending: the operation's outcome, waited
   * for as `send` waits, or null when the service has none under that id (nothing was accepted). Thrown like `send`.
   */
  lookup(message: EmailMessage): Promise<SendResult | null>;
}

/**
 * The detail of an `EmailRejected` quarantine reason: `e-mail <operation> <about> was rejected (<code>, HTTP <n>):
 * <error>`, `about` saying what the e-mail carried ("for alert <key>", "with the digest of 12 alerts").
 */
export function rejectionDetail(result: SendFailed, about: string): string {
  const parts = [result.providerCode, result.httpStatus === undefined ? undefined : `HTTP ${result.httpStatus}`].filter((p) => p !== undefined);
  return `e-mail ${result.operationId} ${about} was rejected${parts.length === 0 ? '' : ` (${parts.join(', ')})`}: ${result.error}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Operation ids
// ---------------------------------------------------------------------------------------------------------------

/**
 * Fixed namespace for {@link emailOperationId}. Changing it changes every id, and ACS would then treat a redelivered
 * alert as a new send: never change it.
 */
const OPERATION_ID_NAMESPACE = 'b7d1a0f2-3c4e-4f5a-9b6c-7d8e9f0a1b2c';

/**
 * Name-based UUID (RFC 9562 version 5) of an alert key. ACS requires `Operation-Id` to be a UUID, and a hash keeps
 * the id stable across processes and replays, which a random UUID would not.
 */
export function emailOperationId(alertKey: string): string {
  const namespace = Buffer.from(OPERATION_ID_NAMESPACE.replaceAll('-', ''), 'hex');
  const hash = createHash('sha1').update(namespace).update(alertKey, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isOperationId(value: string): boolean {
  return UUID.test(value);
}

// ---------------------------------------------------------------------------------------------------------------
// Sanitising and bounds
// ---------------------------------------------------------------------------------------------------------------

/**
 * Limits applied by every sender. ACS accepts up to 10 MB per request and 50 recipients; an alert needs far less,
 * and a tighter bound keeps one runaway device payload from producing a huge e-mail.
 */
export const EMAIL_LIMITS = {
  /** RFC 5322 line limit; also the bound on any single header value. */
  headerChars: 998,
  recipients: 50,
  /** Per body part (text and HTML each), in UTF-8 bytes. */
  bodyBytes: 1_000_000,
  customHeaders: 20,
} as const;

/**
 * CR, LF and other control characters, including the Unicode line and paragraph separators and NEL, which some
 * mail tools also treat as line breaks.
 */
const CONTROL_RUNS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/**
 * Makes a value safe for a single header line: every run of control characters becomes one space (so words stay
 * apart and no new header line can start), surrounding space is trimmed, and the length is bounded.
 */
export function sanitizeHeader(value: string, maxChars: number = EMAIL_LIMITS.headerChars): string {
  return boundText(value.replace(CONTROL_RUNS, ' ').trim(), maxChars);
}

/**
 * Bounds a string to `maxChars` code points, ending a shortened value with `…` so a reader sees it was cut. Never
 * splits a surrogate pair.
 */
export function boundText(value: string, maxChars: number): string {
  if (maxChars <= 0) return '';
  // Fast path: UTF-16 length is an upper bound on code points.
  if (value.length <= maxChars) return value;
  const codePoints = Array.from(value);
  if (codePoints.length <= maxChars) return value;
  return `${codePoints.slice(0, maxChars - 1).join('')}…`;
}

export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/**
 * A deliberately narrow address syntax: ASCII local part and domain, no display name, no quoting, no whitespace. Alert
 * recipients come from configuration, so refusing exotic forms costs nothing and rules out header injection through
 * an address.
 */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const ADDRESS = new RegExp(`^[A-Za-z0-9.!#$%&'*+/=?^_\`{|}~-]+@${LABEL}(?:\\.${LABEL})*$`);

export function isEmailAddress(value: string): boolean {
  return value.length <= 254 && ADDRESS.test(value);
}

const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,75}$/;

/** Headers the senders write themselves; a custom header must not replace or duplicate them. */
const STRUCTURAL_HEADERS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'reply-to',
  'sender',
  'return-path',
  'received',
]);

export type CheckedEmail = { ok: true; message: EmailMessage } | { ok: false; problems: string[] };

/** The result for a message that broke a local rule: permanent, and the service was never called. */
export function localRejection(message: EmailMessage, problems: readonly string[]): SendFailed {
  return { status: 'failed', operationId: message.operationId, error: problems.join('; '), providerCode: 'LocalValidation' };
}

/**
 * Validates a message against {@link EMAIL_LIMITS} and returns a copy with the subject and header values sanitised.
 * Every problem is reported, not just the first.
 */
export function checkEmailMessage(message: EmailMessage): CheckedEmail {
  const problems: string[] = [];
  const notAddress = (field: string, value: string): string => `${field} ${JSON.stringify(value)} is not a plain e-mail address`;
  if (!isOperationId(message.operationId)) {
    problems.push(`operationId ${JSON.stringify(message.operationId)} is not a UUID`);
  }
  if (!isEmailAddress(message.from)) problems.push(notAddress('from', message.from));
  const cc = message.cc ?? [];
  if (message.to.length === 0) problems.push('to is empty');
  for (const [field, list] of [
    ['to', message.to],
    ['cc', cc],
  ] as const) {
    list.forEach((address, i) => {
      if (!isEmailAddress(address)) problems.push(notAddress(`${field}[${i}]`, address));
    });
  }
  if (message.to.length + cc.length > EMAIL_LIMITS.recipients) {
    problems.push(`${message.to.length + cc.length} recipients; at most ${EMAIL_LIMITS.recipients}`);
  }
  if (message.text.length === 0 && message.html.length === 0) problems.push('both text and html are empty');
  for (const part of ['text', 'html'] as const) {
    const bytes = utf8Length(message[part]);
    if (bytes > EMAIL_LIMITS.bodyBytes) problems.push(`${part} is ${bytes} bytes; at most ${EMAIL_LIMITS.bodyBytes}`);
  }
  const headers: Record<string, string> = {};
  const entries = Object.entries(message.headers ?? {});
  if (entries.length > EMAIL_LIMITS.customHeaders) {
    problems.push(`${entries.length} custom headers; at most ${EMAIL_LIMITS.customHeaders}`);
  }
  for (const [name, value] of entries) {
    if (!HEADER_NAME.test(name)) problems.push(`header name ${JSON.stringify(name)} is not a plain token`);
    else if (STRUCTURAL_HEADERS.has(name.toLowerCase())) {
      problems.push(`header ${name} cannot be set as a custom header`);
    }
    else headers[name] = sanitizeHeader(value);
  }
  if (problems.length > 0) return { ok: false, problems };

  const checked: EmailMessage = {
    operationId: message.operationId,
    from: message.from,
    to: [...message.to],
    subject: sanitizeHeader(message.subject),
    text: message.text,
    html: message.html,
  };
  if (cc.length > 0) checked.cc = [...cc];
  if (entries.length > 0) checked.headers = headers;
  return { ok: true, message: checked };
}
