/**
 * A loopback stand-in for the Azure Communication Services e-mail data-plane API, good enough for the real
 * `EmailClient` to run unchanged against it: over plain HTTP (the client constructed with
 * `allowInsecureConnection: true`), or over TLS when given a certificate (see {@link AcsEmailStandInOptions}):
 *
 * - `POST /emails:send?api-version=...` answers 202 with `Operation-Location` and `operation-id`; the id is the
 *   request's `Operation-Id` header when given (ACS does the same), otherwise a fresh UUID.
 * - `GET /emails/operations/{id}?api-version=...` answers `Running` a configurable number of times, then
 *   `Succeeded` or `Failed` with an error.
 * - Every request must carry a valid HMAC-SHA256 signature made with the access key, exactly as the ACS
 *   authentication scheme defines it (see {@link verifyAcsSignature}), or, over TLS, `Authorization: Bearer <token>`
 *   with a Microsoft Entra token the test accepts; anything else gets 401.
 * - A repeated `Operation-Id` with the identical body is the same operation: 202 again, no second e-mail. With a
 *   different body it is 409 Conflict. This follows the Azure REST API guidelines for long-running POST actions
 *   (`Operation-Id` "unique except retries"); the ACS reference only says the id is "provided by the customer to
 *   identify the long running operation", so this is the expected, not a verified, service behaviour.
 *
 * Behaviours are scripted per call with {@link AcsEmailStandIn.script} (sends) and
 * {@link AcsEmailStandIn.scriptPolls} (status polls); unscripted calls succeed.
 */

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { trustForLoopbackPort, type TestCertificate } from './loopbackTls.js';

export interface AcsError {
  code: string;
  message: string;
}

/** What the stand-in does with one `POST /emails:send`. */
export type SendBehaviour =
  /** 202, then `runningPolls` polls answer Running before the operation Succeeds. */
  | { kind: 'accept'; runningPolls?: number }
  /** 202, then the operation ends Failed with `error` (ACS reports e.g. EmailDropped this way). */
  | { kind: 'failOperation'; error: AcsError; runningPolls?: number }
  /** An immediate HTTP error response, e.g. 429 with Retry-After, 503, 400 with an ACS error body. */
  | { kind: 'respond'; status: number; headers?: Record<string, string>; error?: AcsError }
  /** Close the connection without answering: the client sees a network error. */
  | { kind: 'hangUp' };

/** What the stand-in does with one `GET /emails/operations/{id}` instead of reporting the operation's state. */
export type PollBehaviour =
  | { kind: 'respond'; status: number; headers?: Record<string, string>; error?: AcsError }
  | { kind: 'hangUp' };

/** Readable constructors for the behaviours tests need most. */
export const acs = {
  accept: (runningPolls = 1): SendBehaviour => ({ kind: 'accept', runningPolls }),
  failOperation: (code = 'EmailDropped', message = 'Email was dropped after several attempts to deliver.'): SendBehaviour => ({
    kind: 'failOperation',
    error: { code, message },
  }),
  throttled: (retryAfter: string | { ms: number }): SendBehaviour => ({
    kind: 'respond',
    status: 429,
    headers: typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : { 'retry-after-ms': String(retryAfter.ms) },
    error: { code: 'TooManyRequests', message: 'Rate limit exceeded. Try again later.' },
  }),
  unavailable: (headers: Record<string, string> = {}): SendBehaviour => ({
    kind: 'respond',
    status: 503,
    headers,
    error: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' },
  }),
  badRequest: (code = 'InvalidRecipient', message = 'The recipient address is not valid.'): SendBehaviour => ({
    kind: 'respond',
    status: 400,
    error: { code, message },
  }),
  hangUp: (): SendBehaviour => ({ kind: 'hangUp' }),
};

/** An e-mail the stand-in accepted (202), as the service received it. */
export interface AcceptedEmail {
  operationId: string;
  apiVersion: string;
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  text: string | undefined;
  html: string | undefined;
  headers: Record<string, string>;
  /** The operation's state as the stand-in last reported it. */
  status: 'Running' | 'Succeeded' | 'Failed';
}

export interface RecordedRequest {
  method: string;
  /** Path and query exactly as received. */
  url: string;
  /** The `Operation-Id` request header, if any. */
  operationId: string | undefined;
  /** The scheme the request presented: an HMAC-SHA256 signature, a bearer token, or neither. */
  authentication: 'hmac' | 'bearer' | 'none';
  /** The bearer token presented, if any. */
  bearerToken?: string;
  /** False when authentication failed (the request was answered 401). */
  authenticated: boolean;
  /** Why authentication failed, for test diagnostics. */
  authProblem?: string;
  status: number;
}

export interface AcsEmailStandInOptions {
  /**
   * Serve HTTPS with this certificate (made with `createLoopbackCertificate`), trusted for the stand-in's port
   * while it runs. The SDK sends a bearer token over TLS only.
   */
  certificate?: TestCertificate;
  /**
   * Bearer tokens to accept (identity-based access: the `EmailClient` built with a `TokenCredential`). Only over
   * TLS; any other bearer token is answered 401.
   */
  bearerTokens?: readonly string[];
}

export interface AcsEmailStandIn {
  /** `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with a certificate (no trailing slash). */
  endpoint: string;
  /** Base64 access key the stand-in verifies signatures with. */
  accessKey: string;
  /** `endpoint=<endpoint>/;accesskey=<base64>` */
  connectionString: string;
  /** A connection string for the same endpoint signed with another key: every request gets 401. */
  wrongKeyConnectionString: string;
  /** Every e-mail accepted, in order; a repeated identical send does not add an entry. */
  sent: AcceptedEmail[];
  /** Every request, in order, including rejected ones. */
  requests: RecordedRequest[];
  /** Queues behaviours for the next sends, in order. */
  script(...behaviours: SendBehaviour[]): void;
  /** Queues behaviours for the next status polls, in order. */
  scriptPolls(...behaviours: PollBehaviour[]): void;
  /** Number of requests with `method` (all requests when omitted). */
  count(method?: 'GET' | 'POST'): number;
  stop(): Promise<void>;
}

interface Operation {
  id: string;
  bodyHash: string;
  runningPollsLeft: number;
  outcome: { status: 'Succeeded' } | { status: 'Failed'; error: AcsError };
  email: AcceptedEmail;
}

/** ACS rejects requests whose x-ms-date is further than this from its clock. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export type SignatureCheck = { ok: true } | { ok: false; problem: string };

/**
 * Verifies an ACS HMAC-SHA256 request signature:
 *
 * ```
 * Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>
 * x-ms-content-sha256: base64(SHA-256(body))
 * StringToSign = VERB + "\n" + <path and query> + "\n" + <x-ms-date> + ";" + <host> + ";" + <x-ms-content-sha256>
 * Signature = base64(HMAC-SHA256(base64decode(accessKey), StringToSign))
 * ```
 *
 * The signed date, host and hash are taken from the headers the request actually carries, and the content hash
 * is recomputed from the bytes received, so tampering with any of them fails the check.
 */
export function verifyAcsSignature(
  request: { method: string; url: string; headers: IncomingHttpHeaders },
  body: Buffer,
  accessKey: string,
  now: Date = new Date(),
): SignatureCheck {
  const authorization = header(request.headers, 'authorization');
  if (authorization === undefined) return { ok: false, problem: 'no Authorization header' };
  const match = /^HMAC-SHA256 SignedHeaders=([^&]+)&Signature=(.+)$/.exec(authorization);
  if (!match) return { ok: false, problem: `Authorization is not HMAC-SHA256: ${authorization.slice(0, 40)}` };
  const signedHeaders = match[1] ?? '';
  const signature = match[2] ?? '';
  if (signedHeaders.toLowerCase() !== 'x-ms-date;host;x-ms-content-sha256') {
    return { ok: false, problem: `unexpected SignedHeaders ${signedHeaders}` };
  }
  const date = header(request.headers, 'x-ms-date');
  const host = header(request.headers, 'host');
  const contentHash = header(request.headers, 'x-ms-content-sha256');
  if (date === undefined || host === undefined || contentHash === undefined) {
    return { ok: false, problem: 'x-ms-date, host or x-ms-content-sha256 missing' };
  }
  const signedAt = Date.parse(date);
  if (Number.isNaN(signedAt)) return { ok: false, problem: `x-ms-date ${date} is not an HTTP date` };
  if (Math.abs(now.getTime() - signedAt) > MAX_CLOCK_SKEW_MS) return { ok: false, problem: `x-ms-date ${date} is stale` };
  const actualHash = createHash('sha256').update(body).digest('base64');
  if (actualHash !== contentHash) return { ok: false, problem: 'x-ms-content-sha256 does not match the body' };
  const stringToSign = `${request.method.toUpperCase()}\n${request.url}\n${date};${host};${contentHash}`;
  const expected = createHmac('sha256', Buffer.from(accessKey, 'base64')).update(stringToSign, 'utf8').digest();
  const given = Buffer.from(signature, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, problem: 'signature mismatch' };
  }
  return { ok: true };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a request presented, and why it was refused (no `problem`: accepted). */
interface Authentication {
  scheme: RecordedRequest['authentication'];
  token?: string;
  problem?: string;
}

export async function startAcsEmailStandIn(options: AcsEmailStandInOptions = {}): Promise<AcsEmailStandIn> {
  const { certificate } = options;
  const bearerTokens = new Set(options.bearerTokens ?? []);
  const accessKey = randomBytes(32).toString('base64');
  const otherKey = randomBytes(32).toString('base64');
  const sent: AcceptedEmail[] = [];
  const requests: RecordedRequest[] = [];
  const sendScript: SendBehaviour[] = [];
  const pollScript: PollBehaviour[] = [];
  const operations = new Map<string, Operation>();
  let endpoint = '';

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks));
      } catch (error) {
        reply(res, 500, {}, { code: 'InternalError', message: String(error) });
      }
    });
  };
  const server = certificate === undefined ? createServer(onRequest) : https.createServer({ key: certificate.key, cert: certificate.cert }, onRequest);

  /** How the request authenticated, set once per request by {@link authenticate} before anything is recorded. */
  const authentications = new WeakMap<IncomingMessage, Authentication>();

  function record(req: IncomingMessage, status: number): void {
    const auth = authentications.get(req) ?? { scheme: 'none', problem: 'not authenticated' };
    const entry: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      operationId: header(req.headers, 'operation-id'),
      authentication: auth.scheme,
      authenticated: auth.problem === undefined,
      status,
    };
    if (auth.token !== undefined) entry.bearerToken = auth.token;
    if (auth.problem !== undefined) entry.authProblem = auth.problem;
    requests.push(entry);
  }

  function authenticate(req: IncomingMessage, body: Buffer): Authentication {
    const authorization = header(req.headers, 'authorization');
    const token = authorization?.startsWith('Bearer ') === true ? authorization.slice('Bearer '.length) : undefined;
    // Over plain HTTP only the HMAC scheme is served, and a bearer token is refused as not being it.
    if (token !== undefined && certificate !== undefined) {
      return bearerTokens.has(token) ? { scheme: 'bearer', token } : { scheme: 'bearer', token, problem: 'unknown bearer token' };
    }
    const signature = verifyAcsSignature({ method: req.method ?? '', url: req.url ?? '', headers: req.headers }, body, accessKey);
    if (signature.ok) return { scheme: 'hmac' };
    const scheme = authorization === undefined ? 'none' : token === undefined ? 'hmac' : 'bearer';
    return { scheme, ...(token === undefined ? {} : { token }), problem: signature.problem };
  }

  function reply(res: ServerResponse, status: number, headers: Record<string, string>, error?: AcsError, body?: unknown): void {
    const payload = error !== undefined ? { error } : body;
    const text = payload === undefined ? '' : JSON.stringify(payload);
    const all: Record<string, string> = { ...headers };
    if (text !== '') all['content-type'] = 'application/json; charset=utf-8';
    if (error !== undefined) all['x-ms-error-code'] = error.code;
    res.writeHead(status, all);
    res.end(text);
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const method = req.method ?? '';
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const auth = authenticate(req, body);
    authentications.set(req, auth);
    if (auth.problem !== undefined) {
      record(req, 401);
      reply(res, 401, {}, { code: 'Denied', message: 'Denied by the resource provider.' });
      return;
    }
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion === null) {
      record(req, 400);
      reply(res, 400, {}, {
        code: 'MissingApiVersionParameter',
        message: 'The api-version query parameter (?api-version=) is required for all requests',
      });
      return;
    }
    if (method === 'POST' && url.pathname === '/emails:send') {
      handleSend(req, res, body, apiVersion);
      return;
    }
    const poll = /^\/emails\/operations\/([^/]+)$/.exec(url.pathname);
    if (method === 'GET' && poll) {
      handlePoll(req, res, decodeURIComponent(poll[1] ?? ''));
      return;
    }
    record(req, 404);
    reply(res, 404, {}, { code: 'NotFound', message: `${method} ${url.pathname} is not an ACS e-mail route` });
  }

  function handleSend(req: IncomingMessage, res: ServerResponse, body: Buffer, apiVersion: string): void {
    const behaviour = sendScript.shift() ?? { kind: 'accept', runningPolls: 1 };
    if (behaviour.kind === 'hangUp') {
      record(req, 0);
      req.socket.destroy();
      return;
    }
    if (behaviour.kind === 'respond') {
      record(req, behaviour.status);
      reply(res, behaviour.status, behaviour.headers ?? {}, behaviour.error);
      return;
    }
    const requestedId = header(req.headers, 'operation-id');
    if (requestedId !== undefined && !UUID.test(requestedId)) {
      record(req, 400);
      reply(res, 400, {}, { code: 'InvalidOperationId', message: 'Operation-Id must be a UUID.' });
      return;
    }
    const parsed = parseEmail(body);
    if ('problem' in parsed) {
      record(req, 400);
      reply(res, 400, {}, { code: 'BadRequest', message: parsed.problem });
      return;
    }
    const id = requestedId ?? randomUUID();
    const bodyHash = createHash('sha256').update(body).digest('hex');
    const existing = operations.get(id);
    if (existing !== undefined && existing.bodyHash !== bodyHash) {
      record(req, 409);
      reply(res, 409, {}, {
        code: 'Conflict',
        message: `Operation-Id ${id} is already used by a different request.`,
      });
      return;
    }
    if (existing === undefined) {
      const email: AcceptedEmail = { operationId: id, apiVersion, ...parsed.email, status: 'Running' };
      operations.set(id, {
        id,
        bodyHash,
        runningPollsLeft: behaviour.runningPolls ?? 1,
        outcome: behaviour.kind === 'failOperation' ? { status: 'Failed', error: behaviour.error } : { status: 'Succeeded' },
        email,
      });
      sent.push(email);
    }
    record(req, 202);
    const location = `${endpoint}/emails/operations/${encodeURIComponent(id)}?api-version=${encodeURIComponent(apiVersion)}`;
    reply(res, 202, { 'operation-location': location, 'operation-id': id }, undefined, { id, status: 'Running' });
  }

  function handlePoll(req: IncomingMessage, res: ServerResponse, id: string): void {
    const behaviour = pollScript.shift();
    if (behaviour?.kind === 'hangUp') {
      record(req, 0);
      req.socket.destroy();
      return;
    }
    if (behaviour?.kind === 'respond') {
      record(req, behaviour.status);
      reply(res, behaviour.status, behaviour.headers ?? {}, behaviour.error);
      return;
    }
    const operation = operations.get(id);
    if (operation === undefined) {
      record(req, 404);
      reply(res, 404, {}, { code: 'NotFound', message: `No operation ${id}.` });
      return;
    }
    record(req, 200);
    if (operation.runningPollsLeft > 0) {
      operation.runningPollsLeft -= 1;
      reply(res, 200, {}, undefined, { id, status: 'Running' });
      return;
    }
    operation.email.status = operation.outcome.status;
    reply(res, 200, {}, undefined, { id, ...operation.outcome });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  endpoint = `${certificate === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const untrust = certificate === undefined ? () => undefined : trustForLoopbackPort(port, certificate.cert);

  return {
    endpoint,
    accessKey,
    connectionString: `endpoint=${endpoint}/;accesskey=${accessKey}`,
    wrongKeyConnectionString: `endpoint=${endpoint}/;accesskey=${otherKey}`,
    sent,
    requests,
    script: (...behaviours) => void sendScript.push(...behaviours),
    scriptPolls: (...behaviours) => void pollScript.push(...behaviours),
    count: (method) => (method === undefined ? requests.length : requests.filter((r) => r.method === method).length),
    stop: () =>
      new Promise<void>((resolve, reject) => {
        untrust();
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

type ParsedEmail = { email: Omit<AcceptedEmail, 'operationId' | 'apiVersion' | 'status'> } | { problem: string };

/** Checks the request body the way the service's schema does (EmailMessage, api-version 2025-09-01). */
function parseEmail(body: Buffer): ParsedEmail {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { problem: 'The request body is not JSON.' };
  }
  if (typeof json !== 'object' || json === null) return { problem: 'The request body is not an object.' };
  const message = json as {
    senderAddress?: unknown;
    content?: { subject?: unknown; plainText?: unknown; html?: unknown };
    recipients?: { to?: unknown; cc?: unknown };
    headers?: unknown;
  };
  if (typeof message.senderAddress !== 'string') return { problem: 'senderAddress is required.' };
  const content = message.content;
  if (content === undefined || typeof content.subject !== 'string') return { problem: 'content.subject is required.' };
  if (typeof content.plainText !== 'string' && typeof content.html !== 'string') {
    return { problem: 'content.plainText or content.html is required.' };
  }
  const addresses = (list: unknown): string[] | undefined =>
    Array.isArray(list) && list.every((entry) => typeof (entry as { address?: unknown }).address === 'string')
      ? list.map((entry) => (entry as { address: string }).address)
      : undefined;
  const to = addresses(message.recipients?.to);
  if (to === undefined || to.length === 0) return { problem: 'recipients.to is required.' };
  const cc = message.recipients?.cc === undefined ? [] : addresses(message.recipients.cc);
  if (cc === undefined) return { problem: 'recipients.cc is malformed.' };
  const headers: Record<string, string> = {};
  if (message.headers !== undefined) {
    if (typeof message.headers !== 'object' || message.headers === null) return { problem: 'headers is malformed.' };
    for (const [name, value] of Object.entries(message.headers)) {
      if (typeof value !== 'string') return { problem: `header ${name} is not a string.` };
      headers[name] = value;
    }
  }
  return {
    email: {
      from: message.senderAddress,
      to,
      cc,
      subject: content.subject,
      text: typeof content.plainText === 'string' ? content.plainText : undefined,
      html: typeof content.html === 'string' ? content.html : undefined,
      headers,
    },
  };
}
