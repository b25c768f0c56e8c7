import { describe, expect, it } from 'vitest';
import {
  boundText,
  checkEmailMessage,
  EMAIL_LIMITS,
  emailOperationId,
  isOperationId,
  rejectionDetail,
  sanitizeHeader,
  type EmailMessage,
} from '../../../src/lib/alerts/email.js';

const base: EmailMessage = {
  operationId: emailOperationId('k'),
  from: 'alerts@contoso.example',
  to: ['ops@contoso.example'],
  subject: 'subject',
  text: 'text',
  html: '<p>html</p>',
};

describe('emailOperationId', () => {
  it('is a stable version-5 UUID of the alert key', () => {
    const id = emailOperationId('device-7/msg-42');

    expect(id).toBe(emailOperationId('device-7/msg-42'));
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(isOperationId(id)).toBe(true);
    expect(emailOperationId('device-7/msg-43')).not.toBe(id);
  });
});

describe('sanitizeHeader', () => {
  it('turns every run of control characters into one space, so no header line can start', () => {
    expect(sanitizeHeader('Hot\r\nBcc: x@evil.example')).toBe('Hot Bcc: x@evil.example');
    expect(sanitizeHeader('a\u0000\u001b[31mb\u2028c\u2029d\u0085e\x7f')).toBe('a [31mb c d e');
    expect(sanitizeHeader('\r\n  padded \n')).toBe('padded');
  });

  it('bounds the length at 998 by default, marking the cut', () => {
    const long = sanitizeHeader('x'.repeat(5000));

    expect(Array.from(long)).toHaveLength(EMAIL_LIMITS.headerChars);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('boundText', () => {
  it('never splits a surrogate pair', () => {
    expect(boundText('🔥🔥🔥🔥', 3)).toBe('🔥🔥…');
    expect(boundText('short', 10)).toBe('short');
    expect(boundText('abc', 0)).toBe('');
  });
});

describe('checkEmailMessage', () => {
  it('returns a sanitised copy of a valid message', () => {
    const checked = checkEmailMessage({ ...base, subject: 'a\r\nb', headers: { 'X-Key': 'v\r\nBcc: y' } });

    expect(checked).toEqual({ ok: true, message: { ...base, subject: 'a b', headers: { 'X-Key': 'v Bcc: y' } } });
  });

  it('reports every problem at once', () => {
    const checked = checkEmailMessage({
      ...base,
      operationId: 'alert-1',
      from: 'Alerts <alerts@contoso.example>',
      to: [],
      cc: ['ok@contoso.example', 'x@y.example\nBcc: z@evil.example'],
      text: '',
      html: '',
      headers: { Bcc: 'z@evil.example', 'Bad Name': 'v' },
    });

    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.problems).toEqual([
      'operationId "alert-1" is not a UUID',
      'from "Alerts <alerts@contoso.example>" is not a plain e-mail address',
      'to is empty',
      'cc[1] "x@y.example\\nBcc: z@evil.example" is not a plain e-mail address',
      'both text and html are empty',
      'header Bcc cannot be set as a custom header',
      'header name "Bad Name" is not a plain token',
    ]);
  });

  it('bounds body size and recipient count', () => {
    const checked = checkEmailMessage({
      ...base,
      to: Array.from({ length: 51 }, (_, i) => `r${i}@contoso.example`),
      html: 'x'.repeat(EMAIL_LIMITS.bodyBytes + 1),
    });

    expect(!checked.ok && checked.problems).toEqual([
      '51 recipients; at most 50',
      `html is ${EMAIL_LIMITS.bodyBytes + 1} bytes; at most ${EMAIL_LIMITS.bodyBytes}`,
    ]);
  });
});

describe('rejectionDetail', () => {
  it('is the detail of the EmailRejected reason a caller quarantines with: operation, what it carried, codes, error', () => {
    expect(rejectionDetail({ status: 'failed', operationId: 'id', error: 'dropped', providerCode: 'EmailDropped' }, 'for alert k')).toBe(
      'e-mail id for alert k was rejected (EmailDropped): dropped',
    );
    expect(rejectionDetail({ status: 'failed', operationId: 'id', error: 'Denied', providerCode: 'Denied', httpStatus: 403 }, 'with the digest of 2 alerts')).toBe(
      'e-mail id with the digest of 2 alerts was rejected (Denied, HTTP 403): Denied',
    );
    expect(rejectionDetail({ status: 'failed', operationId: 'id', error: 'no' }, 'for alert k')).toBe('e-mail id for alert k was rejected: no');
  });
});
