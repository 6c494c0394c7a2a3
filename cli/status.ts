/**
 * `release status [--service=NAME] [--json]`: what runs on this host now, and whether it is well.
 * One block per service of HEAD: its runtime, what runs of it (image and its id), health now (one
 * bounded request, all services at once), drift (the number of actions that would converge it),
 * the release that last touched it, and its newest backup with its restore test; and a release in
 * progress (the lock's holder and its phase). Nothing reaches the network but the local engine and
 * the services' own health endpoints.
 *
 * Exit 0 when every service runs, answers its health check and is in sync; 7 when one does not
 * run or answers badly; 5 when all are healthy but one has drift. For cron jobs and monitors.
 */
import pMap from 'p-map';
import { EXIT_CODES, type Action, type RunContext, type RunningPart, type WatchSample } from '../api/index.js';
import { readHistory, type RunRecord } from '../core/history.js';
import { liveLockHolder, ReleaseLock } from '../core/lock.js';
import { workspacePaths } from '../core/context.js';
import { PHASES_OF, type Verb } from '../core/phases.js';
import { listServices, readManifest } from '../plugins/platform/manifest.js';
import { readMaintenance, type MaintenanceRecord } from '../shared/edge-proxy/maintenance.js';

export interface ServiceStatus {
  service: string;
  runtime: string;
  running: RunningPart[];
  /** `healthy`, `unhealthy`, `inconclusive`, or `no health check`. */
  health: string;
  health_detail: string | null;
  /** Every container or task runs as it should (a service this host does not run: true). */
  running_ok: boolean;
  drift: number;
  drift_actions: string[];
  last_release: { ticket: string; verb: string; result: string; ended: string | null; merge_sha: string | null } | null;
  last_backup: { at: string; present: boolean; restore_test: string | null } | null;
  /** Its maintenance record (`release maintenance on`, or a stop that left it down), or null. */
  maintenance: MaintenanceRecord | null;
  ok: boolean;
}

async function healthOf(context: RunContext, service: string): Promise<{ health: string; detail: string | null }> {
  const samples: WatchSample[] = [];
  await context.hooks.watchCheck.promise(service, context, samples);
  if (samples.length === 0) return { health: 'no health check', detail: null };
  const bad = samples.find((sample) => sample.result !== 'pass');
  if (!bad) return { health: 'healthy', detail: samples.map((sample) => `${sample.check}: ${sample.detail}`).join('; ') };
  return { health: bad.result === 'fail' ? 'unhealthy' : 'inconclusive', detail: `${bad.check}: ${bad.detail}` };
}

function lastRelease(rows: RunRecord[]): ServiceStatus['last_release'] {
  const row = rows.find((run) => run.result !== 'running' && run.result !== 'unfinished');
  return row ? { ticket: row.ticket, verb: row.verb, result: row.result, ended: row.ended, merge_sha: row.merge_sha } : null;
}

function lastBackup(rows: RunRecord[], service: string): ServiceStatus['last_backup'] {
  for (const row of rows) {
    const backup = [...row.backups].reverse().find((entry) => entry.service === service);
    if (backup) return { at: backup.at, present: backup.present, restore_test: backup.restore_test ? `${backup.restore_test.outcome} ${backup.restore_test.tested}` : null };
  }
  return null;
}

async function statusOf(context: RunContext, service: string, inHead = true): Promise<ServiceStatus> {
  const runtime = inHead ? readManifest(context.repoDir, service).runtime : 'not in HEAD';
  const running: RunningPart[] = [];
  const actions: Action[] = [];
  const [health] = await Promise.all([
    inHead ? healthOf(context, service) : { health: 'no health check', detail: null },
    context.hooks.describe.promise(service, context, running),
    context.hooks.plan.promise(service, context, actions),
  ]);
  const rows = readHistory(context.workspaceDir, { service });
  const runningOk = !inHead || runtime === 'none' || (running.length > 0 && running.every((part) => part.ok));
  return {
    service, runtime, running, running_ok: runningOk, health: health.health, health_detail: health.detail,
    drift: actions.length, drift_actions: actions.map((action) => `${action.kind} ${service}: ${action.reason}`),
    last_release: lastRelease(rows), last_backup: lastBackup(rows, service), maintenance: readMaintenance(context.workspaceDir, service) ?? null,
    ok: runningOk && health.health !== 'unhealthy' && health.health !== 'inconclusive' && actions.length === 0,
  };
}

/** The phase a running run is in: the one after the last it finished (the log records ends only). */
function runningPhase(run: RunRecord | undefined): string | undefined {
  if (!run || !(run.verb in PHASES_OF)) return undefined;
  const phases = PHASES_OF[run.verb as Verb].map((phase) => phase.name);
  const done = run.phases.filter((phase) => phase.result === 'done').at(-1)?.name;
  if (done === undefined) return run.from ?? phases[0];
  return phases[phases.indexOf(done) + 1];
}

const when = (iso: string | null) => (iso ? iso.replace('T', ' ').slice(0, 19) : 'unknown');

/** Prints the status and returns the exit code. */
export async function status(context: RunContext, only: string | undefined): Promise<number> {
  const { out } = context;
  const services = only ? [only] : listServices(context.repoDir);
  if (only) readManifest(context.repoDir, only); // an unknown service is exit 2 naming the folders
  const lock = workspacePaths(context.repoDir, 'status').lockFile;
  const holder = liveLockHolder(lock);
  if (holder) {
    const phase = runningPhase(readHistory(context.workspaceDir).find((run) => run.ticket === holder.ticket && run.result === 'running'));
    out.plain(`release in progress: ${ReleaseLock.describe(holder)}${phase ? `, in phase ${phase}` : ''}`);
    out.events.emit('status', 'in-progress', { ticket: holder.ticket, pid: holder.pid, host: holder.host, since: holder.started, phase: phase ?? null });
  }
  // Services an earlier release ran that HEAD no longer has: what still runs of them is drift.
  const dropped = only ? [] : [...new Set(readHistory(context.workspaceDir).flatMap((run) => run.services))].filter((service) => !services.includes(service)).sort();
  const statuses = [
    ...await pMap(services, (service) => statusOf(context, service), { concurrency: 8 }),
    ...(await pMap(dropped, (service) => statusOf(context, service, false), { concurrency: 8 })).filter((s) => s.running.length > 0 || s.drift > 0),
  ];
  for (const s of statuses) {
    const words = [s.runtime === 'not in HEAD' ? `${s.running.length} container(s) or service(s) still run` : s.runtime === 'none' ? 'not run on this host' : !s.running_ok ? (s.running.length === 0 ? 'not running: no container' : 'not running as it should') : 'running',
      s.health, s.drift === 0 ? 'in sync' : `drift: ${s.drift} action(s)`];
    out.plain(`${s.service} (${s.runtime}): ${words.join(', ')}`);
    for (const part of s.running) out.plain(`  ${part.name}  ${part.image}${part.imageId ? ` (${part.imageId.slice(0, 19)})` : ''}  ${part.state}${part.note ? `  (${part.note})` : ''}`);
    if (s.health_detail && s.health !== 'healthy') out.plain(`  health: ${s.health_detail}`);
    if (s.maintenance) {
      const by = s.maintenance.by === 'operator' ? 'an operator' : `the stop of ${s.maintenance.ticket ?? 'a release'}`;
      out.plain(`  maintenance: on since ${when(s.maintenance.since)} (set by ${by}), clients get 503: ${s.maintenance.message}`);
      out.plain(`  lift it with: ${out.command('release', ['maintenance', 'off', s.service])}`);
    }
    for (const action of s.drift_actions) out.plain(`  drift: ${action}`);
    if (s.drift > 0) out.plain(`  see it with: ${out.command('release', [`--service=${s.service}`])}`);
    out.plain(s.last_release
      ? `  last: ${s.last_release.verb} ${s.last_release.ticket} ${s.last_release.result}, ended ${when(s.last_release.ended)}${s.last_release.merge_sha ? ` (MERGE_SHA ${s.last_release.merge_sha.slice(0, 12)})` : ''}`
      : '  last: no release recorded on this clone');
    out.plain(s.last_backup
      ? `  backup: ${s.last_backup.at}${s.last_backup.present ? '' : ' (gone)'}, restore test: ${s.last_backup.restore_test ?? 'never'}`
      : '  backup: none');
    out.events.emit('status', 'service', { ...s, running: s.running.map((part) => ({ ...part })), maintenance: s.maintenance ? { ...s.maintenance } : null });
  }
  const unhealthy = statuses.filter((s) => !s.running_ok || s.health === 'unhealthy' || s.health === 'inconclusive');
  const drifted = statuses.filter((s) => s.drift > 0);
  const code = unhealthy.length > 0 ? EXIT_CODES.HEALTH_FAILED : drifted.length > 0 ? EXIT_CODES.DRIFT : 0;
  out.plain(code === 0
    ? `${statuses.length} service(s): all running, healthy and in sync`
    : `${statuses.length} service(s): ${unhealthy.length} not well${unhealthy.length ? ` (${unhealthy.map((s) => s.service).join(', ')})` : ''}, ${drifted.length} with drift${drifted.length ? ` (${drifted.map((s) => s.service).join(', ')})` : ''}`);
  out.events.emit('status', 'summary', { services: statuses.length, unhealthy: unhealthy.map((s) => s.service), drifted: drifted.map((s) => s.service), exit_code: code });
  return code;
}
