/**
 * The composition root: builds the adapters and shared services once from app settings and routing.config.json.
 * The Functions host (src/functions), the local runtime (src/local) and tests all go through here, so the same
 * handlers run everywhere; only the settings (and, in tests, the clock or store) differ.
 */
import type { AdmitDeps } from './checks/admit.js';
import { registryTwinReader } from './checks/twins/registryTwinReader.js';
import { createTwinResolver, type TwinResolver } from './checks/twins/twinResolver.js';
import { loadAppConfig, type AppConfig } from './config.js';
import { iotHubServiceConnection } from './connectionCredential.js';
import { systemClock, type BlobStore, type Clock } from './ports.js';
import { AzureBlobStore, blobServiceClientFromSettings } from './storage/azureBlobStore.js';
import { createQuarantine, type Quarantine } from './storage/quarantine.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface Services {
  env: Env;
  config: AppConfig;
  clock: Clock;
  store: BlobStore;
  quarantine: Quarantine;
  twins: TwinResolver | undefined;
  /** What every path hands to `admit` (checks, quarantine, twin resolution, time). */
  admitDeps: AdmitDeps;
}

export interface ServiceOverrides {
  /** Directory routing.config.json paths are resolved against. Default: the app root (`APP_ROOT`). */
  root?: string;
  clock?: Clock;
  store?: BlobStore;
}

export async function createServices(env: Env, overrides: ServiceOverrides = {}): Promise<Services> {
  const config = await loadAppConfig(env, overrides.root);
  const clock = overrides.clock ?? systemClock;
  const store = overrides.store ?? new AzureBlobStore(blobServiceClientFromSettings(env));
  const quarantine = createQuarantine(store, config.settings.quarantineContainer, clock);
  const twins = twinResolverFor(env, config, clock);
  return {
    env,
    config,
    clock,
    store,
    quarantine,
    twins,
    admitDeps: { checks: config.routing.checks, quarantine, twins, now: () => clock.now() },
  };
}

function twinResolverFor(env: Env, config: AppConfig, clock: Clock): TwinResolver | undefined {
  const { twinResolution } = config.routing;
  const connection = config.settings.iotHubService;
  if (!twinResolution.enabled || connection === null) return undefined;
  return createTwinResolver({
    reader: registryTwinReader(iotHubServiceConnection(env, connection)),
    clock,
    ttlMs: twinResolution.cacheTtlSeconds * 1000,
    maxConcurrency: twinResolution.maxConcurrency,
    ratePerSecond: twinResolution.readsPerSecond,
  });
}

let shared: Promise<Services> | undefined;

/**
 * The services of this process, built on first use from `process.env`. A configuration error is thrown to every
 * invocation (the host logs it on each) rather than cached as a half-built app; it is re-read on the next call so a
 * fixed app setting takes effect without a restart.
 */
export function processServices(): Promise<Services> {
  shared ??= createServices(process.env).catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}
