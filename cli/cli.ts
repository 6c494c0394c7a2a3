import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ReleaseError, toReleaseError } from '../core/errors.js';
import type { Action, InitResult } from '../core/hooks.js';
import { Output } from '../core/output.js';
import { carryOut } from '../core/actions.js';
import { ACTION_SOCKET_ENV, requestAction } from '../core/action-client.js';
import { PHASES_OF, type Verb } from '../core/phases.js';
import { EventStream } from '../core/events.js';

/**
 * The engine (zod, execa, tapable, the plugins) is imported only once the arguments are valid,
 * so --help and bad input answer at node's own start-up speed.
 */
async function loadEngine() {
  const [config, context, runner, lock] = await Promise.all([import('./config.js'), import('../core/context.js'), import('../core/runner.js'), import('../core/lock.js')]);
  return { ...config, ...context, ...runner, ...lock };
}

export const TICKET_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function validateTicket(ticket: string | undefined): string {
  if (ticket === undefined || ticket === '') {
    throw new ReleaseError('BAD_INPUT', 'missing ticket id', { hint: 'pass the ticket, e.g. just release-run 1234' });
  }
  if (!TICKET_PATTERN.test(ticket)) {
    throw new ReleaseError('BAD_INPUT', `invalid ticket id ${JSON.stringify(ticket)}`, {
      hint: 'a ticket id is 1-64 letters, digits, _ or -, starting with a letter or digit',
    });
  }
  return ticket;
}

/** The git top level above `start`: the nearest folder with a `.git` entry (no git needed for that). */
export function findRepo(start: string): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(resolve(dir, '.git'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new ReleaseError('BAD_INPUT', `${start} is not inside a git repo`, { hint: 'cd into the platform repo, or pass --repo DIR' });
    }
    dir = parent;
  }
}

/** The release-revert bin, which an --atomic release runs when it fails after the pull. */
const REVERT_BIN = fileURLToPath(new URL('./bin/release-revert.js', import.meta.url));

const HELP: Record<Verb | 'release', string> = {
  'release-run': `usage: release-run TICKET [--from=PHASE] [--dry-run] [--local] [--atomic | --no-atomic] [--repo DIR]

Releases what origin's main holds beyond this clone's HEAD, in four phases, halting on the first
failure: ${PHASES_OF['release-run'].map((p) => p.name).join(' -> ')}.
${PHASES_OF['release-run'].map((p) => `  ${p.name.padEnd(9)} ${p.summary}`).join('\n')}

  --from=PHASE  resume at PHASE, reusing the state file of the earlier phases; --from=prepare
                finishes a stopped release, keeping its BASE_SHA and backups
  --dry-run     preview every phase; change nothing
  --local       a dev host's drill: release the commits HEAD holds beyond origin's main as last
                fetched (BASE_SHA), without fetching or pulling (MERGE_SHA = HEAD)
  --atomic      on a failure after the pull, revert this release at once, under the same lock
                (default: the config's \`atomic\`); --no-atomic turns a config's default off
  --plan-out FILE  with --dry-run: write what the run would do to FILE, for review
  --plan FILE   run exactly the reviewed plan FILE; refused (exit 2, nothing changed) when HEAD,
                origin, a file that decides the release or the orchestrator moved since it
  --watch=DURATION  after verify, keep checking every released service's health for DURATION
                (e.g. 2m); past the failures allowed, the release reverts itself
  --repo DIR    the platform repo (default: the git repo of the current folder)
  --json        one JSON event per line on stdout (docs/events.md); the human output goes to stderr
  --version     print the version and the orchestrator's commit

Exit codes: 0 done, 1 a phase failed, 2 bad input or config, 3 locked, 4 nothing to release,
5 drift or unclassified files, 6 backup failed or no disk space for it, 7 health probe failed,
9 an --atomic release failed and its revert failed too, 130 interrupted. An --atomic release that
was reverted exits with its failure's code.`,
  'release-revert': `usage: release-revert TICKET [--code-only | --undo | --without-pre-revert-backup] [--dry-run] [--repo DIR]

Undoes release TICKET from its state file: checks and restores every backup, reverts the released
commit(s) in one local commit, redeploys the released services and verifies them. Needs no network.
${PHASES_OF['release-revert'].map((p) => `  ${p.name.padEnd(13)} ${p.summary}`).join('\n')}

  --code-only   revert the release's commits and redeploy, restoring no data: for a release
                that later releases built on (their data stays as it is)
  --undo        undo this release's last revert: put back the data the revert backed up before
                it restored (pre-revert backups), the commit it reverted, and redeploy
  --without-pre-revert-backup
                restore without first backing up the data the restore replaces (when that
                backup cannot be taken); that data is then lost
  --dry-run     preview every step; change nothing
  --repo DIR    the platform repo (default: the git repo of the current folder)
  --json        one JSON event per line on stdout (docs/events.md); the human output goes to stderr
  --version     print the version and the orchestrator's commit

Exit codes: 0 reverted, 1 a step failed (a command past its deadline), 2 bad input, no state, or
later releases touched what this one released, 3 locked, 6 a backup is missing or corrupt, or no
disk space for a restore, 7 health probe failed, 8 revert blocked (HEAD is not a descendant of
MERGE_SHA, the work tree has edits, or the revert does not apply), 130 interrupted.`,
  release: `usage: release --service=NAME [--repo DIR]
       release status [--service=NAME] [--repo DIR]
       release maintenance on|off SERVICE [--message TEXT] [--repo DIR]
       release init [--example NAME] [--repo DIR]
       release prune [--keep=N] [--dry-run] [--repo DIR]
       release history [--service=NAME] [--repo DIR]
       release show TICKET [--repo DIR]
       release verify-backups [TICKET | --service=NAME | --latest] [--repo DIR]

--service=NAME  the drift check: prints each action that would bring service NAME to what its
                manifest and compose file at HEAD ask for, then "N actions". Changes nothing.
status          what runs on this host now: per service its runtime, containers and images,
                health (one request each, all at once), drift, the release that last touched it
                and its newest backup; a release in progress. Exit 0 all well, 7 one does not run
                or answers badly, 5 drift only: for cron jobs and monitors. Changes nothing.
maintenance     on: the edge proxy of SERVICE (deploy: { strategy: rolling }) answers every
                request but its health checks with 503, Retry-After and --message TEXT (an
                HTML page or plain text, by the client's Accept); off: it serves again. Kept
                across a recreated proxy, a kill -9 and releases until switched off.
init            sets up the platform repo for releases: a justfile whose recipes run the
                installed verbs, .asd/ in .gitignore, recovery/playbooks/, a commented
                release.config.ts, and with --example NAME a first service packages/NAME/.
                Never overwrites a file; run twice, it changes nothing.
prune           removes the backups of old releases and prints the space freed; never those
                of the newest N releases (--keep=N; default: retention.keep in release.config.ts,
                3), of a release that is not finished, or of one release-revert could still undo
                (HEAD is its MERGE_SHA). --dry-run lists what it would remove.
history         every release and revert on this clone, newest first: start, duration, result
                and exit code, BASE->MERGE, services and backups (--service=NAME: those of NAME)
show TICKET     one release in full: its phases with their times, backups with sizes and
                checksums, the playbooks that matched, and whether a revert is still possible
verify-backups  restore tests: restores backups into scratch targets (a folder, a scratch
                database on the same server) and checks what came back, never touching the
                services: TICKET's backups, the newest of --service=NAME, or (--latest, the
                default) the newest of every service. Records the result beside each backup.
--json          one JSON object per line on stdout (docs/events.md)
--version       print the version and the orchestrator's commit

Exit codes: 0 in sync (or initialised, pruned, every backup restored and checked), 2 bad input
or unknown service, 3 a release holds the lock (prune, verify-backups), 5 drift, 6 a backup
failed its restore test.`,
};

interface ParsedArgs {
  positionals: string[];
  from?: string;
  dryRun: boolean;
  local: boolean;
  codeOnly: boolean;
  undo: boolean;
  withoutPreRevertBackup: boolean;
  repo?: string;
  service?: string;
  example?: string;
  keep?: string;
  latest: boolean;
  help: boolean;
  version: boolean;
  json: boolean;
  /** --atomic or --no-atomic; undefined: the config's `atomic` decides. */
  atomic?: boolean;
  /** --watch=DURATION */
  watch?: string;
  /** --plan FILE, --plan-out FILE */
  plan?: string;
  planOut?: string;
  /** release maintenance on --message TEXT */
  message?: string;
}

/** `release-run 0.1.0 (orchestrator commit abc123...)`, from what the build recorded. */
export function versionLine(verb: string): string {
  try {
    const info = JSON.parse(readFileSync(new URL('../build-info.json', import.meta.url), 'utf8')) as { version?: string; commit?: string };
    return `${verb} ${info.version ?? 'unknown'} (orchestrator commit ${info.commit ?? 'unknown'})`;
  } catch {
    return `${verb} unknown version (no build-info.json: rebuild with npm run build)`;
  }
}

function parse(verb: Verb | 'release', argv: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        from: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        local: { type: 'boolean', default: false },
        atomic: { type: 'boolean' },
        watch: { type: 'string' },
        plan: { type: 'string' },
        'plan-out': { type: 'string' },
        'no-atomic': { type: 'boolean' },
        'code-only': { type: 'boolean', default: false },
        undo: { type: 'boolean', default: false },
        'without-pre-revert-backup': { type: 'boolean', default: false },
        repo: { type: 'string' },
        service: { type: 'string' },
        example: { type: 'string' },
        keep: { type: 'string' },
        latest: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'V', default: false },
        json: { type: 'boolean', default: false },
        message: { type: 'string' },
      },
    });
    const allowed: Record<string, readonly string[]> = {
      'release-run': ['from', 'dry-run', 'local', 'atomic', 'no-atomic', 'watch', 'plan', 'plan-out', 'repo', 'help', 'version', 'json'],
      'release-revert': ['code-only', 'undo', 'without-pre-revert-backup', 'dry-run', 'repo', 'help', 'version', 'json'],
      release: ['service', 'example', 'repo', 'help', 'version', 'keep', 'dry-run', 'json', 'latest', 'message'],
    };
    for (const [key, value] of Object.entries(values)) {
      if (value !== undefined && value !== false && !allowed[verb]!.includes(key)) throw new Error(`option --${key} is not known to ${verb}`);
    }
    if (values.atomic && values['no-atomic']) throw new Error('--atomic and --no-atomic do not go together');
    if (values['plan-out'] !== undefined && !values['dry-run']) throw new Error('--plan-out writes the plan of a dry run: add --dry-run');
    if (values.plan !== undefined && (values['dry-run'] || values.from !== undefined || values.local)) throw new Error('--plan runs a reviewed plan from the start, as it is: drop --dry-run, --from and --local');
    if (values['code-only'] && values.undo) throw new Error('--code-only and --undo do not go together: --undo puts back what the last revert replaced, code and data');
    return {
      positionals, from: values.from, dryRun: values['dry-run'] ?? false, local: values.local ?? false, codeOnly: values['code-only'] ?? false, undo: values.undo ?? false, withoutPreRevertBackup: values['without-pre-revert-backup'] ?? false, repo: values.repo,
      service: values.service, example: values.example, keep: values.keep, latest: values.latest ?? false, help: values.help ?? false, version: values.version ?? false,
      json: values.json ?? false, atomic: values.atomic ? true : values['no-atomic'] ? false : undefined, watch: values.watch, plan: values.plan, planOut: values['plan-out'], message: values.message,
    };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, '');
    throw new ReleaseError('BAD_INPUT', `${message.replace(/^Unknown option '([^']*)'.*$/, "unknown option '$1'")}`, { hint: `see ${verb} --help` });
  }
}

/** `--watch=2m` in ms; a bad duration is exit 2 before anything runs. */
function watchDuration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)(s|m|h)$/.exec(text);
  const ms = match ? Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'] : 0;
  if (!ms) throw new ReleaseError('BAD_INPUT', `--watch=${text} is not a duration`, { hint: 'give the watch window as seconds, minutes or hours: --watch=90s, --watch=5m' });
  return ms;
}

function resolveRepo(repo: string | undefined): string {
  if (repo === undefined) return findRepo(process.cwd());
  const dir = resolve(repo);
  if (!existsSync(dir) || !statSync(dir).isDirectory() || !existsSync(resolve(dir, '.git'))) {
    throw new ReleaseError('BAD_INPUT', `--repo ${repo} is not a git repo`, { hint: 'pass the top-level folder of the platform repo' });
  }
  return dir;
}

/** Interrupts stop the running step through the abort signal; the runner then exits 130. */
function abortOnSignals(out: Output): AbortController {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return;
    out.warn(`${signal} received: stopping the running step`);
    controller.abort(new ReleaseError('INTERRUPTED', `interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller;
}

/** `release init [--example NAME]`: the init plugins write what a platform repo needs; never overwriting. */
async function init(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  if (args.positionals.length !== 1 || args.service !== undefined) {
    throw new ReleaseError('BAD_INPUT', 'release init takes no other arguments than --example NAME and --repo DIR', { hint: 'see release --help' });
  }
  if (args.example !== undefined && !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(args.example)) {
    throw new ReleaseError('BAD_INPUT', `invalid service name --example ${JSON.stringify(args.example)}`, {
      hint: 'a service name is lowercase letters, digits, _ or -, starting with a letter or digit (it is the folder packages/NAME)',
    });
  }
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext } = await loadEngine();
  const hooks = applyPlugins((await loadConfig(repoDir)).config);
  if (!hooks.init.isUsed()) throw new ReleaseError('BAD_INPUT', 'no plugin carries out release init', { hint: 'keep defaultPlugins() in release.config.ts' });
  const context = createContext({ verb: 'release', ticket: 'init', repoDir, dryRun: false, hooks, out, signal });
  const result: InitResult = { example: args.example, written: [], kept: [] };
  await hooks.init.promise(result, context);
  for (const file of result.written) {
    out.plain(`wrote ${file}`);
    out.events.emit('init', 'written', { path: file });
  }
  for (const file of result.kept) {
    out.plain(`kept  ${file}${file.includes(' (') ? '' : ' (it exists; not overwritten)'}`);
    out.events.emit('init', 'kept', { path: file });
  }
  out.plain(result.written.length === 0
    ? 'nothing to do: the repo is set up already'
    : `${result.written.length} file(s) written: review them, commit them and merge them into origin's main`);
  out.plain('next, in this repo (the justfile runs the installed verbs):');
  out.plain(`  just release --service=${args.example ?? 'NAME'}    # the drift check, read-only`);
  out.plain(`  just release-run TICKET --dry-run    # a preview of the release of ticket TICKET`);
  return 0;
}

/** `release prune [--keep=N] [--dry-run]`: the retention plugin removes old releases' backups, under the release lock. */
async function prune(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  if (args.positionals.length !== 1 || args.service !== undefined || args.example !== undefined) {
    throw new ReleaseError('BAD_INPUT', 'release prune takes no other arguments than --keep=N, --dry-run and --repo DIR', { hint: 'see release --help' });
  }
  if (args.keep !== undefined && !/^\d{1,5}$/.test(args.keep)) {
    throw new ReleaseError('BAD_INPUT', `invalid --keep=${args.keep}: expected a whole number of releases, e.g. --keep=3`, { hint: 'see release --help' });
  }
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext, workspacePaths, ReleaseLock } = await loadEngine();
  const hooks = applyPlugins((await loadConfig(repoDir)).config);
  if (!hooks.prune.isUsed()) throw new ReleaseError('BAD_INPUT', 'no plugin carries out release prune', { hint: 'keep defaultPlugins() in release.config.ts' });
  const context = createContext({ verb: 'release', ticket: 'prune', repoDir, dryRun: args.dryRun, hooks, out, signal });
  out.events.dryRun = args.dryRun;
  // No release may take or restore a backup while old ones are removed.
  const lock = args.dryRun ? undefined : new ReleaseLock(workspacePaths(repoDir, 'prune').lockFile);
  lock?.acquire('prune');
  const request = { keep: args.keep === undefined ? undefined : Number(args.keep), removed: [] as string[], freedBytes: 0 };
  try {
    await hooks.prune.promise(request, context);
  } finally {
    lock?.release();
  }
  out.events.emit('prune', 'pruned', { removed: request.removed, bytes: request.freedBytes, keep: request.keep });
  return 0;
}

/** `release verify-backups [TICKET | --service=NAME | --latest]`: restore tests, under the release lock. */
async function verifyBackups(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  const ticket = args.positionals[1];
  const chosen = [ticket !== undefined, args.service !== undefined, args.latest].filter(Boolean).length;
  if (args.positionals.length > 2 || chosen > 1 || args.example !== undefined) {
    throw new ReleaseError('BAD_INPUT', 'usage: release verify-backups [TICKET | --service=NAME | --latest] [--json] [--repo DIR]: one of them at most', { hint: 'see release --help' });
  }
  if (ticket !== undefined) validateTicket(ticket);
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext, workspacePaths, ReleaseLock } = await loadEngine();
  const hooks = applyPlugins((await loadConfig(repoDir)).config);
  if (!hooks.verifyBackups.isUsed()) throw new ReleaseError('BAD_INPUT', 'no plugin carries out release verify-backups', { hint: 'keep defaultPlugins() in release.config.ts' });
  const context = createContext({ verb: 'release', ticket: 'verify-backups', repoDir, dryRun: false, hooks, out, signal, auditLog: false });
  // No release may take, restore or prune a backup while it is restored elsewhere.
  const lock = new ReleaseLock(workspacePaths(repoDir, 'verify-backups').lockFile);
  lock.acquire('verify-backups');
  const request = { ticket, service: args.service, results: [] as import('../core/hooks.js').VerifiedBackup[] };
  try {
    await hooks.verifyBackups.promise(request, context);
  } finally {
    lock.release();
  }
  const counts = (outcome: string) => request.results.filter((result) => result.outcome === outcome).length;
  out.plain(`${request.results.length} backup(s) restored into scratch targets: ${counts('passed')} passed${counts('untested') > 0 ? `, ${counts('untested')} only checksummed (no restore test in their strategy)` : ''}`);
  out.events.emit('verify-backups', 'verified', { backups: request.results.length, passed: counts('passed'), untested: counts('untested'), failed: counts('failed') });
  return 0;
}

const short = (sha: string | null) => (sha ? sha.slice(0, 12) : '?');
const when = (iso: string) => (iso ? iso.replace('T', ' ').slice(0, 19) : '(no start recorded)');

function describeRun(run: import('../core/history.js').RunRecord, formatDuration: (seconds: number) => string): string {
  const where = run.phase_failed === 'orchestrator' ? ' before its first phase' : run.phase_failed ? ` in ${run.phase_failed}` : '';
  const outcome = run.exit_code === null ? run.result : `${run.result} (exit ${run.exit_code}${where}${run.reason ? `, ${run.reason}` : ''})`;
  const duration = run.duration_s === null ? '' : `, ${formatDuration(run.duration_s)}, ended ${when(run.ended ?? '')}`;
  const backups = run.backups.map((b) => `${b.service}=${b.at}${b.present ? '' : ' (gone)'}${b.restore_test ? ` (restore test ${b.restore_test.outcome} ${when(b.restore_test.tested)})` : ''}`).join(' ');
  return [
    `${when(run.started)}  ${run.ticket}  ${run.verb}${run.from ? ` --from=${run.from}` : ''}  ${outcome}${duration}`,
    `    ${short(run.base_sha)}->${short(run.merge_sha)}  services: ${run.services.join(' ') || '-'}  backups: ${backups || '-'}`,
    ...run.problems.map((problem) => `    damaged: ${problem}`),
    ...(run.revert_possible === null ? [] : [`    revert as it is: ${run.revert_possible ? 'yes' : `no (${run.revert_why})`}`]),
  ].join('\n');
}

/** `release history [--service=NAME]`: every run on this clone, newest first, from its files alone. */
async function history(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positionals.length !== 1 || args.example !== undefined) {
    throw new ReleaseError('BAD_INPUT', 'release history takes only --service=NAME, --json and --repo DIR', { hint: 'see release --help' });
  }
  const repoDir = resolveRepo(args.repo);
  const { readHistory } = await import('../core/history.js');
  const { formatDuration } = await import('../core/progress.js');
  const { workspacePaths } = await import('../core/context.js');
  const rows = readHistory(workspacePaths(repoDir, '_').workspaceDir, { service: args.service });
  for (const row of rows) {
    out.plain(describeRun(row, formatDuration));
    out.events.ticket = row.ticket;
    out.events.emit('history', 'run', { ...row });
  }
  out.events.ticket = null;
  out.plain(`${rows.length} run${rows.length === 1 ? '' : 's'}${args.service ? ` of service ${args.service}` : ''}`);
  out.events.emit('history', 'end', { runs: rows.length, service: args.service });
  return 0;
}

/** `release show TICKET`: one ticket's runs in full, its backups' files, and whether it can be reverted. */
async function show(args: ParsedArgs, out: Output): Promise<number> {
  if (args.positionals.length !== 2 || args.service !== undefined || args.example !== undefined) {
    throw new ReleaseError('BAD_INPUT', 'usage: release show TICKET [--json] [--repo DIR]', { hint: 'see release --help' });
  }
  const ticket = validateTicket(args.positionals[1]);
  out.events.ticket = ticket;
  const repoDir = resolveRepo(args.repo);
  const { readTicketHistory, backupFiles } = await import('../core/history.js');
  const { formatBytes, formatDuration } = await import('../core/progress.js');
  const { workspacePaths } = await import('../core/context.js');
  const paths = workspacePaths(repoDir, ticket);
  const record = readTicketHistory(paths.workspaceDir, ticket);
  if (!record) {
    throw new ReleaseError('BAD_INPUT', `no release of ticket ${ticket} on this clone (no ${paths.stateFile} or ${paths.logFile})`, {
      hint: 'see the tickets this clone knows with: just release history',
    });
  }
  const backups = record.backups.map((backup) => ({ ...backup, files: backupFiles(backup.dir) }));
  const preRevertBackups = record.preRevertBackups.map((backup) => ({ ...backup, files: backupFiles(backup.dir) }));
  const undoCommand = preRevertBackups.length > 0 || record.state?.preRevertHead ? out.command('release-revert', [ticket, '--undo']) : null;
  for (const run of record.runs) {
    out.plain(describeRun(run, formatDuration));
    for (const phase of run.phases) out.plain(`      ${phase.name.padEnd(13)} ${phase.result}${phase.rc ? ` (exit ${phase.rc})` : ''}  ended ${when(phase.ended)}  ${formatDuration(phase.duration_s)}`);
    if (run.playbooks.length > 0) out.plain(`      playbooks matched: ${run.playbooks.join(', ')}`);
  }
  if (record.runs.length === 0) out.plain(`${ticket}: no run recorded in the audit log`);
  const { appliedPlans } = await import('../plugins/plan/index.js');
  for (const plan of appliedPlans(paths.logFile)) out.plain(`run as the reviewed plan of ${plan.created} (${plan.base.slice(0, 12)}..${plan.merge.slice(0, 12)})`);
  const { hookRuns } = await import('../plugins/lifecycle-hooks/index.js');
  const { AuditLog } = await import('../core/audit-log.js');
  const hooksRun = hookRuns(new AuditLog(paths.logFile, ticket).events());
  for (const run of hooksRun) {
    out.plain(`hook ${run.hook} of ${run.service ?? 'the repo'} (${run.where === 'host' ? 'on the host' : `in ${run.where}`}, ${run.phase}): ${run.rc === 0 ? 'ok' : `exit ${run.rc}`} in ${run.duration_s}s: ${run.command}`);
  }
  const { readWatchRecords } = await import('../plugins/watch/index.js');
  const watch = readWatchRecords(paths.workspaceDir, ticket);
  for (const window of watch) {
    out.plain(`watch window of ${window.service}: ${window.outcome}, ${window.samples} checks in ${formatDuration(window.duration_s)} (every ${formatDuration(window.interval_s)}): ${window.passed} passed, ${window.failed} failed, ${window.inconclusive} inconclusive, ${window.failures_allowed} allowed`);
    for (const problem of window.problems) out.plain(`    ${when(problem.at)} ${problem.check}: ${problem.result} (${problem.detail})`);
  }
  for (const problem of record.problems) out.plain(`damaged: ${problem}`);
  out.plain(backups.length === 0 ? `backups of ${ticket}: none` : `backups of ${ticket}:`);
  const listBackups = (list: typeof backups) => {
    for (const backup of list) {
      out.plain(`  ${backup.service}=${backup.at}  ${backup.present ? backup.dir : `${backup.dir} (gone)`}${backup.bytes === null ? '' : `  ${formatBytes(backup.bytes)}`}`);
      for (const file of backup.files) out.plain(`    ${file.file}  ${file.bytes === null ? '?' : formatBytes(file.bytes)}  sha256 ${file.sha256 ?? '(not recorded)'}`);
      if (!backup.present) continue;
      out.plain(backup.restore_test
        ? `    restore test: ${backup.restore_test.outcome}, ${when(backup.restore_test.tested)} UTC`
        : `    restore test: never (${out.command('release', ['verify-backups', ticket])})`);
      for (const line of backup.restore_test?.entries ?? []) out.plain(`      ${line}`);
    }
  };
  listBackups(backups);
  if (undoCommand) {
    out.plain(preRevertBackups.length > 0
      ? `pre-revert backups of ${ticket} (the data its last revert replaced):`
      : `pre-revert backups of ${ticket}: none (its last revert restored no data, or preRevertBackup is off)`);
    listBackups(preRevertBackups);
    out.plain(`undo the last revert (its data, the released code, the services): ${undoCommand}`);
  }
  out.plain(record.revert.possible
    ? `revert possible: yes (${record.revert.why}): ${out.command('release-revert', [ticket])}`
    : `revert possible: no (${record.revert.why})`);
  out.events.emit('history', 'show', {
    runs: record.runs.map((run) => ({ ...run })), backups: backups.map((backup) => ({ ...backup, files: backup.files.map((file) => ({ ...file })) })),
    pre_revert_backups: preRevertBackups.map((backup) => ({ ...backup, files: backup.files.map((file) => ({ ...file })) })), undo_command: undoCommand, hooks: hooksRun.map((run) => ({ ...run })), watch: watch.map((window) => ({ ...window, problems: window.problems.map((problem) => ({ ...problem })) })),
    problems: record.problems, revert_possible: record.revert.possible, revert_why: record.revert.why,
    revert_command: record.revert.possible ? out.command('release-revert', [ticket]) : null,
  });
  return 0;
}

/** `release status [--service=NAME] [--json]` (cli/status.ts). */
async function statusVerb(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  if (args.positionals.length !== 1) throw new ReleaseError('BAD_INPUT', 'usage: release status [--service=NAME] [--json] [--repo DIR]', { hint: 'see release --help' });
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext } = await loadEngine();
  const hooks = applyPlugins((await loadConfig(repoDir)).config);
  const context = createContext({ verb: 'release', ticket: 'status', repoDir, dryRun: true, hooks, out, signal });
  const { status } = await import('./status.js');
  return status(context, args.service);
}

/** `release maintenance on|off SERVICE [--message TEXT]` (cli/maintenance.ts). */
async function maintenanceVerb(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  const [, mode, service] = args.positionals;
  if (args.positionals.length !== 3 || (mode !== 'on' && mode !== 'off') || args.service !== undefined || (mode === 'off' && args.message !== undefined)) {
    throw new ReleaseError('BAD_INPUT', 'usage: release maintenance on|off SERVICE [--message TEXT] [--repo DIR]', { hint: '--message goes with on; see release --help' });
  }
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext } = await loadEngine();
  const hooks = applyPlugins((await loadConfig(repoDir)).config);
  // No audit log of its own: maintenance is no ticket's (the record on the host is what stays).
  const context = createContext({ verb: 'release', ticket: 'maintenance', repoDir, dryRun: false, auditLog: false, hooks, out, signal });
  const { maintenance } = await import('./maintenance.js');
  return maintenance(context, mode, service!, args.message);
}

async function driftCheck(args: ParsedArgs, out: Output, signal: AbortSignal): Promise<number> {
  if (!args.service) throw new ReleaseError('BAD_INPUT', 'missing --service=NAME', { hint: 'see release --help' });
  const repoDir = resolveRepo(args.repo);
  const { loadConfig, applyPlugins, createContext } = await loadEngine();
  const { config } = await loadConfig(repoDir);
  const hooks = applyPlugins(config);
  const context = createContext({ verb: 'release', ticket: 'drift-check', repoDir, dryRun: true, hooks, out, signal });
  const actions: Action[] = [];
  await hooks.plan.promise(args.service, context, actions);
  for (const action of actions) {
    out.plain(`${action.kind} ${action.service}: ${action.reason}`);
    out.events.emit('drift-check', 'action', { ...action });
  }
  out.plain(`${actions.length} action${actions.length === 1 ? '' : 's'}`);
  out.events.emit('drift-check', 'drift-check', { service: args.service, actions: actions.map((action) => ({ ...action })) });
  return actions.length === 0 ? 0 : 5;
}

/**
 * With --json, stdout carries only the events and the human output moves to stderr. Read before
 * the arguments are parsed, so input refused as bad is reported as an event too.
 */
function outputFor(verb: Verb | 'release', argv: readonly string[]): Output {
  const end = argv.indexOf('--');
  if (!(end < 0 ? argv : argv.slice(0, end)).includes('--json')) return new Output(verb);
  // A reader that goes away (`| head -1`) must not stop a release halfway: its events are dropped.
  process.stdout.on('error', () => undefined);
  return new Output(verb, process.stderr, process.stderr, new EventStream(verb, (line) => process.stdout.write(line)));
}

export async function main(verb: Verb | 'release', argv: string[]): Promise<number> {
  const out = outputFor(verb, argv);
  const started = new Date();
  try {
    const args = parse(verb, argv);
    if (args.help) {
      out.plain(HELP[verb]);
      return 0;
    }
    if (args.version) {
      out.plain(versionLine(verb));
      return 0;
    }
    const controller = abortOnSignals(out);
    if (verb === 'release' && args.positionals[0] === 'init') return await init(args, out, controller.signal);
    if (verb === 'release' && args.positionals[0] === 'prune') return await prune(args, out, controller.signal);
    if (verb === 'release' && args.positionals[0] === 'history') return await history(args, out);
    if (verb === 'release' && args.positionals[0] === 'show') return await show(args, out);
    if (verb === 'release' && args.positionals[0] === 'verify-backups') return await verifyBackups(args, out, controller.signal);
    if (verb === 'release' && args.positionals[0] === 'status') return await statusVerb(args, out, controller.signal);
    if (verb === 'release' && args.positionals[0] === 'maintenance') return await maintenanceVerb(args, out, controller.signal);
    if (verb === 'release' && args.message !== undefined) throw new ReleaseError('BAD_INPUT', 'option --message is not known to release', { hint: 'it belongs to release maintenance on; see release --help' });
    if (verb === 'release' && args.latest) throw new ReleaseError('BAD_INPUT', 'option --latest is not known to release', { hint: 'it belongs to release verify-backups; see release --help' });
    if (verb === 'release' && (args.keep !== undefined || args.dryRun)) {
      throw new ReleaseError('BAD_INPUT', `option --${args.keep !== undefined ? 'keep' : 'dry-run'} is not known to release${args.positionals[0] ? ` ${args.positionals[0]}` : ''}`, { hint: 'it belongs to release prune; see release --help' });
    }
    if (verb === 'release' && args.positionals.length > 0) {
      throw new ReleaseError('BAD_INPUT', `unknown command release ${args.positionals[0]}`, { hint: 'use release --service=NAME, release status, release maintenance, release init, release prune, release history, release show TICKET or release verify-backups; see release --help' });
    }
    if (args.local && args.from !== undefined && args.from !== 'prepare') {
      throw new ReleaseError('BAD_INPUT', '--local applies to prepare only; drop it when resuming with --from', { hint: 'see release-run --help' });
    }
    if (verb === 'release') return await driftCheck(args, out, controller.signal);
    if (args.positionals.length > 1) {
      throw new ReleaseError('BAD_INPUT', `expected one ticket id, got ${args.positionals.length} arguments`, { hint: `see ${verb} --help` });
    }
    const ticket = validateTicket(args.positionals[0]);
    out.events.ticket = ticket;
    out.events.dryRun = args.dryRun;
    if (args.from !== undefined && !PHASES_OF[verb].some((phase) => phase.name === args.from)) {
      throw new ReleaseError('BAD_INPUT', `unknown phase --from=${args.from}`, {
        hint: `use one of ${PHASES_OF[verb].map((phase) => phase.name).join(', ')}`,
      });
    }
    const repoDir = resolveRepo(args.repo);
    const { loadConfig, applyPlugins, runVerb } = await loadEngine();
    const { config } = await loadRunConfig(repoDir, verb, args.from, out, loadConfig);
    const hooks = applyPlugins(config);
    const loadHooksAt = async (commit: string) => applyPlugins((await loadConfig(repoDir, { commit })).config);
    const atomic = verb === 'release-run' ? { revertCommand: [process.execPath, REVERT_BIN], always: args.atomic ?? config.atomic ?? false } : undefined;
    return await runVerb({ verb, ticket, repoDir, from: args.from, dryRun: args.dryRun, local: args.local, codeOnly: args.codeOnly, undo: args.undo, withoutPreRevertBackup: args.withoutPreRevertBackup, hooks, out, signal: controller.signal, loadHooksAt, atomic, watchMs: watchDuration(args.watch),
      planOut: args.planOut === undefined ? undefined : resolve(args.planOut), planFile: args.plan === undefined ? undefined : resolve(args.plan) });
  } catch (thrown) {
    const error = toReleaseError(thrown);
    out.reportError(error);
    reportRefusal(out, error, started);
    return error.exitCode;
  }
}

/**
 * The config a run starts with. A release from the start is governed by the config of the commit
 * it fetches (prepare swaps to it before anything changes), so a HEAD config that fails to load
 * must not block the release of its own fix: the fetch runs with the reference config instead.
 * A work tree's edit of the config that fails is refused: the commit at HEAD loads.
 * A resumed release, a revert and a MERGE_SHA config that fails stay refused.
 */
async function loadRunConfig(repoDir: string, verb: Verb, from: string | undefined, out: Output, loadConfig: typeof import('./config.js').loadConfig) {
  try {
    return await loadConfig(repoDir);
  } catch (thrown) {
    const error = toReleaseError(thrown);
    if (verb !== 'release-run' || (from !== undefined && from !== 'prepare') || error.code !== 'BAD_INPUT') throw error;
    // An edit in the work tree that breaks the config is the operator's to fix; only a broken commit is released past.
    const committed = await loadConfig(repoDir, { commit: 'HEAD' }).then(() => true, () => false);
    if (committed) throw error;
    out.warn(`the config at HEAD does not load (${error.message}); fetching with the reference config, then the release is governed by the fetched commit's config`);
    return await loadConfig(repoDir, { referenceOnly: true });
  }
}

/** Input refused before a run started: the same `error` and `outcome` events a run ends with. */
function reportRefusal(out: Output, error: ReleaseError, started: Date): void {
  if (!out.events.enabled) return;
  out.events.emit('orchestrator', 'error', {
    code: error.code, reason: error.reason, exit_code: error.exitCode, message: error.message, hint: error.hint,
    lines: error.lines.length > 0 ? error.lines : undefined, plugin: error.plugin, hook: error.hook, service: error.service,
  });
  out.events.emit('orchestrator', 'outcome', {
    result: 'refused', exit_code: error.exitCode, started: started.toISOString(),
    duration_s: Math.round((Date.now() - started.getTime()) / 100) / 10, services: [], base_sha: '', merge_sha: '',
    phase_failed: null, message: error.message, code: error.code, reason: error.reason, next: [],
  });
}

/**
 * `release-step --repo DIR --ticket T KIND SERVICE`: one action through the `apply` hook, for
 * migrate.sh. It runs inside release-run, which holds the lock and the state.
 */
export async function step(argv: string[]): Promise<number> {
  const out = new Output('release-step');
  try {
    const { values, positionals } = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { repo: { type: 'string' }, ticket: { type: 'string' }, target: { type: 'string', multiple: true }, recreate: { type: 'string', multiple: true } },
    });
    const ticket = validateTicket(values.ticket);
    const [kind, service] = positionals;
    if (positionals.length !== 2 || !/^[a-z][a-z0-9-]*$/.test(kind!) || !/^[a-z0-9][a-z0-9_-]*$/.test(service!)) {
      throw new ReleaseError('BAD_INPUT', 'usage: release-step --repo DIR --ticket T ACTION SERVICE [--target PART]... [--recreate PART]...');
    }
    const action = { service: service!, kind: kind!, reason: 'migrate.sh', ...(values.target ? { targets: values.target } : {}), ...(values.recreate ? { recreate: values.recreate } : {}) };
    // Inside release-run the running release carries it out, with the config it already loaded.
    const socket = process.env[ACTION_SOCKET_ENV];
    if (socket && process.env.RELEASE_ORCHESTRATOR === '1') return await requestAction(socket, action);
    const repoDir = resolveRepo(values.repo);
    const { loadConfig, applyPlugins, createContext, workspacePaths, ReleaseLock } = await loadEngine();
    const hooks = applyPlugins((await loadConfig(repoDir)).config);
    const controller = abortOnSignals(out);
    const context = createContext({ verb: 'release-run', ticket, repoDir, dryRun: false, hooks, out, signal: controller.signal });
    // Inside release-run the run holds the lock; run by hand (migrate.sh --debug) the step takes it.
    const lock = process.env.RELEASE_ORCHESTRATOR === '1' ? undefined : new ReleaseLock(workspacePaths(repoDir, ticket).lockFile);
    lock?.acquire(ticket);
    try {
      await carryOut(context, action);
    } finally {
      lock?.release();
    }
    return 0;
  } catch (thrown) {
    const error = toReleaseError(thrown);
    out.reportError(error);
    return error.exitCode;
  }
}

export function runStep(): void {
  step(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}

/** Entry point of the bins: exit with the verb's code once output is flushed. */
export function runBin(verb: Verb | 'release'): void {
  main(verb, process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (error) => { process.stderr.write(`[${verb}] internal error: ${String(error)}\n`); process.exitCode = 1; },
  );
}
