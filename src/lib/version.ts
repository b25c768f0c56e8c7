import { createRequire } from 'node:module';
import path from 'node:path';

// package.json sits two levels above both src/lib (sources under vitest) and dist/src/lib (the built app).
const require = createRequire(import.meta.url);
const found = (() => {
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(candidate) as { name?: string; version?: string };
      if (pkg.name === 'iot-routing-functions') return { pkg, root: path.dirname(require.resolve(candidate)) };
    } catch {
      // try the next layout
    }
  }
  return null;
})();

export const APP_VERSION: string = found?.pkg.version ?? '0.0.0';

/**
 * The app's root directory (where package.json, host.json and routing.config.json are deployed), found from this
 * module's own location: the Functions host does not promise the worker's working directory (it is the standby
 * placeholder's on some plans until specialization changes it), so relative app paths are not resolved against it.
 * The working directory when the package cannot be found.
 */
export const APP_ROOT: string = found?.root ?? process.cwd();
