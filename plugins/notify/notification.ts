/**
 * What the notifiers share: the outcome of a run as one object, a secret read from a file, an HTTP
 * request retried with backoff inside a deadline, and a guard that turns any notification failure
 * into a warning and an audit event. A notification never changes a release's exit code and never
 * holds it up for longer than the notifier's timeout.
 */
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import {
  commandLine, redact, registerSecret, z, type Hooks, type ReleaseError, type ReleaseState, type RunContext,
} from '../../api/index.js';

/** The payload's schema version: bumped when a field changes meaning or goes away. */
export const NOTIFICATION_SCHEMA = 'release-orchestrator.notification/1';

export interface NextCommand {
  /** What the command is for, in the words the failure block uses. */
  purpose: 'roll back' | 'resume' | 'run again';
  command: string;
}

export interface ReleaseOutcome {
  schema: typeof NOTIFICATION_SCHEMA;
  ticket: string;
  verb: 'release-run' | 'release-revert';
  /** complete / reverted on success; failed or interrupted otherwise. */
  outcome: 'complete' | 'reverted' | 'failed' | 'interrupted';
  exitCode: number;
  /** The phase that failed; absent on success. */
  phase?: string;
  /** The error's one-line message, redacted; absent on success. */
  error?: string;
  services: string[];
  baseSha?: string;
  mergeSha?: string;
  startedAt?: string;
  finishedAt: string;
  durationSeconds?: number;
  host: string;
  /** The commands an operator pastes next, written the way they run the verbs. */
  next: NextCommand[];
}

/** The options every notifier shares. */
export const deadlineOption = z.number().int().min(100).max(120_000).default(10_000);
export const absoluteFile = z.string().min(1).refine(isAbsolute, 'must be an absolute path (a file outside the repo, mode 0600)');
export const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

/** The verbs a notification is sent for: a drift check or `init` is nobody's news. */
export function isNotifiable(context: RunContext, error?: ReleaseError): boolean {
  if (context.verb !== 'release-run' && context.verb !== 'release-revert') return false;
  if (context.dryRun) return false;
  // Another release holds the lock: that run is not ours to report.
  return error?.code !== 'LOCKED';
}

function stateOf(context: RunContext): ReleaseState | undefined {
  try {
    return context.state ?? (context.stateFile.exists() ? context.stateFile.read() : undefined);
  } catch {
    return undefined; // a damaged state file was reported already
  }
}

/** When this run started: the last `start` event of the audit log (the log is the run's record). */
function startedAt(context: RunContext): Date | undefined {
  try {
    const lines = readFileSync(context.log.path, 'utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      if (/ phase=orchestrator event=start( |$)/.test(lines[i]!)) {
        const at = Date.parse(lines[i]!.slice(0, lines[i]!.indexOf(' ')));
        return Number.isNaN(at) ? undefined : new Date(at);
      }
    }
  } catch {
    // no log (nothing ran): no duration
  }
  return undefined;
}

/** The advice the failure block prints, as commands; the same rules as the runner's. */
function nextCommands(context: RunContext, state: ReleaseState | undefined, error?: ReleaseError): NextCommand[] {
  const { ticket } = context;
  if (context.verb === 'release-revert') return error ? [{ purpose: 'run again', command: commandLine('release-revert', [ticket]) }] : [];
  const rollBack = { purpose: 'roll back' as const, command: commandLine('release-revert', [ticket]) };
  if (!error) return [rollBack];
  const pulled = state !== undefined && state.mergeSha !== '';
  const code = error.exitCode;
  if (context.phase === 'orchestrator' || !pulled || code === 3 || code === 4) {
    return code === 2 || code === 4 ? [] : [{ purpose: 'run again', command: commandLine('release-run', [ticket]) }];
  }
  const resume = { purpose: 'resume' as const, command: commandLine('release-run', [ticket, `--from=${error.resumeFrom ?? context.phase}`]) };
  return code === 2 ? [resume] : [rollBack, resume];
}

/** The outcome of the run that is ending, from the context (and the error, on failure). */
export function outcomeOf(context: RunContext, error?: ReleaseError, now = new Date()): ReleaseOutcome {
  const state = stateOf(context);
  const started = startedAt(context);
  const verb = context.verb as ReleaseOutcome['verb'];
  const outcome: ReleaseOutcome['outcome'] = !error
    ? (verb === 'release-run' ? 'complete' : 'reverted')
    : (error.code === 'INTERRUPTED' ? 'interrupted' : 'failed');
  return {
    schema: NOTIFICATION_SCHEMA,
    ticket: context.ticket,
    verb,
    outcome,
    exitCode: error ? error.exitCode : 0,
    ...(error ? { phase: context.phase, error: redact(error.message) } : {}),
    services: state?.services ?? [],
    ...(state?.baseSha ? { baseSha: state.baseSha } : {}),
    ...(state?.mergeSha ? { mergeSha: state.mergeSha } : {}),
    ...(started ? { startedAt: started.toISOString(), durationSeconds: Math.max(0, Math.round((now.getTime() - started.getTime()) / 1000)) } : {}),
    finishedAt: now.toISOString(),
    host: hostname(),
    next: nextCommands(context, state, error),
  };
}

/**
 * A secret from its file: the whole file minus surrounding whitespace, registered for redaction
 * before anything else can print it. Throws a plain Error naming the file (the guard reports it).
 */
export function readSecretFile(path: string, what: string, warn: (message: string) => void): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`cannot read the ${what} file ${path} (${code ?? String(error)}); create it with mode 0600 (see docs/operations.md)`);
  }
  const secret = text.trim();
  if (!secret) throw new Error(`the ${what} file ${path} is empty`);
  if (/\s/.test(secret)) throw new Error(`the ${what} file ${path} must hold one line with the ${what} only`);
  registerSecret(secret);
  // A secret others can read is a secret others have: say so, but still notify.
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) warn(`the ${what} file ${path} has mode ${mode.toString(8).padStart(4, '0')}; make it 0600 (chmod 600 ${path})`);
  return secret;
}

export interface HttpAttempt {
  status?: number;
  /** The network error's code when there was no answer. */
  problem?: string;
}

export interface RetryResult {
  ok: boolean;
  attempts: number;
  status?: number;
  body: string;
  /** The last attempt, in words: `HTTP 500`, `ECONNREFUSED`, `timed out`. */
  last: string;
}

export interface RetryOptions {
  /** The whole budget of every attempt and every pause. */
  deadline: number;
  attempts: number;
  /** The first pause; each next one doubles. */
  backoffMs: number;
}

/** Answers worth another try: the server or the way to it was in trouble, not the request. */
function retryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * Sends one request until it is answered 2xx, a non-retryable status comes back, the attempts are
 * used up or the deadline (`Date.now()` ms) passes; never throws.
 */
export async function requestWithRetry(url: string, init: RequestInit, options: RetryOptions): Promise<RetryResult> {
  let attempts = 0;
  let last = 'not sent';
  let status: number | undefined;
  let body = '';
  for (;;) {
    const left = options.deadline - Date.now();
    if (left <= 0) return { ok: false, attempts, status, body, last: attempts ? `${last}, then out of time` : 'out of time' };
    attempts++;
    try {
      const response = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(left) });
      status = response.status;
      body = await response.text();
      last = `HTTP ${status}`;
      if (status >= 200 && status < 300) return { ok: true, attempts, status, body, last };
      if (!retryable(status)) return { ok: false, attempts, status, body, last };
    } catch (error) {
      const named = error as { name?: string; cause?: { code?: string } };
      last = named.name === 'TimeoutError' ? 'timed out' : named.cause?.code ?? named.name ?? String(error);
      status = undefined;
    }
    if (attempts >= options.attempts) return { ok: false, attempts, status, body, last };
    const pause = Math.min(options.backoffMs * 2 ** (attempts - 1), options.deadline - Date.now());
    if (pause <= 0) continue;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * Runs one notifier under its deadline: success and failure both leave an audit event, a failure
 * also a warning line; nothing is thrown, so the release's exit code stays what the release made it.
 * The timer does not wait for a send that ignores its deadline: the release goes on without it.
 */
export async function guarded(context: RunContext, plugin: string, timeoutMs: number, send: (deadline: number) => Promise<Record<string, string | number>>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const outOfTime = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within the timeout of ${timeoutMs} ms`)), timeoutMs + 250);
    timer.unref();
  });
  const phase = 'orchestrator';
  try {
    const fields = await Promise.race([send(deadline), outOfTime]);
    context.log.event(phase, 'notified', { plugin, ...fields });
  } catch (error) {
    const reason = redact(error instanceof Error ? error.message : String(error));
    context.out.warn(`${plugin}: the notification was not delivered: ${reason}. The release's result is unchanged.`);
    try {
      context.log.event(phase, 'notify-failed', { plugin, reason });
    } catch {
      // the warning above is all that can be done
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Taps a notifier on the success and failure of runs and reverts. */
export function tapOutcomes(hooks: Hooks, name: string, notify: (context: RunContext, outcome: ReleaseOutcome) => Promise<void>): void {
  hooks.done.tapPromise(name, async (context) => {
    if (isNotifiable(context)) await notify(context, outcomeOf(context));
  });
  hooks.failed.tapPromise(name, async (context, error) => {
    if (isNotifiable(context, error)) await notify(context, outcomeOf(context, error));
  });
}
