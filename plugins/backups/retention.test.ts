/**
 * Space before work and backup retention, on a real small tmpfs mounted where the platform's
 * backups go (`.asd/workspace/backups/`), with real releases of a service whose data is a folder.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform, snapshot } from '../../test/helpers/platform.js';
import { backupsPresence } from './retention.js';

const MiB = 1024 * 1024;

const manifest = (data: string, tag: number) => `name: web\nruntime: none\nimage: local/web:${tag}\nbackup:\n  - type: volume\n    path: ${data}\n`;
const config = (options: string) => `export default ({ defaultPlugins }) => ({ plugins: defaultPlugins(${options}) });\n`;

interface Setup {
  platform: Platform;
  data: string;
  workspace: string;
  backups: string;
  scratch: string;
}

/** A platform whose backups folder is a tmpfs of `sizeMiB`, and a service `web` whose data is 4 MiB of random bytes. */
async function setUp(sizeMiB: number | undefined, options: string): Promise<Setup> {
  const scratch = mkdtempSync(join(tmpdir(), 'rodk-retention-'));
  const data = join(scratch, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'blob'), randomBytes(4 * MiB));
  const platform = await Platform.create([], { 'packages/web/manifest.yaml': manifest(data, 1), 'release.config.ts': config(options) });
  const workspace = join(platform.prod, '.asd', 'workspace');
  const backups = join(workspace, 'backups');
  if (sizeMiB !== undefined) {
    mkdirSync(backups, { recursive: true, mode: 0o700 });
    await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'rodk-backups', backups]);
  }
  return { platform, data, workspace, backups, scratch };
}

async function tearDown(setup: Setup | undefined): Promise<void> {
  if (!setup) return;
  await execa('umount', [setup.backups], { reject: false });
  setup.platform.remove();
  rmSync(setup.scratch, { recursive: true, force: true });
}

/** Releases ticket `ticket`: one change to web's manifest (so web is backed up), merged and released. */
async function release(setup: Setup, ticket: string, tag: number, files: Record<string, string> = {}) {
  await setup.platform.mergeFeature(ticket, { 'packages/web/manifest.yaml': manifest(setup.data, tag), ...files });
  return setup.platform.run('release-run', [ticket]);
}

const stampsOf = (backups: string) => (existsSync(join(backups, 'web')) ? readdirSync(join(backups, 'web')).sort() : []);

describe('space before work', () => {
  let setup: Setup | undefined;
  afterEach(async () => { await tearDown(setup); setup = undefined; });

  test('a prepare whose backups would not fit stops with exit 6 before anything changes, naming the sizes, the free space, the folder and the prune that makes room', async () => {
    setup = await setUp(12, "{ diskSpace: { marginPercent: 10, keepFree: 0 } }");
    const { platform, backups } = setup;
    expect((await release(setup, '301', 2)).exitCode).toBe(0);
    expect((await release(setup, '302', 3)).exitCode).toBe(0);
    expect(stampsOf(backups)).toHaveLength(2);

    await platform.mergeFeature('303', { 'packages/web/manifest.yaml': manifest(setup.data, 4) });
    const before = await snapshot(platform.prod);
    const head = await platform.head();
    const refused = await platform.run('release-run', ['303']);

    expect(refused.exitCode).toBe(6);
    const error = refused.stderr.split('\n').find((line) => line.includes('error:'))!;
    expect(error).toMatch(new RegExp(`not enough space for the backups of this release: 4\\.\\d MiB needed \\(about 4\\.\\d MiB \\+ 10% margin, with 0 B to stay free\\) but [\\d.]+ (KiB|MiB) free in ${backups}; nothing was changed`));
    expect(refused.stderr).toContain('web: backup[0] volume: about 4.0 MiB');
    expect(refused.stderr).toContain(`(df -h ${backups})`);
    // Ticket 302 is the newest release and HEAD is its MERGE_SHA: only 301's backup can go.
    expect(refused.stderr).toContain('release prune --keep=1 would free about 4.0 MiB there: the backups of ticket(s) 301');
    expect(refused.stderr).toContain('fix: make room with release prune --keep=1, then release-run 303');
    expect(refused.stderr).toContain('Recovery playbook release-disk-full');
    expect(refused.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
    // Nothing written but the log: no state file, no backup folder, the clone as it was.
    expect(await platform.head()).toBe(head);
    expect(existsSync(platform.stateFile('303'))).toBe(false);
    expect(stampsOf(backups)).toHaveLength(2);
    const workspaceFiles = (text: string) => text.split('\n').filter((line) => !line.includes('/releases/303.log'));
    expect(workspaceFiles(await snapshot(platform.prod))).toEqual(workspaceFiles(before));

    // A dry run previews the same refusal.
    const dry = await platform.run('release-run', ['303', '--dry-run']);
    expect(dry.exitCode).toBe(6);
    expect(dry.stderr).toContain('not enough space for the backups of this release');

    // The printed command, as pasted, makes room; then the release goes through.
    const preview = await platform.run('release', ['prune', '--keep=1', '--dry-run']);
    expect(preview.exitCode).toBe(0);
    expect(preview.stdout).toMatch(/would remove \.asd\/workspace\/backups\/web\/\d{8}_\d{6} \(ticket 301, 4\.0 MiB\)/);
    expect(stampsOf(backups)).toHaveLength(2);
    // The same preview for a machine: one event on stdout says what would go and how much it frees.
    const previewJson = await platform.run('release', ['prune', '--keep=1', '--dry-run', '--json']);
    const last = JSON.parse(previewJson.stdout.trim().split('\n').pop()!);
    expect(last).toMatchObject({ phase: 'prune', event: 'pruned', dry_run: true, fields: { keep: 1 } });
    expect(last.fields.removed).toEqual([expect.stringMatching(/backups\/web\/\d{8}_\d{6}$/)]);
    expect(last.fields.bytes).toBeGreaterThan(4_000_000);
    const pruned = await platform.run('release', ['prune', '--keep=1']);
    expect(pruned.exitCode).toBe(0);
    expect(pruned.stdout).toMatch(/removed \.asd\/workspace\/backups\/web\/\d{8}_\d{6} \(ticket 301, 4\.0 MiB\)/);
    expect(pruned.stdout).toContain('kept the backups of ticket 302: one of the newest 1 release(s)');
    expect(pruned.stdout).toMatch(/freed 4\.0 MiB: 1 backup folder\(s\) of 1 release\(s\)/);
    expect(platform.logEvents('301')).toContainEqual(expect.stringMatching(/^ticket=301 phase=prune event=pruned service=web at=\d{8}_\d{6} bytes=\d+ by=release-prune$/));
    expect(backupsPresence(setup.workspace, '301')).toBe('pruned');
    expect(backupsPresence(setup.workspace, '302')).toBe('present');

    const released = await platform.run('release-run', ['303']);
    expect(`${released.exitCode}\n${released.all}`).toMatch(/^0\n/);
    expect(released.stdout).toMatch(/prepare: space for the backups of this release: about 4\.0 MiB \+ 10% margin, with 0 B to stay free; [\d.]+ MiB free in /);
    expect(backupsPresence(setup.workspace, '303')).toBe('present');
  });

  test('with retention.autoPrune, prepare prunes old releases itself and logs it', async () => {
    setup = await setUp(12, "{ diskSpace: { marginPercent: 10, keepFree: 0 }, retention: { keep: 1, autoPrune: true } }");
    const { platform, backups } = setup;
    for (const [index, ticket] of ['311', '312', '313'].entries()) {
      const result = await release(setup, ticket, index + 2);
      expect(`${ticket}: ${result.exitCode}\n${result.all}`).toMatch(new RegExp(`^${ticket}: 0\\n`));
    }
    // 313's prepare removed 311's backups (older than the newest 1, no longer revertible), then took its own.
    expect(stampsOf(backups)).toHaveLength(2);
    expect(['311', '312', '313'].map((ticket) => backupsPresence(setup!.workspace, ticket))).toEqual(['pruned', 'present', 'present']);
    expect(platform.logEvents('313')).toContainEqual(expect.stringMatching(/^ticket=313 phase=prepare event=auto-prune removed=1 freed=\d+ keep=1$/));
    expect(platform.logEvents('311')).toContainEqual(expect.stringMatching(/^ticket=311 phase=prune event=pruned service=web at=\d{8}_\d{6} bytes=\d+ by=313$/));
  });
});

describe('release prune', () => {
  let setup: Setup | undefined;
  afterEach(async () => { await tearDown(setup); setup = undefined; });

  test('never removes the backups of the newest N, of an unfinished release or of one release-revert could undo', async () => {
    setup = await setUp(undefined, '{}');
    const { platform, backups } = setup;
    expect((await release(setup, '321', 2)).exitCode).toBe(0);
    expect((await release(setup, '322', 3)).exitCode).toBe(0);
    // 323's ticket script fails: the release is not finished.
    const failed = await release(setup, '323', 4, { 'releases/323-fail.sh': '#!/bin/sh\necho "the vendor API is down" >&2\nexit 1\n' });
    expect(failed.exitCode).toBe(1);
    expect((await release(setup, '324', 5)).exitCode).toBe(0);
    // A folder no release records, e.g. copied in by hand.
    mkdirSync(join(backups, 'web', '20200101_000000'), { recursive: true });

    // While a release holds the lock, prune exits 3 and removes nothing.
    const sleeper = execa('sleep', ['60']);
    writeFileSync(join(setup.workspace, 'release.lock'), `pid=${sleeper.pid}\nhost=${hostname()}\nticket=999\nstarted=2026-01-01T00:00:00.000Z\n`);
    try {
      const locked = await platform.run('release', ['prune', '--keep=0']);
      expect(locked.exitCode).toBe(3);
      expect(locked.stderr).toContain('another release holds the lock: ticket 999');
      expect(stampsOf(backups)).toHaveLength(5);
    } finally {
      sleeper.kill();
      await sleeper.catch(() => undefined);
      rmSync(join(setup.workspace, 'release.lock'), { force: true });
    }

    const bad = await platform.run('release', ['prune', '--keep=two']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('invalid --keep=two: expected a whole number of releases, e.g. --keep=3');
    expect((await platform.run('release', ['--service=web', '--keep=1'])).exitCode).toBe(2);

    const all = await platform.run('release', ['prune', '--keep=0']);
    expect(`${all.exitCode}\n${all.stdout}`).toMatch(/^0\n/);
    expect(all.stdout).toContain('kept the backups of ticket 324: HEAD is its MERGE_SHA: release-revert 324 would restore them');
    expect(all.stdout).toContain('kept the backups of ticket 323: not finished: resume it (release-run 323 --from=PHASE) or undo it (release-revert 323) first');
    expect(all.stdout).toMatch(/removed \S+ \(ticket 322, /);
    expect(all.stdout).toMatch(/removed \S+ \(ticket 321, /);
    expect(all.stdout).toContain('left alone: 1 backup folder(s) no release records (.asd/workspace/backups/web/20200101_000000)');
    expect(['321', '322', '323', '324'].map((ticket) => backupsPresence(setup!.workspace, ticket))).toEqual(['pruned', 'pruned', 'present', 'present']);

    // Once 324 is reverted, release-revert no longer needs its backups; the newest N still keep them.
    expect((await platform.run('release-revert', ['324'])).exitCode).toBe(0);
    const kept = await platform.run('release', ['prune']);
    expect(kept.stdout).toContain('kept the backups of ticket 324: one of the newest 3 release(s)');
    const reverted = await platform.run('release', ['prune', '--keep=0']);
    expect(reverted.stdout).toMatch(/removed \S+ \(ticket 324, /);
    expect(backupsPresence(setup.workspace, '324')).toBe('pruned');
    expect(backupsPresence(setup.workspace, '323')).toBe('present');
    // Run again, the finished revert of 324 still finishes: it restored its backups before they went.
    const again = await platform.run('release-revert', ['324']);
    expect(`${again.exitCode}\n${again.all}`).toMatch(/^0\n/);
    expect(again.stdout).toContain('volume of web was restored by the revert that finished; its backup was pruned since');
  });
});
