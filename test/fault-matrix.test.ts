/**
 * The fault matrix: a release (or revert) killed with SIGKILL at each failpoint, then finished
 * with the recovery an operator is told to use. After it, the state file parses, the audit log is
 * whole, the data and the repo are what they should be, and no lock or temp file is left.
 * The matrix is printed at the end of the run.
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { parseState } from '../core/state.js';
import { LOG_LINE } from '../core/audit-log.js';

interface Scenario {
  failpoint: string;
  killed: 'release-run' | 'release-revert';
  recovery: string[];
  outcome: 'released' | 'reverted';
  /** A release of a fast-forwarded range instead of a merge (the revert then commits a tree). */
  fastForward?: boolean;
}

const T = '4242';
const scenarios: Scenario[] = [
  { failpoint: 'after-fetch', killed: 'release-run', recovery: ['release-run', T, '--from=prepare'], outcome: 'released' },
  { failpoint: 'state-before-rename', killed: 'release-run', recovery: ['release-run', T], outcome: 'released' },
  { failpoint: 'before-backup-web', killed: 'release-run', recovery: ['release-run', T, '--from=prepare'], outcome: 'released' },
  { failpoint: 'after-backup-web', killed: 'release-run', recovery: ['release-run', T, '--from=prepare'], outcome: 'released' },
  { failpoint: 'after-pull', killed: 'release-run', recovery: ['release-run', T, '--from=prepare'], outcome: 'released' },
  { failpoint: 'after-pull', killed: 'release-run', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'migrate-between-services', killed: 'release-run', recovery: ['release-run', T, '--from=migrate'], outcome: 'released' },
  { failpoint: 'migrate-between-services', killed: 'release-run', recovery: ['release-revert', T], outcome: 'reverted' },
  // api and web share a wave: killed once one is applied (APPLIED in the state) while the other runs.
  { failpoint: 'migrate-mid-wave', killed: 'release-run', recovery: ['release-run', T, '--from=migrate'], outcome: 'released' },
  { failpoint: 'migrate-mid-wave', killed: 'release-run', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'ticket-script', killed: 'release-run', recovery: ['release-run', T, '--from=ticket'], outcome: 'released' },
  { failpoint: 'ticket-script', killed: 'release-run', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'verify', killed: 'release-run', recovery: ['release-run', T, '--from=verify'], outcome: 'released' },
  { failpoint: 'verify', killed: 'release-run', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'mid-restore', killed: 'release-revert', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'mid-git-revert', killed: 'release-revert', recovery: ['release-revert', T], outcome: 'reverted' },
  { failpoint: 'mid-git-revert', killed: 'release-revert', recovery: ['release-revert', T], outcome: 'reverted', fastForward: true },
];

const matrix: string[] = [];
const sqlite = async (db: string, sql: string) => (await execa('sqlite3', ['-bail', db, sql])).stdout;

async function setUp(scenario: Scenario) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ro-fault-data-'));
  const db = join(dataDir, 'web.sqlite');
  await sqlite(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'before');");
  const backup = `backup:\n  - type: sqlite\n    path: ${db}\n`;
  const platform = await Platform.create([{ name: 'api' }, { name: 'web', extra: backup }]);
  const release = {
    'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:2\nbackup:\n  - type: sqlite\n    path: ${db}\n`,
    'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:2\n',
    // Idempotent, as ticket scripts must be: a resumed release runs it again.
    [`releases/${T}-data.sh`]: `#!/bin/sh\necho "migrating notes"\nsqlite3 ${db} "INSERT OR REPLACE INTO notes VALUES (2, 'from ticket ${T}')"\n`,
  };
  const base = await platform.head();
  if (scenario.fastForward) await platform.pushCommits([{ 'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:3\n' }, release]);
  else await platform.mergeFeature(T, release);
  return { platform, db, dataDir, base, before: await sqlite(db, '.dump') };
}

async function run(platform: Platform, args: string[], env: Record<string, string> = {}) {
  const [verb, ...rest] = args;
  return execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin', `${verb}.js`), ...rest], {
    cwd: platform.prod, reject: false, env: { NO_COLOR: '1', ...env },
  });
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('kill -9 at every failpoint, then the recovery the operator is told to use', () => {
  afterAll(() => {
    const header = ['| failpoint | killed | recovery | result |', '|---|---|---|---|'];
    process.stdout.write(`\nFault matrix (SIGKILL at the failpoint, then the recovery):\n${[...header, ...matrix].join('\n')}\n\n`);
  });

  test.each(scenarios.map((s) => [`${s.failpoint}${s.fastForward ? ' (fast-forward range)' : ''} -> ${s.recovery[0]}${s.recovery[2] ? ` ${s.recovery[2]}` : ''}`, s] as const))('%s', async (_name, scenario) => {
    const { platform, db, dataDir, base, before } = await setUp(scenario);
    try {
      if (scenario.killed === 'release-revert') {
        const released = await run(platform, ['release-run', T, '--from=prepare']);
        const failing = released.exitCode === 0 ? undefined : released.all;
        expect(failing).toBeUndefined();
      }
      const killed = await run(platform, [scenario.killed, T], { RELEASE_FAILPOINT: scenario.failpoint });
      expect(killed.signal).toBe('SIGKILL');
      // Killed mid-wave: one of the two services is recorded as applied, the other is not.
      const appliedAtKill = scenario.failpoint === 'migrate-mid-wave' ? parseState(readFileSync(platform.stateFile(T), 'utf8'), platform.stateFile(T)).applied ?? [] : [];
      if (scenario.failpoint === 'migrate-mid-wave') expect(appliedAtKill).toHaveLength(1);

      const recovered = await run(platform, scenario.recovery);
      expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
      if (scenario.failpoint === 'migrate-mid-wave' && scenario.recovery[2] === '--from=migrate') {
        // Only what was not applied is applied again.
        const [service, kind] = appliedAtKill[0]!.split(':');
        expect(recovered.stdout).toContain(`${kind} ${service}: done before this resume (APPLIED in the state file), not repeated`);
      }

      const workspace = join(platform.prod, '.asd', 'workspace');
      const state = parseState(readFileSync(platform.stateFile(T), 'utf8'), platform.stateFile(T));
      for (const line of platform.readLog(T)) expect(line).toMatch(LOG_LINE);
      expect(existsSync(join(workspace, 'release.lock'))).toBe(false);
      expect(filesUnder(workspace).filter((file) => file.endsWith('.tmp'))).toEqual([]);
      expect(await platform.git(['status', '--porcelain'])).toBe('');
      const tree = (ref: string) => platform.git(['rev-parse', `${ref}^{tree}`]);
      if (scenario.outcome === 'released') {
        expect(await platform.head()).toBe(state.mergeSha);
        expect(await sqlite(db, 'SELECT body FROM notes ORDER BY id')).toBe(`before\nfrom ticket ${T}`);
        expect(state.services).toEqual(['api', 'web']);
        expect(state.backups.web).toMatch(/^\d{8}_\d{6}$/);
        // No partial backup of an interrupted attempt is left beside the recorded one.
        expect(readdirSync(join(workspace, 'backups', 'web'))).toEqual([state.backups.web]);
      } else {
        expect(await tree('HEAD')).toBe(await tree(base));
        if (scenario.failpoint === 'mid-git-revert' && !scenario.fastForward) {
          // The half-applied `git revert -m 1` was undone before the revert ran again.
          expect(platform.logEvents(T)).toContain(`ticket=${T} phase=git-revert event=aborted-leftover`);
        }
        expect(await sqlite(db, '.dump')).toBe(before);
      }
      matrix.push(`| ${scenario.failpoint}${scenario.fastForward ? ' (ff range)' : ' (merge)'.repeat(scenario.failpoint === 'mid-git-revert' ? 1 : 0)} | ${scenario.killed} | \`${scenario.recovery.join(' ')}\` | ${scenario.outcome}: state parses, log whole, data ${scenario.outcome === 'released' ? 'migrated' : 'restored'}, no lock or temp file |`);
    } catch (error) {
      matrix.push(`| ${scenario.failpoint}${scenario.fastForward ? ' (ff range)' : ' (merge)'.repeat(scenario.failpoint === 'mid-git-revert' ? 1 : 0)} | ${scenario.killed} | \`${scenario.recovery.join(' ')}\` | FAILED |`);
      throw error;
    } finally {
      platform.remove();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
