/**
 * The digest run (the alertDigests timer, every minute): sends the digest of every device whose window is due,
 * earliest first, for as long as the budget allows. What the budget or a pause holds back stays pending for the next
 * run: a digest is never dropped.
 *
 * Per device: seal the due window (so alerts arriving meanwhile open the next one), claim the digest's ledger record
 * (so two runs never both send it), reserve through the gate (which also starts the device's next quiet period),
 * render, send under an operation id derived from the device and the window, record, remove the window. A run that
 * stops half-way leaves the window sealed and the ledger released or in progress; the next run picks up exactly
 * there and sends the same operation, byte for byte.
 */

import { isRoutingError } from '../errors.js';
import { DEFAULT_THROTTLE_PAUSE_SECONDS, type AlertDeps } from './criticalAlertHandler.js';
import { digestFactsOf } from './deviceDigests.js';
import { emailOperationId, rejectionDetail, type SendResult } from './email.js';
import { renderDigestEmail } from './render.js';
import type { HoldReason } from './sendGate.js';

export interface DigestFailure {
  deviceId: string;
  digestKey: string;
  error: string;
}

export interface DigestRunSummary {
  /** Devices with a window due at the start of the run. */
  due: number;
  sent: number;
  /** Rejected for good by the e-mail service; recorded in the digest's ledger record, not retried. */
  failed: DigestFailure[];
  /** Already sent by an earlier run that stopped before removing the window. */
  duplicates: number;
  /** Being sent by another run right now. */
  busy: number;
  /** Left for a later run because of `heldBy`. */
  held: number;
  heldBy?: HoldReason;
  /** The e-mail service's transient error that ended the run early (the rest is left for the next run). */
  interrupted?: { code: string; message: string };
}

export const DIGEST_REJECTED_HINT =
  'The e-mail service refused this digest for good (see the detail: recipient, sender address, domain or credentials). ' +
  'Its alerts were not delivered: they are summarised here, with the keys of the most recent ones. Fix ' +
  'routing.config.json alerts (recipients, from) or the ACS resource; the next alerts of the device are sent again.';

export type DigestRunDeps = Pick<AlertDeps, 'config' | 'dashboardUrl' | 'clock' | 'stores' | 'sender' | 'quarantine'>;

export interface DigestRunner {
  run(): Promise<DigestRunSummary>;
}

export function createDigestRunner(deps: DigestRunDeps): DigestRunner {
  const { config, clock, stores, sender } = deps;
  const { ledger, gate, digests } = stores;

  return {
    async run() {
      const due = await digests.listDue(clock.now());
      const summary: DigestRunSummary = { due: due.length, sent: 0, failed: [], duplicates: 0, busy: 0, held: 0 };
      for (const [index, { deviceId }] of due.entries()) {
        const window = await digests.seal(deviceId, clock.now());
        if (window === null) continue;
        const facts = digestFactsOf(deviceId, window);
        const operationId = emailOperationId(facts.digestKey);
        const claim = await ledger.claim(facts.digestKey, { kind: 'digest', deviceId, operationId });
        if (claim.status === 'busy') {
          summary.busy += 1;
          continue;
        }
        if (claim.status === 'done') {
          await digests.remove(deviceId, window.id);
          summary.duplicates += 1;
          continue;
        }
        const email = renderDigestEmail(facts, { config, dashboardUrl: deps.dashboardUrl });
        let result: SendResult | null = null;
        try {
          // A takeover asks the e-mail service first, as an alert's does: a send it accepted under this digest's
          // operation id is the digest's e-mail, whatever the gate says now (no POST that could meet a 429).
          if (claim.takeover) result = await sender.lookup(email);
          if (result === null) {
            const decision = await gate.admitDigest(deviceId, facts.digestKey);
            if (decision.kind === 'hold') {
              await ledger.release(claim, `held back (${decision.reason}) until ${decision.until.toISOString()}`);
              // The budget and a pause hold every device alike: the rest of the list waits too.
              summary.held = due.length - index;
              summary.heldBy = decision.reason;
              break;
            }
            result = await sender.send(email);
          }
        } catch (error) {
          await ledger.release(claim, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
          if (!isRoutingError(error) || error.kind !== 'transient') throw error;
          if (error.code === 'EmailThrottled') {
            const seconds = error.retryAfterSeconds ?? DEFAULT_THROTTLE_PAUSE_SECONDS;
            await gate.pause(new Date(clock.now().getTime() + seconds * 1000));
          }
          summary.interrupted = { code: error.code, message: error.message };
          summary.held = due.length - index;
          break;
        }
        if (result.status === 'failed') {
          // Quarantine first, as for a single alert: a crash before the ledger update sends the same operation
          // again, gets the same verdict and writes nothing new here. The record is named by the digest's key, so
          // a takeover on a later day finds it too, as it finds one an earlier build filed under the refusal's day.
          await deps.quarantine.putDigest({
            identity: facts.digestKey,
            deviceId,
            reasons: [{ code: 'EmailRejected', detail: rejectionDetail(result, `with the digest of ${window.count} alert${window.count === 1 ? '' : 's'}`), hint: DIGEST_REJECTED_HINT }],
            digest: {
              operationId,
              alerts: window.count,
              firstTime: window.firstTime,
              lastTime: window.lastTime,
              severities: window.severities,
              recipients: window.recipients,
              readings: facts.readings,
              recentAlertKeys: window.recentKeys,
            },
          }, claim.takeover ? { earlierAttemptsSince: new Date(claim.record.createdAt) } : {});
          const failure = { state: 'failed' as const, error: result.error };
          await ledger.finish(claim, {
            ...failure,
            ...(result.providerCode === undefined ? {} : { providerCode: result.providerCode }),
            ...(result.httpStatus === undefined ? {} : { httpStatus: result.httpStatus }),
          });
          summary.failed.push({ deviceId, digestKey: facts.digestKey, error: result.error });
        } else {
          await ledger.finish(claim, {
            state: 'sent',
            recipients: email.to.length,
            // The device was notified with the alert that opened the quiet period; a digest does not repeat it.
            deviceNotification: 'not-requested',
            ...(result.providerId === undefined ? {} : { providerId: result.providerId }),
          });
          summary.sent += 1;
        }
        await digests.remove(deviceId, window.id);
      }
      return summary;
    },
  };
}
