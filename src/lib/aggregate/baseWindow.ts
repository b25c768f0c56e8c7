/**
 * The base window a reports container's partials were written with, recorded in the container.
 *
 * Roll-up entries are keyed by the start of their base window and ordered by its revision, so partials written with
 * another base size (`windows: ["5m","1h"]` after `["1m","1h"]`) would collide with the old entries: messages lost
 * or counted twice, and replayed batches counted again, because the new partials do not hold the old identities.
 * A container therefore keeps one base size for good; changing it takes a new REPORTS_CONTAINER.
 */
import { RoutingError } from '../errors.js';
import { isUndecodableDocument, type Decode } from '../storage/jsonDocuments.js';
import type { WindowSize } from './aggregationConfig.js';
import type { WindowStore } from './windowStore.js';

export const BASE_WINDOW_DOC = 'config/base-window.json';

interface BaseWindowRecord {
  schema: 1;
  kind: 'baseWindow';
  /** The base window's label, as in blob names (`1m`). */
  base: string;
  /** When the first batch recorded it, ISO 8601. */
  since: string;
}

const decodeBaseWindowRecord: Decode<BaseWindowRecord> = (raw) => {
  const record = raw as Partial<BaseWindowRecord> | null;
  if (typeof record !== 'object' || record === null || record.kind !== 'baseWindow' || typeof record.base !== 'string') {
    throw new Error(`not a base window record`);
  }
  return record as BaseWindowRecord;
};

function mismatch(stored: string, configured: WindowSize): RoutingError {
  return new RoutingError(
    'ConfigInvalid',
    `aggregation.windows: the reports container (REPORTS_CONTAINER) holds windows built on a ${stored} base window, and ` +
      `this configuration's smallest window is ${configured.label}; a container keeps its base window for good: set ` +
      `REPORTS_CONTAINER to a new container for the new sizes (the old one stays readable with the old windows)`,
  );
}

/**
 * Records `base` as the container's base window on first use, and throws ConfigInvalid when the container already
 * holds another. The telemetry stream calls it before its first write of a process, so a deployment that changed
 * the base window stops (the trigger retries the batch) instead of corrupting the roll-ups.
 */
export async function claimBaseWindow(windows: WindowStore, base: WindowSize, now: Date): Promise<void> {
  const { value } = await windows.update<BaseWindowRecord>(
    BASE_WINDOW_DOC,
    (current) => (current === undefined ? { schema: 1, kind: 'baseWindow', base: base.label, since: now.toISOString() } : undefined),
    decodeBaseWindowRecord,
  );
  if (value !== undefined && value.base !== base.label) throw mismatch(value.base, base);
}

/** What `GET /api/health` says of it: ConfigInvalid when the container holds another base; nothing is written. */
export async function verifyBaseWindow(windows: WindowStore, base: WindowSize): Promise<void> {
  let stored: BaseWindowRecord | null;
  try {
    stored = await windows.get(BASE_WINDOW_DOC, decodeBaseWindowRecord);
  } catch (error) {
    // A record that does not decode is a problem to name. Storage down, or refusing the request (a wrong key, a
    // missing role: also StorageRejected), is thrown as it is: "delete the record" would be the wrong advice.
    if (!isUndecodableDocument(error)) throw error;
    throw new RoutingError(
      'ConfigInvalid',
      `${BASE_WINDOW_DOC} in the reports container (REPORTS_CONTAINER) is not a base window record: restore it, or delete ` +
        `it if every window there was written with this configuration's smallest window (${base.label})`,
    );
  }
  if (stored !== null && stored.base !== base.label) throw mismatch(stored.base, base);
}

/**
 * What every long-lived reader of a reports container calls before it reads (GET /api/reports, the dashboard's
 * data): {@link verifyBaseWindow} against `base`, the configuration's smallest window. Read with another base, a
 * container answers empty base windows and roll-ups missing what they would look up as base partials of the wrong
 * size: a report that looks complete and is not. The problem names settings and sizes only, as GET /api/health
 * does. Asked once per reader, since a container keeps its base window for good; a failure (the mismatch, or
 * storage down) asks again on the next call.
 */
export function baseWindowCheck(windows: WindowStore, base: WindowSize): () => Promise<void> {
  let verified: Promise<void> | undefined;
  return () => {
    verified ??= verifyBaseWindow(windows, base).catch((error: unknown) => {
      verified = undefined;
      throw error;
    });
    return verified;
  };
}
