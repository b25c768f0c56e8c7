import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('what gets deployed', () => {
  it('the build puts every function where package.json main says the host looks', async () => {
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { main: string };
    expect(pkg.main).toBe('dist/src/functions/*.js');
    const sources = (await readdir(path.join(root, 'src/functions'))).filter((f) => f.endsWith('.ts'));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(path.join(root, 'dist/src/functions', source.replace(/\.ts$/, '.js'))), source).toBe(true);
    }
  });

  it('the package holds what the host needs and no tests, benchmarks, settings or sample data', async () => {
    const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    for (const needed of ['package.json', 'host.json', 'routing.config.json', 'bin/iot-routing.js', 'dist/src/functions/telemetryStream.js']) {
      expect(files).toContain(needed);
    }
    const unwanted = files.filter((f) =>
      /^(test|bench|src|docs|\.ci|\.local|dist\/bench|dist\/test)\/|local\.settings|\.avro$|cases|\.eml$/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('every documented func publish names the worker runtime, which a clone has no local.settings.json to give', async () => {
    // Core Tools reads FUNCTIONS_WORKER_RUNTIME from local.settings.json (or the environment); without it, and
    // without a language flag, publish stops with "Can't determine project language from files".
    const ignored = (await readFile(path.join(root, '.gitignore'), 'utf8')).split('\n').map((l) => l.trim());
    expect(ignored).toContain('local.settings.json');
    const commands: string[] = [];
    for (const doc of ['README.md', 'docs/deployment.md']) {
      const text = await readFile(path.join(root, doc), 'utf8');
      for (const match of text.matchAll(/func azure functionapp publish[^\n`]*/g)) commands.push(`${doc}: ${match[0]}`);
    }
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const command of commands) expect(command).toMatch(/ --(javascript|typescript|node)\b/);
  });

  it('func publish leaves out tests, benchmarks, local settings and local state (.funcignore)', async () => {
    const ignored = (await readFile(path.join(root, '.funcignore'), 'utf8')).split('\n').map((l) => l.trim());
    for (const entry of ['test', 'bench', 'local.settings.json', '.local', 'dist/bench', '*.ts']) expect(ignored).toContain(entry);
    expect(ignored).not.toContain('dist');
    expect(ignored).not.toContain('host.json');
  });
});
