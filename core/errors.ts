import { DEFAULT_REASON, type Reason } from './reasons.js';

/**
 * One error type for the whole orchestrator. Each code maps to one documented exit code
 * (docs/files-and-exit-codes.md), and each error carries a stable reason (reasons.ts): scripts
 * match on the numbers and the reasons, playbooks on the reasons.
 */
export const EXIT_CODES = {
  PHASE_FAILED: 1,
  BAD_INPUT: 2,
  LOCKED: 3,
  NOTHING_TO_RELEASE: 4,
  DRIFT: 5,
  BACKUP_FAILED: 6,
  HEALTH_FAILED: 7,
  REVERT_BLOCKED: 8,
  /** `--atomic`: the release failed, and its automatic revert failed too. */
  ATOMIC_REVERT_FAILED: 9,
  INTERRUPTED: 130,
} as const;

export type ErrorCode = keyof typeof EXIT_CODES;
export type { Reason } from './reasons.js';

export interface ReleaseErrorDetails {
  /** What the operator can do about it, one line. */
  hint?: string;
  /** Extra lines (e.g. a list of files) printed under the message. */
  lines?: string[];
  /** The plugin that raised it, filled in by the hook interceptor. */
  plugin?: string;
  /** The hook whose tap raised it, e.g. `restore.for(TYPE)`, filled in the same way. */
  hook?: string;
  /** The service it concerns, if one: playbooks fill it in for {service}. */
  service?: string;
  /** The phase to resume from once the cause is fixed, when it is not the one that failed. */
  resumeFrom?: string;
  /**
   * Why it failed, as a stable name (core/reasons.ts) that playbooks and scripts match on. Absent:
   * the reason a ReleaseError `cause` was given (not through an interrupt), else the code's default.
   */
  reason?: Reason;
  cause?: unknown;
}

export class ReleaseError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly lines: string[];
  readonly service?: string;
  readonly resumeFrom?: string;
  plugin?: string;
  hook?: string;
  /** The reason the thrower (or a wrapped cause) named; undefined: the code's default. */
  private readonly givenReason?: Reason;

  constructor(code: ErrorCode, message: string, details: ReleaseErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ReleaseError';
    this.code = code;
    this.hint = details.hint;
    this.lines = details.lines ?? [];
    this.plugin = details.plugin;
    this.hook = details.hook;
    this.service = details.service;
    this.resumeFrom = details.resumeFrom;
    // A wrapped cause's reason holds (a deadline stays a deadline inside a failed backup), except
    // through an interrupt: an interrupted script is no failed script.
    const inherited = details.cause instanceof ReleaseError ? details.cause.givenReason : undefined;
    this.givenReason = details.reason ?? (code === 'INTERRUPTED' ? undefined : inherited);
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }

  /** Why it failed: the stable name playbooks, events and `release show` carry. */
  get reason(): Reason {
    return this.givenReason ?? DEFAULT_REASON[this.code];
  }
}

/** Any thrown value becomes a ReleaseError; unknown errors are a failed phase (exit 1). */
export function toReleaseError(error: unknown): ReleaseError {
  if (error instanceof ReleaseError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ReleaseError('PHASE_FAILED', message, { cause: error });
}

/** The error code a child orchestrator process meant by its exit code; anything else is a failed phase. */
export function codeOfExit(exitCode: number): ErrorCode {
  const entry = Object.entries(EXIT_CODES).find(([, code]) => code === exitCode);
  return (entry?.[0] as ErrorCode | undefined) ?? 'PHASE_FAILED';
}
