/**
 * The criticalAlerts handler: one Service Bus message in, at most one e-mail out, whatever the number of deliveries.
 *
 * ```
 * admit (checks, quarantine) ─▶ policy: an alert? ─▶ ledger.claim(alertKey)
 *     done ─▶ duplicate (retry a pending device notification, nothing else)
 *     busy ─▶ wait briefly for the owner's outcome, else throw transient (Service Bus redelivers)
 *     claimed ─▶ gate: quiet period, pause, budget
 *         hold ─▶ fold into the device's digest window ─▶ ledger: digested
 *         send ─▶ render ─▶ sender.send(operationId = f(alertKey))
 *             sent     ─▶ notify the device (optional) ─▶ ledger: sent
 *             failed   ─▶ quarantine (EmailRejected) ─▶ ledger: failed         (permanent: never thrown)
 *             throws   ─▶ 429: pause the gate; release the ledger; rethrow     (transient: redelivered)
 *     claimed as a takeover ─▶ ask the e-mail service for the earlier attempt's send (operation id, no new send):
 *                              accepted ─▶ its outcome is the alert's (sent or quarantined), the gate is not asked
 *     any failure after the claim (storage, e-mail) ─▶ release the ledger; rethrow (redelivered, taken over at once)
 * ```
 *
 * Outcomes are values; only transient errors are thrown, so that the trigger redelivers (STYLE.md 4). Every
 * message ends in exactly one outcome: sent, digested, duplicate, quarantined or notAlert.
 */

import { admit, type AdmitDeps } from '../checks/admit.js';
import { isRoutingError, isTransient, RoutingError } from '../errors.js';
import { legacyMessageIdentity } from '../message/identity.js';
import type { RoutedMessage } from '../message/RoutedMessage.js';
import type { Clock, ETag } from '../ports.js';
import type { Quarantine, QuarantineReason } from '../storage/quarantine.js';
import { alertFactsOf, alertKeyOf, isAlert, type AlertFacts } from './alertPolicy.js';
import type { AlertsConfig } from './alertsConfig.js';
import type { AlertStores } from './alertStores.js';
import type { DeviceNotification, DeviceNotifier } from './deviceNotification.js';
import { emailOperationId, rejectionDetail, type EmailSender, type SendFailed, type SendResult } from './email.js';
import { LEASE_MARGIN_MS, leaseEndMs, type Claim, type DeviceNotificationState, type LedgerRecord, type LedgerState } from './ledger.js';
import { renderAlertEmail } from './render.js';
import type { HoldReason } from './sendGate.js';

/** The longest a delivery waits on a Retry-After before handing the message back; less when its lease ends sooner. */
const MAX_RETRY_AFTER_WAIT_SECONDS = 60;

export interface AlertDeps {
  config: AlertsConfig;
  dashboardUrl: string;
  clock: Clock;
  stores: AlertStores;
  sender: EmailSender;
  /** Present only when `alerts.notifyDevice` is on. */
  notifier?: DeviceNotifier | undefined;
  quarantine: Quarantine;
  admit: AdmitDeps;
  /** The routing config's enrichment keys: alert e-mails keep these among the properties they show. */
  enrichmentKeys?: readonly string[];
  /**
   * A delivery that finds its alert owned by another (a duplicate racing on another instance) polls the ledger this
   * many times before handing the message back: Service Bus redelivers at once, so throwing immediately would burn
   * the message's ten deliveries in a second while the owner is still sending. Default 20 × 250 ms.
   */
  busyWait?: { attempts: number; intervalMs: number };
  sleep?: (ms: number) => Promise<void>;
}

export type AlertOutcome =
  | {
      outcome: 'sent';
      alertKey: string;
      deviceId: string;
      operationId: string;
      recipients: number;
      deviceNotification: DeviceNotificationState;
      /** An earlier attempt existed (crashed or throttled); the send repeated its operation id. */
      takeover: boolean;
    }
  | { outcome: 'digested'; alertKey: string; deviceId: string; windowId: string; reason: HoldReason | 'retry'; dueAt: string }
  | { outcome: 'duplicate'; alertKey: string; deviceId: string; state: LedgerState }
  | { outcome: 'quarantined'; alertKey: string; deviceId: string | null; reasons: string[]; detail: string }
  | { outcome: 'notAlert'; alertKey: string; deviceId: string | null };

export interface CriticalAlertHandler {
  handle(message: RoutedMessage): Promise<AlertOutcome>;
}

/** When a 429 carries no Retry-After: ACS's limits are per minute, so a minute is the shortest wait that helps. */
export const DEFAULT_THROTTLE_PAUSE_SECONDS = 60;

export const EMAIL_REJECTED_HINT =
  'The e-mail service refused this alert for good (see the detail: recipient, sender address, domain or credentials). ' +
  'Fix routing.config.json alerts (recipients, from) or the ACS resource, then delete ledger/<alertKey>.json in the alerts ' +
  'container and replay this message: the ledger records the failure so that redeliveries do not retry it forever.';

/**
 * The ledger state that would settle an admitted message before anything is sent, for a replay's dry run: none
 * for a message today's `alerts.when` does not make an alert (the handler answers `notAlert` without the ledger);
 * else the finished record under the key a module's alert had before identities named the module; else the record
 * under its own key. Read only, in the order `handle` reads them.
 */
export async function ledgerVerdict(ledger: AlertStores['ledger'], config: AlertsConfig, message: RoutedMessage): Promise<LedgerState | undefined> {
  if (!isAlert(message, config)) return undefined;
  const earlier = await legacyRecord(ledger, message);
  if (earlier !== null && earlier.record.state !== 'in-progress') return earlier.record.state;
  return (await ledger.get(alertKeyOf(message)))?.record.state;
}

/**
 * A module's alert handled before identities named the module is recorded under its key of then
 * (`legacyMessageIdentity`); null for other messages or when there is no such record.
 */
async function legacyRecord(ledger: AlertStores['ledger'], message: RoutedMessage): Promise<{ record: LedgerRecord; etag: ETag } | null> {
  const legacyKey = legacyMessageIdentity(message);
  return legacyKey === undefined ? null : ledger.get(legacyKey);
}

export function createCriticalAlertHandler(deps: AlertDeps): CriticalAlertHandler {
  const { config, clock, stores, sender, notifier, quarantine } = deps;
  const { ledger, gate, digests } = stores;
  const busyWait = deps.busyWait ?? { attempts: 20, intervalMs: 250 };
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  /** Polls a busy alert until its owner records an outcome or its lease expires (then claims it). */
  const waitForOwner = async (facts: AlertFacts, first: Claim, operationId: string): Promise<Claim> => {
    let claim = first;
    for (let attempt = 0; claim.status === 'busy' && attempt < busyWait.attempts; attempt += 1) {
      await sleep(busyWait.intervalMs);
      const current = await ledger.get(facts.alertKey);
      const expired = current !== null && current.record.state === 'in-progress' && leaseEndMs(current.record) <= clock.now().getTime();
      if (current === null || expired) claim = await ledger.claim(facts.alertKey, { kind: 'alert', deviceId: facts.deviceId, operationId });
      else if (current.record.state !== 'in-progress') claim = { status: 'done', ...current };
    }
    if (claim.status === 'busy') {
      throw new RoutingError(
        'StorageConflict',
        `alert ${facts.alertKey} of device '${facts.deviceId}' is being handled by another delivery (attempt ${claim.record.attempts}, ` +
          `lease until ${claim.record.expiresAt ?? '?'}); Service Bus will redeliver`,
      );
    }
    return claim;
  };

  const notify = async (facts: AlertFacts, subject: string): Promise<{ state: DeviceNotificationState; error?: string; retry?: unknown }> => {
    if (!config.notifyDevice || notifier === undefined) return { state: 'not-requested' };
    const notification: DeviceNotification = {
      deviceId: facts.deviceId,
      alertId: facts.alertKey,
      // Its own name space, so the device message id never equals the e-mail's operation id.
      messageId: emailOperationId(`device-notification/${facts.alertKey}`),
      severity: facts.severity,
      enqueuedTime: facts.enqueuedTime,
      summary: subject,
    };
    try {
      const result = await notifier.notify(notification);
      return result.status === 'sent' ? { state: 'sent' } : { state: 'failed', error: result.error };
    } catch (error) {
      if (!isTransient(error)) throw error;
      return { state: 'pending', error: String((error as Error).message), retry: error };
    }
  };

  const duplicate = async (facts: AlertFacts, done: { record: LedgerRecord; etag: ETag }): Promise<AlertOutcome> => {
    if (done.record.state === 'sent' && done.record.deviceNotification === 'pending') {
      // The e-mail went out but the device notification did not: retry only that, with the same content.
      const result = await notify(facts, renderAlertEmail(facts, { config, dashboardUrl: deps.dashboardUrl }).subject);
      await ledger.recordNotification(done, result.state, result.error);
      if (result.retry !== undefined) throw result.retry;
    }
    return { outcome: 'duplicate', alertKey: facts.alertKey, deviceId: facts.deviceId, state: done.record.state };
  };

  const fold = async (
    owned: { record: LedgerRecord; etag: ETag },
    facts: AlertFacts,
    reason: HoldReason | 'retry',
    until: Date,
  ): Promise<AlertOutcome> => {
    const folded = await digests.fold(facts, until);
    // Not ok: our lease ran out and a taker owns the alert; it folds the same key (a no-op) and records the same.
    await ledger.finish(owned, { state: 'digested', windowId: folded.windowId, dueAt: folded.dueAt.toISOString() });
    return {
      outcome: 'digested',
      alertKey: facts.alertKey,
      deviceId: facts.deviceId,
      windowId: folded.windowId,
      reason,
      dueAt: folded.dueAt.toISOString(),
    };
  };

  const rejected = async (
    owned: { record: LedgerRecord; etag: ETag },
    facts: AlertFacts,
    message: RoutedMessage,
    result: SendFailed,
  ): Promise<AlertOutcome> => {
    const detail = rejectionDetail(result, `for alert ${facts.alertKey}`);
    const reason: QuarantineReason = { code: 'EmailRejected', detail, hint: EMAIL_REJECTED_HINT };
    // Quarantine first: a crash between the two leaves the alert in progress, and the delivery that takes it over
    // gets the same verdict and writes the same (idempotent) quarantine entry. The other order could record
    // "failed" with nothing in the quarantine.
    await quarantine.putMessage(message, 'criticalQueue', [reason]);
    const outcome: { state: 'failed'; error: string; providerCode?: string; httpStatus?: number } = { state: 'failed', error: result.error };
    if (result.providerCode !== undefined) outcome.providerCode = result.providerCode;
    if (result.httpStatus !== undefined) outcome.httpStatus = result.httpStatus;
    await ledger.finish(owned, outcome);
    return { outcome: 'quarantined', alertKey: facts.alertKey, deviceId: facts.deviceId, reasons: ['EmailRejected'], detail };
  };

  /**
   * Waits out what the e-mail service asked for (a throttled status poll, a 503 with Retry-After) before the alert
   * is handed back, holding the message (its lock renews): Service Bus redelivers at once, and ten redeliveries
   * meeting the same throttle within seconds would dead-letter an alert that is on its way. Within what is left of
   * the lease, so no other delivery takes over while this one waits.
   */
  const waitAsAsked = async (owned: { record: LedgerRecord }, error: unknown): Promise<void> => {
    if (!isRoutingError(error) || error.retryAfterSeconds === undefined) return;
    const leaseLeftMs = leaseEndMs(owned.record) - LEASE_MARGIN_MS - clock.now().getTime();
    await sleep(Math.max(0, Math.min(error.retryAfterSeconds * 1000, MAX_RETRY_AFTER_WAIT_SECONDS * 1000, leaseLeftMs)));
  };

  const send = async (
    owned: { record: LedgerRecord; etag: ETag },
    facts: AlertFacts,
    message: RoutedMessage,
    takeover: boolean,
  ): Promise<AlertOutcome> => {
    const email = renderAlertEmail(facts, { config, dashboardUrl: deps.dashboardUrl });
    let result: SendResult;
    try {
      result = await sender.send(email);
    } catch (error) {
      if (isRoutingError(error) && error.code === 'EmailThrottled') {
        const seconds = error.retryAfterSeconds ?? DEFAULT_THROTTLE_PAUSE_SECONDS;
        // Every instance holds its alerts back until then (they fold into digests instead of meeting the same 429).
        await gate.pause(new Date(clock.now().getTime() + seconds * 1000)).catch(() => undefined);
      } else {
        await waitAsAsked(owned, error);
      }
      throw error;
    }
    return record(owned, facts, message, email, result, takeover);
  };

  /**
   * A takeover: an earlier attempt ended without an outcome (it crashed, its lease ran out, or it handed the alert
   * back after a transient error). Invariant: if the e-mail service accepted that attempt's send, that send is this
   * alert's e-mail, whatever the gate says now; folding the alert into a digest would mail it a second time. The
   * service is asked (a lookup of the operation id, no new send), not the ledger, so that a crash, a lease that ran
   * out mid-send or a lost release cannot hide an accepted send. Undefined when it has none.
   */
  const earlierSend = async (owned: { record: LedgerRecord; etag: ETag }, facts: AlertFacts, message: RoutedMessage): Promise<AlertOutcome | undefined> => {
    const email = renderAlertEmail(facts, { config, dashboardUrl: deps.dashboardUrl });
    let result: SendResult | null;
    try {
      result = await sender.lookup(email);
    } catch (error) {
      await waitAsAsked(owned, error);
      throw error;
    }
    return result === null ? undefined : record(owned, facts, message, email, result, true);
  };

  /** Records what the service did with the alert's e-mail: refused (quarantined) or sent (then the device told). */
  const record = async (
    owned: { record: LedgerRecord; etag: ETag },
    facts: AlertFacts,
    message: RoutedMessage,
    email: { subject: string; to: readonly string[]; operationId: string },
    result: SendResult,
    takeover: boolean,
  ): Promise<AlertOutcome> => {
    if (result.status === 'failed') return rejected(owned, facts, message, result);

    const notification = await notify(facts, email.subject);
    await ledger.finish(owned, {
      state: 'sent',
      recipients: email.to.length,
      deviceNotification: notification.state,
      ...(result.providerId === undefined ? {} : { providerId: result.providerId }),
      ...(notification.error === undefined ? {} : { deviceNotificationError: notification.error }),
    });
    // The e-mail is recorded as sent; a redelivery only retries the notification (see `duplicate`).
    if (notification.retry !== undefined) throw notification.retry;
    return {
      outcome: 'sent',
      alertKey: facts.alertKey,
      deviceId: facts.deviceId,
      operationId: email.operationId,
      recipients: email.to.length,
      deviceNotification: notification.state,
      takeover,
    };
  };

  return {
    async handle(message) {
      const admission = await admit([message], 'criticalQueue', deps.admit);
      const entry = admission.admitted[0];
      if (entry === undefined) {
        // The codes that quarantined it; warnings it also had are not why.
        const reasons = Object.keys(admission.quarantinedBy).sort();
        return {
          outcome: 'quarantined',
          alertKey: alertKeyOf(message),
          deviceId: message.deviceId,
          reasons,
          detail: admission.quarantineReplays > 0 ? 'already quarantined (a replay)' : 'rejected by the checks',
        };
      }
      // Twin resolution may have filled in enrichments (a device group, for example).
      const admitted = entry.message;
      if (!isAlert(admitted, config)) return { outcome: 'notAlert', alertKey: alertKeyOf(admitted), deviceId: admitted.deviceId };

      const facts = alertFactsOf(admitted, config, deps.enrichmentKeys);
      // Found under its key of before the upgrade, a delivery in flight across it is the duplicate it is (its own
      // key would send a second e-mail).
      const earlier = await legacyRecord(ledger, admitted);
      if (earlier !== null) {
        if (earlier.record.state !== 'in-progress') return duplicate(facts, earlier);
        if (leaseEndMs(earlier.record) > clock.now().getTime()) {
          // An instance of the earlier build is sending it: let Service Bus redeliver once it is done.
          throw new RoutingError('StorageConflict', `alert ${earlier.record.key} of device '${facts.deviceId}' is being handled under its earlier key; Service Bus will redeliver`);
        }
      }
      const operationId = emailOperationId(facts.alertKey);
      let claim = await ledger.claim(facts.alertKey, { kind: 'alert', deviceId: facts.deviceId, operationId });
      if (claim.status === 'busy') claim = await waitForOwner(facts, claim, operationId);
      if (claim.status !== 'claimed') return duplicate(facts, claim);

      const owned = claim;
      try {
        if (owned.takeover) {
          // `message` as delivered, not `admitted`: what a refusal quarantines keeps its `$twin` placeholders (admit.ts).
          const sent = await earlierSend(owned, facts, message);
          if (sent !== undefined) return sent;
          // The earlier attempt may have folded the alert before it crashed; finish that instead of also sending it.
          const pending = await digests.get(facts.deviceId);
          const window = pending?.windows.find((w) => w.recentKeys.includes(facts.alertKey));
          if (window !== undefined) return await fold(owned, facts, 'retry', new Date(window.dueAt));
        }
        const decision = await gate.admitAlert(facts.deviceId, facts.alertKey);
        if (decision.kind === 'hold') return await fold(owned, facts, decision.reason, decision.until);
        return await send(owned, facts, message, owned.takeover);
      } catch (error) {
        // Invariant: a delivery that fails after claiming hands the alert back before it throws. Service Bus
        // redelivers an abandoned message at once, and a lease left to run out (75 s) would have every redelivery
        // wait on it and fail as busy until the delivery count dead-letters the alert, unsent or sent but
        // unrecorded. Handing back is safe at any point: the taker looks the same operation id up at ACS first
        // and folds with the same key, and it is a no-op (If-Match) once the outcome was recorded.
        await ledger.release(owned, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
        throw error;
      }
    },
  };
}
