/**
 * E-mail templates: text with `{{placeholder}}` slots, compiled once when the configuration is read so that an
 * unknown placeholder is a configuration error rather than a literal `{{typo}}` in someone's inbox.
 *
 * Rendering is a pure function of the template and the values: nothing time- or instance-dependent is added, so an
 * alert rendered again after a crash or a redelivery is byte-identical, which is what lets ACS recognise the
 * repeated `Operation-Id` as the same send (docs/adr/0005-email-senders.md).
 */

export const ALERT_PLACEHOLDERS = [
  'deviceId',
  'enqueuedTime',
  'readings',
  'enrichments',
  'dashboardUrl',
  'severity',
  'level',
  'alertId',
  'group',
] as const;

export const DIGEST_PLACEHOLDERS = [
  'deviceId',
  'count',
  /** The count with its noun: "1 alert", "12 alerts". */
  'alerts',
  'firstTime',
  'lastTime',
  'readings',
  'enrichments',
  'dashboardUrl',
  'severity',
  'alertId',
  'group',
] as const;

export type AlertPlaceholder = (typeof ALERT_PLACEHOLDERS)[number];
export type DigestPlaceholder = (typeof DIGEST_PLACEHOLDERS)[number];

export type TemplatePart<P extends string> = { kind: 'text'; text: string } | { kind: 'slot'; name: P };

export interface Template<P extends string> {
  source: string;
  parts: ReadonlyArray<TemplatePart<P>>;
}

/** Long enough for a styled HTML body; a template is configuration, not a place for a whole newsletter. */
export const MAX_TEMPLATE_CHARS = 20_000;

const SLOT = /\{\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}\}/g;

export function compileTemplate<P extends string>(
  source: string,
  allowed: readonly P[],
  at: string,
  errors: string[],
): Template<P> {
  if (source.length > MAX_TEMPLATE_CHARS) errors.push(`${at}: ${source.length} characters; at most ${MAX_TEMPLATE_CHARS}`);
  const parts: Array<TemplatePart<P>> = [];
  let last = 0;
  for (const match of source.matchAll(SLOT)) {
    const name = match[1] ?? '';
    const index = match.index;
    if (index > last) parts.push({ kind: 'text', text: source.slice(last, index) });
    if ((allowed as readonly string[]).includes(name)) parts.push({ kind: 'slot', name: name as P });
    else errors.push(`${at}: unknown placeholder {{${name}}} (known: ${allowed.join(', ')})`);
    last = index + match[0].length;
  }
  if (last < source.length) parts.push({ kind: 'text', text: source.slice(last) });
  const rest = parts.filter((p) => p.kind === 'text').map((p) => (p as { text: string }).text).join('');
  if (rest.includes('{{')) errors.push(`${at}: "{{" that does not open a placeholder such as {{deviceId}}`);
  return { source, parts };
}

/** `values` returns each slot's text already made safe for the template's context (escaped for HTML). */
export function renderTemplate<P extends string>(template: Template<P>, values: (name: P) => string): string {
  let out = '';
  for (const part of template.parts) out += part.kind === 'text' ? part.text : values(part.name);
  return out;
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ENTITIES[c] ?? c);
}

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export const DEFAULT_TEMPLATES = {
  subject: '[{{severity}}] {{deviceId}}: {{level}} alert at {{enqueuedTime}}',
  text: [
    'Device {{deviceId}} sent a {{level}} message at {{enqueuedTime}}.',
    '',
    'Readings',
    '{{readings}}',
    '',
    'Message properties',
    '{{enrichments}}',
    '',
    'Dashboard: {{dashboardUrl}}',
    'Alert id: {{alertId}}',
    '',
  ].join('\n'),
  html: [
    '<p>Device <strong>{{deviceId}}</strong> sent a <strong>{{level}}</strong> message at {{enqueuedTime}}.</p>',
    '<h3>Readings</h3>',
    '{{readings}}',
    '<h3>Message properties</h3>',
    '{{enrichments}}',
    '<p><a href="{{dashboardUrl}}">Open the dashboard for {{deviceId}}</a></p>',
    '<p style="color:#666">Alert id: {{alertId}}</p>',
  ].join('\n'),
  digestSubject: '[{{severity}}] {{deviceId}}: {{alerts}} between {{firstTime}} and {{lastTime}}',
  digestText: [
    'Device {{deviceId}} sent {{alerts}} between {{firstTime}} and {{lastTime}}. They were held back and',
    'folded into this digest: the device was in its quiet period after an alert e-mail, the send budget was',
    'spent, or the e-mail service asked to wait.',
    '',
    'Readings (lowest .. highest)',
    '{{readings}}',
    '',
    'Latest message properties',
    '{{enrichments}}',
    '',
    'Dashboard: {{dashboardUrl}}',
    'Digest id: {{alertId}}',
    '',
  ].join('\n'),
  digestHtml: [
    '<p>Device <strong>{{deviceId}}</strong> sent <strong>{{alerts}}</strong> between {{firstTime}} and {{lastTime}}.',
    'They were held back and folded into this digest: the device was in its quiet period after an alert e-mail, the send budget was spent, or the e-mail service asked to wait.</p>',
    '<h3>Readings (lowest .. highest)</h3>',
    '{{readings}}',
    '<h3>Latest message properties</h3>',
    '{{enrichments}}',
    '<p><a href="{{dashboardUrl}}">Open the dashboard for {{deviceId}}</a></p>',
    '<p style="color:#666">Digest id: {{alertId}}</p>',
  ].join('\n'),
} as const;
