/**
 * {@link EmailSender} on Azure Communication Services, through the SDK's `EmailClient`.
 *
 * One send is one long-running operation: `POST /emails:send` with our `Operation-Id`, then polls of
 * `Operation-Location` until the operation Succeeds or Fails. How each outcome maps (docs/adr/0005-email-senders.md):
 *
 * | service says                                  | result                                             |
 * |-----------------------------------------------|----------------------------------------------------|
 * | 202, operation Succeeded                      | `{ status: 'sent' }`                               |
 * | 202, operation Failed / Canceled              | `{ status: 'failed' }` with the operation's error  |
 * | 400, 401, 403, 404, 413, other 4xx on send    | `{ status: 'failed' }` with the service's code     |
 * | 4xx but 429 on a status poll (send accepted)  | throw `EmailUnavailable`: the e-mail may be sent   |
 * | 409 on send (our Operation-Id already exists) | poll that existing operation, report its outcome   |
 * | 429                                           | throw `EmailThrottled` with `retryAfterSeconds`    |
 * | 408, 5xx, network error, still Running at the deadline | throw `EmailUnavailable`                  |
 *
 * `lookup` polls the operation under the message's id without posting (a takeover asks it before anything else):
 * the operation's outcome as above, or null on a 404 before any status (ACS never accepted a send of that id).
 */

import {
  EmailClient,
  type EmailClientOptions,
  type EmailMessage as AcsEmailMessage,
  type EmailSendResult,
} from '@azure/communication-email';
import type { TokenCredential } from '@azure/identity';
import { isRoutingError, RoutingError } from '../errors.js';
import { acsConnectionStringEndpoint } from './alertsConfig.js';
import { checkEmailMessage, localRejection, type EmailMessage, type EmailSender, type SendResult } from './email.js';

export type AcsEmailConnection =
  /** `endpoint=https://<resource>.communication.azure.com/;accesskey=<base64>` (HMAC-SHA256 request signing). */
  | { connectionString: string }
  /**
   * Microsoft Entra ID; the identity needs a role that allows sending e-mail on the resource. The credential comes
   * from `connectionCredential(settings, 'ACS_ENDPOINT')`.
   */
  | { endpoint: string; credential: TokenCredential };

export interface AcsEmailSenderOptions {
  /**
   * Delay between status polls when the service does not say (a `retry-after` on a poll response takes
   * precedence). Default 2000, the SDK's own default.
   */
  pollIntervalMs?: number;
  /**
   * How long one `send` or `lookup` may take, polls included, before it gives up with `EmailUnavailable`. The
   * operation keeps its id, so the redelivery's takeover looks it up and picks up the same operation. Default 60000.
   */
  maxWaitMs?: number;
  /**
   * Passed to `EmailClient`. `retryOptions` is merged over this adapter's defaults; `additionalPolicies` are
   * added after this adapter's own. Tests use `{ allowInsecureConnection: true }` to reach a loopback stand-in.
   */
  clientOptions?: EmailClientOptions;
}

type PipelinePolicy = NonNullable<EmailClientOptions['additionalPolicies']>[number]['policy'];
type PipelineResponse = Awaited<ReturnType<PipelinePolicy['sendRequest']>>;

/**
 * The SDK's default retry policy sleeps for whatever Retry-After the service sends, three times over. For a 429
 * from ACS (30/min, 100/h on a custom domain) that can hold an invocation for minutes while Service Bus could
 * redeliver instead, so 429 never reaches the retry policy (see {@link surfaceThrottlingPolicy}); what is left to
 * retry in-process is 408, 5xx and network errors, briefly.
 */
const DEFAULT_RETRY_OPTIONS = { maxRetries: 2, retryDelayInMs: 250, maxRetryDelayInMs: 2000 } as const;

/** A 503 asking to wait longer than this is handed back to the trigger rather than slept on. */
const MAX_IN_PROCESS_RETRY_AFTER_MS = 2000;

const DEFAULT_POLL_INTERVAL_MS = 2000;
const DEFAULT_MAX_WAIT_MS = 60_000;

export function createAcsEmailSender(connection: AcsEmailConnection, options: AcsEmailSenderOptions = {}): EmailSender {
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const given = options.clientOptions ?? {};
  const clientOptions: EmailClientOptions = {
    ...given,
    retryOptions: { ...DEFAULT_RETRY_OPTIONS, ...given.retryOptions },
    additionalPolicies: [
      { policy: surfaceThrottlingPolicy, position: 'perRetry' },
      ...(given.additionalPolicies ?? []),
    ],
  };
  const client =
    'connectionString' in connection
      ? new EmailClient(connection.connectionString, clientOptions)
      : new EmailClient(connection.endpoint, connection.credential, clientOptions);

  const endpoint = 'connectionString' in connection ? (acsConnectionStringEndpoint(connection.connectionString) ?? '') : connection.endpoint;

  /** One send, or a lookup of the operation under the message's id, polled until it ends or `maxWaitMs` passes. */
  const run = async (message: EmailMessage, lookup: boolean): Promise<SendResult | null> => {
    const checked = checkEmailMessage(message);
    if (!checked.ok) return localRejection(message, checked.problems);
    const email = checked.message;
    const abortSignal = AbortSignal.timeout(maxWaitMs);
    // The poller reports a Failed operation as a bare Error; the status body with the service's error code is
    // only visible to the response callback.
    let lastStatus: EmailSendResult | undefined;
    const onResponse = (raw: { parsedBody?: unknown }): void => {
      const body = raw.parsedBody as Partial<EmailSendResult> | undefined;
      if (typeof body?.status === 'string' && typeof body.id === 'string') lastStatus = body as EmailSendResult;
    };
    const common = { updateIntervalInMs: pollIntervalMs, abortSignal, onResponse };
    const poll = async (sendUrl: string): Promise<SendResult> => {
      const poller = await client.beginSend(toAcsMessage(email), { ...common, resumeFrom: serializedOperation(sendUrl, email.operationId) });
      return succeeded(email.operationId, await poller.pollUntilDone({ abortSignal }));
    };

    if (lookup) {
      try {
        return await poll(new URL(`/emails:send?api-version=${ACS_EMAIL_API_VERSION}`, endpoint).toString());
      } catch (error) {
        // No operation under this id: the service never accepted a send of it.
        if (isRestError(error) && error.statusCode === 404 && lastStatus === undefined) return null;
        return settle(error, email.operationId, lastStatus, maxWaitMs);
      }
    }
    try {
      const poller = await client.beginSend(toAcsMessage(email), { ...common, operationId: email.operationId });
      return succeeded(email.operationId, await poller.pollUntilDone({ abortSignal }));
    } catch (error) {
      // An operation status (the 202's body, or a poll's) means the service holds the send: it may complete.
      if (!isConflict(error)) return settle(error, email.operationId, lastStatus, maxWaitMs);
      // Invariant: an Operation-Id is derived from one alert key, so an existing operation with our id *is* this
      // alert's send (made earlier, perhaps with a differently rendered body). Report its outcome; never send again.
      try {
        return await poll(error.request.url);
      } catch (resumeError) {
        return settle(resumeError, email.operationId, lastStatus, maxWaitMs);
      }
    }
  };

  return {
    send: async (message) => (await run(message, false))!,
    lookup: (message) => run(message, true),
  };
}

/**
 * The api-version this SDK release sends (its generated client's default), for the operation URL a resume polls
 * without having posted first. A test checks it against what the SDK puts on its own requests.
 */
export const ACS_EMAIL_API_VERSION = '2025-09-01';


function toAcsMessage(email: EmailMessage): AcsEmailMessage {
  const acs: AcsEmailMessage = {
    senderAddress: email.from,
    content: { subject: email.subject, plainText: email.text, html: email.html },
    recipients: { to: email.to.map((address) => ({ address })) },
  };
  if (email.cc !== undefined) acs.recipients.cc = email.cc.map((address) => ({ address }));
  if (email.headers !== undefined) acs.headers = { ...email.headers };
  return acs;
}

function succeeded(operationId: string, result: EmailSendResult): SendResult {
  if (result.status === 'Succeeded') return { status: 'sent', operationId, providerId: result.id };
  return failedOperation(operationId, result);
}

function failedOperation(operationId: string, result: EmailSendResult): SendResult {
  return {
    status: 'failed',
    operationId,
    error: result.error?.message ?? `the send operation ended ${result.status}`,
    providerCode: result.error?.code ?? result.status,
  };
}

/**
 * Turns anything `beginSend`/`pollUntilDone` threw into a permanent result or a transient throw.
 */
function settle(
  error: unknown,
  operationId: string,
  lastStatus: EmailSendResult | undefined,
  maxWaitMs: number,
): SendResult {
  if (isRoutingError(error)) throw error;
  if (lastStatus !== undefined && (lastStatus.status === 'Failed' || lastStatus.status === 'Canceled')) {
    return failedOperation(operationId, lastStatus);
  }
  if (isAbort(error)) {
    const message = `ACS send ${operationId} did not finish within ${maxWaitMs} ms`;
    throw new RoutingError('EmailUnavailable', message, { cause: error });
  }
  if (!isRestError(error)) throw error;
  const status = error.statusCode;
  const code = error.code;
  if (status === undefined || status === 408 || status >= 500) {
    const options: { cause: unknown; retryAfterSeconds?: number } = { cause: error };
    const retryAfter = error.response === undefined ? undefined : retryAfterSeconds(error.response.headers, new Date());
    if (retryAfter !== undefined) options.retryAfterSeconds = retryAfter;
    const what = status === undefined ? (code ?? 'network error') : `HTTP ${status} ${code ?? ''}`.trim();
    throw new RoutingError('EmailUnavailable', `ACS send ${operationId} failed: ${what}: ${error.message}`, options);
  }
  if (status === 429 && error.request?.method !== 'GET') throw throttled(operationId, error.response?.headers, error.message, error);
  if (error.request?.method === 'GET') {
    // A status poll refused, after the service accepted the send: the e-mail may well be on its way, so this is
    // no rejection. The redelivery's takeover looks the Operation-Id up and polls the existing operation again.
    throw new RoutingError('EmailUnavailable', `ACS accepted send ${operationId}, but its status poll answered HTTP ${status}: ${error.message}`, {
      cause: error,
    });
  }
  const failed: SendResult = { status: 'failed', operationId, error: error.message, httpStatus: status };
  if (code !== undefined) failed.providerCode = code;
  return failed;
}

/**
 * Throws 429 (and 503 with a long Retry-After) out of the pipeline before the SDK's retry policy sees it: the retry
 * policy re-throws anything that is not a `RestError` at once, so the wait is left to Service Bus redelivery.
 */
const surfaceThrottlingPolicy: PipelinePolicy = {
  name: 'surfaceAcsThrottling',
  async sendRequest(request, next) {
    const response = await next(request);
    if (response.status === 429 && request.method === 'GET') {
      // A throttled status poll: ACS accepted the send, which may well be delivered. Not EmailThrottled, which
      // pauses sending: the redelivered alert would be folded into a digest and mailed a second time. The
      // redelivery's takeover looks the Operation-Id up, which polls the existing operation again.
      const seconds = retryAfterSeconds(response.headers, new Date());
      throw new RoutingError('EmailUnavailable', `ACS accepted a send, but its status poll was throttled (429): ${serviceMessage(response)}`, {
        ...(seconds === undefined ? {} : { retryAfterSeconds: seconds }),
      });
    }
    if (response.status === 429) {
      throw throttled(operationIdOf(request.headers), response.headers, serviceMessage(response), undefined);
    }
    if (response.status === 503) {
      const seconds = retryAfterSeconds(response.headers, new Date());
      if (seconds !== undefined && seconds * 1000 > MAX_IN_PROCESS_RETRY_AFTER_MS) {
        throw new RoutingError('EmailUnavailable', `ACS unavailable (503): ${serviceMessage(response)}`, {
          retryAfterSeconds: seconds,
        });
      }
    }
    return response;
  },
};

function throttled(operationId: string, headers: HeaderBag | undefined, message: string, cause: unknown): RoutingError {
  const options: { cause?: unknown; retryAfterSeconds?: number } = {};
  if (cause !== undefined) options.cause = cause;
  const seconds = headers === undefined ? undefined : retryAfterSeconds(headers, new Date());
  if (seconds !== undefined) options.retryAfterSeconds = seconds;
  return new RoutingError('EmailThrottled', `ACS throttled send ${operationId || '(poll)'} (429): ${message}`, options);
}

interface HeaderBag {
  get(name: string): string | undefined;
}

/**
 * Seconds to wait, from `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds) or `Retry-After` (seconds or an
 * HTTP date), in the order the Azure SDK reads them; rounded up so a caller never retries early.
 */
export function retryAfterSeconds(headers: HeaderBag, now: Date): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = headers.get(name);
    if (value !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.ceil(Number(value) / 1000);
  }
  const value = headers.get('retry-after');
  if (value === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

function operationIdOf(headers: HeaderBag): string {
  return headers.get('operation-id') ?? '';
}

function serviceMessage(response: PipelineResponse): string {
  try {
    const body = JSON.parse(response.bodyAsText ?? '') as { error?: { code?: string; message?: string } };
    if (body.error?.message !== undefined) return `${body.error.code ?? ''} ${body.error.message}`.trim();
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return (response.bodyAsText ?? '').slice(0, 200) || `HTTP ${response.status}`;
}

/**
 * The state `beginSend({ resumeFrom })` restores a poller from (core-lro's serialised form, as `poller.toString()`
 * writes it), pointing at our operation's status URL. The api-version is the one the rejected send used.
 */
function serializedOperation(sendUrl: string, operationId: string): string {
  const url = new URL(sendUrl);
  url.pathname = `/emails/operations/${encodeURIComponent(operationId)}`;
  const apiVersion = url.searchParams.get('api-version');
  url.search = apiVersion === null ? '' : `?api-version=${encodeURIComponent(apiVersion)}`;
  return JSON.stringify({
    state: {
      status: 'running',
      config: { metadata: { mode: 'OperationLocation' }, operationLocation: url.toString() },
    },
  });
}

interface RestErrorLike {
  name: 'RestError';
  message: string;
  code?: string;
  statusCode?: number;
  request: { url: string; method?: string };
  response?: PipelineResponse;
}

function isRestError(error: unknown): error is RestErrorLike {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'RestError';
}

function isConflict(error: unknown): error is RestErrorLike {
  return isRestError(error) && error.statusCode === 409 && typeof error.request?.url === 'string';
}

function isAbort(error: unknown): boolean {
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined;
  return name === 'AbortError' || name === 'TimeoutError';
}
