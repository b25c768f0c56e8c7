import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';

/** Azurite's well-known development account. Public by design (documented by Microsoft); not a secret. */
export const AZURITE_ACCOUNT_NAME = 'devstoreaccount1';
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** What a test needs to reach Azurite; serialisable so a vitest globalSetup can `provide` it to workers. */
export interface AzuriteConnection {
  /** An `AzureWebJobsStorage`-style connection string with an explicit `BlobEndpoint`. */
  connectionString: string;
  /** `http://127.0.0.1:<port>/devstoreaccount1` */
  blobEndpoint: string;
}

export interface RunningAzurite extends AzuriteConnection {
  port: number;
  /** Milliseconds from spawn to "listening". */
  startupMs: number;
  /** Idempotent. SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

export interface StartAzuriteOptions {
  /** Give up waiting for "listening" after this long. Default 30 s (a cold `node_modules` on a busy CI runner). */
  timeoutMs?: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by test/support/azuriteGlobalSetup.ts when vitest.config.ts lists it; absent otherwise. */
    azurite?: AzuriteConnection;
  }
}

export function azuriteConnectionString(blobEndpoint: string): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};` +
    `BlobEndpoint=${blobEndpoint};`
  );
}

const READY = /successfully listens on (https?:\/\/[^\s]+)/;
const OUTPUT_LINES_KEPT = 40;

/**
 * Starts Azurite's blob service from node_modules as a child process on a loopback, OS-assigned port, with
 * in-memory persistence. A child rather than in-process because Azurite parses `process.argv` and keeps
 * module-level singletons (logger, extent memory limit), which would clash with the test runner and with a second
 * instance.
 */
export async function startAzurite(options: StartAzuriteOptions = {}): Promise<RunningAzurite> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const main = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  // Azurite writes nothing with --inMemoryPersistence, but it refuses --location with it and falls back to the
  // cwd as its workspace; an empty temporary cwd guarantees the repository is never touched.
  const workspace = await mkdtemp(join(tmpdir(), 'azurite-'));
  const env = { ...process.env };
  delete env.AZURITE_DB; // would switch Azurite to its SQL metadata store
  const args = [
    main,
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    '0',
    '--skipApiVersionCheck',
    '--inMemoryPersistence',
    '--disableTelemetry',
    '--silent',
  ];

  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: workspace, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const killOnExit = () => {
    child.kill('SIGKILL');
    rmSync(workspace, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);

  let blobUrl: string;
  try {
    blobUrl = await waitForReady(child, output, timeoutMs);
  } catch (error) {
    process.off('exit', killOnExit);
    await terminate(child);
    await rm(workspace, { recursive: true, force: true });
    throw error;
  }
  const startupMs = Math.round(performance.now() - started);
  // Keep draining both pipes (a full pipe would block Azurite) but do not let them hold the process open.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();

  const port = Number(new URL(blobUrl).port);
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT_NAME}`;
  let stopping: Promise<void> | undefined;
  return {
    connectionString: azuriteConnectionString(blobEndpoint),
    blobEndpoint,
    port,
    startupMs,
    stop: () => {
      stopping ??= (async () => {
        process.off('exit', killOnExit);
        await terminate(child);
        await rm(workspace, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

function waitForReady(child: ChildProcess, output: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error: Error | undefined, url?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(url ?? '');
    };
    const failure = (why: string) =>
      new Error(
        `Azurite blob service ${why}.\n--- Azurite output (last ${OUTPUT_LINES_KEPT} lines) ---\n${output.join('\n')}`,
      );
    const timer = setTimeout(() => settle(failure(`did not report listening within ${timeoutMs} ms`)), timeoutMs);

    const collect = (stream: NodeJS.ReadableStream | null, label: string) => {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const lines = (partial + chunk).split(/\r?\n/);
        partial = lines.pop() ?? '';
        for (const line of lines) {
          output.push(`${label}${line}`);
          if (output.length > OUTPUT_LINES_KEPT) output.shift();
          const ready = READY.exec(line);
          if (ready?.[1] !== undefined) settle(undefined, ready[1]);
        }
      });
    };
    collect(child.stdout, '');
    collect(child.stderr, '[stderr] ');
    child.once('error', (error) => settle(failure(`could not be spawned (${error.message})`)));
    child.once('exit', (code, signal) => settle(failure(`exited before listening (code ${code}, signal ${signal})`)));
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const graceful = await Promise.race([exited.then(() => true), delay(3_000).then(() => false)]);
  if (!graceful) {
    child.kill('SIGKILL');
    await exited;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * For a test file: the run's shared Azurite when the globalSetup provides one, otherwise a private instance
 * started before the file's tests and stopped after them. Call at the top level of the file; call the returned
 * function inside hooks and tests.
 */
export function useAzurite(): () => AzuriteConnection {
  let connection: AzuriteConnection | undefined;
  let own: RunningAzurite | undefined;
  beforeAll(async () => {
    const shared = inject('azurite');
    if (shared !== undefined) {
      connection = shared;
      return;
    }
    own = await startAzurite();
    connection = own;
  });
  afterAll(async () => {
    await own?.stop();
  });
  return () => {
    if (connection === undefined) throw new Error('useAzurite(): Azurite is not running yet (call it inside a test)');
    return connection;
  };
}

/** Containers are never shared between tests, so suites may run in parallel against one Azurite. */
export function uniqueContainerName(label = 'test'): string {
  const safe = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'test';
  return `${safe}-${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}
