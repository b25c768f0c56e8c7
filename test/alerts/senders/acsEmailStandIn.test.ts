import { createHash, createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAcsEmailStandIn, type AcsEmailStandIn } from '../../support/acsEmailStandIn.js';

/**
 * The stand-in is only worth something if it refuses what ACS refuses. These requests are signed by hand, following
 * the ACS HMAC scheme, independently of the SDK's policy.
 */

let standIn: AcsEmailStandIn;

beforeEach(async () => {
  standIn = await startAcsEmailStandIn();
});

afterEach(async () => {
  await standIn.stop();
});

const PATH = '/emails:send?api-version=2025-09-01';
const OPERATION_ID = '3f0c7a52-1b7e-4c1e-9d0a-2b8f5e6a7c90';
const BODY = JSON.stringify({
  senderAddress: 'alerts@contoso.example',
  content: { subject: 'hello', plainText: 'hi' },
  recipients: { to: [{ address: 'ops@contoso.example' }] },
});

function signedHeaders(
  options: { body?: string; path?: string; date?: Date; key?: string; hashOf?: string } = {},
): Record<string, string> {
  const body = options.body ?? BODY;
  const date = (options.date ?? new Date()).toUTCString();
  const host = new URL(standIn.endpoint).host;
  const contentHash = createHash('sha256')
    .update(options.hashOf ?? body)
    .digest('base64');
  const stringToSign = `POST\n${options.path ?? PATH}\n${date};${host};${contentHash}`;
  const signature = createHmac('sha256', Buffer.from(options.key ?? standIn.accessKey, 'base64'))
    .update(stringToSign)
    .digest('base64');
  return {
    'content-type': 'application/json',
    'operation-id': OPERATION_ID,
    'x-ms-date': date,
    'x-ms-content-sha256': contentHash,
    authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
  };
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _authorization, ...rest } = headers;
  return rest;
}

async function post(headers: Record<string, string>, body = BODY): Promise<Response> {
  return fetch(`${standIn.endpoint}${PATH}`, { method: 'POST', headers, body });
}

describe('ACS e-mail stand-in', () => {
  it('accepts a correctly signed send and answers like ACS', async () => {
    const response = await post(signedHeaders());

    expect(response.status).toBe(202);
    expect(response.headers.get('operation-id')).toBe(OPERATION_ID);
    expect(response.headers.get('operation-location')).toBe(
      `${standIn.endpoint}/emails/operations/${OPERATION_ID}?api-version=2025-09-01`,
    );
    expect(await response.json()).toEqual({ id: OPERATION_ID, status: 'Running' });
    expect(standIn.sent).toHaveLength(1);
  });

  it.each([
    ['no Authorization header', () => withoutAuthorization(signedHeaders()), 'no Authorization header'],
    ['another scheme', () => ({ ...signedHeaders(), authorization: 'Bearer abc' }), 'not HMAC-SHA256'],
    ['a different key', () => signedHeaders({ key: Buffer.alloc(32, 7).toString('base64') }), 'signature mismatch'],
    ['a body that is not the hashed one', () => signedHeaders({ hashOf: '{}' }), 'x-ms-content-sha256 does not match the body'],
    ['a signature over another path', () => signedHeaders({ path: '/emails:send?api-version=2023-03-31' }), 'signature mismatch'],
    ['a stale x-ms-date', () => signedHeaders({ date: new Date(Date.now() - 20 * 60 * 1000) }), 'is stale'],
  ])('answers 401 to %s', async (_name, headers, problem) => {
    const response = await post(headers());

    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: { code: 'Denied', message: 'Denied by the resource provider.' } });
    expect(standIn.requests[0]?.authProblem).toContain(problem);
    expect(standIn.sent).toHaveLength(0);
  });
});
