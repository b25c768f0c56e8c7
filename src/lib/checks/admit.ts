/**
 * The stage every path runs between decoding and its own work: resolve unresolved twin enrichments (when
 * configured), check, and quarantine what must not be processed. Conservation: every message given to `admit`
 * comes back either in `admitted` or counted in `quarantined` — never neither, never both.
 */
import type { RoutedMessage } from '../message/RoutedMessage.js';
import { reasonsFromFindings, type Quarantine } from '../storage/quarantine.js';
import { checkMessage, isUnresolvedPlaceholder, type CheckResult } from './checks.js';
import type { ChecksConfig } from './expectations.js';
import type { EndpointName, ReasonCode } from './reasons.js';
import type { TwinResolver } from './twins/twinResolver.js';

export interface AdmitDeps {
  checks: ChecksConfig;
  quarantine: Quarantine;
  /** Present only when twinResolution.enabled. */
  twins?: TwinResolver | undefined;
  now: () => Date;
}

/** An admitted message: admit's judgement of it, and the message as it came. */
export interface AdmittedMessage extends Admission {
  /** The message as delivered; what a later stage quarantines, so that a replay resolves its twins again. */
  delivered: RoutedMessage;
}

export interface AdmitResult {
  admitted: AdmittedMessage[];
  quarantined: number;
  /** Quarantined messages whose identity was already in the quarantine (replays). */
  quarantineReplays: number;
  /** Counts of findings by reason code over the whole batch, quarantined or not. */
  findings: Partial<Record<ReasonCode, number>>;
  /** Quarantined messages by the codes that quarantined them (a message with two such codes counts under both). */
  quarantinedBy: Partial<Record<ReasonCode, number>>;
}

const QUARANTINE_CONCURRENCY = 8;
/** Shared by every message without twin-resolved enrichments (almost all): one empty list, not one each. */
const NONE_RESOLVED: readonly string[] = Object.freeze([]);

export async function admit(messages: readonly RoutedMessage[], endpoint: EndpointName, deps: AdmitDeps): Promise<AdmitResult> {
  const now = deps.now();
  const admitted: AdmittedMessage[] = [];
  const toQuarantine: Array<{ message: RoutedMessage; check: CheckResult }> = [];
  const findings: Partial<Record<ReasonCode, number>> = {};
  const quarantinedBy: Partial<Record<ReasonCode, number>> = {};

  for (const original of messages) {
    // Placeholders are looked for here first, synchronously: almost no message has one, and an await per message
    // costs a turn of the event loop.
    const { message, check, twinResolved } =
      deps.twins !== undefined && hasPlaceholder(original)
        ? await checkAdmission(original, endpoint, deps, now)
        : { message: original, check: checkMessage(original, endpoint, deps.checks, now), twinResolved: NONE_RESOLVED };
    // Indexed: for...of over the shared frozen empty list of a clean check allocates an iterator and its result
    // per message (frozen arrays are not on V8's fast iteration path).
    for (let f = 0; f < check.findings.length; f++) {
      const code = check.findings[f]!.code;
      findings[code] = (findings[code] ?? 0) + 1;
    }
    if (check.outcome === 'quarantine') {
      // Kept as delivered, its `$twin` placeholders unresolved (the findings name the values they resolved to): a
      // replay after the twin is fixed resolves them again, where a stored resolved value would be refused forever.
      toQuarantine.push({ message: original, check });
      countQuarantineCodes(check, quarantinedBy);
    } else {
      admitted.push({ message, delivered: original, check, twinResolved });
    }
  }

  let quarantineReplays = 0;
  // Bounded parallelism: a batch full of bad messages must not open hundreds of storage requests at once.
  for (let i = 0; i < toQuarantine.length; i += QUARANTINE_CONCURRENCY) {
    const results = await Promise.all(
      toQuarantine
        .slice(i, i + QUARANTINE_CONCURRENCY)
        .map(({ message, check }) => deps.quarantine.putMessage(message, endpoint, reasonsFromFindings(check.findings))),
    );
    quarantineReplays += results.filter((r) => !r.created).length;
  }
  return { admitted, quarantined: toQuarantine.length, quarantineReplays, findings, quarantinedBy };
}

/** Adds `by`'s counts to `into` (reason-code tallies of batches, files and runs). */
export function addCounts(into: Partial<Record<ReasonCode, number>>, by: Readonly<Partial<Record<ReasonCode, number>>>): void {
  for (const code of Object.keys(by) as ReasonCode[]) into[code] = (into[code] ?? 0) + by[code]!;
}

function countQuarantineCodes(check: CheckResult, into: Partial<Record<ReasonCode, number>>): void {
  for (const code of quarantiningCodes(check)) into[code] = (into[code] ?? 0) + 1;
}

/** The codes of the findings that quarantine the message, each once, sorted. */
export function quarantiningCodes(check: CheckResult): ReasonCode[] {
  const codes = new Set<ReasonCode>();
  for (const finding of check.findings) if (finding.outcome === 'quarantine') codes.add(finding.code);
  return [...codes].sort();
}

/** What `admit` decides on: the message with its twins resolved, and the checks' verdict on it. */
export interface Admission {
  /** The message as checked: its `$twin` placeholders resolved from its device's or module's twin, when configured. */
  message: RoutedMessage;
  check: CheckResult;
  /** Enrichment keys whose `$twin` placeholder was resolved from the twin (the module twin for a module's message). */
  twinResolved: readonly string[];
}

/**
 * The message as the checks see it (`$twin` placeholders resolved) and their verdict: the whole of admit's
 * judgement of one message, without its quarantine write. A replay's dry run asks the same.
 */
export async function checkAdmission(
  message: RoutedMessage,
  endpoint: EndpointName,
  deps: Pick<AdmitDeps, 'checks' | 'twins'>,
  now: Date,
): Promise<Admission> {
  const resolution = await resolveTwinPlaceholders(message, deps.twins);
  return { message: resolution.message, check: checkMessage(resolution.message, endpoint, deps.checks, now), twinResolved: resolution.resolved };
}

function hasPlaceholder(message: RoutedMessage): boolean {
  for (const key in message.properties) {
    if (isUnresolvedPlaceholder(message.properties[key])) return true;
  }
  return false;
}

/**
 * What `admit` checks: the message with its `$twin` placeholders resolved from its sender's twin (resolver
 * configured): the device twin for a device's message, the module twin for an IoT Edge module's message.
 *
 * Why the module twin: IoT Hub enriches a module's message from the module twin and never falls back to the device
 * twin. learn.microsoft.com/azure/iot-hub/iot-hub-message-enrichments-overview, "Limitations": "Modules don't inherit
 * twin tags from their corresponding devices. Enrichments for messages originating from device modules (for example
 * from IoT Edge modules) must use the twin tags that are set on the module twin." The routing query guide says the
 * same of `$twin` in route conditions (learn.microsoft.com/azure/iot-hub/iot-hub-devguide-routing-query-syntax: twin
 * queries for module messages "query against the module twin and not the corresponding device twin"). The same page
 * lists when the hub leaves the literal placeholder: basic tier (no twins), a path the twin does not have, a path
 * that holds an object; and a twin change can take up to five minutes to reach enrichments. The device twin would
 * give a value IoT Hub would not have stamped, so it is never read for a module's message.
 *
 * The message's identity is untouched: it is keyed as delivered (`mid:{module}/...` for a module's message), and
 * the resolved copy only feeds the checks and the path's own work.
 */
async function resolveTwinPlaceholders(message: RoutedMessage, twins: TwinResolver | undefined): Promise<{ message: RoutedMessage; resolved: readonly string[] }> {
  if (twins !== undefined && message.deviceId !== null && hasPlaceholder(message)) {
    // Transient twin failures throw (TwinUnavailable) so the trigger retries the batch: nothing is half-done here.
    const owner = { deviceId: message.deviceId, moduleId: message.moduleId };
    const resolution = await twins.resolveProperties(owner, message.properties);
    if (resolution.resolved.length > 0) return { message: { ...message, properties: resolution.properties }, resolved: resolution.resolved };
  }
  return { message, resolved: NONE_RESOLVED };
}
