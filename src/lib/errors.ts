/**
 * Errors that cross a boundary carry their retry meaning.
 *
 * - `permanent`: retrying the same input cannot succeed (bad configuration, a malformed archive, an e-mail the
 *   service rejected). Message paths turn these into quarantine records; they never reach the Functions host.
 * - `transient`: the same input may succeed later (storage or e-mail service unavailable, throttled, a lost
 *   conditional-write race). Handlers let these propagate so the trigger's retry or redelivery applies.
 *
 * Guards compare `name` and `code`, not `instanceof`, so that errors survive duplicated module copies.
 */

export type ErrorKind = 'permanent' | 'transient';

/** Every code and its fixed retry meaning. A code never changes kind. */
const KIND_OF = {
  ConfigInvalid: 'permanent',
  UsageInvalid: 'permanent',
  ArchiveTruncated: 'permanent',
  ArchiveCorrupt: 'permanent',
  ArchiveFormatUnknown: 'permanent',
  StorageUnavailable: 'transient',
  StorageConflict: 'transient',
  StorageRejected: 'permanent',
  EmailThrottled: 'transient',
  EmailUnavailable: 'transient',
  EmailRejected: 'permanent',
  TwinUnavailable: 'transient',
  DeviceNotificationFailed: 'transient',
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof KIND_OF;

export const ERROR_CODES = Object.keys(KIND_OF) as readonly ErrorCode[];

export interface RoutingErrorOptions {
  cause?: unknown;
  /** Seconds the caller should wait before retrying (from a Retry-After header, for example). */
  retryAfterSeconds?: number;
  /** The problems a ConfigInvalid names, one by one (see {@link configInvalid}). */
  problems?: readonly string[];
}

export class RoutingError extends Error {
  override readonly name = 'RoutingError';
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly retryAfterSeconds: number | undefined;
  readonly problems: readonly string[] | undefined;

  constructor(code: ErrorCode, message: string, options: RoutingErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.kind = KIND_OF[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.problems = options.problems === undefined ? undefined : [...options.problems];
  }
}

export function isRoutingError(error: unknown): error is RoutingError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'RoutingError' &&
    typeof (error as { code?: unknown }).code === 'string' &&
    (error as { code: string }).code in KIND_OF
  );
}

/**
 * One ConfigInvalid naming every problem (STYLE.md 3): the message lists them for a log or a terminal
 * (`heading (2 problems):\n- a\n- b`), and the error carries them as they are for answers that show them one by
 * one (`/api/health`, the dashboard), so no reader parses the message back.
 */
export function configInvalid(heading: string, problems: readonly string[], options: Omit<RoutingErrorOptions, 'problems'> = {}): RoutingError {
  const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  return new RoutingError('ConfigInvalid', `${heading} (${count}):\n- ${problems.join('\n- ')}`, { ...options, problems });
}

/** The problems a ConfigInvalid error names: those it was raised with, or its message when it names just one. */
export function configProblems(error: RoutingError): string[] {
  return error.problems === undefined ? [error.message] : [...error.problems];
}

/** True only for errors that declare themselves transient; unknown errors are not assumed retryable here. */
export function isTransient(error: unknown): boolean {
  return isRoutingError(error) && error.kind === 'transient';
}

/** How a read behind an HTTP endpoint failed, as the answer says it (see `readFailure`). */
export interface ReadFailure {
  status: 400 | 503;
  error: 'BadRequest' | 'StorageUnavailable' | 'Misconfigured';
  problems: string[];
  headers: Record<string, string>;
}

/**
 * A failed read as an HTTP answer: a request the reader refused as too large (`UsageInvalid`) is the caller's to
 * narrow (400); a configuration the stored data contradicts (`ConfigInvalid`, e.g. a reports container written with
 * another base window) is the operator's to fix (503 Misconfigured, its problems as /api/health lists them); a
 * transient storage failure is the client's to retry (503 with Retry-After, the store's hint or 5 s). Anything else
 * is undefined: a defect, thrown on to the host.
 */
export function readFailure(error: unknown): ReadFailure | undefined {
  if (isRoutingError(error) && error.code === 'ConfigInvalid') {
    return { status: 503, error: 'Misconfigured', problems: configProblems(error), headers: {} };
  }
  if (isRoutingError(error) && error.code === 'UsageInvalid') {
    return { status: 400, error: 'BadRequest', problems: [error.message], headers: {} };
  }
  if (!isTransient(error)) return undefined;
  const retryAfter = isRoutingError(error) ? (error.retryAfterSeconds ?? 5) : 5;
  return { status: 503, error: 'StorageUnavailable', problems: [(error as Error).message], headers: { 'retry-after': String(retryAfter) } };
}

export function kindOf(code: ErrorCode): ErrorKind {
  return KIND_OF[code];
}
