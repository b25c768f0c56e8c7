// `npm install` runs this so that `npx iot-routing` works straight after a clone.
// Installs that omit dev dependencies (a production deploy of an already built package) have no
// TypeScript; they ship dist/ and skip the build instead of failing the install.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  if (existsSync('dist/src')) process.exit(0);
  console.error('prepare: TypeScript is not installed and dist/ is missing; run `npm install` with dev dependencies.');
  process.exit(1);
}
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
