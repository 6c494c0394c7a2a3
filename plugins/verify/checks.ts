import { ReleaseError, type Action, type RunContext } from '../../api/index.js';

/** The drift check for each service: any action left means the service is not what HEAD asks for. */
export async function requireNoDrift(context: RunContext, services: readonly string[]): Promise<void> {
  const drift: Action[] = [];
  for (const service of services) {
    const actions: Action[] = [];
    await context.hooks.plan.promise(service, context, actions);
    const phase = context.verb === 'release-revert' ? 'revert-verify' : 'verify';
    context.out.phase(phase, `drift check ${service}: ${actions.length} actions`);
    context.out.events.emit(phase, 'drift-check', { service, actions: actions.map((action) => ({ ...action })) });
    drift.push(...actions);
  }
  if (drift.length > 0) {
    throw new ReleaseError('DRIFT', `${drift.length} action(s) of drift remain after the release`, {
      lines: drift.map((action) => `${action.kind} ${action.service}: ${action.reason}`),
      hint: `see what differs with: just release --service=${drift[0]!.service}`,
      service: drift[0]!.service,
    });
  }
}

/** Each service's health probes; a probe throws HEALTH_FAILED naming the URL. */
export async function requireHealthy(context: RunContext, services: readonly string[]): Promise<void> {
  for (const service of services) await context.hooks.probe.promise(service, context);
}
