/**
 * Chaos for release paths: a release or revert is killed -9 at a random moment, with everything it
 * started (its process group and every descendant, frozen first so that none escapes by forking),
 * then recovered the way an operator would (resume with --from, run again, or revert); the
 * recovery may itself be killed. After each release the path checks that data and services are
 * exact and that no lock, temp file, process or leftover container is left.
 */
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ORCHESTRATOR_ROOT, type Platform } from './platform.js';
import { containerNames, containersOf } from './docker.js';

export type Outcome = 'released' | 'reverted';

export interface ChaosPath {
  platform: Platform;
  /** Merges release number `index` (from 1) into origin; returns its ticket. */
  merge(index: number): Promise<string>;
  /** Throws unless data, code and services are exactly what `outcome` of the release just merged leaves. */
  check(outcome: Outcome): Promise<void>;
}

export interface ChaosReport {
  kills: number;
  releases: number;
  reverted: number;
  /** One line per attempt: `T1 release-run killed at 2.3s`, ... */
  attempts: string[];
}

const PHASES = ['prepare', 'migrate', 'ticket', 'verify'] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A small seeded generator, so that a failing run can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parentsOfAll(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  return parents;
}

/** `root` and every process below it. */
function treeOf(root: number): number[] {
  const parents = parentsOfAll();
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, parent] of parents) if (tree.has(parent) && !tree.has(pid)) { tree.add(pid); grew = true; }
  }
  return [...tree];
}

const signalAll = (pids: number[], signal: NodeJS.Signals) => { for (const pid of pids) { try { process.kill(pid, signal); } catch { /* gone */ } } };

/** kill -9 of a run and of everything it started, as a crash of its whole session would. */
function killTree(root: number): void {
  // Frozen until none is found that is not yet frozen: a forking child cannot slip away.
  let frozen: number[] = [];
  for (let round = 0; round < 5; round++) {
    const tree = treeOf(root);
    const fresh = tree.filter((pid) => !frozen.includes(pid));
    signalAll(fresh, 'SIGSTOP');
    frozen = tree;
    if (fresh.length === 0) break;
  }
  signalAll(frozen, 'SIGKILL');
}

/** The processes still running whose environment marks them as started by orchestrator `pid`. */
function processesStartedBy(pids: ReadonlySet<number>): string[] {
  const left: string[] = [];
  for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const marker = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').find((entry) => entry.startsWith('RELEASE_ORCHESTRATOR_STEP='));
      if (marker && pids.has(Number(marker.split('=')[1]!.split('-')[0]))) left.push(`${name}: ${readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ')}`);
    } catch { /* gone, or a zombie */ }
  }
  return left;
}

/**
 * A lock whose holder still runs. (A stale one, left by a killed run when the run that ended the
 * release had nothing to do under the lock, is taken over by the next run, as docs/operations.md says.)
 */
function lockHeld(path: string): boolean {
  if (!existsSync(path)) return false;
  const pid = Number(/"pid":\s*(\d+)|pid=(\d+)/.exec(readFileSync(path, 'utf8'))?.slice(1).find(Boolean));
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? [path, ...filesUnder(path)] : [path];
  });
}

/** The first phase the audit log does not record as done in the latest run of `ticket`'s release. */
function firstPhaseNotDone(platform: Platform, ticket: string): string | undefined {
  const log = platform.logEvents(ticket);
  const lastStart = log.map((line) => line.includes('event=start verb=release-run')).lastIndexOf(true);
  const done = new Set(log.slice(lastStart < 0 ? 0 : lastStart).map((line) => /phase=(\w+) event=done/.exec(line)?.[1]).filter(Boolean));
  return PHASES.find((phase) => !done.has(phase));
}

/**
 * Runs release after release on `path` until `kills` runs were killed. Every third release is
 * reverted (after its first kill, or once it went through uncut), the others resumed (--from the phase that did not finish, or run
 * again, drawn); up to five attempts of a release are killed, each at a moment drawn between 0 and
 * the last uncut run's duration.
 */
export async function runChaos(path: ChaosPath, options: { kills: number; seed: number }): Promise<ChaosReport> {
  const random = seededRandom(options.seed);
  const { platform } = path;
  const report: ChaosReport = { kills: 0, releases: 0, reverted: 0, attempts: [] };
  const orchestrators = new Set<number>();
  const duration: Record<string, number> = {};

  async function attempt(args: string[], killAfterMs: number | undefined) {
    const [verb, ...rest] = args;
    const started = Date.now();
    const child = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin', `${verb}.js`), ...rest], {
      cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false, all: true, detached: true,
    });
    orchestrators.add(child.pid!);
    const outcome = await Promise.race([child.then(() => 'ended' as const), ...(killAfterMs === undefined ? [] : [sleep(killAfterMs).then(() => 'kill' as const)])]);
    if (outcome === 'kill' && child.exitCode === null) {
      killTree(child.pid!);
      await child;
      return { killed: true, ms: Date.now() - started, output: String(child.all ?? '') };
    }
    const result = await child;
    const output = String(result.all);
    // A refusal whose playbook names the command to run instead is followed, as an operator would:
    // a revert of a release killed before prepare recorded anything (exit 2: start over), or a
    // re-run of a release a killed run had finished (exit 4: check it again with --from=verify).
    const instead = /^ {2}next: (release-\S+ .*)$/m.exec(output)?.[1]?.split(' ');
    const followable = (args[0] === 'release-revert' && result.exitCode === 2) || (args[0] === 'release-run' && result.exitCode === 4);
    if (result.exitCode !== 0 && !(followable && instead)) {
      throw new Error(`${args.join(' ')} exited ${result.exitCode} after a kill (seed ${options.seed}):\n${report.attempts.slice(-6).join('\n')}\n${output}`);
    }
    if (result.exitCode === 0) duration[verb!] = Date.now() - started;
    return { killed: false, ms: Date.now() - started, output, instead: result.exitCode === 0 ? undefined : instead };
  }

  for (let index = 1; report.kills < options.kills; index++) {
    const ticket = await path.merge(index);
    let outcome: Outcome = 'released';
    let next: string[] = ['release-run', ticket];
    for (let tries = 0; ; tries++) {
      const verb = next[0]!;
      // The first release of a path runs uncut: it measures how long a run takes.
      const killAfter = duration[verb] === undefined && verb === 'release-run' && index === 1 ? undefined
        : tries >= 5 ? undefined : Math.floor(random() * (duration[verb] ?? duration['release-run']!));
      const result = await attempt(next, killAfter);
      report.attempts.push(`${next.join(' ')} ${result.killed ? `killed at ${(result.ms / 1000).toFixed(1)}s` : `ended ${result.instead ? `with ${result.instead.join(' ')} to run instead` : '0'} after ${(result.ms / 1000).toFixed(1)}s`}`);
      if (!result.killed && 'instead' in result && result.instead) {
        next = result.instead;
        outcome = next[0] === 'release-revert' ? 'reverted' : 'released';
        continue;
      }
      const revertThisOne = index % 3 === 0 && outcome !== 'reverted';
      if (!result.killed && revertThisOne && tries === 0) {
        // Every third release is reverted: one that went through uncut, by a revert of its own.
        outcome = 'reverted';
        next = ['release-revert', ticket];
        continue;
      }
      if (!result.killed) break;
      report.kills += 1;
      if (verb === 'release-revert') continue;
      // What an operator does after a crash: revert, resume at the phase that did not finish, or run again.
      const choice = random();
      // Every third release is reverted after its first kill, so that each path proves its restores.
      if (tries === 0 && revertThisOne) {
        outcome = 'reverted';
        next = ['release-revert', ticket];
      } else {
        const from = firstPhaseNotDone(platform, ticket);
        next = choice < 0.5 && from && from !== 'prepare' ? ['release-run', ticket, `--from=${from}`] : ['release-run', ticket];
      }
    }
    report.releases += 1;
    if (outcome === 'reverted') report.reverted += 1;

    const workspace = join(platform.prod, '.asd', 'workspace');
    const leftovers = [
      ...(lockHeld(join(workspace, 'release.lock')) ? ['release.lock, held by a live process'] : []),
      ...filesUnder(workspace).filter((file) => /\.tmp$|\.partial|\.staging|\.restoring/.test(file)),
      ...processesStartedBy(orchestrators),
    ];
    if (leftovers.length > 0) throw new Error(`release ${index} (${outcome}, seed ${options.seed}) left: ${leftovers.join(', ')}\n${report.attempts.slice(-6).join('\n')}`);
    if ((await platform.git(['status', '--porcelain'])) !== '') throw new Error(`release ${index}: the work tree is not clean`);
    try {
      await path.check(outcome);
    } catch (error) {
      throw new Error(`release ${index} (${outcome}, seed ${options.seed}): ${(error as Error).message}\n${report.attempts.slice(-6).join('\n')}`);
    }
    if (outcome === 'reverted') {
      await platform.git(['fetch', '-q', 'origin']);
      if ((await platform.git(['rev-list', '--count', 'HEAD..origin/main'])) !== '0') {
        // Reverted before its pull: the merge is on origin only, so it is reverted there, as a PR would.
        await platform.git(['revert', '-m', '1', '--no-edit', 'HEAD'], platform.dev);
        await platform.git(['push', '-q', 'origin', 'main'], platform.dev);
      } else {
        // The revert commit exists only in the prod clone: published, as the README says, before the next release.
        await platform.git(['push', '-q', 'origin', 'main']);
        await platform.git(['pull', '-q', '--ff-only', 'origin', 'main'], platform.dev);
      }
    }
  }
  return report;
}

/** Kills per path, as issue 20 asks. */
export const CHAOS_KILLS = 20;
export const otherTag = (tag: string) => (tag === '1' ? '2' : '1');

/** Only the containers a release should leave: none half-recreated (`<id>_name`), none stopped. */
export async function expectTidyProject(project: string, expected: number): Promise<void> {
  const containers = await containersOf(project);
  const names = await containerNames(project);
  const odd = names.filter((name) => /^[0-9a-f]{12}_/.test(name));
  if (odd.length > 0 || containers.length !== expected || containers.some((c) => c.state !== 'running')) {
    throw new Error(`${project}: expected ${expected} running containers, found ${containers.map((c) => c.state).join(', ')} (${names.join(', ')})`);
  }
}

/**
 * `chaos(name, path)` for a test file: runs the path with CHAOS_KILLS kills and a seed (printed;
 * CHAOS_SEED=N replays a failing run), and prints the file's table of paths once its tests are done.
 */
export function chaosReporter(): (name: string, path: ChaosPath) => Promise<ChaosReport> {
  const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
  const rows: string[] = [];
  afterAll(() => {
    process.stdout.write(`\nChaos (seed ${seed}): kill -9 at random moments, then --from, a plain re-run or release-revert\n| path | kills | releases | of them reverted | runs |\n|---|---|---|---|---|\n${rows.join('\n')}\n\n`);
  });
  return async (name, path) => {
    const report = await runChaos(path, { kills: CHAOS_KILLS, seed });
    rows.push(`| ${name} | ${report.kills} | ${report.releases} | ${report.reverted} | ${report.attempts.length} |`);
    return report;
  };
}
