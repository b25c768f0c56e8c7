/**
 * Composition of the alert path: builds the e-mail sender and device notifier chosen by configuration, the alert
 * stores, the criticalAlerts handler and the digest runner, once per process, from the shared {@link Services}. The
 * Functions host, the local runtime and the tests all come through here (tests hand in their own sender, notifier
 * or configuration through the overrides).
 */

import path from 'node:path';
import type { AppConfig, RoutingConfig } from '../config.js';
import { connectionCredential, iotHubServiceConnection } from '../connectionCredential.js';
import { configInvalid, RoutingError } from '../errors.js';
import { processServices, type Services } from '../runtime.js';
import { createAcsEmailSender } from './acsEmailSender.js';
import {
  defaultAlertsConfig,
  deploymentProblems,
  parseAlertSettings,
  type AlertSettings,
  type AlertsConfig,
} from './alertsConfig.js';
import { createAlertStores, type AlertStores } from './alertStores.js';
import { createCriticalAlertHandler, type AlertDeps, type CriticalAlertHandler } from './criticalAlertHandler.js';
import type { DeviceNotifier } from './deviceNotification.js';
import { createIotHubDeviceNotifier } from './deviceNotifier.js';
import { createDigestRunner, type DigestRunner } from './digestRunner.js';
import type { EmailSender } from './email.js';
import { LEASE_MARGIN_MS } from './ledger.js';
import { createOutboxSender } from './outboxSender.js';

export interface AlertServices {
  config: AlertsConfig;
  settings: AlertSettings;
  stores: AlertStores;
  sender: EmailSender;
  notifier: DeviceNotifier | undefined;
  handler: CriticalAlertHandler;
  digests: DigestRunner;
}

export interface AlertServiceOverrides {
  /** Instead of routing.config.json's `alerts` section. */
  alerts?: AlertsConfig;
  sender?: EmailSender;
  notifier?: DeviceNotifier;
  busyWait?: AlertDeps['busyWait'];
  sleep?: AlertDeps['sleep'];
}

/**
 * The `alerts` section of the loaded configuration. Typed structurally so that this reads the section once
 * config.ts registers it (`RoutingConfig.alerts`), and the defaults (reported as not configured) until then.
 */
export function alertsConfigOf(config: AppConfig): AlertsConfig {
  const routing: RoutingConfig & { alerts?: AlertsConfig } = config.routing;
  return routing.alerts ?? defaultAlertsConfig();
}

/** Throws one ConfigInvalid naming every problem, like the rest of the configuration (STYLE.md 3). */
export function createAlertServices(services: Services, overrides: AlertServiceOverrides = {}): AlertServices {
  const config = overrides.alerts ?? alertsConfigOf(services.config);
  const parsed = parseAlertSettings(services.env);
  const problems = 'errors' in parsed ? [...parsed.errors] : [];
  const settings: AlertSettings =
    'value' in parsed ? parsed.value : { container: 'alerts', queueName: null, dashboardUrl: '', acs: null, sender: null };
  const iotHub = services.config.settings.iotHubService;
  problems.push(
    ...deploymentProblems(config, settings, {
      iotHubService: iotHub !== null,
      senderGiven: overrides.sender !== undefined,
      notifierGiven: overrides.notifier !== undefined,
    }),
  );
  if (problems.length > 0) {
    throw configInvalid('Alert configuration is invalid', problems);
  }

  const sender = overrides.sender ?? senderFor(config, settings, services);
  let notifier: DeviceNotifier | undefined;
  if (config.notifyDevice) {
    // Without a connection deploymentProblems has refused already, unless a notifier was handed in.
    notifier = overrides.notifier ?? (iotHub === null ? undefined : createIotHubDeviceNotifier(iotHubServiceConnection(services.env, iotHub)));
  }
  const stores = createAlertStores(services.store, settings.container, services.clock, config);
  const deps: AlertDeps = {
    config,
    dashboardUrl: settings.dashboardUrl,
    clock: services.clock,
    stores,
    sender,
    notifier,
    quarantine: services.quarantine,
    admit: services.admitDeps,
    enrichmentKeys: services.config.routing.enrichments.map((e) => e.key),
    ...(overrides.busyWait === undefined ? {} : { busyWait: overrides.busyWait }),
    ...(overrides.sleep === undefined ? {} : { sleep: overrides.sleep }),
  };
  return { config, settings, stores, sender, notifier, handler: createCriticalAlertHandler(deps), digests: createDigestRunner(deps) };
}

function senderFor(config: AlertsConfig, settings: AlertSettings, services: Services): EmailSender {
  const kind = settings.sender ?? config.sender;
  // Like every path of the configuration, against the app root: the host's working directory is not it.
  if (kind === 'outbox') return createOutboxSender({ directory: path.resolve(services.config.root, config.outboxDirectory), clock: services.clock });
  const acs = settings.acs;
  if (acs === null) throw new RoutingError('ConfigInvalid', 'ACS_CONNECTION_STRING or ACS_ENDPOINT is required for alerts.sender "acs"');
  // A send gives up (EmailUnavailable, the alert handed back) before its lease ends: a send still polling when the
  // lease ran out would let a duplicate delivery take the alert over without knowing the service had accepted it.
  const maxWaitMs = Math.min(60_000, Math.max(1_000, config.leaseSeconds * 1000 - LEASE_MARGIN_MS));
  return createAcsEmailSender(
    acs.kind === 'connectionString'
      ? { connectionString: acs.value }
      : { endpoint: acs.endpoint, credential: connectionCredential(services.env, 'ACS_ENDPOINT') },
    { maxWaitMs },
  );
}

let shared: Promise<AlertServices> | undefined;

/** The alert services of this process, built on first use; a configuration error is re-read on the next call. */
export function processAlertServices(): Promise<AlertServices> {
  shared ??= processServices()
    .then((services) => createAlertServices(services))
    .catch((error: unknown) => {
      shared = undefined;
      throw error;
    });
  return shared;
}
