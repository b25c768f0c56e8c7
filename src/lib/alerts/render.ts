/**
 * Alert and digest e-mails from their facts and the configured templates.
 *
 * Safety (issue #5, item 7): every value that came from a device is HTML-escaped in the HTML part, has its control
 * characters (CR, LF, NEL, U+2028/2029, ...) folded to spaces in the text part and the subject, and was bounded when
 * the facts were taken ({@link FACT_LIMITS}). The subject is bounded again after rendering. Templates themselves are
 * configuration and are trusted as written.
 *
 * Deterministic: the output depends only on the facts and the templates (no "sent at" time), so a re-send after a
 * crash is byte-identical and ACS treats it as the same operation.
 */

import type { AlertFacts } from './alertPolicy.js';
import type { AlertsConfig } from './alertsConfig.js';
import { emailOperationId, sanitizeHeader, type EmailMessage } from './email.js';
import { escapeHtml, renderTemplate, type AlertPlaceholder, type DigestPlaceholder, type Template } from './templates.js';

export const MAX_SUBJECT_CHARS = 200;

export interface RenderContext {
  config: AlertsConfig;
  /** DASHBOARD_URL; each e-mail links to it with `?deviceId=`. */
  dashboardUrl: string;
}

/** A numeric reading folded over a digest window; other readings keep their latest value. */
export type DigestReading = { name: string; min: number; max: number } | { name: string; latest: string | number | boolean | null };

export interface DigestFacts {
  digestKey: string;
  deviceId: string;
  count: number;
  /** Earliest and latest enqueued time of the alerts folded in (ISO 8601); null when none had one. */
  firstTime: string | null;
  lastTime: string | null;
  readings: DigestReading[];
  /** The latest alert's properties. */
  properties: Array<[string, string]>;
  severities: string[];
  group: string | null;
  recipients: string[];
}

/** Half an hour either side of the alert (or the digest's span), so the link still shows it when opened later. */
const LINK_MARGIN_MS = 30 * 60_000;

export function dashboardLink(base: string, deviceId: string, first: string | null = null, last: string | null = first): string {
  const url = new URL(base);
  url.searchParams.set('deviceId', deviceId);
  const from = first === null ? NaN : Date.parse(first);
  const to = last === null ? NaN : Date.parse(last);
  if (!Number.isNaN(from) && !Number.isNaN(to)) {
    url.searchParams.set('from', new Date(from - LINK_MARGIN_MS).toISOString());
    url.searchParams.set('to', new Date(to + LINK_MARGIN_MS).toISOString());
  }
  return url.toString();
}

export function renderAlertEmail(facts: AlertFacts, context: RenderContext): EmailMessage {
  const { templates, from } = context.config;
  const link = dashboardLink(context.dashboardUrl, facts.deviceId, facts.enqueuedTime);
  const readingRows = facts.readings.map((r): [string, string] => [r.name, shown(r.value)]);
  const raw = (name: AlertPlaceholder): string => {
    switch (name) {
      case 'deviceId':
        return facts.deviceId;
      case 'enqueuedTime':
        return facts.enqueuedTime ?? 'an unknown time';
      case 'readings':
        return lines(readingRows);
      case 'enrichments':
        return lines(facts.properties);
      case 'dashboardUrl':
        return link;
      case 'severity':
        return facts.severity;
      case 'level':
        return facts.level ?? 'unlabelled';
      case 'alertId':
        return facts.alertKey;
      case 'group':
        return facts.group ?? '';
    }
  };
  const parts = { subject: templates.subject, text: templates.text, html: templates.html };
  return composeEmail(facts.alertKey, from, facts.recipients, parts, { readings: readingRows, enrichments: facts.properties }, raw);
}

export function renderDigestEmail(digest: DigestFacts, context: RenderContext): EmailMessage {
  const { templates, from } = context.config;
  const link = dashboardLink(context.dashboardUrl, digest.deviceId, digest.firstTime, digest.lastTime);
  const readingRows = digest.readings.map((r): [string, string] =>
    'min' in r ? [r.name, r.min === r.max ? String(r.min) : `${r.min} .. ${r.max}`] : [r.name, shown(r.latest)],
  );
  const raw = (name: DigestPlaceholder): string => {
    switch (name) {
      case 'deviceId':
        return digest.deviceId;
      case 'count':
        return String(digest.count);
      case 'alerts':
        return digest.count === 1 ? '1 alert' : `${digest.count} alerts`;
      case 'firstTime':
        return digest.firstTime ?? 'an unknown time';
      case 'lastTime':
        return digest.lastTime ?? 'an unknown time';
      case 'readings':
        return lines(readingRows);
      case 'enrichments':
        return lines(digest.properties);
      case 'dashboardUrl':
        return link;
      case 'severity':
        return digest.severities.join(', ');
      case 'alertId':
        return digest.digestKey;
      case 'group':
        return digest.group ?? '';
    }
  };
  const parts = { subject: templates.digestSubject, text: templates.digestText, html: templates.digestHtml };
  return composeEmail(digest.digestKey, from, digest.recipients, parts, { readings: readingRows, enrichments: digest.properties }, raw);
}

type Rows = ReadonlyArray<readonly [string, string]>;

/**
 * One alert or digest e-mail. `raw` gives each placeholder's value as text; readings and enrichments are rows, one
 * per line in the text part (as `raw` lists them) and a table in the HTML part; every other value is folded onto
 * one line and, in HTML, escaped. `key` names the send (operation id, X-Alert-Id), so a re-send is the same one.
 */
function composeEmail<P extends string>(
  key: string,
  from: string,
  to: string[],
  templates: { subject: Template<P>; text: Template<P>; html: Template<P> },
  rows: { readings: Rows; enrichments: Rows },
  raw: (name: P) => string,
): EmailMessage {
  const html = (name: P): string => {
    if (name === 'readings') return table(rows.readings);
    if (name === 'enrichments') return table(rows.enrichments);
    return escapeHtml(oneLine(raw(name)));
  };
  return {
    operationId: emailOperationId(key),
    from,
    to,
    subject: sanitizeHeader(renderTemplate(templates.subject, raw), MAX_SUBJECT_CHARS),
    text: renderTemplate(templates.text, (name) => textValue(name, raw)),
    html: renderTemplate(templates.html, html),
    headers: { 'X-Alert-Id': key },
  };
}

/** One `name: value` line per entry; each entry folded to one line first, so a value cannot add lines. */
function lines(rows: ReadonlyArray<readonly [string, string]>): string {
  if (rows.length === 0) return '(none)';
  return rows.map(([k, v]) => `${oneLine(k)}: ${oneLine(v)}`).join('\n');
}

/** Single values fold to one line; the list slots were folded entry by entry ({@link lines}). */
function textValue<P extends string>(name: P, raw: (name: P) => string): string {
  return name === 'readings' || name === 'enrichments' ? raw(name) : oneLine(raw(name));
}

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  if (rows.length === 0) return '<p>(none)</p>';
  const body = rows.map(([k, v]) => `<tr><th align="left">${escapeHtml(oneLine(k))}</th><td>${escapeHtml(oneLine(v))}</td></tr>`).join('');
  return `<table>${body}</table>`;
}

function shown(value: string | number | boolean | null): string {
  return value === null ? 'null' : String(value);
}

/** Control characters, including the ones mail tools treat as line breaks, fold to one space. */
function oneLine(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
}
