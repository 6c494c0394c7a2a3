/**
 * The watch window: after verify passed, the health checks keep running for a while, and a
 * release whose service goes bad in that time reverts itself (as `--atomic` does), under the
 * lock it still holds. `release-run T --watch=DURATION` watches every released service; a
 * manifest's `watch:` sets a service's own window, interval and failures allowed.
 *
 * A check answers pass, fail, or inconclusive (it could not tell: the health probe's request
 * timed out). Failed and inconclusive answers are counted apart; more than `failures` of either
 * ends the window: the release fails in verify with the reason WATCH_FAILED, and is reverted.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReleaseError, formatDuration, writeFileAtomic, type Plugin, type RunContext, type WatchSample } from '../../api/index.js';
import { manifestPath, parseDuration, readManifest } from '../platform/manifest.js';

export const PLUGIN_NAME = 'watch';

/** Where the window's record is kept beside the state file; `release show` prints it. */
export const watchRecordPath = (workspaceDir: string, ticket: string) => join(workspaceDir, 'releases', `${ticket}.watch.json`);

/** The windows of the ticket's last watched release; none when it was not watched (or the record is unreadable). */
export function readWatchRecords(workspaceDir: string, ticket: string): WatchRecord[] {
  try {
    return JSON.parse(readFileSync(watchRecordPath(workspaceDir, ticket), 'utf8')) as WatchRecord[];
  } catch {
    return [];
  }
}

interface Settings {
  durationMs: number;
  intervalMs: number;
  failures: number;
}

/** One service's window as it went, as `release show` prints it. */
export interface WatchRecord {
  service: string;
  duration_s: number;
  interval_s: number;
  failures_allowed: number;
  samples: number;
  passed: number;
  failed: number;
  inconclusive: number;
  /** `passed`, or `failed` when it ended the window. */
  outcome: 'passed' | 'failed';
  /** The answers that were not a pass, newest last (at most 20). */
  problems: { at: string; check: string; result: 'fail' | 'inconclusive'; detail: string }[];
}

function settingsOf(context: RunContext, service: string): Settings | undefined {
  if (!existsSync(join(context.repoDir, manifestPath(service)))) return undefined;
  const watch = readManifest(context.repoDir, service).watch;
  const durationMs = context.watchMs ?? (watch?.duration ? parseDuration(watch.duration) : undefined);
  if (!durationMs) return undefined;
  return { durationMs, intervalMs: parseDuration(watch?.interval ?? '5s'), failures: watch?.failures ?? 2 };
}

/** Samples one service every interval until its window ends, or it fails, or `stop` is aborted. */
async function watchService(context: RunContext, service: string, settings: Settings, stop: AbortSignal): Promise<WatchRecord> {
  const record: WatchRecord = {
    service, duration_s: settings.durationMs / 1000, interval_s: settings.intervalMs / 1000, failures_allowed: settings.failures,
    samples: 0, passed: 0, failed: 0, inconclusive: 0, outcome: 'passed', problems: [],
  };
  const started = Date.now();
  while (Date.now() - started < settings.durationMs && !stop.aborted) {
    const samples: WatchSample[] = [];
    await context.hooks.watchCheck.promise(service, context, samples);
    for (const sample of samples) {
      record.samples += 1;
      if (sample.result === 'pass') {
        record.passed += 1;
        continue;
      }
      record[sample.result === 'fail' ? 'failed' : 'inconclusive'] += 1;
      record.problems = [...record.problems, { at: new Date().toISOString(), check: sample.check, result: sample.result, detail: sample.detail }].slice(-20);
      context.out.phase('verify', `watch ${service}: ${sample.check}: ${sample.result === 'fail' ? 'failed' : 'inconclusive'} (${sample.detail}); ${record.failed} failed, ${record.inconclusive} inconclusive of ${settings.failures} allowed`);
      context.log.event('watch', 'sample', { service, check: sample.check, result: sample.result, detail: sample.detail });
    }
    if (record.failed > settings.failures || record.inconclusive > settings.failures) {
      record.outcome = 'failed';
      return record;
    }
    try {
      await sleep(Math.max(0, Math.min(settings.intervalMs, settings.durationMs - (Date.now() - started))), undefined, { signal: stop });
    } catch {
      break; // stopped: another service failed, or a signal
    }
  }
  return record;
}

export function watchPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      // After verify's own drift checks and probes: the window starts from a verified release.
      hooks.phase.for('verify').tapPromise({ name: PLUGIN_NAME, stage: 10 }, async (context) => {
        const state = context.requireState();
        const watched = state.services.map((service) => ({ service, settings: settingsOf(context, service) })).filter((entry): entry is { service: string; settings: Settings } => entry.settings !== undefined);
        if (watched.length === 0) return;
        const longest = Math.max(...watched.map((entry) => entry.settings.durationMs));
        const what = watched.map(({ service, settings }) => `${service} every ${formatDuration(settings.intervalMs / 1000)} for ${formatDuration(settings.durationMs / 1000)}, ${settings.failures} failures allowed`).join('; ');
        if (context.dryRun) {
          context.out.phase('verify', `would watch: ${what}`);
          return;
        }
        context.out.phase('verify', `watch window (the lock stays held; a failure reverts the release): ${what}`);
        context.log.event('watch', 'start', { services: watched.map((entry) => entry.service).join(' '), duration_s: longest / 1000 });
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        context.signal.addEventListener('abort', onSignal, { once: true });
        const startedAt = Date.now();
        const progress = setInterval(() => context.out.phase('verify', `watching: ${formatDuration((Date.now() - startedAt) / 1000)} of ${formatDuration(longest / 1000)}`), 30_000);
        let records: WatchRecord[];
        try {
          records = await Promise.all(watched.map(async ({ service, settings }) => {
            const record = await watchService(context, service, settings, stop.signal);
            if (record.outcome === 'failed') stop.abort();
            return record;
          }));
        } finally {
          // A check that threw ends every service's window, not only its own.
          stop.abort();
          clearInterval(progress);
          context.signal.removeEventListener('abort', onSignal);
        }
        writeFileAtomic(watchRecordPath(context.workspaceDir, context.ticket), `${JSON.stringify(records, null, 2)}\n`);
        for (const record of records) {
          context.log.event('watch', 'window', { service: record.service, outcome: record.outcome, samples: record.samples, passed: record.passed, failed: record.failed, inconclusive: record.inconclusive });
        }
        if (context.signal.aborted) throw new ReleaseError('INTERRUPTED', 'interrupted during the watch window');
        const failed = records.find((record) => record.outcome === 'failed');
        if (failed) {
          const last = failed.problems[failed.problems.length - 1];
          const counted = failed.failed > failed.failures_allowed ? `${failed.failed} failed` : `${failed.inconclusive} inconclusive`;
          throw new ReleaseError('HEALTH_FAILED', `watch window: ${failed.service} went bad after verify: ${counted} of ${failed.samples} checks, more than the ${failed.failures_allowed} allowed (last: ${last?.check}: ${last?.detail})`, {
            lines: failed.problems.slice(-5).map((problem) => `${problem.at} ${problem.check}: ${problem.result} (${problem.detail})`),
            hint: `the release is reverted; see the service's logs for what happened after verify`,
            service: failed.service, reason: 'WATCH_FAILED',
          });
        }
        context.out.phase('verify', `watch window passed: ${records.map((record) => `${record.service} ${record.passed}/${record.samples} passed`).join(', ')}`);
      });
    },
  };
}
