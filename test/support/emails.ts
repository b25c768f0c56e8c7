import { emailOperationId, type EmailMessage } from '../../src/lib/alerts/email.js';

/** An alert e-mail with every field a sender carries (two recipients, a copy, a custom header), for sender tests. */
export function sampleEmail(overrides: Partial<EmailMessage> = {}): EmailMessage {
  return {
    operationId: emailOperationId('device-7/msg-42'),
    from: 'alerts@contoso.example',
    to: ['ops@contoso.example', 'oncall@contoso.example'],
    cc: ['audit@contoso.example'],
    subject: 'Critical: device-7 temperature 97.5',
    text: 'device-7 reported level=critical\ntemperature: 97.5',
    html: '<p>device-7 reported <b>level=critical</b></p>',
    headers: { 'X-Alert-Key': 'device-7/msg-42' },
    ...overrides,
  };
}
