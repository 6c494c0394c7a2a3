import pMap from 'p-map';
import { availableParallelism } from 'node:os';
import { ReleaseError, toReleaseError, type Action, type RunContext } from '../../api/index.js';

/** Checks of several services run this many at once unless the config says otherwise. */
const defaultConcurrency = () => Math.min(64, availableParallelism());

/**
 * The drift check for each service, `concurrency` at once: any action left means the service is
 * not what HEAD asks for. Every service is checked; the error lists the drift of all of them.
 */
export async function requireNoDrift(context: RunContext, services: readonly string[], concurrency = defaultConcurrency()): Promise<void> {
  const drift = new Map<string, Action[]>();
  await pMap(services, async (service) => {
    const actions: Action[] = [];
    await context.hooks.plan.promise(service, context, actions);
    const phase = context.verb === 'release-revert' ? 'revert-verify' : 'verify';
    context.out.phase(phase, `drift check ${service}: ${actions.length} actions`);
    context.out.events.emit(phase, 'drift-check', { service, actions: actions.map((action) => ({ ...action })) });
    drift.set(service, actions);
  }, { concurrency });
  const left = services.flatMap((service) => drift.get(service) ?? []);
  if (left.length > 0) {
    const drifting = [...new Set(left.map((action) => action.service))];
    throw new ReleaseError('DRIFT', `${left.length} action(s) of drift remain after the release, in ${drifting.length} service(s): ${drifting.join(' ')}`, {
      lines: left.map((action) => `${action.kind} ${action.service}: ${action.reason}`),
      hint: `see what differs with: just release --service=${drifting[0]}`,
      service: drifting[0],
    });
  }
}

/**
 * Each service's health probes, `concurrency` at once; a probe throws HEALTH_FAILED naming the URL.
 * Every probe runs to its end: the error names every service that failed, not only the first.
 */
export async function requireHealthy(context: RunContext, services: readonly string[], concurrency = defaultConcurrency()): Promise<void> {
  const failures = new Map<string, ReleaseError>();
  await pMap(services, async (service) => {
    try {
      await context.hooks.probe.promise(service, context);
    } catch (error) {
      failures.set(service, toReleaseError(error));
    }
  }, { concurrency });
  const failed = services.filter((service) => failures.has(service));
  if (failed.length === 0) return;
  const first = failures.get(failed[0]!)!;
  if (failed.length === 1) throw first;
  throw new ReleaseError(first.code, `${failed.length} services failed their checks: ${failed.join(' ')}`, {
    lines: failed.map((service) => failures.get(service)!.message),
    hint: first.hint, plugin: first.plugin, hook: first.hook, service: first.service ?? failed[0], reason: first.reason,
  });
}
