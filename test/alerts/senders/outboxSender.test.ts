import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emailOperationId, type EmailMessage } from '../../../src/lib/alerts/email.js';
import { encodeQuotedPrintable } from '../../../src/lib/alerts/mime.js';
import { createOutboxSender } from '../../../src/lib/alerts/outboxSender.js';
import { ManualClock } from '../../../src/lib/ports.js';
import { sampleEmail } from '../../support/emails.js';

// ---------------------------------------------------------------------------------------------------------------
// A deliberately small RFC 5322 / MIME reader, written from the RFCs rather than from the writer, so that a
// round trip proves the file is readable by something other than its own author.
// ---------------------------------------------------------------------------------------------------------------

interface ParsedPart {
  headers: Map<string, string[]>;
  body: string;
}

interface ParsedEml extends ParsedPart {
  rawHeaderLines: string[];
  parts: ParsedPart[];
}

function splitHeaderBlock(text: string): { rawHeaderLines: string[]; headers: Map<string, string[]>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('no blank line after the headers');
  const rawHeaderLines = text.slice(0, end).split('\r\n');
  const headers = new Map<string, string[]>();
  let current: { name: string; value: string } | undefined;
  const commit = (): void => {
    if (current === undefined) return;
    const key = current.name.toLowerCase();
    headers.set(key, [...(headers.get(key) ?? []), current.value]);
  };
  for (const line of rawHeaderLines) {
    if (/^[ \t]/.test(line)) {
      if (current === undefined) throw new Error(`continuation before any header: ${line}`);
      current.value += line; // unfolding: remove the CRLF only (RFC 5322 2.2.3)
      continue;
    }
    const match = /^([!-9;-~]+):[ \t]?(.*)$/.exec(line);
    if (!match) throw new Error(`not a header line: ${JSON.stringify(line)}`);
    commit();
    current = { name: match[1] ?? '', value: match[2] ?? '' };
  }
  commit();
  return { rawHeaderLines, headers, body: text.slice(end + 4) };
}

/** RFC 2047: whitespace between adjacent encoded words is dropped. */
function decodeWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_all, charset: string, encoding: string, text: string) => {
      expect(charset.toLowerCase()).toBe('utf-8');
      if (encoding.toUpperCase() !== 'B') throw new Error('only B encoding expected');
      return Buffer.from(text, 'base64').toString('utf8');
    });
}

function decodeQuotedPrintable(text: string): string {
  const bytes: number[] = [];
  const unfolded = text.replace(/=\r\n/g, '');
  for (let i = 0; i < unfolded.length; i++) {
    const c = unfolded[i] ?? '';
    if (c === '=') {
      const hex = unfolded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new Error(`bad escape =${hex}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function parseEml(text: string): ParsedEml {
  const top = splitHeaderBlock(text);
  const contentType = top.headers.get('content-type')?.[0] ?? '';
  const boundary = /boundary="([^"]+)"/.exec(contentType)?.[1];
  if (boundary === undefined) throw new Error('no boundary');
  const sections = top.body.split(`\r\n--${boundary}`);
  const closing = sections.pop() ?? '';
  expect(closing).toBe('--\r\n');
  const parts = sections.slice(1).map((section) => {
    const part = splitHeaderBlock(section.replace(/^\r\n/, ''));
    expect(part.headers.get('content-transfer-encoding')).toEqual(['quoted-printable']);
    return { headers: part.headers, body: decodeQuotedPrintable(part.body) };
  });
  return { ...top, parts };
}

function one(parsed: ParsedPart, name: string): string {
  const values = parsed.headers.get(name.toLowerCase()) ?? [];
  expect(values, `exactly one ${name} header`).toHaveLength(1);
  return values[0] ?? '';
}

// ---------------------------------------------------------------------------------------------------------------

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'outbox-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function sendAndParse(email: EmailMessage, clock = new ManualClock('2025-07-01T10:00:00Z')): Promise<{ raw: string; eml: ParsedEml }> {
  const result = await createOutboxSender({ directory, clock }).send(email);
  expect(result).toEqual({ status: 'sent', operationId: email.operationId, providerId: `${email.operationId}.eml` });
  const raw = await readFile(join(directory, `${email.operationId}.eml`), 'utf8');
  return { raw, eml: parseEml(raw) };
}

describe('outbox sender', () => {
  it('looks an operation up by its file: null before the send, sent after, and writes nothing', async () => {
    const email = sampleEmail();
    const sender = createOutboxSender({ directory });
    expect(await sender.lookup(email)).toBeNull();
    await expect(readdir(directory)).resolves.toEqual([]);
    await sender.send(email);
    expect(await sender.lookup(email)).toEqual({ status: 'sent', operationId: email.operationId, providerId: `${email.operationId}.eml` });
    expect(await readdir(directory)).toEqual([`${email.operationId}.eml`]);
  });

  it('writes <operationId>.eml as a multipart/alternative message that parses back', async () => {
    const email = sampleEmail();
    const { raw, eml } = await sendAndParse(email);

    expect(one(eml, 'From')).toBe('alerts@contoso.example');
    expect(one(eml, 'To')).toBe('ops@contoso.example, oncall@contoso.example');
    expect(one(eml, 'Cc')).toBe('audit@contoso.example');
    expect(decodeWords(one(eml, 'Subject'))).toBe(email.subject);
    expect(one(eml, 'Date')).toBe('Tue, 01 Jul 2025 10:00:00 +0000');
    expect(one(eml, 'Message-ID')).toBe(`<${email.operationId}@contoso.example>`);
    expect(one(eml, 'MIME-Version')).toBe('1.0');
    expect(one(eml, 'X-Alert-Key')).toBe('device-7/msg-42');
    expect(one(eml, 'Content-Type')).toMatch(/^multipart\/alternative; boundary="=_alt_/);
    expect(eml.parts.map((p) => p.headers.get('content-type'))).toEqual([
      ['text/plain; charset=utf-8'],
      ['text/html; charset=utf-8'],
    ]);
    expect(eml.parts[0]?.body).toBe(email.text.replace(/\n/g, '\r\n'));
    expect(eml.parts[1]?.body).toBe(email.html);
    // RFC 5322: CRLF line ends only, and no line longer than 998 characters.
    expect(raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(Math.max(...raw.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(78);
  });

  it('cannot be made to write extra headers through CR/LF in the subject or a header value', async () => {
    const email = sampleEmail({
      subject: 'Hot\r\nBcc: attacker@evil.example\r\n\r\n<script>x</script>',
      headers: { 'X-Device': 'dev\nReply-To: attacker@evil.example' },
    });
    const { eml } = await sendAndParse(email);

    expect(eml.headers.has('bcc')).toBe(false);
    expect(eml.headers.has('reply-to')).toBe(false);
    expect(decodeWords(one(eml, 'Subject'))).toBe('Hot Bcc: attacker@evil.example <script>x</script>');
    expect(one(eml, 'X-Device')).toBe('dev Reply-To: attacker@evil.example');
    expect(eml.rawHeaderLines.every((line) => /^(\s|(Date|From|To|Cc|Subject|Message-ID|MIME-Version|X-Device|X-Alert-Key|Content-Type):)/.test(line))).toBe(true);
  });

  it('refuses an address carrying CR/LF and writes nothing', async () => {
    const result = await createOutboxSender({ directory }).send(sampleEmail({ to: ['ops@contoso.example\r\nBcc: x@evil.example'] }));

    expect(result).toMatchObject({ status: 'failed', providerCode: 'LocalValidation' });
    expect(await readdir(directory)).toEqual([]);
  });

  it('encodes a non-ASCII or long subject as UTF-8 encoded words within the line limit', async () => {
    const subject = `Kritisch: Gerät „Kühlhaus-3“ meldet 🔥 ${'sehr '.repeat(40)}heiß`;
    const { raw, eml } = await sendAndParse(sampleEmail({ subject }));

    expect(one(eml, 'Subject')).toMatch(/^=\?UTF-8\?B\?/);
    expect(decodeWords(one(eml, 'Subject'))).toBe(subject);
    expect(Math.max(...raw.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(78);
  });

  it('round-trips bodies that would break naive MIME: the boundary, long lines, trailing space, =, From', async () => {
    const operationId = emailOperationId('tricky');
    const text = [
      `--=_alt_${operationId}`,
      `--=_alt_${operationId}--`,
      'a'.repeat(300),
      'trailing space ',
      'tab\t',
      'From the device: x=1 =3D =\u00e9',
      '',
      'ünïcödé 🔥'.repeat(20),
    ].join('\n');
    const { raw, eml } = await sendAndParse(sampleEmail({ operationId, text, html: `<pre>${text}</pre>` }));

    expect(eml.parts).toHaveLength(2);
    expect(eml.parts[0]?.body).toBe(text.replace(/\n/g, '\r\n'));
    expect(eml.parts[1]?.body).toBe(`<pre>${text}</pre>`.replace(/\n/g, '\r\n'));
    expect(Math.max(...raw.split('\r\n').map((l) => l.length))).toBeLessThanOrEqual(78);
  });

  it('a repeated send finds the file and does not rewrite it', async () => {
    const clock = new ManualClock('2025-07-01T10:00:00Z');
    const sender = createOutboxSender({ directory, clock });
    const email = sampleEmail();
    await sender.send(email);
    const path = join(directory, `${email.operationId}.eml`);
    const first = await readFile(path, 'utf8');
    const firstInode = (await stat(path)).ino;

    clock.advance(60_000);
    const again = await sender.send({ ...email, subject: 'a re-rendered subject' });

    expect(again).toEqual({ status: 'sent', operationId: email.operationId, providerId: `${email.operationId}.eml` });
    expect(await readFile(path, 'utf8')).toBe(first);
    expect((await stat(path)).ino).toBe(firstInode);
  });

  it('concurrent sends of one operation leave exactly one complete file and no temporary files', async () => {
    const email = sampleEmail();
    const results = await Promise.all(Array.from({ length: 8 }, () => createOutboxSender({ directory }).send(email)));

    expect(results.every((r) => r.status === 'sent')).toBe(true);
    expect(await readdir(directory)).toEqual([`${email.operationId}.eml`]);
    parseEml(await readFile(join(directory, `${email.operationId}.eml`), 'utf8'));
  });

  it('creates the directory when it is missing', async () => {
    const nested = join(directory, 'a', 'b');
    const result = await createOutboxSender({ directory: nested }).send(sampleEmail());

    expect(result.status).toBe('sent');
    expect(await readdir(nested)).toHaveLength(1);
  });
});

describe('encodeQuotedPrintable', () => {
  it('keeps lines within 76 characters and encodes = and non-ASCII', () => {
    const encoded = encodeQuotedPrintable(`${'é'.repeat(100)}=x`);

    expect(encoded.split('\r\n').every((line) => line.length <= 76)).toBe(true);
    expect(encoded).toContain('=C3=A9');
    expect(encoded.endsWith('=3Dx')).toBe(true);
    expect(decodeQuotedPrintable(encoded)).toBe(`${'é'.repeat(100)}=x`);
  });
});
