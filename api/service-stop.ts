import type { RunContext } from '../core/index.js';

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
  if (held === 0) {
    const stopped = await context.hooks.act.get('stop')?.promise({ service, kind: 'stop', reason }, context);
    if (!stopped) return undefined;
    context.out.detail(`${service} stopped: ${reason}`);
  }
  counts.set(service, held + 1);
  try {
    return { result: await body() };
  } finally {
    const left = (counts.get(service) ?? 1) - 1;
    counts.set(service, left);
    if (left === 0) {
      await context.hooks.act.get('start')?.promise({ service, kind: 'start', reason: `${reason}: done` }, context);
      context.out.detail(`${service} started again`);
    }
  }
}
