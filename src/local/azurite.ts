/**
 * Azurite's blob service from node_modules, as a child process. Used by `npm start` (data kept on disk under
 * `.local/azurite`, so a restart sees the previous run's archive, reports and checkpoints) and by the tests
 * (in memory, a throw-away instance per run).
 *
 * A child rather than in-process because Azurite parses `process.argv` and keeps module-level singletons (logger,
 * extent memory limit), which would clash with the host process and with a second instance.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** Azurite's well-known development account. Public by design (documented by Microsoft); not a secret. */
export const AZURITE_ACCOUNT_NAME = 'devstoreaccount1';
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** What a client needs to reach Azurite; serialisable so a vitest globalSetup can hand it to workers. */
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
  /** Where the data lives; null when in memory. */
  location: string | null;
  /** Idempotent. SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

export interface StartAzuriteOptions {
  /** Give up waiting for "listening" after this long. Default 30 s (a cold `node_modules` on a busy CI runner). */
  timeoutMs?: number;
  /**
   * A directory to keep the data in (created if missing). Absent: in-memory persistence, nothing written to disk.
   */
  location?: string;
  /** Blob service port on 127.0.0.1. Default 0 (the OS picks a free one). */
  port?: number;
}

export function azuriteConnectionString(blobEndpoint: string): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};` +
    `BlobEndpoint=${blobEndpoint};`
  );
}

const READY = /successfully listens on (https?:\/\/[^\s]+)/;
const OUTPUT_LINES_KEPT = 40;

export async function startAzurite(options: StartAzuriteOptions = {}): Promise<RunningAzurite> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const main = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  const location = options.location === undefined ? null : resolve(options.location);
  // In memory, Azurite refuses --location and falls back to the cwd as its workspace; an empty temporary cwd
  // guarantees the repository is never touched. On disk, the location is both.
  const workspace = location ?? (await mkdtemp(join(tmpdir(), 'azurite-')));
  if (location !== null) await mkdir(location, { recursive: true });
  const removeWorkspace = location === null;
  const env = { ...process.env };
  delete env.AZURITE_DB; // would switch Azurite to its SQL metadata store
  const flags = [
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(options.port ?? 0),
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
    ...(location === null ? ['--inMemoryPersistence'] : ['--location', location]),
  ];

  const started = performance.now();
  // A process group of its own: a terminal's Ctrl+C (SIGINT to the foreground group) then reaches only `npm start`,
  // which drains its in-flight work against a storage that is still there and stops this child last. Had the child
  // shared the group, it would close at the first Ctrl+C and the drain would fail with ECONNREFUSED.
  const child = spawn(process.execPath, ['-e', childEntry(main, removeWorkspace ? workspace : null), 'azurite', ...flags], {
    cwd: workspace,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
    windowsHide: true,
  });
  const output: string[] = [];
  const killOnExit = () => {
    // On disk, a SIGKILL loses every write since Azurite's last autosave (a forced exit on a second Ctrl+C): close
    // the channel instead, and the child takes its saving shutdown path, as when this process is SIGKILLed.
    if (location !== null && child.connected) child.disconnect();
    else child.kill('SIGKILL');
    if (removeWorkspace) rmSync(workspace, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);

  let blobUrl: string;
  try {
    blobUrl = await waitForReady(child, output, timeoutMs);
  } catch (error) {
    process.off('exit', killOnExit);
    await terminate(child);
    if (removeWorkspace) await rm(workspace, { recursive: true, force: true });
    throw error;
  }
  const startupMs = Math.round(performance.now() - started);
  // Keep draining both pipes (a full pipe would block Azurite) but do not let them hold the process open.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  (child.channel as { unref?: () => void } | null | undefined)?.unref?.();

  const port = Number(new URL(blobUrl).port);
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT_NAME}`;
  let stopping: Promise<void> | undefined;
  return {
    connectionString: azuriteConnectionString(blobEndpoint),
    blobEndpoint,
    port,
    startupMs,
    location,
    stop: () => {
      stopping ??= (async () => {
        process.off('exit', killOnExit);
        await terminate(child);
        if (removeWorkspace) await rm(workspace, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/**
 * The child's program: Azurite's blob service (its `main.js` reads the flags from `process.argv`, after the
 * `azurite` placeholder), bound to the parent's life through the IPC channel, on every platform. `stop()` sends
 * Azurite's own "shutdown" message, which closes its server and saves its data (a signal would end the child
 * outright on Windows). When the parent is gone, however it ended (SIGKILL included, where its exit handler cannot
 * run), the channel disconnects and the child takes the same shutdown path (or exits, if Azurite has not started
 * listening for it yet), so no detached Azurite outlives the run holding its port. The channel is unref'd on both
 * sides: it never keeps either process alive. `workspace`: the temporary directory made for an in-memory instance,
 * which the child removes as it exits, so that it goes too when the parent could not (killed outright); `stop()`
 * removes it as well, where a platform will not delete a running process's working directory.
 */
function childEntry(main: string, workspace: string | null): string {
  return [
    "process.once('disconnect', () => (process.listenerCount('message') > 0 ? process.emit('message', 'shutdown') : process.exit(0)));",
    'process.channel?.unref();',
    ...(workspace === null
      ? []
      : [`process.once('exit', () => { try { require('node:fs').rmSync(${JSON.stringify(workspace)}, { recursive: true, force: true }); } catch {} });`]),
    `require(${JSON.stringify(main)});`,
  ].join('\n');
}

function waitForReady(child: ChildProcess, output: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    const settle = (error: Error | undefined, url?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolvePromise(url ?? '');
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
  // The child was unref'd so that it never holds the process open; while we wait for it to exit it must, or a
  // process with nothing else to do (the end of `npm start`) would quit with the wait still pending.
  child.ref();
  const exited = new Promise<void>((resolvePromise) => child.once('exit', () => resolvePromise()));
  // Azurite's own shutdown message where the channel is up (graceful on every platform), else SIGTERM.
  if (child.connected) child.send('shutdown');
  else child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const graceful = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolvePromise) => (timer = setTimeout(() => resolvePromise(false), 3_000))),
  ]);
  clearTimeout(timer);
  if (!graceful) {
    child.kill('SIGKILL');
    await exited;
  }
}
