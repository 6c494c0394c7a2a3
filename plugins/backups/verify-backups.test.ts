/**
 * `release verify-backups`: restore tests on real parts (real git, real files, sqlite3, a real
 * PostgreSQL server). Each backup is restored into a scratch target and checked; the services'
 * own data is never touched; a damaged backup whose sha256 still matches its record is caught.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT, Platform, manifestYaml } from '../../test/helpers/platform.js';
import { waitFor } from '../../test/helpers/gated.js';
import { listing, populate } from '../../test/helpers/volume.js';
import { backupYaml, createDatabase, databasesLike, dropDatabase, ensurePostgres, psql, uniqueName, urlOf, type PgServer } from '../../test/helpers/postgres.js';

/** Re-records a file's sha256 and size as they are now: damage the checksum can no longer see. */
function rerecord(file: string): void {
  const bytes = readFileSync(file);
  writeFileSync(`${file}.sha256`, `${createHash('sha256').update(bytes).digest('hex')}  ${file.split('/').pop()}\n`);
  writeFileSync(`${file}.size`, `${bytes.length}\n`);
}

/** The one backup folder of `service` on the prod clone. */
function backupFolder(platform: Platform, service: string): { stamp: string; dir: string } {
  const root = join(platform.prod, '.asd/workspace/backups', service);
  const [stamp] = readdirSync(root);
  return { stamp: stamp!, dir: join(root, stamp!) };
}

describe('release verify-backups: files and sqlite (real files, real sqlite3)', () => {
  let platform: Platform;
  let scratch: string;
  let data: string;
  let database: string;
  beforeEach(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'ro-verify-'));
    data = join(scratch, 'files');
    mkdirSync(data);
    const outside = join(scratch, 'outside');
    mkdirSync(outside);
    await populate(data, outside);
    database = join(scratch, 'notes.sqlite');
    await execa('sqlite3', [database, 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES (\'a\'), (\'b\');']);
    const backup = ['backup:', '  - type: volume', `    path: ${data}`, '  - type: sqlite', `    path: ${database}`, ''].join('\n');
    platform = await Platform.create([{ name: 'files', extra: backup }]);
    await platform.mergeFeature('100', { 'packages/files/manifest.yaml': manifestYaml({ name: 'files', image: 'local/files:2', extra: backup }) });
    expect((await platform.run('release-run', ['100'])).exitCode).toBe(0);
  });
  afterEach(() => {
    platform.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a good backup passes, is recorded and shown; the data is not touched and no scratch copy stays', async () => {
    const before = await listing(data);
    const { stamp, dir } = backupFolder(platform, 'files');

    const verified = await platform.run('release', ['verify-backups', '100']);

    expect(verified.exitCode).toBe(0);
    expect(verified.stdout).toMatch(new RegExp(`files=${stamp} backup\\[0\\] volume: passed: \\d+ files and folders restored into a scratch folder match the archive`));
    expect(verified.stdout).toMatch(new RegExp(`files=${stamp} backup\\[1\\] sqlite: passed: .* PRAGMA integrity_check ok, 1 table\\(s\\)`));
    expect(verified.stdout).toContain('1 backup(s) restored into scratch targets: 1 passed');
    expect(await listing(data)).toBe(before);
    expect(existsSync(join(platform.prod, '.asd/workspace/restore-tests'))).toBe(false);
    const record = JSON.parse(readFileSync(join(dir, '.restore-test.json'), 'utf8')) as { outcome: string; entries: { outcome: string }[] };
    expect(record.outcome).toBe('passed');
    expect(record.entries.map((entry) => entry.outcome)).toEqual(['passed', 'passed']);
    expect(existsSync(join(platform.prod, '.asd/workspace/releases/verify-backups.log'))).toBe(false);

    const shown = await platform.run('release', ['show', '100']);
    expect(shown.stdout).toMatch(/    restore test: passed, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect(shown.stdout).toMatch(/      backup\[0\] volume: passed: /);
    const history = await platform.run('release', ['history']);
    expect(history.stdout).toMatch(new RegExp(`backups: files=${stamp} \\(restore test passed \\d{4}-`));
  });

  test('a volume archive damaged after its sha256 was re-recorded: release-revert\'s check passes it, the restore test fails it (exit 6)', async () => {
    const { stamp, dir } = backupFolder(platform, 'files');
    const archive = join(dir, '0-volume.tar.zst');
    const bytes = readFileSync(archive);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    writeFileSync(archive, bytes);
    rerecord(archive);

    const verified = await platform.run('release', ['verify-backups', '--service=files']);

    expect(verified.exitCode).toBe(6);
    expect(verified.stderr).toMatch(new RegExp(`files=${stamp} backup\\[0\\] volume: failed: restore test of files path ${data} from ${archive}: extracting it into a scratch folder failed: tar \\(zstd -d\\) exited 2`));
    expect(verified.stderr).toContain(`[release] error: 1 of 1 backup(s) failed their restore test: files=${stamp}; nothing of the services was touched`);
    expect(JSON.parse(readFileSync(join(dir, '.restore-test.json'), 'utf8')).outcome).toBe('failed');
    expect((await platform.run('release', ['show', '100'])).stdout).toContain('    restore test: failed, ');
    expect(existsSync(join(platform.prod, '.asd/workspace/restore-tests'))).toBe(false);
  });

  test('a restore test killed -9 leaves its scratch folder; the next run removes it and passes', async () => {
    const killed = await platform.run('release', ['verify-backups'], { RELEASE_FAILPOINT: 'restore-test-volume' });
    expect(killed.stderr).toContain('failpoint restore-test-volume: killing this process');
    const root = join(platform.prod, '.asd/workspace/restore-tests');
    expect(readdirSync(root).length).toBe(1);

    const again = await platform.run('release', ['verify-backups', '--latest']);

    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain(`removing 1 scratch folder(s) an interrupted restore test left in ${root}`);
    expect(existsSync(root)).toBe(false);
  });

  test('prepare names a service whose backups were never restore-tested, or tested too long ago; refuses when the config says so (exit 6, nothing changed)', async () => {
    const next = (ticket: string, tag: number, config?: string) => platform.mergeFeature(ticket, {
      'packages/files/manifest.yaml': manifestYaml({ name: 'files', image: `local/files:${tag}`, extra: ['backup:', '  - type: volume', `    path: ${data}`, ''].join('\n') }),
      ...(config ? { 'release.config.ts': `export default ({ defaultPlugins }) => ({ plugins: defaultPlugins(${config}) });\n` } : {}),
    });
    // The config that refuses comes with 101: it governs the releases after it.
    await next('101', 3, "{ restoreTests: { maxAge: '2h', whenOlder: 'refuse' } }");
    const untested = await platform.run('release-run', ['101', '--dry-run']);
    expect(untested.exitCode).toBe(0);
    expect(untested.stderr).toContain('[release-run] warning: files: no backup of it ever passed a restore test; prove its newest: release verify-backups --service=files');

    expect((await platform.run('release', ['verify-backups', '--service=files'])).exitCode).toBe(0);
    const proven = await platform.run('release-run', ['101', '--dry-run']);
    expect(proven.stderr).not.toContain('restore test');
    // That test was three hours ago.
    const { dir } = backupFolder(platform, 'files');
    const record = JSON.parse(readFileSync(join(dir, '.restore-test.json'), 'utf8')) as { tested: string };
    record.tested = new Date(Date.now() - 3 * 3_600_000).toISOString();
    writeFileSync(join(dir, '.restore-test.json'), JSON.stringify(record));
    expect((await platform.run('release-run', ['101'])).exitCode).toBe(0);
    await next('102', 4);
    const before = await platform.head();

    const refused = await platform.run('release-run', ['102']);

    expect(refused.exitCode).toBe(6);
    expect(refused.stderr).toContain('[release-run] error: 1 service(s) to back up have no recent restore test (restoreTests.whenOlder is refuse); nothing was changed');
    expect(refused.stderr).toMatch(/files: its backups last passed a restore test 3 h ago \(\d{4}-\d\d-\d\d\), longer than restoreTests.maxAge 2h; prove its newest: release verify-backups --service=files/);
    expect(refused.stderr).toContain('Recovery playbook release-restore-test-stale: the services to back up have no recent restore test; nothing was changed');
    expect(refused.stderr).not.toContain('release-backup-failed');
    expect(await platform.head()).toBe(before);
    expect(readdirSync(join(platform.prod, '.asd/workspace/backups/files'))).toHaveLength(2);
  });

  test('bad input: two choices at once, an unknown ticket, a service without backups: one line, exit 2', async () => {
    const both = await platform.run('release', ['verify-backups', '100', '--service=files']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain('usage: release verify-backups [TICKET | --service=NAME | --latest]');
    const unknown = await platform.run('release', ['verify-backups', '999']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('no release of ticket 999 on this clone');
    const none = await platform.run('release', ['verify-backups', '--service=web']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('no backup of service web on this clone: nothing to verify');
    // A ticket whose backup folder was removed since: named as failed, not tested (exit 6).
    const { stamp, dir } = backupFolder(platform, 'files');
    rmSync(dir, { recursive: true });
    const gone = await platform.run('release', ['verify-backups', '100']);
    expect(gone.exitCode).toBe(6);
    expect(gone.stderr).toContain(`files=${stamp}: failed: its folder ${dir} is gone (release prune removes old releases' backups)`);
  });
});

describe('release verify-backups: postgres (a real PostgreSQL server)', () => {
  let server: PgServer;
  let platform: Platform;
  let db: string;
  beforeAll(async () => { server = await ensurePostgres(); });
  beforeEach(async () => {
    db = uniqueName('ro_verify');
    await createDatabase(server, db);
    await psql(server, db, `
      CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
      CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers (id), total numeric(10, 2));
      CREATE INDEX orders_customer ON orders (customer_id);
      CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
      INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 300) g;
      INSERT INTO orders (customer_id, total) SELECT 1 + g % 300, g * 1.5 FROM generate_series(1, 30000) g;`);
    const backup = backupYaml(urlOf(server, db));
    platform = await Platform.create([{ name: 'db', extra: backup }]);
    await platform.mergeFeature('200', { 'packages/db/manifest.yaml': manifestYaml({ name: 'db', image: 'local/db:2', extra: backup }) });
    expect((await platform.run('release-run', ['200'], { PGPASSFILE: server.passfile })).exitCode).toBe(0);
  });
  afterEach(async () => {
    platform.remove();
    await dropDatabase(server, db);
  });

  test('the dump restores into a scratch database that matches its objects and rows; the service\'s database is untouched', async () => {
    await psql(server, db, "INSERT INTO customers (name) VALUES ('written after the backup');");

    const verified = await platform.run('release', ['verify-backups', '--service=db'], { PGPASSFILE: server.passfile });

    expect(verified.exitCode).toBe(0);
    expect(verified.stdout).toMatch(new RegExp(`backup\\[0\\] postgres: passed: \\d+ schema objects and 30300 rows in 2 tables restored into scratch database ${db}_ro_verify match the dump`));
    expect(await psql(server, db, 'SELECT count(*) FROM customers;')).toBe('301');
    expect(await databasesLike(server, db)).toEqual([db]);
  });

  test('a dump cut short whose sha256 was re-recorded: the checksum and pg_restore --list pass it, the restore test fails it (exit 6); a killed test\'s scratch database goes next time', async () => {
    const { dir } = backupFolder(platform, 'db');
    const dump = join(dir, '0-postgres.dump');
    const cut = readFileSync(dump).subarray(0, Math.floor(statSync(dump).size * 0.6));
    writeFileSync(dump, cut);
    rerecord(dump);
    // What a revert's check reads still looks whole: the table of contents is at the dump's start.
    expect((await execa('pg_restore', ['--list', dump], { reject: false })).exitCode).toBe(0);

    const verified = await platform.run('release', ['verify-backups', '200'], { PGPASSFILE: server.passfile });

    expect(verified.exitCode).toBe(6);
    expect(verified.stderr).toMatch(new RegExp(`backup\\[0\\] postgres: failed: restore test of database ${server.user}@127.0.0.1:${server.port}/${db} \\(service db\\) from ${dump}: pg_restore exited 1`));
    expect(await databasesLike(server, db)).toEqual([db]);
  });

  test('SIGTERM during a restore test: exit 130, the scratch database dropped and the scratch folder gone', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'ro-verify-bin-'));
    const started = join(bin, 'started');
    const real = (await execa('sh', ['-c', 'command -v pg_restore'])).stdout.trim();
    // pg_restore into the scratch database waits, so the test can interrupt it there.
    writeFileSync(join(bin, 'pg_restore'), `#!/bin/sh\ncase " $* " in *" --exit-on-error "*) touch '${started}'; sleep 60;; esac\nexec '${real}' "$@"\n`, { mode: 0o755 });
    try {
      const run = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release.js'), 'verify-backups', '200'], {
        cwd: platform.prod, env: { NO_COLOR: '1', PGPASSFILE: server.passfile, PATH: `${bin}:${process.env.PATH}` }, reject: false, all: true,
      });
      await waitFor('the restore into the scratch database', () => existsSync(started));
      expect(await databasesLike(server, db)).toEqual([db, `${db}_ro_verify`].sort());
      run.kill('SIGTERM');
      const result = await run;

      expect(result.exitCode).toBe(130);
      expect(String(result.all)).toContain('SIGTERM received: stopping the running step');
      expect(await databasesLike(server, db)).toEqual([db]);
      expect(existsSync(join(platform.prod, '.asd/workspace/restore-tests'))).toBe(false);
      expect(existsSync(join(backupFolder(platform, 'db').dir, '.restore-test.json'))).toBe(false);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  test('a restore test killed -9 leaves its scratch database; the next test drops it and passes', async () => {
    const killed = await platform.run('release', ['verify-backups', '200'], { PGPASSFILE: server.passfile, RELEASE_FAILPOINT: 'restore-test-postgres-restoring' });
    expect(killed.stderr).toContain('failpoint restore-test-postgres-restoring: killing this process');
    expect(await databasesLike(server, db)).toEqual([db, `${db}_ro_verify`].sort());

    const again = await platform.run('release', ['verify-backups', '200'], { PGPASSFILE: server.passfile });

    expect(again.exitCode).toBe(0);
    expect(await databasesLike(server, db)).toEqual([db]);
  });
});
