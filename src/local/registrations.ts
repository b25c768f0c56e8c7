/**
 * Loads the real function modules (src/functions) with @azure/functions' `app.*` registration methods replaced by
 * recorders, so the local host knows every function exactly as the Functions host would: its name, trigger kind,
 * options (schedule, route, queue, path, retry policy, ...) and handler.
 *
 * Why this works: the library is a CommonJS bundle whose `app` export is a plain object with writable methods, and
 * each function module calls `app.<kind>(...)` on that object when it is first imported. The shorthand HTTP methods
 * (`app.get`, `app.post`, ...) call the bundle's internal `http` directly, so they are recorded separately and turned
 * into `http` registrations with one method, as the library itself does.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import functions from '@azure/functions';

export type FunctionHandler = (triggerInput: unknown, context: unknown) => unknown;

export interface Registration {
  /** The `app` method's name, with the HTTP shorthands folded into `http`: `eventHub`, `timer`, `storageBlob`, ... */
  kind: string;
  name: string;
  options: Record<string, unknown> & { handler: FunctionHandler };
  /** The module file that registered it, relative to the functions directory. */
  file: string;
}

const HTTP_SHORTHANDS: Readonly<Record<string, string>> = {
  get: 'GET',
  put: 'PUT',
  post: 'POST',
  patch: 'PATCH',
  deleteRequest: 'DELETE',
};

/** Not registrations: `hook` is a namespace of lifecycle hooks and `setup` configures the library. */
const NOT_REGISTRATIONS = new Set(['hook', 'setup']);

/**
 * The functions directory next to this module: `src/functions/*.ts` when running from sources (vitest),
 * `dist/src/functions/*.js` when running the build (`npm start`).
 */
export function defaultFunctionsDirectory(): { directory: string; extension: string } {
  const here = fileURLToPath(import.meta.url);
  return { directory: path.resolve(path.dirname(here), '../functions'), extension: path.extname(here) };
}

const loaded = new Map<string, Promise<Registration[]>>();

/**
 * Imports every function module once per process and returns what each registered. A module's registrations
 * happen when it is first evaluated, so the result is cached: importing it again would register nothing.
 */
export function loadRegistrations(options: Partial<{ directory: string; extension: string }> = {}): Promise<Registration[]> {
  const defaults = defaultFunctionsDirectory();
  const directory = options.directory ?? defaults.directory;
  const extension = options.extension ?? defaults.extension;
  const key = `${directory}|${extension}`;
  let result = loaded.get(key);
  if (result === undefined) {
    result = importRecording(directory, extension);
    loaded.set(key, result);
  }
  return result;
}

async function importRecording(directory: string, extension: string): Promise<Registration[]> {
  const app = functions.app as unknown as Record<string, unknown>;
  const registrations: Registration[] = [];
  const originals = new Map<string, unknown>();
  let currentFile = '';
  for (const [method, value] of Object.entries(app)) {
    if (NOT_REGISTRATIONS.has(method) || typeof value !== 'function') continue;
    originals.set(method, value);
    const httpMethod = HTTP_SHORTHANDS[method];
    app[method] = (name: string, optionsOrHandler: unknown) => {
      const options: Registration['options'] =
        typeof optionsOrHandler === 'function'
          ? { handler: optionsOrHandler as FunctionHandler }
          : { ...(optionsOrHandler as Registration['options']) };
      if (httpMethod !== undefined) options['methods'] = [httpMethod];
      registrations.push({ kind: httpMethod !== undefined ? 'http' : method, name, options, file: currentFile });
    };
  }
  try {
    const files = (await readdir(directory))
      .filter((f) => f.endsWith(extension) && !f.endsWith(`.d${extension}`) && !f.includes('.test.'))
      .sort();
    for (const file of files) {
      currentFile = file;
      await import(pathToFileURL(path.join(directory, file)).href);
    }
  } finally {
    for (const [method, original] of originals) app[method] = original;
  }
  return registrations;
}
