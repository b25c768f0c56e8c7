/**
 * The alert path's three stores in the alerts container, sharing one lazily created container:
 *
 *   ledger/{alertKey}.json      one per alert or digest (ledger.ts)
 *   gate.json                   the global send budget and the devices' quiet periods (sendGate.ts)
 *   devices/{deviceId}.json     pending digest windows, only while something is pending (deviceDigests.ts)
 *
 * Build them once per process: the gate caches its last version between invocations.
 */

import type { BlobStore, Clock } from '../ports.js';
import type { AlertsConfig } from './alertsConfig.js';
import { createDeviceDigests, type DeviceDigests } from './deviceDigests.js';
import { createAlertLedger, type AlertLedger } from './ledger.js';
import { createSendGate, type SendGate } from './sendGate.js';

export interface AlertStores {
  ledger: AlertLedger;
  gate: SendGate;
  digests: DeviceDigests;
}

export function createAlertStores(store: BlobStore, container: string, clock: Clock, config: AlertsConfig): AlertStores {
  let created: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    created ??= store.ensureContainer(container).catch((error: unknown) => {
      created = undefined; // a transient failure must not poison later calls
      throw error;
    });
    return created;
  };
  return {
    ledger: createAlertLedger({ store, container, clock, leaseMs: config.leaseSeconds * 1000, ready }),
    gate: createSendGate({ store, container, clock, budget: config.budget, quietPeriodMs: config.quietPeriodMinutes * 60_000, ready }),
    digests: createDeviceDigests({ store, container, ready }),
  };
}
