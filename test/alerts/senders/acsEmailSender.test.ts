import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmailClientOptions } from '@azure/communication-email';
import { ACS_EMAIL_API_VERSION, createAcsEmailSender, retryAfterSeconds } from '../../../src/lib/alerts/acsEmailSender.js';
import { emailOperationId, type EmailSender } from '../../../src/lib/alerts/email.js';
import { isRoutingError, isTransient } from '../../../src/lib/errors.js';
import { connectionCredential } from '../../../src/lib/connectionCredential.js';
import { acs, startAcsEmailStandIn, type AcsEmailStandIn } from '../../support/acsEmailStandIn.js';
import { routingRejection } from '../../support/rejections.js';
import { sampleEmail } from '../../support/emails.js';

let standIn: AcsEmailStandIn;

beforeEach(async () => {
  standIn = await startAcsEmailStandIn();
});

afterEach(async () => {
  await standIn.stop();
});

/** No SDK retries, so each scripted response is seen exactly once. */
const NO_RETRIES: EmailClientOptions = { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } };

function sender(
  clientOptions: EmailClientOptions = NO_RETRIES,
  connectionString = standIn.connectionString,
  maxWaitMs = 5000,
): EmailSender {
  return createAcsEmailSender({ connectionString }, { pollIntervalMs: 5, maxWaitMs, clientOptions });
}

describe('ACS e-mail sender against the loopback ACS stand-in', () => {
  it('sends: the service receives every field, signed, under our Operation-Id', async () => {
    const email = sampleEmail();
    const result = await sender().send(email);

    expect(result).toEqual({ status: 'sent', operationId: email.operationId, providerId: email.operationId });
    expect(standIn.sent).toEqual([
      {
        operationId: email.operationId,
        apiVersion: expect.stringMatching(/^\d{4}-\d{2}-\d{2}/),
        from: 'alerts@contoso.example',
        to: ['ops@contoso.example', 'oncall@contoso.example'],
        cc: ['audit@contoso.example'],
        subject: email.subject,
        text: email.text,
        html: email.html,
        headers: { 'X-Alert-Key': 'device-7/msg-42' },
        status: 'Succeeded',
      },
    ]);
    expect(standIn.requests.every((r) => r.authenticated)).toBe(true);
    expect(standIn.requests[0]).toMatchObject({ method: 'POST', status: 202, operationId: email.operationId });
    expect(standIn.count('GET')).toBeGreaterThanOrEqual(1);
  });

  it('strips CR/LF from the subject before it leaves the process', async () => {
    await sender().send(sampleEmail({ subject: 'Critical\r\nBcc: attacker@evil.example\u2028x' }));

    expect(standIn.sent[0]?.subject).toBe('Critical Bcc: attacker@evil.example x');
  });

  it('429 with Retry-After surfaces at once as EmailThrottled, even with the SDK retry policy on', async () => {
    standIn.script(acs.throttled('37'));
    // The default client options: the SDK would otherwise sleep 37 s and retry three times.
    const started = Date.now();
    const error = await routingRejection(sender({ allowInsecureConnection: true }).send(sampleEmail()));

    expect(error.code).toBe('EmailThrottled');
    expect(isTransient(error)).toBe(true);
    expect(error.retryAfterSeconds).toBe(37);
    expect(standIn.count('POST')).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(standIn.sent).toHaveLength(0);
  });

  it('reads retry-after-ms, rounding up to whole seconds', async () => {
    standIn.script(acs.throttled({ ms: 1500 }));
    const error = await routingRejection(sender().send(sampleEmail()));

    expect(error).toMatchObject({ code: 'EmailThrottled', retryAfterSeconds: 2 });
  });

  it('429 on a status poll is EmailUnavailable, not EmailThrottled (the send was accepted: no pause); the redelivered send resumes the same operation', async () => {
    standIn.scriptPolls({ kind: 'respond', status: 429, headers: { 'retry-after': '5' } });
    const email = sampleEmail();
    const error = await routingRejection(sender().send(email));
    expect(error).toMatchObject({ code: 'EmailUnavailable', retryAfterSeconds: 5 });

    const retried = await sender().send(email);
    expect(retried.status).toBe('sent');
    expect(standIn.sent).toHaveLength(1);
  });

  it('a 4xx on a status poll is no rejection: the send was accepted, so it is retried and resumes the operation', async () => {
    standIn.scriptPolls({ kind: 'respond', status: 404, error: { code: 'NotFound', message: 'Operation not found.' } });
    const email = sampleEmail();
    const error = await routingRejection(sender().send(email));
    expect(error).toMatchObject({ code: 'EmailUnavailable' });
    expect(isTransient(error)).toBe(true);

    expect((await sender().send(email)).status).toBe('sent');
    expect(standIn.sent).toHaveLength(1);
  });

  it('503 is EmailUnavailable (transient)', async () => {
    standIn.script(acs.unavailable());
    const error = await routingRejection(sender().send(sampleEmail()));

    expect(error.code).toBe('EmailUnavailable');
    expect(isTransient(error)).toBe(true);
    expect(standIn.sent).toHaveLength(0);
  });

  it('a brief 503 is retried in-process by the SDK, a bounded number of times', async () => {
    const quickRetries: EmailClientOptions = { allowInsecureConnection: true, retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 20 } };
    standIn.script(acs.unavailable(), acs.accept());
    expect((await sender(quickRetries).send(sampleEmail())).status).toBe('sent');

    standIn.script(acs.unavailable(), acs.unavailable(), acs.unavailable());
    const postsBefore = standIn.count('POST');
    const error = await routingRejection(sender(quickRetries).send(sampleEmail({ operationId: emailOperationId('other') })));
    expect(error.code).toBe('EmailUnavailable');
    expect(standIn.count('POST') - postsBefore).toBe(3);
  });

  it('a 503 asking for a long wait is handed back to the trigger instead of slept on', async () => {
    standIn.script(acs.unavailable({ 'retry-after': '120' }));
    const started = Date.now();
    const error = await routingRejection(sender({ allowInsecureConnection: true }).send(sampleEmail()));

    expect(error).toMatchObject({ code: 'EmailUnavailable', retryAfterSeconds: 120 });
    expect(standIn.count('POST')).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a dropped connection is EmailUnavailable', async () => {
    standIn.script(acs.hangUp());
    const error = await routingRejection(sender().send(sampleEmail()));

    expect(error.code).toBe('EmailUnavailable');
  });

  it('400 is a permanent failure carrying the service error code, and is not retried', async () => {
    standIn.script(acs.badRequest('InvalidRecipient', 'The recipient address is not valid.'));
    const email = sampleEmail();
    const result = await sender({ allowInsecureConnection: true }).send(email);

    expect(result).toEqual({
      status: 'failed',
      operationId: email.operationId,
      error: 'The recipient address is not valid.',
      providerCode: 'InvalidRecipient',
      httpStatus: 400,
    });
    expect(standIn.count()).toBe(1);
  });

  it('401 (a wrong access key) is a permanent failure; the stand-in refused the signature', async () => {
    const result = await sender(NO_RETRIES, standIn.wrongKeyConnectionString).send(sampleEmail());

    expect(result).toMatchObject({ status: 'failed', httpStatus: 401, providerCode: 'Denied' });
    expect(standIn.requests).toEqual([
      expect.objectContaining({ method: 'POST', status: 401, authenticated: false, authProblem: 'signature mismatch' }),
    ]);
    expect(standIn.sent).toHaveLength(0);
  });

  it('an operation that ends Failed is a permanent failure with the operation error', async () => {
    standIn.script(acs.failOperation('EmailDropped', 'Email was dropped after several attempts to deliver.'));
    const email = sampleEmail();
    const result = await sender().send(email);

    expect(result).toEqual({
      status: 'failed',
      operationId: email.operationId,
      error: 'Email was dropped after several attempts to deliver.',
      providerCode: 'EmailDropped',
    });
    expect(standIn.sent[0]?.status).toBe('Failed');
  });

  it('the same operation id sent twice reaches the service twice under that id, and is one e-mail', async () => {
    const email = sampleEmail();
    const first = await sender().send(email);
    const second = await sender().send(email);

    expect(first).toEqual(second);
    const posts = standIn.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.operationId)).toEqual([email.operationId, email.operationId]);
    expect(standIn.sent).toHaveLength(1);
  });

  it('a repeated id with a different body (409) reports the existing operation instead of sending again', async () => {
    const email = sampleEmail();
    await sender().send(email);
    const reRendered = await sender().send({ ...email, text: `${email.text}\n(re-rendered)` });

    expect(reRendered).toEqual({ status: 'sent', operationId: email.operationId, providerId: email.operationId });
    expect(standIn.requests.filter((r) => r.method === 'POST').map((r) => r.status)).toEqual([202, 409]);
    expect(standIn.requests.at(-1)).toMatchObject({ method: 'GET', status: 200 });
    expect(standIn.sent).toHaveLength(1);
  });

  it('an operation still running at the deadline is EmailUnavailable, not a verdict', async () => {
    standIn.script(acs.accept(1_000_000));
    const error = await routingRejection(sender(NO_RETRIES, standIn.connectionString, 150).send(sampleEmail()));

    expect(error.code).toBe('EmailUnavailable');
    expect(error.message).toMatch(/did not finish within 150 ms/);
  });

  it('lookup: null for an id ACS never accepted, the outcome of one it did, and never a POST', async () => {
    const email = sampleEmail();
    expect(await sender().lookup(email)).toBeNull();
    expect(standIn.count('POST')).toBe(0);

    expect((await sender().send(email)).status).toBe('sent');
    expect(await sender().lookup(email)).toMatchObject({ status: 'sent', operationId: email.operationId });
    expect(standIn.count('POST')).toBe(1);
    expect(standIn.sent).toHaveLength(1);
    // The operation URL a lookup builds carries the api-version the SDK itself sends (the stand-in refuses none).
    expect(ACS_EMAIL_API_VERSION).toBe(standIn.sent[0]?.apiVersion);
    const gets = standIn.requests.filter((r) => r.method === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => r.url.includes(`api-version=${ACS_EMAIL_API_VERSION}`) && r.authenticated)).toBe(true);
  });

  it('lookup of an operation that ended Failed is that failure, and one whose poll is refused is transient', async () => {
    standIn.script(acs.failOperation());
    const email = sampleEmail();
    expect((await sender().send(email)).status).toBe('failed');
    expect(await sender().lookup(email)).toMatchObject({ status: 'failed', operationId: email.operationId });

    const other = sampleEmail({ operationId: emailOperationId('other') });
    expect((await sender().send(other)).status).toBe('sent');
    standIn.scriptPolls({ kind: 'respond', status: 503 });
    expect(await routingRejection(sender().lookup(other))).toMatchObject({ code: 'EmailUnavailable' });
  });

  it('refuses a message that breaks local rules without calling the service', async () => {
    const result = await sender().send(sampleEmail({ to: ['ops@contoso.example\r\nBcc: x@evil.example'], operationId: 'not-a-uuid' }));

    expect(result).toMatchObject({ status: 'failed', providerCode: 'LocalValidation' });
    expect(result.status === 'failed' && result.error).toMatch(/not a UUID.*not a plain e-mail address/);
    expect(standIn.count()).toBe(0);
  });

  it('reaches a plain-http endpoint only because the SDK allows it with allowInsecureConnection', async () => {
    const error = await sender({ retryOptions: { maxRetries: 0 } }).send(sampleEmail()).catch((e: unknown) => e);

    expect(isRoutingError(error)).toBe(false);
    expect(String(error)).toMatch(/allowInsecureConnection is false/);
    expect(standIn.count()).toBe(0);
  });

  it('accepts an endpoint with the credential the settings choose, without contacting anything', () => {
    const credential = connectionCredential({}, 'ACS_ENDPOINT');
    expect(() => createAcsEmailSender({ endpoint: 'https://example.communication.azure.com', credential })).not.toThrow();
  });
});

describe('retryAfterSeconds', () => {
  const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] });
  const now = new Date('2025-07-01T10:00:00Z');

  it('reads seconds, milliseconds and HTTP dates', () => {
    expect(retryAfterSeconds(headers({ 'retry-after': '12' }), now)).toBe(12);
    expect(retryAfterSeconds(headers({ 'x-ms-retry-after-ms': '100' }), now)).toBe(1);
    expect(retryAfterSeconds(headers({ 'retry-after': 'Tue, 01 Jul 2025 10:00:30 GMT' }), now)).toBe(30);
    expect(retryAfterSeconds(headers({ 'retry-after': 'Tue, 01 Jul 2025 09:00:00 GMT' }), now)).toBe(0);
    expect(retryAfterSeconds(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterSeconds(headers({}), now)).toBeUndefined();
  });
});
