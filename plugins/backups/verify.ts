/**
 * `release verify-backups`: restore tests. Each chosen backup is checked (its checksums), then
 * every entry is restored by its strategy into a throwaway target (a scratch folder, a scratch
 * database) and what came back is checked against what the backup says it holds. The service's
 * own data is never touched. The result is recorded beside the backup (RESTORE_TEST_FILE), where
 * `release show`, `release history` and prepare's age check read it.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseError, ensurePrivateDir, formatDuration, toReleaseError, writeFileAtomic, type ReleaseState, type RestoreRequest, type RunContext, type SpaceNeed } from '../../api/index.js';
import { RESTORE_TEST_FILE, StateFile, readRestoreTest, workspacePaths, type RestoreTestOutcome, type VerifiedBackup, type VerifyBackupsRequest } from '../../core/index.js';
import { withDeadline } from '../deadlines/index.js';
import { parseAge, type DiskSpaceOptions, type RestoreTestsOptions, type RetentionOptions } from './options.js';
import { loadReleases } from './retention.js';
import { restoreRequests } from './restore.js';
import { requireSpace } from './space.js';

const PHASE = 'verify-backups';

/** A backup folder to test, and the release that took it. */
interface Chosen {
  service: string;
  stamp: string;
  dir: string;
  ticket: string;
  state?: ReleaseState;
}

/** Where restore tests extract: `.asd/workspace/restore-tests/`, on the backups' filesystem, emptied before each run. */
export const scratchRoot = (context: RunContext) => join(context.workspaceDir, 'restore-tests');

function readState(context: RunContext, ticket: string): ReleaseState | undefined {
  try {
    return new StateFile(workspacePaths(context.repoDir, ticket).stateFile).read();
  } catch {
    return undefined;
  }
}

/**
 * The backups `request` names: a ticket's (its BACKUPS and PRE_REVERT_BACKUPS), the newest of one
 * service, or the newest of every service. Only backups a release recorded as taken count (a
 * folder a killed backup left is no backup).
 */
async function chooseBackups(context: RunContext, request: VerifyBackupsRequest): Promise<Chosen[]> {
  const releases = await loadReleases(context);
  if (request.ticket !== undefined) {
    const release = releases.find((record) => record.ticket === request.ticket);
    const state = release ? readState(context, request.ticket) : undefined;
    if (!release || !state) {
      throw new ReleaseError('BAD_INPUT', `no release of ticket ${request.ticket} on this clone (no readable ${workspacePaths(context.repoDir, request.ticket).stateFile})`, {
        hint: `see the tickets this clone knows with: ${context.out.command('release', ['history'])}`,
      });
    }
    const stamps = [...Object.entries(state.backups), ...Object.entries(state.preRevertBackups ?? {})];
    if (stamps.length === 0) {
      throw new ReleaseError('BAD_INPUT', `release ${request.ticket} took no backups: nothing to verify`, { hint: `see its backups with: ${context.out.command('release', ['show', request.ticket])}` });
    }
    return stamps.map(([service, stamp]) => ({ service, stamp, dir: join(context.workspaceDir, 'backups', service, stamp), ticket: request.ticket!, state }));
  }
  const newest = new Map<string, Chosen>();
  for (const release of releases) {
    for (const backup of release.backups) {
      if (!backup.present || (request.service !== undefined && backup.service !== request.service)) continue;
      const known = newest.get(backup.service);
      if (!known || backup.stamp > known.stamp) newest.set(backup.service, { service: backup.service, stamp: backup.stamp, dir: backup.dir, ticket: release.ticket });
    }
  }
  if (newest.size === 0) {
    throw new ReleaseError('BAD_INPUT', request.service !== undefined
      ? `no backup of service ${request.service} on this clone: nothing to verify`
      : 'no backups on this clone: nothing to verify', { hint: `backups are taken by release-run; see them with: ${context.out.command('release', ['history'])}` });
  }
  return [...newest.values()].sort((a, b) => a.service.localeCompare(b.service)).map((chosen) => ({ ...chosen, state: readState(context, chosen.ticket) }));
}

/** Removes what restore tests of a killed run left (scratch folders); their scratch databases go when the next test of that entry starts. */
function removeLeftovers(context: RunContext): void {
  const root = scratchRoot(context);
  if (!existsSync(root)) return;
  const left = readdirSync(root);
  if (left.length > 0) context.out.phase(PHASE, `removing ${left.length} scratch folder(s) an interrupted restore test left in ${root}`);
  rmSync(root, { recursive: true, force: true });
}

/** After Ctrl-C or SIGTERM a failure is the interrupt's: the run ends with it (exit 130), not with a failed test. */
function rethrowIfInterrupted(context: RunContext, error: unknown): void {
  if (!context.signal.aborted) return;
  throw context.signal.reason instanceof ReleaseError ? context.signal.reason : error;
}

/** One entry: its checksums, then its strategy's restore test into a scratch target. */
async function testEntry(context: RunContext, request: RestoreRequest, scratchDir: string): Promise<RestoreTestOutcome> {
  const { type } = request.entry;
  const outcome = (result: RestoreTestOutcome['outcome'], words: string): RestoreTestOutcome => ({ index: request.index, type, outcome: result, words });
  const check = context.hooks.checkBackup.get(type);
  if (!check?.isUsed()) return outcome('failed', `no backup plugin restores type "${type}": register it in release.config.ts`);
  const bounded = withDeadline(context, 'restore');
  try {
    await check.promise(request, bounded);
  } catch (error) {
    rethrowIfInterrupted(context, error);
    return outcome('failed', toReleaseError(error).message);
  }
  const test = context.hooks.testRestore.get(type);
  if (!test?.isUsed()) return outcome('untested', `its checksums match, but strategy "${type}" has no restore test (see docs/plugins.md: testRestore)`);
  mkdirSync(scratchDir, { recursive: true, mode: 0o700 });
  context.failpoint(`restore-test-${type}`);
  try {
    const result = await test.promise({ ...request, scratchDir }, bounded);
    return outcome('passed', result?.words ?? 'restored and checked');
  } catch (error) {
    rethrowIfInterrupted(context, error);
    const failure = toReleaseError(error);
    return outcome('failed', [failure.message, ...failure.lines.slice(0, 3)].join('; '));
  } finally {
    rmSync(scratchDir, { recursive: true, force: true });
  }
}

/** The room the volume-like restores of `requests` need in the scratch folder, before any is extracted. */
async function requireScratchSpace(context: RunContext, requests: RestoreRequest[], space: DiskSpaceOptions, retention: RetentionOptions): Promise<void> {
  const needs: SpaceNeed[] = [];
  for (const request of requests) {
    if (!context.hooks.testRestore.get(request.entry.type)?.isUsed()) continue;
    const need = await context.hooks.restoreSpace.get(request.entry.type)?.promise(request, withDeadline(context, 'restore')).catch(() => undefined);
    if (need) needs.push({ ...need, path: scratchRoot(context), what: `restore test of ${request.service}: backup[${request.index}] ${request.entry.type}` });
  }
  await requireSpace(context, needs, space, retention, {
    purpose: 'the restore tests', unchanged: 'nothing was restored', phase: PHASE, rerun: 'just release verify-backups', folder: scratchRoot(context),
  });
}

/**
 * Tests every chosen backup and records each result beside it. A backup that fails does not stop
 * the others; the run then ends with BACKUP_FAILED (exit 6) naming every failure.
 */
export async function verifyBackups(context: RunContext, request: VerifyBackupsRequest, space: DiskSpaceOptions, retention: RetentionOptions): Promise<void> {
  const chosen = await chooseBackups(context, request);
  removeLeftovers(context);
  // A folder release prune removed is reported, not tested.
  for (const backup of chosen.filter((candidate) => !existsSync(candidate.dir))) {
    const words = `its folder ${backup.dir} is gone (release prune removes old releases' backups)`;
    context.out.warn(`${backup.service}=${backup.stamp}: failed: ${words}`);
    request.results.push({ service: backup.service, at: backup.stamp, dir: backup.dir, ticket: backup.ticket, outcome: 'failed', entries: [], tested: new Date().toISOString() });
  }
  const present = chosen.filter((candidate) => existsSync(candidate.dir));
  const all = await Promise.all(present.map(async (backup) => ({ backup, requests: await restoreRequests(context, backup.state, { [backup.service]: backup.stamp }) })));
  await requireScratchSpace(context, all.flatMap((item) => item.requests), space, retention);
  ensurePrivateDir(scratchRoot(context));
  try {
    for (const { backup, requests } of all) {
      const started = Date.now();
      context.out.phase(PHASE, `${backup.service}=${backup.stamp} (release ${backup.ticket}): restoring ${requests.length} entr${requests.length === 1 ? 'y' : 'ies'} into scratch targets`);
      const entries: RestoreTestOutcome[] = [];
      for (const entry of requests) {
        const result = await testEntry(context, entry, join(scratchRoot(context), `${backup.service}-${backup.stamp}-${entry.index}`));
        entries.push(result);
        const line = `${backup.service}=${backup.stamp} backup[${entry.index}] ${entry.entry.type}: ${result.outcome}: ${result.words}`;
        if (result.outcome === 'failed') context.out.warn(line);
        else context.out.detail(line);
      }
      const outcome = entries.some((entry) => entry.outcome === 'failed') ? 'failed' : entries.every((entry) => entry.outcome === 'passed') ? 'passed' : 'untested';
      const verified: VerifiedBackup = { service: backup.service, at: backup.stamp, dir: backup.dir, ticket: backup.ticket, outcome, entries, tested: new Date().toISOString() };
      writeFileAtomic(join(backup.dir, RESTORE_TEST_FILE), `${JSON.stringify({ tested: verified.tested, outcome, entries }, null, 2)}\n`);
      request.results.push(verified);
      context.out.phase(PHASE, `${backup.service}=${backup.stamp}: ${outcome} in ${formatDuration((Date.now() - started) / 1000)}`);
      context.out.events.emit(PHASE, 'tested', { service: backup.service, at: backup.stamp, ticket: backup.ticket, outcome, entries: entries.map((entry) => ({ ...entry })) });
    }
  } finally {
    rmSync(scratchRoot(context), { recursive: true, force: true });
  }
  const failed = request.results.filter((result) => result.outcome === 'failed');
  if (failed.length > 0) {
    throw new ReleaseError('BACKUP_FAILED', `${failed.length} of ${request.results.length} backup(s) failed their restore test: ${failed.map((result) => `${result.service}=${result.at}`).join(', ')}; nothing of the services was touched`, {
      reason: 'RESTORE_TEST_FAILED',
      lines: failed.flatMap((result) => result.entries.filter((entry) => entry.outcome === 'failed').map((entry) => `${result.service}=${result.at} backup[${entry.index}] ${entry.type}: ${entry.words}`)),
      hint: 'take a new backup you can trust (the next release-run of the service takes one) and find out what damaged this one (disk errors: dmesg; the tool versions)',
    });
  }
}

/** `3 days`, `5 h`: how long ago, at a glance. */
const ago = (ms: number) => (ms >= 2 * 86_400_000 ? `${Math.floor(ms / 86_400_000)} days` : `${Math.max(1, Math.floor(ms / 3_600_000))} h`);

/**
 * Before prepare backs up: each service about to be backed up whose backups were never proven
 * by a restore test (it has backups, none passed one) or last passed one longer ago than
 * `maxAge` is named, with the command that proves its newest backup; a warning, or with
 * `whenOlder: 'refuse'` a stop (exit 6) before anything is changed.
 */
export function requireRecentRestoreTests(context: RunContext, services: string[], options: RestoreTestsOptions): void {
  if (options.whenOlder === 'ignore') return;
  const stale: string[] = [];
  for (const service of services) {
    const root = join(context.workspaceDir, 'backups', service);
    const stamps = existsSync(root) ? readdirSync(root) : [];
    if (stamps.length === 0) continue; // nothing was ever backed up: nothing to prove yet
    const tests = stamps.map((stamp) => readRestoreTest(join(root, stamp))).filter((record) => record !== null);
    const passed = tests.filter((record) => record.outcome === 'passed').map((record) => record.tested).sort().at(-1);
    const command = context.out.command('release', ['verify-backups', `--service=${service}`]);
    if (passed === undefined) {
      const failed = tests.some((record) => record.outcome === 'failed');
      stale.push(`${service}: no backup of it ever passed a restore test${failed ? ' (the last test failed)' : ''}; prove its newest: ${command}`);
    } else if (Date.now() - Date.parse(passed) > parseAge(options.maxAge)) {
      stale.push(`${service}: its backups last passed a restore test ${ago(Date.now() - Date.parse(passed))} ago (${passed.slice(0, 10)}), longer than restoreTests.maxAge ${options.maxAge}; prove its newest: ${command}`);
    }
  }
  if (stale.length === 0) return;
  if (options.whenOlder === 'warn') {
    for (const line of stale) context.out.warn(line);
    return;
  }
  throw new ReleaseError('BACKUP_FAILED', `${stale.length} service(s) to back up have no recent restore test (restoreTests.whenOlder is refuse); nothing was changed`, {
    reason: 'RESTORE_TEST_STALE',
    lines: stale,
    hint: `run the commands above, then run ${context.out.command('release-run', [context.ticket])} again; or set restoreTests: { whenOlder: 'warn' } in release.config.ts`,
  });
}
