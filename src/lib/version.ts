import { createRequire } from 'node:module';

// package.json sits two levels above both src/lib (sources under vitest) and dist/src/lib (the built app).
const require = createRequire(import.meta.url);
const pkg = (() => {
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const found = require(candidate) as { name?: string; version?: string };
      if (found.name === 'iot-routing-functions') return found;
    } catch {
      // try the next layout
    }
  }
  return { version: '0.0.0' };
})();

export const APP_VERSION: string = pkg.version ?? '0.0.0';
