import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';

const sqlite = (db: string, sql: string) => execa('sqlite3', ['-bail', db, sql]);

/** A sqlite database of about `rows` x 1 KiB, so backups take a measurable while. */
async function database(path: string, rows: number): Promise<void> {
  await sqlite(path, `CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows}) INSERT INTO t SELECT i, randomblob(1024) FROM n;`);
}

const manifest = (name: string, db: string, tag = '2') => `name: ${name}\nruntime: none\nimage: local/${name}:${tag}\nbackup:\n  - type: sqlite\n    path: ${db}\n    compress: false\n`;

describe('prepare takes the backups', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'small' }, { name: 'large' }]); });
  afterEach(() => platform.remove());

  test('of two services at once, records BACKUPS, and shows bytes and rate', async () => {
    const small = join(platform.root, 'small.sqlite');
    const large = join(platform.root, 'large.sqlite');
    await database(small, 2_000);
    await database(large, 40_000);
    await platform.mergeFeature('120', { 'packages/small/manifest.yaml': manifest('small', small), 'packages/large/manifest.yaml': manifest('large', large) });

    const result = await platform.run('release-run', ['120']);

    expect(result.exitCode).toBe(0);
    const events = platform.logEvents('120');
    const at = (pattern: RegExp) => events.findIndex((event) => pattern.test(event));
    // Both start before either finishes: they ran at the same time.
    const bothStarted = Math.max(at(/event=backup-start service=small /), at(/event=backup-start service=large /));
    const firstDone = Math.min(at(/event=backup service=small /), at(/event=backup service=large /));
    expect(bothStarted).toBeGreaterThanOrEqual(0);
    expect(bothStarted).toBeLessThan(firstDone);
    const state = platform.readState('120');
    expect(state.BACKUPS).toMatch(/^large=\d{8}_\d{6} small=\d{8}_\d{6}$|^small=\d{8}_\d{6} large=\d{8}_\d{6}$/);
    expect(result.stdout).toMatch(/backup sqlite large .*: .* in \d+\.\ds \([\d.]+ (KiB|MiB|GiB)\/s\)/);
  });

  test("another backup already in this second's folder: the new one takes <stamp>-2 and leaves it whole, also when it fails; revert restores from it", async () => {
    const db = join(platform.root, 'small.sqlite');
    await database(db, 100);
    await platform.mergeFeature('125', { 'packages/small/manifest.yaml': manifest('small', db) });
    // Another backup of small in each of the next seconds' folders (a revert's or a retried run's).
    const folder = join(platform.prod, '.asd/workspace/backups/small');
    const stamps = Array.from({ length: 20 }, (_, i) => new Date(Date.now() + i * 1000).toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15));
    for (const stamp of stamps) {
      mkdirSync(join(folder, stamp), { recursive: true, mode: 0o700 });
      writeFileSync(join(folder, stamp, 'sqlite-0.db'), `someone else's backup ${stamp}`);
    }

    const result = await platform.run('release-run', ['125']);

    expect(result.exitCode).toBe(0);
    const taken = platform.readState('125').BACKUPS!.replace('small=', '');
    expect(taken).toMatch(/^\d{8}_\d{6}-2$/);
    expect(stamps).toContain(taken.replace(/-2$/, ''));
    for (const stamp of stamps) expect(readFileSync(join(folder, stamp, 'sqlite-0.db'), 'utf8')).toBe(`someone else's backup ${stamp}`);
    expect(await platform.run('release', ['show', '125'])).toMatchObject({ exitCode: 0 });

    // A backup that fails removes only its own folder.
    await platform.mergeFeature('126', { 'packages/small/manifest.yaml': manifest('small', join(platform.root, 'missing.sqlite'), '3') });
    const failed = await platform.run('release-run', ['126']);
    expect(failed.exitCode).toBe(6);
    for (const stamp of stamps) expect(readFileSync(join(folder, stamp, 'sqlite-0.db'), 'utf8')).toBe(`someone else's backup ${stamp}`);
    expect(existsSync(join(folder, taken))).toBe(true);

    const reverted = await platform.run('release-revert', ['125']);
    expect(reverted.exitCode).toBe(0);
    expect(reverted.stdout).toContain(taken);
    for (const stamp of stamps) expect(readFileSync(join(folder, stamp, 'sqlite-0.db'), 'utf8')).toBe(`someone else's backup ${stamp}`);
  });

  test('a failed backup stops the release in prepare with exit 6: no pull, no partial files, no service touched', async () => {
    const good = join(platform.root, 'good.sqlite');
    await database(good, 100);
    const head = await platform.head();
    await platform.mergeFeature('121', {
      'packages/small/manifest.yaml': manifest('small', good),
      'packages/large/manifest.yaml': manifest('large', join(platform.root, 'missing.sqlite')),
    });

    const result = await platform.run('release-run', ['121']);

    expect(result.exitCode).toBe(6);
    expect(result.stderr.split('\n')[0]).toMatch(/missing\.sqlite/);
    expect(result.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
    expect(result.all).not.toMatch(/To roll back/);
    expect(result.stderr).toContain('Recovery playbook release-backup-failed');
    expect(await platform.head()).toBe(head);
    expect(existsSync(join(platform.prod, '.asd/workspace/backups/large'))
      ? readdirSync(join(platform.prod, '.asd/workspace/backups/large')) : []).toEqual([]);
    expect(platform.logEvents('121')).toEqual(expect.arrayContaining([expect.stringMatching(/event=backup-failed service=large /)]));
    expect(existsSync(join(platform.prod, '.asd/workspace/release/migrate.sh'))).toBe(false);

    // Rolling back as the failure message offers restores nothing: no service had changed.
    await sqlite(good, "INSERT INTO t VALUES (999999, x'00')");
    const revert = await platform.run('release-revert', ['121']);
    expect(revert.exitCode).toBe(0);
    expect(revert.stdout).toContain('the release never pulled, so no service changed: nothing to restore');
    expect((await sqlite(good, 'SELECT count(*) FROM t')).stdout).toBe('101');

    // Once the cause is fixed, --from=prepare finishes the release and keeps the good backup.
    await database(join(platform.root, 'missing.sqlite'), 10);
    const smallStamp = platform.readState('121').BACKUPS;
    const resumed = await platform.run('release-run', ['121', '--from=prepare']);
    expect(resumed.exitCode).toBe(0);
    expect(platform.readState('121').BACKUPS).toContain(smallStamp);
  });
});
