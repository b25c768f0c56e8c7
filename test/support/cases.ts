import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Real files written by Azure services live in ../shared/cases, beside the repository, never in it. Suites that
 * read them skip, saying why, where that folder is absent.
 */
export const CASES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/cases');
export const HAVE_CASES = existsSync(CASES_DIR);
export const CASES_SKIP_REASON = `../shared/cases not found at ${CASES_DIR}: the Azure-written sample files are not beside this checkout`;

export function casePath(relative: string): string {
  return path.join(CASES_DIR, relative);
}
