/**
 * One CSV cell, the way every CSV answer of this app writes it (archive queries, reports): RFC 4180 quoting, and
 * OWASP's advice against formula injection.
 *
 * - A text cell starting with = + - @ TAB or CR is prefixed with an apostrophe, so a spreadsheet shows it as text
 *   instead of evaluating it. Text that is entirely a decimal number ("-5", "+3.2") is left as it is: it cannot form
 *   a formula, and telemetry is full of negative values.
 * - A text cell holding `#` is quoted, so that `comment='#'` (how pandas skips the archive answers' trailer lines)
 *   does not cut the row there.
 * - A text cell that already starts with an apostrophe gets one too, so the rule can be undone: a cell starting with
 *   an apostrophe is the text after it. Device ids may hold `'` as well as `=`, and `=a` and `'=a` stay two ids
 *   (spreadsheets hide the leading apostrophe, so they show each as sent).
 */
import type { JsonValue } from './message/RoutedMessage.js';

/**
 * RFC 4180's, and `#`: the archive answers end with `#` trailer lines, read away with pandas' `comment='#'`, which
 * would also cut a row at an unquoted `#` (a device id may hold one).
 */
const NEEDS_QUOTES = /[",\r\n#]/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function csvCell(value: JsonValue | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  const first = text.charCodeAt(0);
  // ' = + - @ TAB CR
  if (first === 39 || ((first === 61 || first === 43 || first === 45 || first === 64 || first === 9 || first === 13) && !DECIMAL.test(text))) {
    text = `'${text}`;
  }
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
