import { ReleaseError, type RunContext } from '../core/index.js';

/** How many holders want a service stopped, per run: the first stops it, the last starts it. */
const holders = new WeakMap<RunContext, Map<string, number>>();

/**
 * Runs `body` with `service` stopped through the runtime's `stop` and `start` actions, and starts
 * it again whatever `body` does. Re-entrant: a service stopped twice (two backup entries, or a
 * backup inside another) is stopped once and started once, when the outermost body ends.
 * Returns undefined without running `body` when no runtime can stop the service.
 */
export async function withServiceStopped<T>(context: RunContext, service: string, reason: string, body: () => Promise<T>): Promise<{ result: T } | undefined> {
  const counts = holders.get(context) ?? new Map<string, number>();
  holders.set(context, counts);
  const held = counts.get(service) ?? 0;
  const start = () => context.hooks.act.get('start')?.promise({ service, kind: 'start', reason: `${reason}: done` }, context);
  if (held === 0) {
    let stopped: true | undefined;
    try {
      stopped = await context.hooks.act.get('stop')?.promise({ service, kind: 'stop', reason }, context);
    } catch (error) {
      // Some of its containers may have stopped: bring them back before reporting the failure.
      await Promise.resolve(start()).catch(() => undefined);
      throw error;
    }
    if (!stopped) return undefined;
    context.out.detail(`${service} stopped: ${reason}`);
  }
  counts.set(service, held + 1);
  const release = async () => {
    const left = (counts.get(service) ?? 1) - 1;
    counts.set(service, left);
    if (left > 0) return;
    await start();
    context.out.detail(`${service} started again`);
  };
  let result: T;
  try {
    result = await body();
  } catch (error) {
    await release().catch((startError: unknown) => {
      context.out.warn(`${service} could not be started again: ${startError instanceof Error ? startError.message : String(startError)}`);
    });
    throw error;
  }
  try {
    await release();
  } catch (error) {
    throw new ReleaseError('PHASE_FAILED', `${service} was stopped for ${reason} and did not start again: ${error instanceof Error ? error.message : String(error)}`, {
      hint: `start it by hand and check it (release --service=${service})`, cause: error,
    });
  }
  return { result };
}
