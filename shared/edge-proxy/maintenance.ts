/**
 * Maintenance mode of a service behind its edge proxy: the proxy answers every request but its
 * health checks with 503, `Retry-After` and a message. The record on the host
 * (`.asd/workspace/maintenance/<svc>.json`) is written before the proxy is switched on and removed
 * after it is switched off, so it survives a kill -9 and a recreated proxy; the proxy's own map is
 * what clients see.
 *
 * Two owners: the operator (`release maintenance on|off`), and a runtime that stops the service
 * for a backup (`by: 'backup'`), which takes it out again once the service is back, never the
 * operator's.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, writeFileAtomic, type RunContext } from '../../api/index.js';
import { proxyName, type EdgeProxy } from './edge-proxy.js';

export interface MaintenanceRecord {
  service: string;
  message: string;
  /** ISO time it was switched on. */
  since: string;
  /** `operator`: `release maintenance on`; `backup`: a backup that stops the service. */
  by: 'operator' | 'backup';
  /** The release or revert that switched it on, for `by: backup`. */
  ticket?: string;
}

export const maintenanceDir = (workspaceDir: string) => join(workspaceDir, 'maintenance');
const recordFile = (workspaceDir: string, service: string) => join(maintenanceDir(workspaceDir), `${service}.json`);

export const defaultMaintenanceMessage = (service: string) => `${service} is down for maintenance. Please try again in a few minutes.`;

export function readMaintenance(workspaceDir: string, service: string): MaintenanceRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordFile(workspaceDir, service), 'utf8')) as MaintenanceRecord;
  } catch {
    return undefined;
  }
}

/** Every service with a maintenance record on this host. */
export function listMaintenance(workspaceDir: string): MaintenanceRecord[] {
  const dir = maintenanceDir(workspaceDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((name) => name.endsWith('.json'))
    .flatMap((name) => readMaintenance(workspaceDir, name.slice(0, -'.json'.length)) ?? []);
}

/**
 * Switches maintenance on: the record first, then the proxy (a switch that fails takes a new
 * record back). An operator's record is never replaced by a backup's.
 */
export async function enterMaintenance(context: RunContext, proxy: EdgeProxy, record: MaintenanceRecord): Promise<MaintenanceRecord> {
  const kept = readMaintenance(context.workspaceDir, record.service);
  const effective = kept?.by === 'operator' && record.by === 'backup' ? kept : record;
  const file = recordFile(context.workspaceDir, record.service);
  if (effective === record) writeFileAtomic(file, `${JSON.stringify(record)}\n`);
  try {
    await proxy.setMaintenance(context, proxyName(record.service), effective.message);
  } catch (error) {
    if (kept) writeFileAtomic(file, `${JSON.stringify(kept)}\n`);
    else rmSync(file, { force: true });
    const why = error instanceof Error ? error.message : String(error);
    throw new ReleaseError('PHASE_FAILED', `${record.service} could not be put in maintenance: ${why}`, {
      hint: /Unknown map|map identifier/i.test(why)
        ? `its edge proxy ${proxyName(record.service)} runs the configuration of an older release-orchestrator; the next rolling release of ${record.service} renews it`
        : `is ${proxyName(record.service)} running? (docker ps --filter name=${proxyName(record.service)})`,
      service: record.service,
    });
  }
  context.log.event(context.phase, 'maintenance-on', { service: record.service, by: effective.by });
  return effective;
}

/**
 * Switches maintenance off: the proxy first, then the record. With `onlyBy`, only a record of
 * that owner is lifted (a backup lifts its own, never the operator's). Returns whether it was lifted.
 */
export async function leaveMaintenance(context: RunContext, proxy: EdgeProxy, service: string, onlyBy?: MaintenanceRecord['by']): Promise<boolean> {
  const record = readMaintenance(context.workspaceDir, service);
  if (onlyBy && record?.by !== onlyBy) return false;
  try {
    await proxy.setMaintenance(context, proxyName(service), undefined);
  } catch (error) {
    // A proxy that cannot be asked holds no maintenance it could still apply: the record goes regardless.
    context.out.warn(`${proxyName(service)} did not answer (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); its maintenance record is removed`);
  }
  dropMaintenance(context, service);
  context.log.event(context.phase, 'maintenance-off', { service, by: record?.by ?? 'none' });
  return true;
}

/** The service's proxy is gone (the service left rolling, or was removed): so is its maintenance. */
export function dropMaintenance(context: RunContext, service: string): void {
  rmSync(recordFile(context.workspaceDir, service), { force: true });
}

/** A proxy just (re)created or restarted forgets its map: the record puts the maintenance back. */
export async function reapplyMaintenance(context: RunContext, proxy: EdgeProxy, service: string): Promise<void> {
  const record = readMaintenance(context.workspaceDir, service);
  if (record) await proxy.setMaintenance(context, proxyName(service), record.message);
}
