/**
 * `release maintenance on|off SERVICE [--message TEXT]`: the operator's switch of a service's
 * maintenance mode (shared/edge-proxy/maintenance.ts). Needs the service's edge proxy (a rolling
 * service); takes no lock, as a release may be the reason for it.
 */
import { ReleaseError, type RunContext } from '../api/index.js';
import { readManifest, manifestPath } from '../plugins/platform/manifest.js';
import { EdgeProxy, proxyName } from '../shared/edge-proxy/index.js';
import { MAINTENANCE_RETRY_AFTER_S } from '../shared/edge-proxy/edge-proxy.js';
import { defaultMaintenanceMessage, dropMaintenance, enterMaintenance, leaveMaintenance, readMaintenance } from '../shared/edge-proxy/maintenance.js';

const MAX_MESSAGE = 500;

export async function maintenance(context: RunContext, mode: 'on' | 'off', service: string, message: string | undefined): Promise<number> {
  const { out } = context;
  const manifest = readManifest(context.repoDir, service);
  if (message !== undefined && (message.trim() === '' || message.length > MAX_MESSAGE)) {
    throw new ReleaseError('BAD_INPUT', `--message must be 1 to ${MAX_MESSAGE} characters (got ${message.length})`, { hint: 'say in a sentence what is happening and when it ends' });
  }
  // Only the admin socket is used: the proxy's image and timings do not matter here.
  const proxy = new EdgeProxy();
  const name = proxyName(service);
  if (!(await proxy.exists(context, name))) {
    if (mode === 'off' && readMaintenance(context.workspaceDir, service)) {
      // No proxy answers for it any more: only the record is left to remove.
      dropMaintenance(context, service);
      out.plain(`${service}: out of maintenance (its edge proxy ${name} is gone; its record is removed)`);
      out.events.emit('maintenance', 'off', { service, was: 'record only' });
      return 0;
    }
    throw new ReleaseError('BAD_INPUT', `${service} has no edge proxy (no container ${name}): maintenance mode answers through it`, {
      hint: `give ${manifestPath(service)} deploy: { strategy: rolling, port: ... } and release it; or stop the service yourself`,
    });
  }
  if (mode === 'off') {
    const record = readMaintenance(context.workspaceDir, service);
    await leaveMaintenance(context, proxy, service);
    out.plain(record
      ? `${service}: out of maintenance (it was in maintenance since ${record.since}, set by ${record.by === 'operator' ? 'an operator' : `the stop of ${record.ticket ?? 'a release'}`}); ${name} sends requests to its containers again`
      : `${service} was not in maintenance; ${name} sends requests to its containers`);
    out.events.emit('maintenance', 'off', { service, was: record?.by ?? null });
    return 0;
  }
  const text = message ?? manifest.maintenance?.message ?? defaultMaintenanceMessage(service);
  await enterMaintenance(context, proxy, { service, message: text, since: new Date().toISOString(), by: 'operator' });
  out.plain(`${service}: in maintenance: ${name} answers every request but its health checks with 503 (Retry-After: ${MAINTENANCE_RETRY_AFTER_S}) and: ${text}`);
  out.plain(`lift it with: ${out.command('release', ['maintenance', 'off', service])}`);
  out.events.emit('maintenance', 'on', { service, message: text, retry_after_s: MAINTENANCE_RETRY_AFTER_S });
  return 0;
}
