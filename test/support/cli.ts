import { PassThrough } from 'node:stream';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with captured streams, as `iot-routing ...args` would. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runCommand(main, args, env);
}

/**
 * Runs one command function directly with captured streams. Unlike `runCli`, usage errors are thrown rather than
 * turned into exit code 1, so a test can assert on the exact error.
 */
export async function runCommand(
  command: (args: string[], io: CliIo) => Promise<number>,
  args: string[],
  env: Record<string, string | undefined> = {},
  /** Sees each stderr chunk as it is written (e.g. to press Ctrl+C mid-run). */
  onStderr?: (text: string) => void,
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => {
    err.push(c);
    onStderr?.(c.toString('utf8'));
  });
  const code = await command(args, { stdout, stderr, env });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}
