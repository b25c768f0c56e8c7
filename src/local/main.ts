/**
 * `npm start`: the whole routing pipeline on one machine, with no cloud account. Azurite from node_modules, a local
 * hub that routes like IoT Hub, simulated devices, and the real function modules of src/functions driven by kind
 * with the payloads the Functions host would hand them (see docs/adr/0010-local-runtime.md).
 *
 * `runLocal(options)` runs it and resolves with the conservation summary (tests call it directly); the bottom of
 * this file is the command line, `node dist/src/local/main.js [flags]`.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { format, parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { aggregationConfigOf } from '../lib/aggregate/aggregationConfig.js';
import { isAlert } from '../lib/alerts/alertPolicy.js';
import { verifyStoredConfiguration } from '../lib/aggregate/telemetryStream.js';
import { archiveFromServices } from '../lib/archive/archiveDeps.js';
import { loadRoutingConfig, type EndpointName } from '../lib/config.js';
import { configInvalid, configProblems, isRoutingError } from '../lib/errors.js';
import type { BlobStore } from '../lib/ports.js';
import { compileRoutes } from '../lib/routing/routes.js';
import { createServices, type Services } from '../lib/runtime.js';
import { APP_ROOT } from '../lib/version.js';
import { startAzurite, type AzuriteConnection, type RunningAzurite } from './azurite.js';
import { BlobTriggerDispatcher } from './blobTriggers.js';
import { installProcessClock, SimulatedClock } from './clock.js';
import { conservation, DeliveryLog, identityOn, type EndpointAccount } from './conservation.js';
import { createFleet, type Fleet } from './devices.js';
import { EventStream } from './eventStream.js';
import { startHttpServer, type LocalHttpServer } from './httpServer.js';
import { LocalHub, type HubEndpoint, type RoutedRecord } from './hub.js';
import { invokeRegistration, resolveSetting, retryContextFor, retryPolicyOf, type FunctionLogger, type LogLevel } from './invoke.js';
import { PeekLockQueue, type DeadLetter } from './queue.js';
import { resumeTime, saveSimulatedEnd } from './stateClock.js';
import { lockStateDirectory, StateInUseError } from './stateLock.js';
import { streamFor } from './random.js';
import { loadRegistrations, type Registration } from './registrations.js';
import { displayValue, installEnvironment, localSettings, settingsReferencedBy, type Env } from './settings.js';
import { OutputScanner, type OutputSnapshot } from './outputs.js';
import { StorageEndpoint, type WrittenBlob } from './storageEndpoint.js';
import { TimerScheduler } from './timers.js';
import { eventHubInvocations, serviceBusInvocation, blobInvocation } from './triggers.js';

export interface LocalOptions {
  /** Simulated devices. Default 5. */
  devices?: number;
  /** Simulated seconds of device traffic; then the runtime drains and stops. Default: until `signal` aborts. */
  durationSeconds?: number;
  /** Seed of every random choice. Default: drawn from the clock and printed, so a run can be repeated. */
  seed?: number;
  /** Simulated time runs this many times faster than the wall clock. Default 1. */
  speedup?: number;
  /** Messages per second per device. Default 1. */
  rate?: number;
  /** Share of legacy devices (undeclared or UTF-32 bodies). Default 0.2. */
  legacyShare?: number;
  /** Probability that a delivery to an endpoint is re-sent (IoT Hub's at-least-once). Default 0. */
  resendProbability?: number;
  /** Partitions of the built-in endpoint and the storage endpoint. Default 4. */
  partitions?: number;
  /** HTTP port; 0 picks a free one. Default 7071. */
  port?: number;
  /** Writes the JSON summary here at exit. */
  summaryPath?: string;
  /**
   * Where Azurite data, logs and the clock's stop go. Default `.local`. Given, it is also the default for e-mails
   * (`<state>/outbox`), so that runs on states of their own never count each other's.
   */
  stateDirectory?: string;
  /** Azurite keeps its data in memory (tests); default on disk under the state directory. */
  inMemoryAzurite?: boolean;
  /** Azurite's port when this runtime starts it. Default 10000 (Azurite's own), falling back to a free one. */
  azuritePort?: number;
  /** Use an Azurite someone else runs instead of starting one. */
  azurite?: AzuriteConnection;
  /** routing.config.json to use. Default: ROUTING_CONFIG_PATH or `routing.config.json` in `root`. */
  routingConfigPath?: string;
  /** E-mails go here instead of routing.config.json's `alerts.outboxDirectory`. */
  outboxDirectory?: string;
  /** The app root (local.settings*.json, routing.config.json). Default the working directory. */
  root?: string;
  /** Settings from the local defaults and local.settings.sample.json only (tests): see src/local/settings.ts. */
  sampleSettingsOnly?: boolean;
  /** Simulated start time. Default now. */
  startTime?: Date;
  /** Service Bus receivers running at once (1-4). Default 4. */
  queueConcurrency?: number;
  /** Stops the run (then drains), like Ctrl+C. */
  signal?: AbortSignal;
  /** The start-up listing and the status line. Default stderr; null for silence. */
  output?: Writable | null;
  /** Print every function log line, not only warnings and errors. */
  verbose?: boolean;
  /** Milliseconds between status refreshes. Default 1000 on a TTY, 5000 otherwise. */
  statusIntervalMs?: number;
  /** Told about every device message the hub accepted, with where it went. */
  onRouted?(record: RoutedRecord): void;
  /** Runs after the drain, before shutdown, while storage and HTTP are still up (tests inspect them here). */
  beforeStop?(runtime: RunningLocal): Promise<void>;
}

export interface RunningLocal {
  baseUrl: string;
  store: BlobStore;
  services: Services;
  env: Readonly<Env>;
  registrations: readonly Registration[];
  fleet: Fleet;
  outboxDirectory: string | null;
  /** The blobs the storage endpoint wrote, in order, with the deliveries each holds (not their bytes). */
  blobs: readonly ArchivedBlob[];
  deadLetters: readonly DeadLetter[];
}

export interface LocalSummary {
  seed: number;
  devices: number;
  speedup: number;
  simulatedStart: string;
  simulatedEnd: string;
  /** Device messages the hub accepted. */
  sent: number;
  /** Distinct messages delivered per endpoint. */
  routed: Record<EndpointName, number>;
  /** Extra deliveries from at-least-once re-sends, per endpoint. */
  resent: Record<EndpointName, number>;
  /** No route matched and the fallback route is off: IoT Hub drops these. */
  dropped: number;
  /** Distinct messages counted in reports. */
  aggregated: number;
  /** Report windows (one per device and base window) that this run created. */
  reportWindows: number;
  /** Distinct messages in archive blobs archiveIngest indexed, not quarantined. */
  archived: number;
  /** Archive blobs and records as written, and what the index says archiveIngest did with them. */
  archiveRecords: { blobs: number; emptyBlobs: number; written: number; indexed: number; duplicates: number };
  /** Distinct critical messages that ended as an e-mail of their own or as a digest entry. */
  alerted: number;
  alerts: { emailed: number; digested: number };
  /** E-mails written during the run (alerts and digests): new .eml files in the outbox. */
  emailsSent: number;
  /** Digest e-mails sent during the run. */
  digests: number;
  /** Distinct quarantined messages per endpoint, and damaged archive blobs. */
  quarantined: { events: number; criticalQueue: number; archive: number; blobs: number; total: number };
  /** Re-sent copies on the events and critical-queue paths that changed nothing. */
  duplicatesSuppressed: number;
  deadLettered: number;
  /** Inputs the host gave up on: Event Hubs events after their retries, poison blobs, archive writes that failed. */
  lost: { events: number; poisonBlobs: number; archiveWriteFailures: number };
  /** Per endpoint, every routed message in exactly one outcome (see src/local/conservation.ts). */
  conservation: { events: EndpointAccount; criticalQueue: EndpointAccount; archive: EndpointAccount; ok: boolean };
  /** Per function: invocations, those that threw, and the warnings and errors it logged. */
  functions: Record<string, { kind: string; invocations: number; failures: number; warnings: number; errors: number }>;
  /** Registrations whose trigger kind the local host does not drive. */
  notEmulated: string[];
}

export type ArchivedBlob = Omit<WrittenBlob, 'body'>;

const DEFAULT_AZURITE_PORT = 10_000;
const RESEND_DELAY_MS = { min: 1_000, max: 10_000 };

class LocalLogger implements FunctionLogger {
  readonly counts = new Map<string, { warnings: number; errors: number }>();
  constructor(
    private readonly file: WriteStream,
    private readonly console: (line: string) => void,
    private readonly verbose: boolean,
    private readonly now: () => Date,
  ) {}

  log(functionName: string, invocationId: string, level: LogLevel, args: unknown[]): void {
    const text = format(...args);
    const line = `${this.now().toISOString()} [${level}] ${functionName} ${invocationId.slice(0, 8)} ${text}`;
    this.file.write(`${line}\n`);
    const severe = level === 'warning' || level === 'error' || level === 'critical';
    if (severe) {
      const count = this.counts.get(functionName) ?? { warnings: 0, errors: 0 };
      if (level === 'warning') count.warnings++;
      else count.errors++;
      this.counts.set(functionName, count);
    }
    if (this.verbose || (severe && level !== 'warning')) this.console(line);
  }
}

interface FunctionStats {
  kind: string;
  invocations: number;
  failures: number;
}

async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function startOwnAzurite(options: LocalOptions, stateDirectory: string): Promise<RunningAzurite> {
  if (options.inMemoryAzurite === true) return startAzurite({ port: options.azuritePort ?? 0 });
  const location = path.join(stateDirectory, 'azurite');
  const port = options.azuritePort ?? DEFAULT_AZURITE_PORT;
  try {
    return await startAzurite({ location, port });
  } catch (error) {
    // Port 10000 taken (another Azurite, say): any free port will do, the runtime prints where it is.
    if (port === 0) throw error;
    return startAzurite({ location, port: 0 });
  }
}

/** The routing config's text with `alerts.outboxDirectory` replaced, so a run can send its e-mails elsewhere. */
async function outboxOverlay(configPath: string, outboxDirectory: string, stateDirectory: string): Promise<string> {
  const raw = await readJson(configPath);
  if (!isObject(raw) || !isObject(raw['alerts'])) return configPath;
  const overlay = { ...raw, alerts: { ...raw['alerts'], outboxDirectory } };
  const file = path.join(stateDirectory, 'routing.config.local.json');
  await writeFile(file, `${JSON.stringify(overlay, null, 2)}\n`);
  return file;
}

function partitionCountOf(value: number | undefined): number {
  const count = value ?? 4;
  if (!Number.isInteger(count) || count < 1 || count > 32) throw new RangeError(`partitions must be 1-32, got ${count}`);
  return count;
}

async function hostJsonSettings(root: string): Promise<{ routePrefix: string; maxEventBatchSize: number; maxDequeueCount: number }> {
  let host: unknown = {};
  try {
    host = await readJson(path.join(root, 'host.json'));
  } catch {
    // No host.json: the host's defaults.
  }
  const extensions = isObject(host) && isObject(host['extensions']) ? host['extensions'] : {};
  const http = isObject(extensions['http']) ? extensions['http'] : {};
  const eventHubs = isObject(extensions['eventHubs']) ? extensions['eventHubs'] : {};
  const queues = isObject(extensions['queues']) ? extensions['queues'] : {};
  return {
    routePrefix: typeof http['routePrefix'] === 'string' ? http['routePrefix'] : 'api',
    maxEventBatchSize: typeof eventHubs['maxEventBatchSize'] === 'number' ? eventHubs['maxEventBatchSize'] : 100,
    maxDequeueCount: typeof queues['maxDequeueCount'] === 'number' ? queues['maxDequeueCount'] : 5,
  };
}

/**
 * A reports container keeps the base window it was first written with (src/lib/aggregate/baseWindow.ts). Run on a
 * state whose reports were written with another smallest window (routing.config.json's `aggregation.windows` edited
 * since), every telemetryStream batch would throw ConfigInvalid and be retried for ever (its retry policy has no
 * limit), the cause only in the log file, and Ctrl+C would wait on that drain for ever. So the run is refused before
 * anything starts, with the words of GET /api/health and what to do locally.
 */
async function refuseOtherBaseWindow(services: Services, stateDirectory: string, persistent: boolean): Promise<void> {
  try {
    await verifyStoredConfiguration(services);
  } catch (error) {
    if (!isRoutingError(error) || error.code !== 'ConfigInvalid') throw error;
    const fresh = persistent ? `or start on a fresh state with --state DIR or --in-memory (${stateDirectory} keeps the old reports)` : 'or use another Azurite';
    const local = `locally: give REPORTS_CONTAINER a new container name (in the environment or local.settings.json), ${fresh}`;
    throw configInvalid('The reports already in storage do not fit this configuration', configProblems(error).map((problem) => `${problem}; ${local}`));
  }
}

export async function runLocal(options: LocalOptions = {}): Promise<LocalSummary> {
  const root = path.resolve(options.root ?? process.cwd());
  const stateDirectory = path.resolve(root, options.stateDirectory ?? '.local');
  await mkdir(stateDirectory, { recursive: true });
  const output = options.output === undefined ? process.stderr : options.output;
  const print = (text: string) => output?.write(`${text}\n`);
  const seed = options.seed ?? Math.floor(Date.now() % 2_147_483_647);
  const speedup = options.speedup ?? 1;
  const partitionCount = partitionCountOf(options.partitions);
  const hostJson = await hostJsonSettings(root);

  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn();
  };
  try {
    // ---- storage and settings -------------------------------------------------------------------------------
    const configPath = path.resolve(
      root,
      options.routingConfigPath ?? (options.sampleSettingsOnly === true ? undefined : process.env['ROUTING_CONFIG_PATH']) ?? 'routing.config.json',
    );
    // Every problem of the file (a missing file and bad JSON included) in one ConfigInvalid, before anything starts.
    const routingConfig = await loadRoutingConfig(configPath);
    // Outputs on disk outlive the run (state lock, simulated clock): not with an in-memory or external Azurite.
    const persistent = options.azurite === undefined && options.inMemoryAzurite !== true;
    if (persistent) cleanups.push(await lockStateDirectory(stateDirectory));
    const ownAzurite = options.azurite === undefined ? await startOwnAzurite(options, stateDirectory) : null;
    if (ownAzurite !== null) cleanups.push(() => ownAzurite.stop());
    const azurite: AzuriteConnection = options.azurite ?? ownAzurite!;

    const { iotHubName, archive: archiveConfig, alerts: alertsConfig } = routingConfig;
    // E-mails of a run on a --state of its own stay with that state (two runs never count each other's .eml files).
    // A run on another root than the app's hands the functions its outbox as an absolute path: they resolve a
    // relative one against the app root (`APP_ROOT`), this runtime against its root.
    const outboxOption =
      options.outboxDirectory ??
      (options.stateDirectory !== undefined ? path.join(stateDirectory, 'outbox') : root !== APP_ROOT ? alertsConfig.outboxDirectory : undefined);
    const effectiveConfigPath =
      outboxOption === undefined ? configPath : await outboxOverlay(configPath, path.resolve(root, outboxOption), stateDirectory);
    const settingsInput = {
      root,
      storageConnectionString: azurite.connectionString,
      // A copy: the first pass installs into process.env, and the second must still see what the user set.
      processEnv: { ...process.env },
      iotHubName,
      archiveContainer: archiveConfig.container,
      dashboardUrl: options.port === 0 ? null : `http://localhost:${options.port ?? 7071}/api/dashboard`,
      routingConfigPath: effectiveConfigPath,
      sampleOnly: options.sampleSettingsOnly === true,
    };
    // Two passes: the function modules' `%SETTING%` names are known only once they are imported, and one of them
    // reads a setting at import time, so a first environment is in place before the import.
    const first = await localSettings({ ...settingsInput, registrationsSettings: [] });
    cleanups.push(installEnvironment(first.env));
    const registrations = await loadRegistrations();
    const settings = await localSettings({ ...settingsInput, registrationsSettings: settingsReferencedBy(registrations) });
    cleanups.push(installEnvironment(settings.env));
    const env = settings.env;

    // ---- time and services --------------------------------------------------------------------------------
    // The next run on this state starts where this one's clock stops.
    const clock = new SimulatedClock(options.startTime ?? (persistent ? await resumeTime(stateDirectory, new Date()) : new Date()), speedup);
    if (persistent) {
      // Every few seconds as well as at the end: a forced exit (a second Ctrl+C) runs no cleanup.
      const saving = setInterval(() => void saveSimulatedEnd(stateDirectory, clock.now()).catch(() => undefined), 5_000);
      saving.unref();
      cleanups.push(async () => {
        clearInterval(saving);
        await saveSimulatedEnd(stateDirectory, clock.now());
      });
    }
    cleanups.push(() => clock.cancelAll());
    cleanups.push(installProcessClock(clock));
    const services = await createServices(env, { root, clock });
    await refuseOtherBaseWindow(services, stateDirectory, persistent);
    const routing = services.config.routing;
    const compiled = compileRoutes(routing.routes);
    if ('errors' in compiled) throw new Error(compiled.errors.join('; '));
    // The settings as the functions read them: parsed and validated once, by createServices.
    const archive = archiveFromServices(services);
    const aggregation = aggregationConfigOf(routing);
    const outboxDirectory = settings.alertSender === 'outbox' ? path.resolve(root, outboxOption ?? alertsConfig.outboxDirectory) : null;

    const logsDirectory = path.join(stateDirectory, 'logs');
    await mkdir(logsDirectory, { recursive: true });
    const logPath = path.join(logsDirectory, 'functions.log');
    const logFile = createWriteStream(logPath, { flags: 'a' });
    cleanups.push(() => new Promise<void>((resolve) => logFile.end(resolve)));
    const status = new StatusLine(output, options.statusIntervalMs);
    const logger = new LocalLogger(logFile, (line) => status.above(line), options.verbose === true, () => clock.now());

    // ---- how each registration is driven ------------------------------------------------------------------
    const stats = new Map<string, FunctionStats>(registrations.map((r) => [r.name, { kind: r.kind, invocations: 0, failures: 0 }]));
    const invoke = async (registration: Registration, input: unknown, extra: Parameters<typeof invokeRegistration>[3] = {}) => {
      const s = stats.get(registration.name)!;
      s.invocations++;
      try {
        return await invokeRegistration(registration, input, logger, extra);
      } catch (error) {
        s.failures++;
        logger.log(registration.name, '-', 'warning', [`threw (the host retries or settles per trigger): ${describeError(error)}`]);
        throw error;
      }
    };
    const byKind = (kind: string) => registrations.filter((r) => r.kind === kind);
    const emulated = new Set(['http', 'eventHub', 'serviceBusQueue', 'storageBlob', 'timer']);
    const notEmulated = registrations.filter((r) => !emulated.has(r.kind)).map((r) => `${r.name} (${r.kind})`);

    const streams = byKind('eventHub').map((registration) => {
      const stream = new EventStream({
        store: services.store,
        clock,
        partitionCount,
        fullyQualifiedNamespace: 'localhost',
        eventHubName: resolveSetting(registration.options['eventHubName'], env) || `iothub-ehub-${iotHubName.toLowerCase()}`,
        consumerGroup: resolveSetting(registration.options['consumerGroup'], env) || '$Default',
        maxBatchSize: hostJson.maxEventBatchSize,
        retry: retryPolicyOf(registration),
        process: async (context, events, attempt, lastError) => {
          const policy = retryPolicyOf(registration);
          for (const invocation of eventHubInvocations(registration, context, events)) {
            await invoke(registration, invocation.input, {
              triggerMetadata: invocation.triggerMetadata,
              ...(attempt > 0 && policy !== null ? { retryContext: retryContextFor(policy, attempt, lastError) } : {}),
            });
          }
        },
        onBatchLost: (context, events, error) =>
          logger.log(registration.name, '-', 'error', [
            `partition ${context.partitionId}: batch of ${events.length} given up after its retries and checkpointed past (lost to the stream): ${describeError(error)}`,
          ]),
        onCheckpointError: (partition, error) => logger.log(registration.name, '-', 'error', [`checkpoint of partition ${partition} failed: ${describeError(error)}`]),
      });
      return { registration, stream };
    });

    const queueRegistrations = byKind('serviceBusQueue');
    const criticalQueueName =
      env['CRITICAL_QUEUE_NAME'] ?? (queueRegistrations[0] ? resolveSetting(queueRegistrations[0].options['queueName'], env) : undefined) ?? 'critical-alerts';
    const queueReceiver = queueRegistrations.find((r) => resolveSetting(r.options['queueName'], env) === criticalQueueName);
    const queue = new PeekLockQueue({
      queueName: criticalQueueName,
      clock,
      concurrency: Math.min(4, Math.max(1, options.queueConcurrency ?? 4)),
      process: async (message) => {
        if (queueReceiver === undefined) throw new Error(`no function listens on queue ${criticalQueueName}`);
        const invocation = serviceBusInvocation(queueReceiver, { fullyQualifiedNamespace: 'localhost', queueName: criticalQueueName }, message);
        await invoke(queueReceiver, invocation.input, { triggerMetadata: invocation.triggerMetadata });
      },
      onDeadLetter: (entry) =>
        logger.log(queueReceiver?.name ?? criticalQueueName, '-', 'error', [
          `message ${entry.message.messageId} of ${entry.message.source.deviceId} dead-lettered: ${entry.description}`,
        ]),
    });

    const dispatcher = new BlobTriggerDispatcher({
      registrations: byKind('storageBlob'),
      env,
      maxDequeueCount: hostJson.maxDequeueCount,
      invoke: async (run) => {
        const invocation = blobInvocation(run.registration, run.blob, run.bindings);
        await invoke(run.registration, invocation.input, { triggerMetadata: invocation.triggerMetadata });
      },
      onError: (run, error, willRetry) => {
        if (!willRetry) {
          logger.log(run.registration.name, '-', 'error', [`${run.blob.container}/${run.blob.name} is poison after ${run.dequeueCount} tries: ${describeError(error)}`]);
        }
      },
    });
    const writtenBlobs: ArchivedBlob[] = [];
    // The simulated instant up to which every device message has been handed to the hub.
    const progress = { ms: clock.startMs };
    let archiveWriteFailures = 0;
    await services.store.ensureContainer(archive.container);
    const storageEndpoint = new StorageEndpoint({
      store: services.store,
      clock,
      container: archive.container,
      iotHubName,
      format: archive.format,
      encoding: archive.config.encoding,
      batchFrequencySeconds: archive.config.batchFrequencySeconds,
      partitionCount,
      progressMs: () => progress.ms,
      onBlob: (blob) => {
        // The bytes go to the trigger only; the deliveries are kept for the conservation check.
        const { body: _body, ...kept } = blob;
        writtenBlobs.push(kept);
        dispatcher.offer({
          container: blob.container,
          name: blob.name,
          uri: `${azurite.blobEndpoint}/${blob.container}/${blob.name.split('/').map(encodeURIComponent).join('/')}`,
          body: blob.body,
          etag: blob.etag,
          contentType: archive.config.encoding === 'avro' ? 'application/octet-stream' : 'application/json',
          lastModified: clock.now(),
        });
      },
      onWriteError: (partition, error) => {
        archiveWriteFailures++;
        logger.log('storage-endpoint', '-', 'error', [`partition ${partition}: batch blob not written: ${describeError(error)}`]);
      },
    });

    const timers = new TimerScheduler({
      clock,
      registrations: byKind('timer'),
      env,
      invoke: (run) => invoke(run.registration, run.input, run.retryContext ? { retryContext: run.retryContext } : {}),
    });

    const http = await startHttpServer({
      registrations,
      port: options.port ?? 7071,
      routePrefix: hostJson.routePrefix,
      logger,
    });
    cleanups.push(() => http.close());

    // ---- hub and devices ----------------------------------------------------------------------------------
    const fleet = createFleet({
      devices: options.devices ?? 5,
      seed,
      runId: clock.startMs,
      ...(options.legacyShare !== undefined ? { legacyShare: options.legacyShare } : {}),
      ...(options.rate !== undefined ? { rate: options.rate } : {}),
    });
    let pendingResends = 0;
    const resendRandom = streamFor(seed, 'resend');
    // What criticalAlerts completes as notAlert (a route that sends it messages the alert policy does not select).
    const deliveries = new DeliveryLog((m) => isAlert(m, alertsConfig));
    const tracked = (sink: HubEndpoint): HubEndpoint => ({
      deliver: (message) => {
        deliveries.record(message);
        sink.deliver(message);
      },
    });
    const eventsSink: HubEndpoint = { deliver: (m) => streams.forEach(({ stream }) => stream.deliver(m)) };
    const hub = new LocalHub({
      iotHubName,
      routes: compiled.compiled,
      fallbackRoute: routing.fallbackRoute,
      enrichments: routing.enrichments,
      // The simulated fleet has device twins only: a module's message finds no twin, as on a hub whose modules have none.
      twinOf: (id, moduleId) => (moduleId === undefined ? fleet.twinOf(id) : undefined),
      endpoints: { events: tracked(eventsSink), criticalQueue: tracked(queue), archive: tracked(storageEndpoint) },
      resends: {
        probability: options.resendProbability ?? 0,
        random: resendRandom,
        delayMs: RESEND_DELAY_MS,
        schedule: (delay, deliver) => {
          pendingResends++;
          clock.after(delay, () => {
            pendingResends--;
            deliver();
          });
        },
      },
    });

    const scanner = new OutputScanner({
      store: services.store,
      reportsContainer: services.config.settings.reportsContainer,
      baseWindowLabel: aggregation.windows[0]?.label ?? '1m',
      quarantineContainer: services.config.settings.quarantineContainer,
      alertsContainer: services.config.settings.alerts.container,
      archiveIndexContainer: archive.indexContainer,
      outboxDirectory,
    });
    // What earlier runs left (Azurite data and the outbox persist under .local): this run reports its own share.
    const baseline = await scanner.scan();

    for (const { stream } of streams) await stream.start();
    queue.start();
    storageEndpoint.start();
    timers.start();

    printBanner(print, {
      azurite,
      ownAzurite,
      hub,
      routes: routing.routes.length,
      fallback: routing.fallbackRoute,
      enrichments: routing.enrichments.length,
      partitionCount,
      fleet,
      seed,
      speedup,
      durationSeconds: options.durationSeconds,
      registrations,
      http,
      hostJson,
      streams: streams.map(({ registration, stream }) => ({ name: registration.name, hub: stream.partitions[0]!.context })),
      queue,
      queueReceiver,
      dispatcher,
      archive: { container: archive.container, encoding: archive.config.encoding, batchFrequencySeconds: archive.config.batchFrequencySeconds, format: archive.format.source },
      timers,
      outboxDirectory,
      logFile: logPath,
      settings: settings.env,
      origins: settings.origins,
      notEmulated,
      configPath,
    });

    // ---- run ----------------------------------------------------------------------------------------------
    const stopRequested = new AbortController();
    const onAbort = () => stopRequested.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true) stopRequested.abort();
    cleanups.push(() => options.signal?.removeEventListener('abort', onAbort));

    const accountNow = (snapshot: OutputSnapshot) =>
      buildSummary({
        seed,
        fleet,
        speedup,
        clock,
        hub,
        deliveries,
        snapshot,
        baseline,
        queue,
        streams: streams.map((x) => x.stream),
        dispatcher,
        writtenBlobs,
        archiveWriteFailures,
        stats,
        logCounts: logger.counts,
        notEmulated,
        storageEndpoint,
      });
    status.start(async () => {
      const summary = accountNow(await scanner.scan());
      const backlog = streams.reduce((n, x) => n + x.stream.backlog, 0) + queue.activeCount + dispatcher.backlog + storageEndpoint.pending;
      status.draw(statusText(clock, summary, backlog));
    });
    cleanups.push(() => status.stop());

    const endMs = options.durationSeconds === undefined ? Number.POSITIVE_INFINITY : clock.startMs + options.durationSeconds * 1000;
    await runDevices(fleet, hub, clock, endMs, stopRequested.signal, progress, options.onRouted);
    progress.ms = Number.POSITIVE_INFINITY;

    // ---- drain --------------------------------------------------------------------------------------------
    status.above(`stopping: draining in-flight work (${stopRequested.signal.aborted ? 'stop requested' : 'duration reached'})`);
    while (pendingResends > 0) await clock.sleep(500);
    await storageEndpoint.stop();
    for (;;) {
      await dispatcher.drain();
      await Promise.all([...streams.map(({ stream }) => stream.drain()), queue.drain()]);
      if (dispatcher.backlog === 0 && queue.activeCount === 0 && streams.every(({ stream }) => stream.backlog === 0)) break;
    }
    await timers.stop();
    await Promise.all([...streams.map(({ stream }) => stream.stop()), queue.stop()]);

    await status.stop();
    const running: RunningLocal = {
      baseUrl: `${http.baseUrl}/${hostJson.routePrefix}`,
      store: services.store,
      services,
      env,
      registrations,
      fleet,
      outboxDirectory,
      blobs: writtenBlobs,
      deadLetters: queue.deadLetters,
    };
    if (options.beforeStop !== undefined) await options.beforeStop(running);
    const summary = accountNow(await scanner.scan());
    print(finalText(summary));
    if (options.summaryPath !== undefined) {
      const file = path.resolve(root, options.summaryPath);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, `${JSON.stringify(summary, null, 2)}\n`);
      print(`summary written to ${file}`);
    }
    return summary;
  } finally {
    await cleanup();
  }
}

async function runDevices(
  fleet: Fleet,
  hub: LocalHub,
  clock: SimulatedClock,
  endMs: number,
  signal: AbortSignal,
  progress: { ms: number },
  onRouted: ((record: RoutedRecord) => void) | undefined,
): Promise<void> {
  const order = [...fleet.devices].sort((a, b) => a.phaseMs - b.phaseMs);
  if (order.length === 0) {
    // No devices: the functions (HTTP, timers) still run, until the duration or a stop.
    await clock.sleepUntil(endMs, signal);
    return;
  }
  for (let k = 0; !signal.aborted; k++) {
    for (const device of order) {
      const due = clock.startMs + device.phaseMs + k * fleet.periodMs;
      progress.ms = due;
      if (due >= endMs) return;
      if (due > clock.nowMs()) await clock.sleepUntil(due, signal);
      if (signal.aborted) return;
      // The hub's enqueued time is the instant the device's message was due: the same in every run of a seed.
      const record = hub.send(device.next(), new Date(Math.floor(due)));
      onRouted?.(record);
    }
    // Overdue messages (a high speed-up) are sent back to back; yield so the endpoints' consumers keep up.
    if (k % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
  }
}

function describeError(error: unknown): string {
  if (isRoutingError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---- summary --------------------------------------------------------------------------------------------------

interface SummaryInput {
  seed: number;
  fleet: Fleet;
  speedup: number;
  clock: SimulatedClock;
  hub: LocalHub;
  deliveries: DeliveryLog;
  snapshot: OutputSnapshot;
  baseline: OutputSnapshot;
  queue: PeekLockQueue;
  streams: EventStream[];
  dispatcher: BlobTriggerDispatcher;
  writtenBlobs: readonly ArchivedBlob[];
  archiveWriteFailures: number;
  stats: Map<string, FunctionStats>;
  logCounts: ReadonlyMap<string, { warnings: number; errors: number }>;
  notEmulated: string[];
  storageEndpoint: StorageEndpoint;
}

function buildSummary(input: SummaryInput): LocalSummary {
  const { hub, snapshot, baseline, queue } = input;
  // Archive blobs whose current version has a manifest: their records were decoded and admitted or quarantined.
  const indexedArchive = new Set<string>();
  let indexedRecords = 0;
  for (const blob of input.writtenBlobs) {
    const manifest = snapshot.manifests.get(blob.name);
    if (manifest === undefined || manifest.etag !== blob.etag) continue;
    indexedRecords += manifest.records;
    for (const message of blob.messages) indexedArchive.add(identityOn('archive', message));
  }
  const deadLettered = new Set(queue.deadLetters.map((d) => identityOn('criticalQueue', d.message.source)));
  const accounts = conservation({ deliveries: input.deliveries, snapshot, deadLettered, indexedArchive });
  const lostEvents = input.streams.reduce((n, x) => n + x.stats.lostEvents, 0);
  const lost = { events: lostEvents, poisonBlobs: input.dispatcher.poison.length, archiveWriteFailures: input.archiveWriteFailures };

  const newLedger = [...snapshot.ledger].filter(([key]) => !baseline.ledger.has(key)).map(([, entry]) => entry);
  const digests = newLedger.filter((e) => e.kind === 'digest' && e.state === 'sent').length;
  const outcomes = (endpoint: EndpointName, name: string) => accounts[endpoint].outcomes[name] ?? 0;
  const quarantined = {
    events: outcomes('events', 'quarantined'),
    criticalQueue: outcomes('criticalQueue', 'quarantined'),
    archive: outcomes('archive', 'quarantined'),
    blobs: snapshot.quarantinedBlobs - baseline.quarantinedBlobs,
  };
  const functions: LocalSummary['functions'] = {};
  for (const [name, s] of input.stats) {
    const logged = input.logCounts.get(name) ?? { warnings: 0, errors: 0 };
    functions[name] = { kind: s.kind, invocations: s.invocations, failures: s.failures, ...logged };
  }

  return {
    seed: input.seed,
    devices: input.fleet.devices.length,
    speedup: input.speedup,
    simulatedStart: new Date(input.clock.startMs).toISOString(),
    simulatedEnd: input.clock.now().toISOString(),
    sent: hub.stats.sent,
    routed: { ...hub.stats.routed },
    resent: { ...hub.stats.resent },
    dropped: hub.stats.dropped,
    aggregated: outcomes('events', 'aggregated'),
    reportWindows: snapshot.reportWindows - baseline.reportWindows,
    archived: outcomes('archive', 'archived'),
    archiveRecords: {
      blobs: input.storageEndpoint.stats.blobs,
      emptyBlobs: input.storageEndpoint.stats.emptyBlobs,
      written: input.storageEndpoint.stats.records,
      indexed: indexedRecords,
      duplicates: accounts.archive.duplicates,
    },
    alerted: outcomes('criticalQueue', 'emailed') + outcomes('criticalQueue', 'digested'),
    alerts: { emailed: outcomes('criticalQueue', 'emailed'), digested: outcomes('criticalQueue', 'digested') },
    emailsSent: snapshot.emails === null ? outcomes('criticalQueue', 'emailed') + digests : snapshot.emails - (baseline.emails ?? 0),
    digests,
    quarantined: { ...quarantined, total: quarantined.events + quarantined.criticalQueue + quarantined.archive + quarantined.blobs },
    duplicatesSuppressed: accounts.events.duplicates + accounts.criticalQueue.duplicates,
    deadLettered: queue.stats.deadLettered,
    lost,
    conservation: {
      ...accounts,
      // A dead-lettered alert is accounted for (it waits in the dead-letter list) but the path failed it.
      ok:
        accounts.events.ok &&
        accounts.criticalQueue.ok &&
        accounts.archive.ok &&
        lost.events + lost.poisonBlobs + lost.archiveWriteFailures === 0 &&
        queue.stats.deadLettered === 0,
    },
    functions,
    notEmulated: input.notEmulated,
  };
}

// ---- output ---------------------------------------------------------------------------------------------------

/** One status line: redrawn in place on a TTY, printed every few seconds otherwise; log lines go above it. */
class StatusLine {
  #timer: NodeJS.Timeout | undefined;
  #last = '';
  #refreshing: Promise<void> | undefined;
  readonly #tty: boolean;
  readonly #interval: number;

  constructor(
    private readonly output: Writable | null,
    intervalMs: number | undefined,
  ) {
    this.#tty = (output as { isTTY?: boolean } | null)?.isTTY === true;
    this.#interval = intervalMs ?? (this.#tty ? 1_000 : 5_000);
  }

  start(refresh: () => Promise<void>): void {
    const tick = () => {
      this.#refreshing ??= refresh()
        .catch((error: unknown) => this.above(`status: ${describeError(error)}`))
        .finally(() => (this.#refreshing = undefined));
    };
    this.#timer = setInterval(tick, this.#interval);
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#refreshing;
    if (this.#tty && this.#last !== '') this.output?.write('\n');
    this.#last = '';
  }

  /** The terminal's width; a pseudo-terminal may report none (0). */
  #width(): number {
    const columns = (this.output as { columns?: number } | null)?.columns;
    return columns !== undefined && columns >= 40 ? columns : 160;
  }

  draw(text: string): void {
    if (this.output === null) return;
    if (this.#tty) {
      this.output.write(`\r\x1b[2K${text.slice(0, this.#width() - 1)}`);
    } else {
      this.output.write(`${text}\n`);
    }
    this.#last = text;
  }

  above(line: string): void {
    if (this.output === null) return;
    if (this.#tty && this.#last !== '') this.output.write(`\r\x1b[2K${line}\n${this.#last.slice(0, this.#width() - 1)}`);
    else this.output.write(`${line}\n`);
  }
}

function elapsed(clock: SimulatedClock): string {
  const s = Math.floor(clock.elapsedMs() / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h > 0 ? `${h}:` : ''}${String(m).padStart(h > 0 ? 2 : 1, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function statusText(clock: SimulatedClock, s: LocalSummary, backlog: number): string {
  const r = s.routed;
  return (
    `t+${elapsed(clock)} sent ${s.sent} → events ${r.events} critical ${r.criticalQueue} archive ${r.archive}` +
    ` | aggregated ${s.aggregated} (${s.reportWindows} report windows) archived ${s.archived} alerted ${s.alerted} (e-mails ${s.emailsSent}, digested ${s.alerts.digested})` +
    ` | quarantined ${s.quarantined.total} duplicates ${s.duplicatesSuppressed} DLQ ${s.deadLettered} | in flight ${backlog}`
  );
}

function finalText(s: LocalSummary): string {
  const c = s.conservation;
  const line = (name: string, v: EndpointAccount) => {
    const parts = Object.entries(v.outcomes).map(([k, n]) => `${k} ${n}`);
    if (parts.length === 0) parts.push('0');
    const problems = [v.double > 0 ? `${v.double} in two outcomes` : '', v.missing > 0 ? `${v.missing} missing` : ''].filter((p) => p !== '');
    return `  ${name.padEnd(14)} routed ${v.routed} = ${parts.join(' + ')}  ${v.ok ? 'ok' : `NOT CONSERVED (${problems.join(', ')})`}`;
  };
  return [
    '',
    `sent ${s.sent} messages from ${s.devices} devices (seed ${s.seed}, ${s.simulatedStart} .. ${s.simulatedEnd} simulated)`,
    line('events', c.events),
    line('criticalQueue', c.criticalQueue),
    line('archive', c.archive),
    ...(s.dropped > 0 ? [`  dropped by the hub ${s.dropped} (no route matched and the fallback route is off, as IoT Hub does)`] : []),
    `  e-mails ${s.emailsSent} (digests ${s.digests}), alerts digested ${s.alerts.digested}, duplicates suppressed ${s.duplicatesSuppressed}, dead-lettered ${s.deadLettered}, quarantined ${s.quarantined.total}`,
    ...(s.deadLettered > 0 ? [`  dead-lettered alerts: ${s.deadLettered} (each delivered the maximum number of times without success; see the functions log)`] : []),
    ...(s.lost.events + s.lost.poisonBlobs + s.lost.archiveWriteFailures > 0
      ? [`  lost: ${s.lost.events} events after retries, ${s.lost.poisonBlobs} poison blobs, ${s.lost.archiveWriteFailures} archive writes`]
      : []),
    c.ok
      ? 'every message is accounted for exactly once per endpoint'
      : 'CONSERVATION FAILED: see the counts above (and the dead-letter and lost counts) and the functions log',
  ].join('\n');
}

interface BannerInput {
  azurite: AzuriteConnection;
  ownAzurite: RunningAzurite | null;
  hub: LocalHub;
  routes: number;
  fallback: boolean;
  enrichments: number;
  partitionCount: number;
  fleet: Fleet;
  seed: number;
  speedup: number;
  durationSeconds: number | undefined;
  registrations: readonly Registration[];
  http: LocalHttpServer;
  hostJson: { routePrefix: string; maxEventBatchSize: number };
  streams: Array<{ name: string; hub: { eventHubName: string; consumerGroup: string } }>;
  queue: PeekLockQueue;
  queueReceiver: Registration | undefined;
  dispatcher: BlobTriggerDispatcher;
  archive: { container: string; encoding: string; batchFrequencySeconds: number; format: string };
  timers: TimerScheduler;
  outboxDirectory: string | null;
  logFile: string;
  settings: Env;
  origins: Map<string, string>;
  notEmulated: string[];
  configPath: string;
}

function printBanner(print: (text: string) => void, b: BannerInput): void {
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  const legacy = b.fleet.devices.filter((d) => d.kind !== 'standard').map((d) => `${d.deviceId} ${d.kind}`);
  const unlocated = b.fleet.devices.filter((d) => d.twin.tags['location'] === undefined).map((d) => d.deviceId);
  const lines = [
    'iot-routing local runtime',
    `  Azurite     ${b.azurite.blobEndpoint}${b.ownAzurite === null ? ' (given)' : b.ownAzurite.location === null ? ' (in memory)' : ` (data in ${rel(b.ownAzurite.location)})`}`,
    `  Local hub   ${b.hub.iotHubName}: ${b.routes} route${b.routes === 1 ? '' : 's'}${b.fallback ? ' + fallback' : ''}, ${b.enrichments} enrichment${b.enrichments === 1 ? '' : 's'} (${rel(b.configPath)}); ${b.partitionCount} partitions`,
    `  Devices     ${b.fleet.devices.length} simulated, ${(1000 / b.fleet.periodMs).toString()} msg/s each, seed ${b.seed}${legacy.length > 0 ? `; legacy: ${legacy.join(', ')}` : ''}${unlocated.length > 0 ? `; no location tag: ${unlocated.join(', ')}` : ''}`,
  ];
  const functions: string[] = [];
  for (const s of b.streams) functions.push(`${s.name} ← built-in endpoint ${s.hub.eventHubName} (${s.hub.consumerGroup}), batches of up to ${b.hostJson.maxEventBatchSize}`);
  if (b.queueReceiver !== undefined) functions.push(`${b.queueReceiver.name} ← queue ${b.queue.name} (peek-lock, max delivery ${b.queue.maxDeliveryCount}, then dead-letter)`);
  for (const p of b.dispatcher.paths) functions.push(`${p.name} ← blobs ${p.path} (${b.archive.encoding}, ${b.archive.format}, every ${b.archive.batchFrequencySeconds} s)`);
  for (const t of b.timers.timers) functions.push(`${t.registration.name} ← timer ${t.schedule?.source ?? `not scheduled: ${t.problem ?? ''}`}`);
  for (const r of b.http.routes) functions.push(`${r.registration.name} ← HTTP ${r.methods.join(',')} ${b.http.baseUrl}/${b.hostJson.routePrefix}/${r.template}${r.authLevel === 'anonymous' ? '' : ` (authLevel ${r.authLevel}: any request accepted locally, as under func start)`}`);
  for (const n of b.notEmulated) functions.push(`${n}: trigger kind not emulated locally`);
  lines.push(`  Functions   ${functions.join('\n              ')}`);
  lines.push(`  E-mails     ${b.outboxDirectory === null ? 'Azure Communication Services (ACS is configured)' : `${rel(b.outboxDirectory)}/*.eml`}`);
  lines.push(`  Logs        ${rel(b.logFile)}`);
  const shown = ['AzureWebJobsStorage', 'ROUTING_CONFIG_PATH', 'ARCHIVE_CONTAINER', 'CRITICAL_QUEUE_NAME', 'IOTHUB_EVENTS_NAME', 'ALERT_SENDER', 'DASHBOARD_URL', 'REPORTS_CONTAINER', 'QUARANTINE_CONTAINER']
    .filter((name) => b.settings[name] !== undefined)
    .map((name) => `${name}=${name === 'AzureWebJobsStorage' ? `Azurite ${b.azurite.blobEndpoint}` : displayValue(name, b.settings[name])} (${b.origins.get(name) ?? '?'})`);
  lines.push(`  Settings    ${shown.join('\n              ')}`);
  lines.push(
    `  Time        ${b.speedup}× simulated time; ${b.durationSeconds === undefined ? 'runs until Ctrl+C' : `stops after ${b.durationSeconds} simulated seconds`}`,
  );
  print(lines.join('\n'));
}

// ---- command line ---------------------------------------------------------------------------------------------

export const localUsage = `npm start -- [options]     (node dist/src/local/main.js [options])
  Runs the routing pipeline locally: Azurite, a local IoT hub with simulated devices, and the app's functions.
  --devices N          simulated devices (default 5)
  --duration SECONDS   simulated seconds of traffic, then drain and stop (default: until Ctrl+C)
  --seed N             seed of every random choice (default: printed at start)
  --speedup K          simulated time runs K times faster (default 1)
  --rate N             messages per second per device (default 1)
  --legacy-share F     share of legacy devices, 0..1 (default 0.2)
  --resend P           probability of an at-least-once re-send per delivery, 0..1 (default 0)
  --partitions N       partitions of the built-in and storage endpoints (default 4)
  --port N             HTTP port (default 7071; 0 picks one)
  --summary PATH       write the JSON conservation summary there at exit
  --state DIR          Azurite data, logs and, unless --outbox, e-mails (default .local); a run on a state
                       starts its clock where the last run on it stopped (sped-up runs write ahead of now)
  --in-memory          keep Azurite's data in memory instead of under the state directory (no state lock, and
                       the clock starts now)
  --config PATH        routing.config.json to use
  --outbox DIR         write e-mails there instead of alerts.outboxDirectory
  --verbose            print every function log line
Exit codes: 0 every message accounted for; 3 conservation failed; 1 usage or configuration errors.`;

/** A numeric flag; a refusal says what the flag takes, as GET /api/telemetry's parameters do ("limit: expected ..., got ..."). */
function numberFlag(value: string | undefined, name: string, expected: string, check: (n: number) => boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new Error(`--${name}: expected ${expected}, got "${value}"`);
  return n;
}

export function parseLocalArgs(argv: string[]): LocalOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      speedup: { type: 'string' },
      rate: { type: 'string' },
      'legacy-share': { type: 'string' },
      resend: { type: 'string' },
      partitions: { type: 'string' },
      port: { type: 'string' },
      summary: { type: 'string' },
      state: { type: 'string' },
      'in-memory': { type: 'boolean' },
      config: { type: 'string' },
      outbox: { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const options: LocalOptions = {};
  const set = <K extends keyof LocalOptions>(key: K, value: LocalOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set('devices', numberFlag(values.devices, 'devices', 'a whole number from 0 to 10000', (n) => Number.isInteger(n) && n >= 0 && n <= 10_000));
  set('durationSeconds', numberFlag(values.duration, 'duration', 'simulated seconds, a number above 0 (120, not 2m)', (n) => n > 0));
  set('seed', numberFlag(values.seed, 'seed', 'a whole number', (n) => Number.isInteger(n)));
  set('speedup', numberFlag(values.speedup, 'speedup', 'a number above 0, at most 100000', (n) => n > 0 && n <= 100_000));
  set('rate', numberFlag(values.rate, 'rate', 'messages per second per device, above 0, at most 1000', (n) => n > 0 && n <= 1000));
  set('legacyShare', numberFlag(values['legacy-share'], 'legacy-share', 'a share from 0 to 1 (0.2, not 20%)', (n) => n >= 0 && n <= 1));
  set('resendProbability', numberFlag(values.resend, 'resend', 'a probability from 0 to below 1', (n) => n >= 0 && n < 1));
  set('partitions', numberFlag(values.partitions, 'partitions', 'a whole number from 1 to 32', (n) => Number.isInteger(n) && n >= 1 && n <= 32));
  set('port', numberFlag(values.port, 'port', 'a whole number from 0 to 65535 (0 picks a free one)', (n) => Number.isInteger(n) && n >= 0 && n <= 65_535));
  set('summaryPath', values.summary);
  set('stateDirectory', values.state);
  set('inMemoryAzurite', values['in-memory']);
  set('routingConfigPath', values.config);
  set('outboxDirectory', values.outbox);
  set('verbose', values.verbose);
  return options;
}

export async function localMain(argv: string[]): Promise<number> {
  let options: LocalOptions | 'help';
  try {
    options = parseLocalArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${localUsage}\n`);
    return 1;
  }
  if (options === 'help') {
    process.stdout.write(`${localUsage}\n`);
    return 0;
  }
  const stop = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write(`\n${signal} again: exiting without draining\n`);
      process.exit(130);
    }
    process.stderr.write(`\n${signal}: stopping after in-flight work (again to force)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const summary = await runLocal({ ...options, signal: stop.signal });
    return summary.conservation.ok ? 0 : 3;
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    if (error instanceof StateInUseError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`${(error as Error).message}: another process has the HTTP port; choose one with --port N (0 picks a free one)\n`);
      return 1;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  process.exitCode = await localMain(process.argv.slice(2));
}
