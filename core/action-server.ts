/**
 * Actions carried out in the running release's own process, on request of its children: migrate.sh
 * calls `release-step`, which hands the action over a private unix socket instead of loading the
 * config again in a process of its own. One JSON line each way: the action, then `{ exitCode }`.
 *
 * Several children may ask at once (migrate.sh runs independent services side by side): each
 * action's output lines are prefixed with its service; after the first failure (or an interrupt)
 * no new action starts; each action done is recorded in the state (APPLIED), and one already
 * recorded there is not done again when the release resumes.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { carryOut } from './actions.js';
import { z } from 'zod';
import { EXIT_CODES, ReleaseError, toReleaseError } from './errors.js';
import type { Action, RunContext } from './hooks.js';
import type { Output } from './output.js';

/** What a child may ask for: one action, named the way migrate.sh names it. */
const actionSchema = z.strictObject({
  service: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
  kind: z.string().regex(/^[a-z][a-z0-9-]*$/),
  reason: z.string(),
  targets: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)).optional(),
  recreate: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)).optional(),
});

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

export { ACTION_SOCKET_ENV } from './action-client.js';

/** How the state names an action done: `web:redeploy`. */
export const appliedKey = (action: Pick<Action, 'service' | 'kind'>) => `${action.service}:${action.kind}`;

/** A failpoint that kills the release once one action is done while another is running. */
const MID_WAVE_FAILPOINT = 'migrate-mid-wave';
/** A failpoint that kills the release when a service's action is asked for after another service's was done. */
const BETWEEN_SERVICES_FAILPOINT = 'migrate-between-services';

export interface ActionServer {
  socket: string;
  /** The first action that failed: the caller reports it, with its own code, plugin and hook. */
  failure?: ReleaseError;
  /** Every action that failed, in the order they failed. */
  failures: ReleaseError[];
  /** Actions refused because the release was halting: `kind service`. */
  notStarted: string[];
  close(): Promise<void>;
}

/** The operator's output with each line of one service's action prefixed by the service. */
function outputOf(out: Output, service: string): Output {
  const tag = `[${service}]`;
  return new Proxy(out, {
    get(target, key) {
      if (key === 'detail') return (line: string) => target.detail(`${tag} ${line}`);
      if (key === 'phase') return (name: string, message: string) => target.phase(name, `${tag} ${message}`);
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Serves `context`'s actions on a socket in a private temp folder until `close()`. */
export async function serveActions(context: RunContext): Promise<ActionServer> {
  // A socket path must stay short (108 bytes): a private folder under the temp dir, not the repo.
  const dir = mkdtempSync(join(tmpdir(), 'ro-actions-'));
  const socket = join(dir, 'actions.sock');
  const served: ActionServer = { socket, failures: [], notStarted: [], close: async () => undefined };
  // One context per service, whose output names the service; everything else is the release's.
  const contexts = new Map<string, RunContext>();
  const contextOf = (service: string): RunContext => {
    let derived = contexts.get(service);
    if (!derived) {
      derived = Object.create(context, { out: { value: outputOf(context.out, service) } }) as RunContext;
      contexts.set(service, derived);
    }
    return derived;
  };
  let running = 0;
  const inFlight = new Set<Promise<void>>();
  const onStart: (() => void)[] = [];
  const midWaveFailpoint = process.env.RELEASE_FAILPOINT === MID_WAVE_FAILPOINT;
  /** The services this run carried out an action of. */
  const done = new Set<string>();

  async function handle(action: Action): Promise<number> {
    const state = context.state;
    const key = appliedKey(action);
    const out = contextOf(action.service).out;
    if (state?.applied?.includes(key)) {
      out.phase(context.phase, `${action.kind} ${action.service}: done before this resume (APPLIED in the state file), not repeated`);
      return 0;
    }
    if (served.failure || context.signal.aborted) {
      served.notStarted.push(`${action.kind} ${action.service}`);
      const why = served.failure ? `${served.failure.service ?? 'another service'} failed` : 'interrupted';
      out.phase(context.phase, `${action.kind} ${action.service}: not started (${why}: no new action starts)`);
      return served.failure?.exitCode ?? EXIT_CODES.INTERRUPTED;
    }
    if ([...done].some((service) => service !== action.service)) context.failpoint(BETWEEN_SERVICES_FAILPOINT);
    running++;
    for (const notify of onStart.splice(0)) notify();
    try {
      await carryOut(contextOf(action.service), action);
    } catch (thrown) {
      const error = toReleaseError(thrown);
      // The failure names the service whose action failed, whatever plugin raised it.
      const named = error.service === undefined
        ? new ReleaseError(error.code, `${action.kind} ${action.service} failed: ${error.message}`, { hint: error.hint, lines: error.lines, plugin: error.plugin, hook: error.hook, service: action.service, cause: error })
        : error;
      served.failure ??= named;
      served.failures.push(named);
      return named.exitCode;
    } finally {
      running--;
    }
    if (state) {
      state.applied = [...(state.applied ?? []), key];
      context.saveState();
    }
    done.add(action.service);
    if (midWaveFailpoint) {
      // Deterministic for crash tests: die once this action is recorded and another one is running.
      if (running === 0) await new Promise<void>((resolve) => { onStart.push(resolve); setTimeout(resolve, 10_000).unref(); });
      context.failpoint(MID_WAVE_FAILPOINT);
    }
    return 0;
  }

  const server: Server = createServer((connection) => {
    let buffered = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end < 0) return;
      const action = actionSchema.safeParse(parseJson(buffered.slice(0, end)));
      if (!action.success) {
        connection.end(`${JSON.stringify({ exitCode: EXIT_CODES.BAD_INPUT })}\n`);
        return;
      }
      const handled = handle(action.data)
        .catch((thrown: unknown) => {
          // e.g. the state could not be saved: a failure like any other, never an unanswered child.
          const error = toReleaseError(thrown);
          served.failure ??= error;
          served.failures.push(error);
          return error.exitCode;
        })
        .then((exitCode) => { connection.end(`${JSON.stringify({ exitCode })}\n`); });
      inFlight.add(handled);
      void handled.finally(() => inFlight.delete(handled));
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
  chmodSync(socket, 0o600);
  // Actions still running (their child was stopped, e.g. by an interrupt) end before the phase does.
  served.close = async () => {
    await Promise.allSettled([...inFlight]);
    await new Promise<void>((resolve) => server.close(() => { rmSync(dir, { recursive: true, force: true }); resolve(); }));
  };
  return served;
}
