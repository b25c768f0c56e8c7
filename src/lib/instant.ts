/**
 * The one reading of a `from`/`to` time every HTTP route and CLI command takes: ISO 8601 with an explicit zone
 * (`2024-03-01T10:00:00Z`, `2024-03-01T12:00:00.5+02:00`), or a date meaning UTC midnight (`2024-03-01`). A time
 * without a zone is refused (it would be read in the server's zone), and so is one that does not exist
 * (`2024-02-30`, `24:00`): an error, never another time.
 */
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
/** RFC 3339 allows `t` and `z` in lower case. */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/i;
/** A zone offset whose `+` a URL query turned into a space (`...T12:00:00 02:00`). */
const PLUS_AS_SPACE = /^\d{4}-\d{2}-\d{2}T[\d:.]+ \d{2}:\d{2}$/i;

/** Epoch milliseconds, or null for anything else. */
export function parseInstant(text: string): number | null {
  const date = DATE_ONLY.exec(text);
  const stamp = date === null ? TIMESTAMP.exec(text) : null;
  const parts = date ?? stamp;
  if (parts === null) return null;
  const [y, mo, d] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const [h, mi, s] = stamp === null ? [0, 0, 0] : [Number(stamp[4]), Number(stamp[5]), Number(stamp[6] ?? 0)];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const day = Date.UTC(y, mo - 1, d);
  if (new Date(day).getUTCDate() !== d || y < 1970) return null;
  let ms = day + ((h * 60 + mi) * 60 + s) * 1000 + (stamp?.[7] === undefined ? 0 : Math.floor(Number(`0.${stamp[7]}`) * 1000));
  const zone = stamp?.[8];
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const zoneMinutes = Number(zone.slice(4, 6));
    const offsetMinutes = Number(zone.slice(1, 3)) * 60 + zoneMinutes;
    if (zoneMinutes > 59 || offsetMinutes > 18 * 60) return null;
    ms -= sign * offsetMinutes * 60_000;
  }
  return ms;
}

/** Where a parameter was written: a URL's query string (the HTTP endpoints) or command-line flags (the CLI). */
export type ParameterSource = 'url' | 'flags';

/**
 * What is wrong with `text` as the time `name`, in the words every route and command uses. The `%2B` advice is for
 * a URL only: a command line decodes nothing, so `%2B02:00` there would be refused again.
 */
export function instantProblem(name: string, text: string, source: ParameterSource): string {
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
  const problem = `${name}: ${shown} is not an ISO 8601 time with a zone (2024-03-01T10:00:00Z) or a date (2024-03-01)`;
  return source === 'url' && PLUS_AS_SPACE.test(text) ? `${problem}; a "+" in a URL reads as a space: write the offset as %2B02:00, or use Z` : problem;
}

/**
 * A `from`/`to` parameter: absent is undefined; a value that is not an instant adds {@link instantProblem} to
 * `errors` and is undefined too.
 */
export function instantParameter(name: string, text: string | undefined, errors: string[], source: ParameterSource): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseInstant(text);
  if (ms === null) {
    errors.push(instantProblem(name, text, source));
    return undefined;
  }
  return ms;
}
