import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform, manifestYaml, type CliResult } from '../../test/helpers/platform.js';
import { freePort } from '../../test/helpers/docker.js';
import {
  backupYaml, createDatabase, databaseLevelOf, databasesLike, dropDatabase, ensurePostgres, oidOf, psql, rowsOf, schemaOf,
  uniqueName, urlOf, type PgServer,
} from '../../test/helpers/postgres.js';

import { testContext } from '../../test/helpers/context.js';
import { defaultPlugins } from '../../release.config.js';
import { ReleaseError, redact } from '../../api/index.js';
import { resolveTarget } from './index.js';

const SERVICE = 'db';

/** Every file under `dir`, relative, with its mode. */
function filesUnder(dir: string): { path: string; mode: number; dir: boolean }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((path) => {
    const stat = statSync(join(dir, path));
    return { path, mode: stat.mode & 0o777, dir: stat.isDirectory() };
  });
}

describe('backup strategy postgres, on a real PostgreSQL server', () => {
  let server: PgServer;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => { server = await ensurePostgres(); });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function database(prefix = 'ro_pg', owner?: string, options = ''): Promise<string> {
    const db = uniqueName(prefix);
    await createDatabase(server, db, owner, options);
    cleanups.push(() => dropDatabase(server, db));
    return db;
  }

  async function platformFor(backup: string, files: Record<string, string> = {}): Promise<Platform> {
    const platform = await Platform.create([{ name: SERVICE, extra: backup }], files);
    cleanups.push(() => platform.remove());
    return platform;
  }

  /** A release that touches the service (so prepare backs it up), plus `files`. */
  function release(platform: Platform, ticket: string, backup: string, files: Record<string, string> = {}) {
    return platform.mergeFeature(ticket, { [`packages/${SERVICE}/manifest.yaml`]: manifestYaml({ name: SERVICE, image: 'local/db:2', extra: backup }), ...files });
  }

  const env = () => ({ PGPASSFILE: server.passfile });
  const backupDir = (platform: Platform) => join(platform.prod, '.asd', 'workspace', 'backups');

  const SEED = `
    CREATE TYPE mood AS ENUM ('ok', 'sad');
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok');
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers (id), total numeric(10, 2), note text);
    CREATE INDEX orders_customer ON orders (customer_id);
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
    CREATE FUNCTION add_one(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1';
    COMMENT ON TABLE customers IS 'people';
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 200) g;
    INSERT INTO orders (customer_id, total, note) SELECT 1 + g % 200, g * 1.5, 'n' || g FROM generate_series(1, 2000) g;
    CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY 1;
  `;

  test('restore puts the database back exactly: added tables and columns gone, rows and settings as before', async () => {
    // Not the server's default locale, so a restore that ignored the dump's CREATE DATABASE would show.
    const db = await database('ro_pg', undefined, `TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    await psql(server, db, SEED);
    await psql(server, 'postgres', `ALTER DATABASE "${db}" SET work_mem = '8MB'; COMMENT ON DATABASE "${db}" IS 'before';
      ALTER DATABASE "${db}" CONNECTION LIMIT 40; REVOKE TEMPORARY ON DATABASE "${db}" FROM PUBLIC;`);
    const before = { schema: await schemaOf(server, db), rows: await rowsOf(server, db), level: await databaseLevelOf(server, db) };
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '501', backup);

    // Files 0600 and folders 0700 even under umask 000.
    const umask = process.umask(0);
    let run: CliResult;
    try {
      run = await platform.run('release-run', ['501'], env());
    } finally {
      process.umask(umask);
    }
    expect(run.exitCode).toBe(0);
    const stamp = platform.readState('501').BACKUPS!.replace(`${SERVICE}=`, '');
    expect(stamp).toMatch(/^\d{8}_\d{6}$/);
    expect(run.stdout).toMatch(new RegExp(`backup ${SERVICE}: postgres ro_admin@127\\.0\\.0\\.1:\\d+/${db}: dumped, .* in [\\d.]+s`));
    expect(run.stdout).toMatch(/read back with pg_restore --list/);
    const files = filesUnder(join(backupDir(platform), SERVICE, stamp));
    expect(files.map((f) => `${f.path} ${f.mode.toString(8)}`).sort()).toEqual(['.0-postgres.dump.writes 600', '.entries.json 600', '0-postgres.dump 600', '0-postgres.dump.sha256 600', '0-postgres.dump.size 600']);
    expect(statSync(join(backupDir(platform), SERVICE, stamp)).mode & 0o777).toBe(0o700);

    // What a release does: a new table, a new column, new rows, deleted and changed rows, settings.
    await psql(server, db, `
      CREATE TABLE added_by_release (id int PRIMARY KEY, v text);
      INSERT INTO added_by_release VALUES (1, 'new');
      ALTER TABLE customers ADD COLUMN email text;
      INSERT INTO customers (name, email) VALUES ('late', 'late@example.test');
      DELETE FROM orders WHERE id % 3 = 0;
      UPDATE customers SET name = 'renamed', mood = 'sad' WHERE id < 10;
      CREATE INDEX customers_name ON customers (name);
      REFRESH MATERIALIZED VIEW order_totals;`);
    await psql(server, 'postgres', `ALTER DATABASE "${db}" SET work_mem = '16MB'; COMMENT ON DATABASE "${db}" IS 'after';
      ALTER DATABASE "${db}" CONNECTION LIMIT -1; GRANT ALL ON DATABASE "${db}" TO PUBLIC;`);
    expect(await schemaOf(server, db)).not.toBe(before.schema);
    expect(await databaseLevelOf(server, db)).not.toBe(before.level);
    const oid = await oidOf(server, db);

    const revert = await platform.run('release-revert', ['501'], env());

    expect(revert.exitCode).toBe(0);
    // What the restore replaced was said, and kept: the rows the release wrote, and a pre-revert dump of them.
    expect(revert.stdout).toMatch(new RegExp(`${SERVICE}: backup\\[0\\] postgres: database \\S+/${db}: \\d+ row\\(s\\) inserted, updated or deleted since the backup \\(pg_stat_database\\)`));
    expect(platform.readState('501').PRE_REVERT_BACKUPS).toMatch(new RegExp(`^${SERVICE}=\\d{8}_\\d{6}(-\\d+)?$`));
    expect(await schemaOf(server, db)).toBe(before.schema);
    expect(await rowsOf(server, db)).toEqual(before.rows);
    expect(await databaseLevelOf(server, db)).toBe(before.level);
    expect(await oidOf(server, db)).not.toBe(oid); // a new database was swapped in
    expect(await databasesLike(server, db)).toEqual([db]); // no temporary or replaced copy left
    expect(revert.stdout).toMatch(new RegExp(`restore: ${SERVICE}: pg_restore -j [1-4] into ${db}_ro_restoring`));
    expect(platform.logEvents('501')).toEqual(expect.arrayContaining([
      `ticket=501 phase=restore event=postgres-swapped service=${SERVICE} database=${db}`,
      `ticket=501 phase=restore event=restored service=${SERVICE} type=postgres`,
    ]));
  });

  test('a session left connected to the database is ended on purpose, logged, and the restore succeeds', async () => {
    const db = await database('Ro-Pg'); // a name that needs quoting in SQL
    await psql(server, db, 'CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 100);');
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '502', backup);
    expect((await platform.run('release-run', ['502'], env())).exitCode).toBe(0);
    await psql(server, db, 'DELETE FROM items WHERE id > 50; ALTER TABLE items ADD COLUMN flag boolean;');

    // An application's session, idle in a transaction that holds a lock on the table.
    const session = execa(join(server.binDir, 'psql'), ['-X', '-w', '-q', '-A', '-t', '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', db], {
      env: { PGPASSFILE: server.passfile, PGAPPNAME: 'held-session' }, stdin: 'pipe', reject: false, all: true,
    });
    cleanups.push(() => { session.kill(); });
    session.stdin!.write('BEGIN;\nSELECT count(*) FROM items;\n');
    for (let i = 0; i < 100 && (await psql(server, 'postgres', `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held-session' AND datname = '${db}';`)) !== '1'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await psql(server, 'postgres', `SELECT state FROM pg_stat_activity WHERE application_name = 'held-session';`)).toBe('idle in transaction');

    const revert = await platform.run('release-revert', ['502'], env());

    expect(revert.exitCode).toBe(0);
    expect(revert.stdout).toContain(`ended 1 other session(s) of database ${db} (pg_terminate_backend)`);
    expect(platform.logEvents('502')).toContain(`ticket=502 phase=restore event=sessions-ended service=${SERVICE} database=${db} count=1`);
    session.stdin!.end('SELECT 1;\n');
    const ended = await session;
    expect(ended.exitCode).not.toBe(0);
    expect(String(ended.all)).toMatch(/terminating connection due to administrator command|server closed the connection/);
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('100');
    expect(await psql(server, db, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'items';`)).toBe('1');
  });

  test('a pre-revert backup that cannot be taken stops the revert before anything is restored; --without-pre-revert-backup goes on', async () => {
    const role = uniqueName('ro_app');
    const password = randomBytes(12).toString('hex');
    await psql(server, 'postgres', `CREATE ROLE "${role}" LOGIN CREATEDB PASSWORD '${password}';`);
    cleanups.push(async () => { await psql(server, 'postgres', `DROP ROLE IF EXISTS "${role}";`); });
    const db = await database('ro_pg', role);
    const dir = mkdtempSync(join(tmpdir(), 'ro-pg-app-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, `${server.host}:${server.port}:*:${role}:${password}\n`, { mode: 0o600 });
    await psql(server, db, `CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10); ALTER TABLE items OWNER TO "${role}";`);
    const backup = backupYaml(urlOf(server, db, role), { passfile });
    const platform = await platformFor(backup);
    await release(platform, '512', backup);
    expect((await platform.run('release-run', ['512'], env())).exitCode).toBe(0);
    // A table the backup's role may not read (made by hand as another role): its data cannot be saved.
    await psql(server, db, 'INSERT INTO items VALUES (11); CREATE TABLE private_notes (v text);');

    const refused = await platform.run('release-revert', ['512'], env());

    expect(refused.exitCode).toBe(6);
    expect(refused.stderr).toContain(`error: the pre-revert backup of ${SERVICE} failed, so its data as it is now would be lost:`);
    expect(refused.stderr).toContain('permission denied for table private_notes');
    expect(refused.stderr).toContain('release-revert 512 --without-pre-revert-backup');
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('11'); // nothing was restored
    expect(platform.readState('512').PRE_REVERT_BACKUPS).toBeUndefined();

    const forced = await platform.run('release-revert', ['512', '--without-pre-revert-backup'], env());

    expect(forced.exitCode).toBe(0);
    expect(forced.stdout).toContain('no pre-revert backup (--without-pre-revert-backup): the data the restore replaces is not kept');
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('10');
  });

  test('the release dropped the database: release-revert creates it again from the dump', async () => {
    const db = await database();
    await psql(server, db, SEED);
    const before = { schema: await schemaOf(server, db), rows: await rowsOf(server, db), level: await databaseLevelOf(server, db) };
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '511', backup);
    expect((await platform.run('release-run', ['511'], env())).exitCode).toBe(0);
    await psql(server, 'postgres', `DROP DATABASE "${db}";`);

    const revert = await platform.run('release-revert', ['511'], env());

    expect(revert.exitCode).toBe(0);
    expect(revert.stdout).toContain(`is not there now: nothing of it is replaced`);
    expect(revert.stdout).toContain(`${SERVICE}: none of its data is there now, so there is nothing to back up before the restore`);
    expect(await schemaOf(server, db)).toBe(before.schema);
    expect(await rowsOf(server, db)).toEqual(before.rows);
    expect(await databaseLevelOf(server, db)).toBe(before.level);
    expect(await databasesLike(server, db)).toEqual([db]);
    expect(platform.logEvents('511').filter((line) => line.includes('sessions-ended'))).toEqual([]);
  });

  test('a corrupt dump (one byte flipped): release-revert stops with exit 6 naming the file; the database is untouched', async () => {
    const db = await database();
    await psql(server, db, 'CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 1000);');
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '503', backup);
    expect((await platform.run('release-run', ['503'], env())).exitCode).toBe(0);
    const merge = await platform.head();
    await psql(server, db, 'INSERT INTO items VALUES (1001); CREATE TABLE added (id int);');
    const schema = await schemaOf(server, db);
    const oid = await oidOf(server, db);
    const dump = join(backupDir(platform), SERVICE, platform.readState('503').BACKUPS!.replace(`${SERVICE}=`, ''), '0-postgres.dump');
    const bytes = readFileSync(dump);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    writeFileSync(dump, bytes);

    const revert = await platform.run('release-revert', ['503'], env());

    expect(revert.exitCode).toBe(6);
    expect(revert.stderr).toContain(`backup ${dump} does not match its recorded sha256 (corrupt); nothing was restored`);
    expect(revert.all).toContain(`it is the dump of database ro_admin@127.0.0.1:${server.port}/${db} (service ${SERVICE}); that database was not touched`);
    expect(await oidOf(server, db)).toBe(oid);
    expect(await schemaOf(server, db)).toBe(schema);
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('1001');
    expect(await databasesLike(server, db)).toEqual([db]);
    expect(await platform.head()).toBe(merge); // restore comes first: git was not reverted either
  });

  test('a wrong password in the passfile: BACKUP_FAILED (exit 6) naming the database, no file left, no password shown', async () => {
    const db = await database();
    const dir = mkdtempSync(join(tmpdir(), 'ro-pg-pass-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const wrong = `wrong${randomBytes(12).toString('hex')}`;
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, `${server.host}:${server.port}:*:${server.user}:${wrong}\n`, { mode: 0o600 });
    const backup = backupYaml(urlOf(server, db), { passfile });
    const platform = await platformFor(backup);
    await release(platform, '504', backup);

    const run = await platform.run('release-run', ['504'], env());

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain(`backup of database ro_admin@127.0.0.1:${server.port}/${db} (service ${SERVICE}) failed: pg_dump exited 1:`);
    expect(run.stderr).toMatch(/password authentication failed for user "ro_admin"; nothing was kept/);
    expect(run.all).toContain(`fix: check the password of ro_admin for 127.0.0.1:${server.port} in the password file ${passfile}`);
    expect(run.all).not.toContain(wrong);
    expect(filesUnder(backupDir(platform)).filter((f) => !f.dir)).toEqual([]);
    expect(platform.readState('504').BACKUPS).toBe('');
    expect(readFileSync(join(platform.prod, '.asd/workspace/releases/504.log'), 'utf8')).not.toContain(wrong);
  });

  test('an unreachable server: BACKUP_FAILED (exit 6) naming the database, no file left', async () => {
    const port = await freePort();
    const backup = backupYaml(`postgres://ro_admin@127.0.0.1:${port}/nowhere_db`);
    const platform = await platformFor(backup);
    await release(platform, '505', backup);

    const run = await platform.run('release-run', ['505'], env());

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain(`backup of database ro_admin@127.0.0.1:${port}/nowhere_db (service ${SERVICE}) failed: pg_dump exited 1: connection to server at "127.0.0.1", port ${port} failed: Connection refused`);
    expect(run.all).toContain(`fix: is the PostgreSQL server at 127.0.0.1:${port} running and reachable from this host?`);
    expect(filesUnder(backupDir(platform)).filter((f) => !f.dir)).toEqual([]);
  });

  test('a canary password never shows: not in any process\'s command line or environment, state file, log or messages; scale-5 timings', async () => {
    const role = uniqueName('ro_canary');
    const canary = `CANARY${randomBytes(16).toString('hex')}`;
    // An application's role: owns its database and may create databases (restore needs that).
    await psql(server, 'postgres', `CREATE ROLE "${role}" LOGIN CREATEDB PASSWORD '${canary}';`);
    cleanups.push(async () => { await psql(server, 'postgres', `DROP ROLE IF EXISTS "${role}";`); });
    const db = await database('ro_canary', role);
    const dir = mkdtempSync(join(tmpdir(), 'ro-pg-canary-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, `${server.host}:${server.port}:*:${role}:${canary}\n`, { mode: 0o600 });
    await execa(join(server.binDir, 'pgbench'), ['-i', '-q', '-s', '5', '-h', server.host, '-p', String(server.port), '-U', role, db], { env: { PGPASSFILE: passfile } });
    const accounts = await psql(server, db, 'SELECT sum(abalance), count(*) FROM pgbench_accounts;');
    const backup = backupYaml(urlOf(server, db, role), { passfile });
    const platform = await platformFor(backup);
    await release(platform, '506', backup);

    // Watch every process while the orchestrator runs: command lines and environments.
    const leaks: string[] = [];
    const seen = new Map<string, string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
          for (const what of ['cmdline', 'environ']) {
            let text: string;
            try { text = readFileSync(`/proc/${pid}/${what}`, 'latin1'); } catch { continue; }
            if (text.includes(canary)) leaks.push(`/proc/${pid}/${what}: ${text.replace(/\0/g, ' ').slice(0, 200)}`);
            const tool = /^(?:\S*\/)?(pg_dump|pg_restore|psql)\0/.exec(text)?.[1];
            if (what === 'cmdline' && tool && text.includes(`--dbname=${db}`)) {
              try { seen.set(`${tool} ${text.replace(/\0/g, ' ').trim()}`, readFileSync(`/proc/${pid}/environ`, 'latin1')); } catch { /* gone */ }
            }
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    // An operator's PGPASSWORD must not reach the tools (it would beat the passfile).
    const cliEnv = { PGPASSFILE: server.passfile, PGPASSWORD: 'not-the-password-from-env' };
    let run: CliResult, revert: CliResult, runMs: number, revertMs: number;
    try {
      let started = Date.now();
      run = await platform.run('release-run', ['506'], cliEnv);
      runMs = Date.now() - started;
      // The application writes as its own role, so what it creates is its role's to back up.
      await psql(server, db, `DELETE FROM pgbench_accounts WHERE aid % 2 = 0; CREATE TABLE added (id int); ALTER TABLE added OWNER TO "${role}";`);
      started = Date.now();
      revert = await platform.run('release-revert', ['506'], cliEnv);
      revertMs = Date.now() - started;
    } finally {
      watching = false;
      await watcher;
    }

    expect(`${run.exitCode}\n${run.all}`).toMatch(/^0\n/);
    expect(`${revert.exitCode}\n${revert.all}`).toMatch(/^0\n/);
    expect(leaks).toEqual([]);
    const dumps = [...seen.entries()].filter(([command]) => command.startsWith('pg_dump '));
    expect(dumps.length).toBeGreaterThan(0); // the watcher did see the backup running
    for (const [command, environ] of seen) {
      expect(command).not.toContain(canary);
      const vars = environ.split('\0');
      expect(vars).toContain(`PGPASSFILE=${passfile}`);
      expect(vars.filter((v) => v.startsWith('PGPASSWORD='))).toEqual([]);
    }
    expect(dumps[0]![0]).toMatch(new RegExp(`pg_dump -Fc -w --host=127\\.0\\.0\\.1 --port=${server.port} --username=${role} --dbname=${db}$`));
    for (const file of filesUnder(join(platform.prod, '.asd')).filter((f) => !f.dir)) {
      expect(`${file.path}: ${readFileSync(join(platform.prod, '.asd', file.path), 'latin1').includes(canary)}`).toBe(`${file.path}: false`);
    }
    for (const text of [run.all, revert.all]) expect(text).not.toContain(canary);
    expect(await psql(server, db, 'SELECT sum(abalance), count(*) FROM pgbench_accounts;')).toBe(accounts);
    expect(await psql(server, db, `SELECT count(*) FROM pg_tables WHERE tablename = 'added';`)).toBe('0');

    const dumped = /dumped, ([\d.]+ \w+) in ([\d.]+)s/.exec(run.stdout);
    const restored = /restored, ([\d.]+ \w+) in ([\d.]+)s/.exec(revert.stdout);
    console.log(`pgbench scale 5 (${accounts.split('|')[1]} accounts): pg_dump ${dumped?.[1]} in ${dumped?.[2]}s (release-run ${runMs} ms); `
      + `restore ${restored?.[1]} in ${restored?.[2]}s (release-revert ${revertMs} ms)`);
  });

  test('a role that may not create databases: release-revert refuses before restoring anything (exit 6), database untouched', async () => {
    const role = uniqueName('ro_app');
    const password = `pw${randomBytes(12).toString('hex')}`;
    await psql(server, 'postgres', `CREATE ROLE "${role}" LOGIN PASSWORD '${password}';`);
    cleanups.push(async () => { await psql(server, 'postgres', `DROP ROLE IF EXISTS "${role}";`); });
    const db = await database('ro_app', role);
    const dir = mkdtempSync(join(tmpdir(), 'ro-pg-app-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, `${server.host}:${server.port}:*:${role}:${password}\n`, { mode: 0o600 });
    await psql(server, db, 'CREATE TABLE items (id int); INSERT INTO items VALUES (1);', { user: role, passfile });
    const backup = backupYaml(urlOf(server, db, role), { passfile });
    const platform = await platformFor(backup);
    await release(platform, '510', backup);
    expect((await platform.run('release-run', ['510'], env())).exitCode).toBe(0);
    await psql(server, db, 'INSERT INTO items VALUES (2);', { user: role, passfile });
    const merge = await platform.head();

    const revert = await platform.run('release-revert', ['510'], env());

    expect(revert.exitCode).toBe(6);
    expect(revert.stderr).toContain(`cannot restore database ${role}@127.0.0.1:${server.port}/${db} (service ${SERVICE}): role ${role} may not create databases; nothing was restored`);
    expect(revert.all).toContain(`fix: restore builds a new database and swaps it in: ALTER ROLE ${role} CREATEDB`);
    expect(revert.all).not.toContain(password);
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('2');
    expect(await platform.head()).toBe(merge);
  });

  test('a password in the manifest url: exit 2 naming the manifest key, before any connection; the password is never printed', async () => {
    const secret = `pw${randomBytes(10).toString('hex')}`;
    const cases: [string, string, RegExp][] = [
      [backupYaml(`postgres://ro_admin:${secret}@127.0.0.1:5432/app`), 'url', /backup\[0\]\.url: holds a password \(USER:PASSWORD@\); passwords never go in a manifest/],
      [backupYaml(`postgres://ro_admin@127.0.0.1:5432/app?password=${secret}`), 'url', /backup\[0\]\.url: holds a password \(\?password=\)/],
      [backupYaml('postgres://ro_admin@127.0.0.1:5432/app', { password: secret }), 'password', /backup\[0\]\.password: unknown key; passwords never go in a manifest/],
    ];
    for (const [index, [backup, key, message]] of cases.entries()) {
      const platform = await platformFor(backupYaml('postgres://ro_admin@127.0.0.1:5432/app'));
      const ticket = `60${index}`;
      await release(platform, ticket, backup);

      for (const args of [[ticket, '--dry-run'], [ticket]]) {
        const run = await platform.run('release-run', args, env());
        expect(run.exitCode).toBe(2);
        expect(run.stderr).toContain(`packages/${SERVICE}/manifest.yaml: backup[0].${key}`);
        expect(run.stderr).toMatch(message);
        expect(run.all).toContain('keep it in a .pgpass file');
        expect(run.all).not.toContain(secret);
      }
      expect(filesUnder(backupDir(platform))).toEqual([]);
      for (const line of platform.readLog(ticket)) expect(line).not.toContain(secret);
      // Refused before the state file is written: nothing there to hold it.
      expect(existsSync(platform.stateFile(ticket))).toBe(false);
    }
  });

  test('end to end: a ticket script changes the database then fails; release-revert restores it exactly', async () => {
    const db = await database();
    await psql(server, db, SEED);
    const before = { schema: await schemaOf(server, db), rows: await rowsOf(server, db) };
    const backup = backupYaml(urlOf(server, db));
    // The platform's own config: the plugin with its options (binDir, maintenance database).
    const config = `export default ({ defaultPlugins, builtins }: any) => ({
  plugins: [
    ...defaultPlugins().filter((plugin: any) => plugin.name !== 'backup-postgres'),
    builtins.postgresBackupPlugin({ binDir: ${JSON.stringify(server.binDir)}, maintenanceDb: 'template1' }),
  ],
});
`;
    const platform = await platformFor(backup, { 'release.config.ts': config });
    const script = `#!/bin/sh
set -e
[ "$1" = --yes ] || { echo "run me through release-run" >&2; exit 2; }
${server.binDir}/psql -X -w -q -v ON_ERROR_STOP=1 -h ${server.host} -p ${server.port} -U ${server.user} -d ${db} <<'SQL'
CREATE TABLE release_9999 (id int PRIMARY KEY, v text);
INSERT INTO release_9999 VALUES (1, 'a'), (2, 'b');
ALTER TABLE customers ADD COLUMN vip boolean DEFAULT false;
INSERT INTO customers (name, vip) VALUES ('from 9999', true);
DELETE FROM orders WHERE total > 1000;
SQL
echo "9999: schema changed, now the data step fails" >&2
exit 1
`;
    await release(platform, '9999', backup, { 'releases/9999-x.sh': script });

    const run = await platform.run('release-run', ['9999'], env());

    expect(run.exitCode).toBe(1);
    expect(run.all).toContain('release-run failed in phase ticket. To roll back:');
    expect(platform.readState('9999').BACKUPS).toMatch(new RegExp(`^${SERVICE}=\\d{8}_\\d{6}$`));
    expect(await psql(server, db, 'SELECT count(*) FROM release_9999;')).toBe('2');

    const revert = await platform.run('release-revert', ['9999'], env());

    expect(revert.exitCode).toBe(0);
    expect(revert.stdout.trim().split('\n').pop()).toBe('[release-revert] release 9999 reverted');
    expect(await schemaOf(server, db)).toBe(before.schema);
    expect(await rowsOf(server, db)).toEqual(before.rows);
    expect(await databasesLike(server, db)).toEqual([db]);
    const events = platform.logEvents('9999');
    expect(events).toEqual(expect.arrayContaining([
      expect.stringMatching(new RegExp(`^ticket=9999 phase=prepare event=backup service=${SERVICE} at=${platform.readState('9999').BACKUPS!.replace(`${SERVICE}=`, '')} bytes=\\d+$`)),
      'ticket=9999 phase=ticket event=script script=releases/9999-x.sh rc=1',
      `ticket=9999 phase=restore event=restored service=${SERVICE} type=postgres`,
      'ticket=9999 phase=restore event=done rc=0',
    ]));
  });

  test('a dump that does not restore into an empty database (a role it needs is gone): exit 6, database untouched, temporary copy dropped', async () => {
    const role = uniqueName('ro_gone');
    await psql(server, 'postgres', `CREATE ROLE "${role}";`);
    cleanups.push(async () => { await psql(server, 'postgres', `DROP ROLE IF EXISTS "${role}";`); });
    const db = await database();
    await psql(server, db, `CREATE TABLE owned (id int); INSERT INTO owned VALUES (1); ALTER TABLE owned OWNER TO "${role}";`);
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '507', backup);
    expect((await platform.run('release-run', ['507'], env())).exitCode).toBe(0);
    await psql(server, db, 'DROP TABLE owned; CREATE TABLE kept_by_release (id int);');
    await psql(server, 'postgres', `DROP ROLE "${role}";`);
    const oid = await oidOf(server, db);

    const revert = await platform.run('release-revert', ['507'], env());

    expect(revert.exitCode).toBe(6);
    expect(revert.stderr).toContain(`restore of database ro_admin@127.0.0.1:${server.port}/${db} (service ${SERVICE}) failed: pg_restore into the temporary database ${db}_ro_restoring: pg_restore exited 1:`);
    expect(revert.stderr).toContain(`role "${role}" does not exist`);
    expect(revert.stderr).toContain(`database ${db} was not touched and ${db}_ro_restoring was dropped`);
    expect(await oidOf(server, db)).toBe(oid);
    expect(await psql(server, db, `SELECT count(*) FROM pg_tables WHERE tablename = 'kept_by_release';`)).toBe('1');
    expect(await databasesLike(server, db)).toEqual([db]);
  });

  test('the swap fails half way (a database setting of a role that is gone): rolled back, the database keeps its data and takes connections', async () => {
    const role = uniqueName('ro_setting');
    await psql(server, 'postgres', `CREATE ROLE "${role}";`);
    cleanups.push(async () => { await psql(server, 'postgres', `DROP ROLE IF EXISTS "${role}";`); });
    const db = await database();
    await psql(server, db, 'CREATE TABLE items (id int); INSERT INTO items VALUES (1);');
    await psql(server, 'postgres', `ALTER ROLE "${role}" IN DATABASE "${db}" SET work_mem = '4MB';`);
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '512', backup);
    expect((await platform.run('release-run', ['512'], env())).exitCode).toBe(0);
    await psql(server, db, 'INSERT INTO items VALUES (2);');
    await psql(server, 'postgres', `DROP ROLE "${role}";`);
    const oid = await oidOf(server, db);

    const revert = await platform.run('release-revert', ['512'], env());

    // The renames and the database settings are one transaction: the setting fails, both renames roll back.
    expect(revert.exitCode).toBe(6);
    expect(revert.stderr).toContain(`restore of database ro_admin@127.0.0.1:${server.port}/${db} (service ${SERVICE}) failed: swapping in the restored copy: psql exited 3: ERROR:  role "${role}" does not exist`);
    expect(revert.stderr).toContain(`database ${db} keeps the data it had and ${db}_ro_restoring was dropped`);
    expect(await oidOf(server, db)).toBe(oid);
    expect(await psql(server, 'postgres', `SELECT datallowconn FROM pg_database WHERE datname = '${db}';`)).toBe('t');
    expect(await psql(server, db, 'SELECT count(*) FROM items;')).toBe('2');
    expect(await databasesLike(server, db)).toEqual([db]);
  });

  test('a full disk during the backup: exit 6 saying so, the partial dump removed', async () => {
    const db = await database();
    // About 2.5 MB of hex that compresses to more than the 512 KiB the backups folder has.
    await psql(server, db, `CREATE TABLE noise AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 25000) g;`);
    const backup = backupYaml(urlOf(server, db));
    // The database's size overstates its dump many times: told to, prepare warns and goes on, and the disk fills.
    const config = `export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ diskSpace: { whenShort: 'warn' } }) });\n`;
    const platform = await platformFor(backup, { 'release.config.ts': config });
    await release(platform, '508', backup);
    const backups = backupDir(platform);
    mkdirSync(backups, { recursive: true, mode: 0o700 });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'tmpfs', backups]);
    cleanups.push(async () => { await execa('umount', [backups], { reject: false }); });

    const run = await platform.run('release-run', ['508'], env());

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toMatch(/warning: not enough space for the backups of this release: .* going on \(diskSpace.whenShort is warn\)/);
    expect(run.stderr).toMatch(new RegExp(`backup of database ro_admin@127\\.0\\.0\\.1:${server.port}/${db} \\(service ${SERVICE}\\) failed: writing \\S+/0-postgres\\.dump failed: no space left on device; nothing was kept`));
    expect(filesUnder(backups).filter((f) => !f.dir)).toEqual([]);
    expect(platform.readState('508').BACKUPS).toBe('');
  });

  test('--dry-run shows the size of the database from pg_database_size and writes nothing', async () => {
    const db = await database();
    await psql(server, db, 'CREATE TABLE items AS SELECT generate_series(1, 50000) AS id;');
    const size = Number(await psql(server, db, 'SELECT pg_database_size(current_database());'));
    const backup = backupYaml(urlOf(server, db));
    const platform = await platformFor(backup);
    await release(platform, '509', backup);

    const run = await platform.run('release-run', ['509', '--dry-run'], env());

    expect(run.exitCode).toBe(0);
    const shown = new RegExp(`would back up ${SERVICE}: postgres \\(about ([\\d.]+) MiB before compression\\)`).exec(run.stdout);
    expect(Math.abs(Number(shown?.[1]) - size / 1024 / 1024)).toBeLessThan(0.2);
    expect(existsSync(backupDir(platform))).toBe(false);
  });
});

describe('backup strategy postgres, container entries (service: ...)', () => {
  const request = (entry: Record<string, unknown>) => ({
    service: 'shop', index: 0, manifest: 'packages/shop/manifest.yaml', dir: '/nonexistent', entry: { type: 'postgres', ...entry },
  });

  test('a password key is refused (exit 2) without printing it; an unknown key names itself', () => {
    const { context } = testContext(defaultPlugins());
    const options = { maintenanceDb: 'postgres', connectTimeoutSec: 10, sessionsTimeoutSec: 30 };
    let error: unknown;
    try { resolveTarget(request({ service: 'db', database: 'shop', password: 'hunter2-secret' }), context, options); } catch (caught) { error = caught; }
    expect(error).toBeInstanceOf(ReleaseError);
    expect((error as ReleaseError).code).toBe('BAD_INPUT');
    expect((error as ReleaseError).message).toBe('packages/shop/manifest.yaml: backup[0].password: unknown key; passwords never go in a manifest');
    expect(JSON.stringify(error)).not.toContain('hunter2-secret');
    expect(redact('x hunter2-secret y')).not.toContain('hunter2-secret');
    expect(() => resolveTarget(request({ service: 'db', database: 'bad name' }), context, options)).toThrow('packages/shop/manifest.yaml: backup[0].database: must be 1-63');
    const target = resolveTarget(request({ service: 'db', database: 'shop' }), context, options);
    expect(target).toMatchObject({ user: 'postgres', database: 'shop', container: { service: 'shop', target: 'db', osUser: 'postgres' } });
  });

  test('a service no runtime runs containers for fails with exit 2 and says what is needed', async () => {
    const { context } = testContext(defaultPlugins());
    mkdirSync(join(context.repoDir, 'packages', 'shop'), { recursive: true });
    writeFileSync(join(context.repoDir, 'packages', 'shop', 'manifest.yaml'), manifestYaml({ name: 'shop' }));
    const size = context.hooks.sizeBackup.for('postgres').promise(request({ service: 'db', database: 'shop' }), context);
    await expect(size).rejects.toThrow('no runtime runs commands in service shop (compose service db): a postgres entry with service: needs one');
  });
});
