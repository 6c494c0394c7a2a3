/**
 * What the notifiers share: the outcome of a run as one object, a secret read from a file, an HTTP
 * request retried with backoff inside a deadline, and a guard that turns any notification failure
 * into a warning and an audit event. A notification never changes a release's exit code and never
 * holds it up for longer than the notifier's timeout.
 */
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { redact, registerSecret, z, type Hooks, type OutcomeFields, type ReleaseError, type ReleaseEvent, type RunContext } from '../../api/index.js';
import { ReleaseEventSchema } from '../../core/index.js';

/**
 * What a notifier sends: the run's `outcome` event, exactly as `--json` prints it (core/events.ts,
 * ReleaseEventSchema), plus the field `host`.
 */
export type OutcomeEvent = ReleaseEvent & { fields: OutcomeFields & { host: string } };

/** The options every notifier shares. */
export const deadlineOption = z.number().int().min(100).max(120_000).default(10_000);

/** How a notifier delivers: its budget, attempts and backoff (each notifier gives its own default of attempts). */
export function deliveryOptions(defaultAttempts: number) {
  return {
    /** The whole budget of every attempt and every pause, in ms. */
    timeoutMs: deadlineOption,
    /** At most this many requests; a 2xx or a 4xx other than 408/429 ends them early. */
    attempts: z.number().int().min(1).max(20).default(defaultAttempts),
    /** The pause after the first failed attempt, in ms; each next pause doubles. */
    backoffMs: z.number().int().min(0).max(60_000).default(500),
  };
}
export const absoluteFile = z.string().min(1).refine(isAbsolute, 'must be an absolute path (a file outside the repo, mode 0600)');
export const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
  // A URL is printed in warnings: a password in it would be printed too.
  .refine((url) => !new URL(url).username && !new URL(url).password, 'must not hold a user or password: credentials go in the secret file');

/** The verbs a notification is sent for: a drift check or `init` is nobody's news. */
export function isNotifiable(context: RunContext, error?: ReleaseError): boolean {
  if (context.verb !== 'release-run' && context.verb !== 'release-revert') return false;
  if (context.dryRun) return false;
  // Another release holds the lock: that run is not ours to report.
  return error?.code !== 'LOCKED';
}

/**
 * The run's `outcome` event as `--json` prints it (the core fills `context.outcome` before the
 * done/failed hooks; the event stream redacts it), plus this host's name.
 */
export function outcomeEvent(context: RunContext, now = new Date()): OutcomeEvent {
  const event = context.out.events.build('orchestrator', 'outcome', { ...context.outcome, host: hostname() }, now);
  // What is sent is what the schema promises: a field the core got wrong fails here, loudly, in tests.
  return ReleaseEventSchema.parse(event) as OutcomeEvent;
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
      const location = response.headers.get('location');
      if (status >= 300 && status < 400 && location) last += ` (redirected to ${new URL(location, url).origin}: configure the URL it points to)`;
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
  outOfTime.catch(() => undefined); // lost the race: nobody awaits it any more
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

export interface Notifier {
  name: string;
  timeoutMs: number;
  /** Where it sends, for the dry run's preview: `POST https://hooks.example.org`. */
  target(context: RunContext): string;
  /** Why this run is none of this notifier's business (an audit event says so), or undefined. */
  skip?(context: RunContext): string | undefined;
  /** Delivers the event before `deadline` (ms since the epoch); returns the fields of the audit event. */
  send(context: RunContext, event: OutcomeEvent, deadline: number): Promise<Record<string, string | number>>;
}

/** Taps a notifier on the success and failure of runs and reverts, each send under guarded(). */
export function tapOutcomes(hooks: Hooks, notifier: Notifier): void {
  const notify = async (context: RunContext, error?: ReleaseError) => {
    if (!isNotifiable(context, error)) {
      if (context.dryRun && error?.code !== 'LOCKED' && (context.verb === 'release-run' || context.verb === 'release-revert') && !notifier.skip?.(context)) {
        context.out.info(`dry run: ${notifier.name} would send the outcome: ${notifier.target(context)}`);
      }
      return;
    }
    const skipped = notifier.skip?.(context);
    if (skipped) {
      try {
        context.log.event('orchestrator', 'notify-skipped', { plugin: notifier.name, reason: skipped });
      } catch {
        // nothing was to be sent; nothing is lost
      }
      return;
    }
    await guarded(context, notifier.name, notifier.timeoutMs, async (deadline) => notifier.send(context, outcomeEvent(context), deadline));
  };
  hooks.done.tapPromise(notifier.name, (context) => notify(context));
  hooks.failed.tapPromise(notifier.name, (context, error) => notify(context, error));
}
