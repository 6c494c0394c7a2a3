/**
 * The worked example's backup strategy (test/fixtures/mariadb-platform/release/plugins/mariadb.ts,
 * a platform repo's own plugin on the public API) against a real MariaDB server: backup, a
 * release's changes to rows and schema, check, restore, compared row by row.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleaseError, type BackupRequest } from '../core/index.js';
import { testContext } from './helpers/context.js';
import { databaseState, databasesLike, dropDatabases, ensureMariadb, processesShowing, sql, uniqueDatabase, watchProcesses, SHOP_SEED, type MariadbServer } from './helpers/mariadb.js';
import { mariadbBackup } from './fixtures/mariadb-platform/release/plugins/mariadb.js';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The release's changes: schema and rows. */
const RELEASE_CHANGES = `
ALTER TABLE customers ADD COLUMN tier VARCHAR(10) NOT NULL DEFAULT 'basic', DROP COLUMN note;
UPDATE customers SET balance = balance * 2, tier = 'gold' WHERE id = 1;
DELETE FROM orders WHERE id = 3;
INSERT INTO orders (customer_id, total) VALUES (2, 77.00);
CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO coupons VALUES ('SPRING');
DROP VIEW big_orders;
DROP TRIGGER orders_audit;
CREATE TRIGGER customers_audit AFTER UPDATE ON customers FOR EACH ROW INSERT INTO audit (what) VALUES ('customer');
DROP PROCEDURE pay;
`;

let server: MariadbServer;
beforeAll(async () => {
  server = await ensureMariadb();
}, 300_000);

describe('the mariadb strategy of the worked example, on a real MariaDB server', () => {
  let db: string;
  let root: string;
  beforeEach(async () => {
    db = uniqueDatabase('shop');
    root = mkdtempSync(join(tmpdir(), 'ro-mariadb-'));
    await sql(server, undefined, `CREATE DATABASE ${db} CHARACTER SET utf8mb4;`);
    await sql(server, db, SHOP_SEED);
  });
  afterEach(async () => {
    await dropDatabases(server, db);
    rmSync(root, { recursive: true, force: true });
  });

  /**
   * The tools behind a shim that waits a moment before it execs them with the same arguments, so
   * the process watcher sees every call's command line however fast the call is.
   */
  function slowTools(): { mysqldump: string; mysql: string } {
    const shim = (tool: string) => {
      const path = join(root, `slow-${tool}`);
      writeFileSync(path, `#!/bin/sh\nsleep 0.1\nexec ${tool} "$@"\n`, { mode: 0o755 });
      return path;
    };
    return { mysqldump: shim('mysqldump'), mysql: shim('mysql') };
  }

  function harness(options: Parameters<typeof mariadbBackup>[0] = {}) {
    const { context, printed } = testContext([mariadbBackup({ ...slowTools(), ...options })], { repoDir: root });
    const dir = join(root, '.asd', 'workspace', 'backups', 'shop', '20260518_153012');
    const request = (entry: Record<string, unknown>, index = 0): BackupRequest => ({
      service: 'shop', entry: { type: 'mariadb', ...entry }, dir, index, manifest: 'packages/shop/manifest.yaml',
    });
    const entry = (extra: Record<string, unknown> = {}) => request({ database: db, host: server.host, port: server.port, optionsFile: server.optionsFile, ...extra });
    return {
      dir, request, entry, printed, context,
      backup: (r: BackupRequest) => context.hooks.backup.for('mariadb').promise(r, context),
      size: (r: BackupRequest) => context.hooks.sizeBackup.for('mariadb').promise(r, context),
      check: (r: BackupRequest) => context.hooks.checkBackup.for('mariadb').promise(r, context),
      restore: (r: BackupRequest) => context.hooks.restore.for('mariadb').promise(r, context),
    };
  }

  test('backup, the release changes rows and schema, check, restore: every table, row and object is as before; no password anywhere', async () => {
    const before = await databaseState(server, db);
    expect(before.tables.customers!.rows).toHaveLength(3);
    expect(before.objects).toHaveLength(5);
    const h = harness();

    expect(await h.size(h.entry())).toBeGreaterThan(0);
    let started = Date.now();
    const backedUp = await watchProcesses(/mysqldump/, server.password, () => h.backup(h.entry()));
    const backupMs = Date.now() - started;
    expect(backedUp.result).toEqual({ files: ['0-mariadb.sql', '0-mariadb.sql.sha256', '0-mariadb.sql.size'], bytes: statSync(join(h.dir, '0-mariadb.sql')).size });
    expect(backedUp.seen.join('\n')).toContain('--single-transaction --routines --triggers --events');
    expect(backedUp.leaks).toEqual([]);
    expect(mode(h.dir)).toBe('700');
    for (const file of readdirSync(h.dir)) expect(mode(join(h.dir, file))).toBe('600');
    expect(readFileSync(join(h.dir, '0-mariadb.sql'), 'utf8').trimEnd().split('\n').pop()).toMatch(/^-- Dump completed/);
    expect(h.printed()).toContain(`shop: ${join(h.dir, '0-mariadb.sql')} holds ${db} (3 tables, "-- Dump completed" read back)`);

    await sql(server, db, RELEASE_CHANGES);
    const changed = await databaseState(server, db);
    expect(changed).not.toEqual(before);

    expect(await h.check(h.entry())).toBe(true);
    started = Date.now();
    const restored = await watchProcesses(/\bmysql\b/, server.password, () => h.restore(h.entry()));
    const restoreMs = Date.now() - started;
    expect(restored.seen.length).toBeGreaterThan(0);
    expect(restored.leaks).toEqual([]);

    const after = await databaseState(server, db);
    for (const table of Object.keys(before.tables)) {
      expect(after.tables[table]!.create).toBe(before.tables[table]!.create);
      // Row by row.
      before.tables[table]!.rows.forEach((row, i) => expect(after.tables[table]!.rows[i]).toBe(row));
    }
    expect(after).toEqual(before);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);
    expect(h.printed()).toContain(`shop: restored mariadb database ${db} on ${server.host}:${server.port} from ${join(h.dir, '0-mariadb.sql')}`);
    expect(h.printed()).not.toContain(server.password);
    const log = join(root, '.asd', 'workspace', 'releases', 't1.log');
    if (existsSync(log)) expect(readFileSync(log, 'utf8')).not.toContain(server.password);
    expect(processesShowing(server.password)).toEqual([]);
    process.stdout.write(`mariadb example: backup ${backupMs} ms (${backedUp.result?.bytes} bytes), restore ${restoreMs} ms\n`);
  });

  test('a corrupt or cut-short dump is refused (exit 6, naming the file) and the live database keeps what the release made', async () => {
    const h = harness();
    await h.backup(h.entry());
    await sql(server, db, RELEASE_CHANGES);
    const changed = await databaseState(server, db);
    const dump = join(h.dir, '0-mariadb.sql');

    const bytes = readFileSync(dump);
    bytes.writeUInt8(bytes.readUInt8(100) ^ 0x01, 100);
    writeFileSync(dump, bytes);
    for (const call of [h.check, h.restore]) {
      const error = await call(h.entry()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ReleaseError);
      expect((error as ReleaseError).exitCode).toBe(6);
      expect((error as ReleaseError).message).toBe(`backup ${dump} does not match its recorded sha256 (corrupt); nothing was restored`);
    }

    // Sound checksums of a dump cut short: the missing completion line refuses it.
    const text = readFileSync(dump, 'utf8');
    writeFileSync(dump, text.slice(0, text.indexOf('CREATE TABLE `orders`')));
    writeFileSync(`${dump}.sha256`, `${sha256(dump)}  0-mariadb.sql\n`);
    writeFileSync(`${dump}.size`, `${statSync(dump).size}\n`);
    for (const call of [h.check, h.restore]) {
      const error = await call(h.entry()).catch((e: unknown) => e);
      expect((error as ReleaseError).exitCode).toBe(6);
      expect((error as ReleaseError).message).toBe(`backup ${dump} does not end with mysqldump's "-- Dump completed" line (cut short); nothing was restored`);
    }
    expect(await databaseState(server, db)).toEqual(changed);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);
  });

  test('a dump that fails to load half way: restore fails (exit 6) before the swap; the live database and its objects are untouched, nothing is left behind', async () => {
    const h = harness();
    await h.backup(h.entry());
    await sql(server, db, RELEASE_CHANGES);
    const changed = await databaseState(server, db);
    const dump = join(h.dir, '0-mariadb.sql');
    // Complete and checksummed, but a statement in the middle fails.
    const text = readFileSync(dump, 'utf8').replace('CREATE TABLE `orders`', 'INSERT INTO no_such_table VALUES (1);\nCREATE TABLE `orders`');
    writeFileSync(dump, text);
    writeFileSync(`${dump}.sha256`, `${sha256(dump)}  0-mariadb.sql\n`);
    writeFileSync(`${dump}.size`, `${statSync(dump).size}\n`);

    const error = await h.restore(h.entry()).catch((e: unknown) => e);

    expect((error as ReleaseError).exitCode).toBe(6);
    expect((error as ReleaseError).message).toMatch(new RegExp(`^restore of mariadb database ${db} on .* failed: loading ${dump} into ${db}__restore_1: ERROR 1146 .*no_such_table.*; database ${db} was not touched; ${db}__restore_1 was dropped$`));
    expect(await databaseState(server, db)).toEqual(changed);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);
  });

  test('a session holding a lock makes the swap time out: the drops are undone, the live database is as it was; once it lets go, restore succeeds', async () => {
    const h = harness({ lockWaitTimeoutSec: 1 });
    const before = await databaseState(server, db);
    await h.backup(h.entry());
    await sql(server, db, RELEASE_CHANGES);
    const changed = await databaseState(server, db);
    // An open transaction that has read customers holds a metadata lock that dropping the trigger on
    // customers (and the RENAME TABLE) must wait for: the function dropped before it comes back.
    const holder = spawn('mariadb', [`--defaults-extra-file=${server.optionsFile}`, '--protocol=TCP', `--host=${server.host}`, `--port=${server.port}`, '--batch', '--unbuffered', `--database=${db}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let held = '';
    holder.stdout.on('data', (chunk: Buffer) => { held += chunk.toString(); });
    holder.stdin.write('START TRANSACTION;\nSELECT COUNT(*) AS n FROM customers;\n');
    for (const deadline = Date.now() + 5000; !held.includes('n\n3'); await new Promise((resolve) => setTimeout(resolve, 10))) {
      if (Date.now() > deadline) throw new Error(`the holding session did not answer: ${held}`);
    }
    try {
      const error = await h.restore(h.entry()).catch((e: unknown) => e);
      expect((error as ReleaseError).exitCode).toBe(6);
      expect((error as ReleaseError).message).toMatch(new RegExp(`^restore of mariadb database ${db} on .* failed: swapping ${db}__restore_1 in: ERROR 1205 .*Lock wait timeout exceeded.*; ${db}'s function order_count created again: ${db} is as it was; ${db}__restore_1 was dropped$`));
    } finally {
      holder.stdin.end('ROLLBACK;\n');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    expect(await databaseState(server, db)).toEqual(changed);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);

    expect(await h.restore(h.entry())).toBe(true);
    expect(await databaseState(server, db)).toEqual(before);
  });

  test('bad entries exit 2 naming packages/shop/manifest.yaml and the key; a password in the manifest is refused and never printed', async () => {
    const h = harness();
    const other = join(root, 'open.cnf');
    writeFileSync(other, readFileSync(server.optionsFile));
    chmodSync(other, 0o644);
    const cases: [Record<string, unknown>, string][] = [
      [{ database: db, optionsFile: server.optionsFile, pasword: 'x' }, 'backup[0]: unknown key pasword'],
      [{ database: 'shop-db', optionsFile: server.optionsFile }, 'backup[0].database: must be a database name'],
      [{ database: db, optionsFile: server.optionsFile, port: '3306' }, 'backup[0].port: '],
      [{ database: db }, 'backup[0].optionsFile: '],
      [{ database: db, optionsFile: server.optionsFile, password: 'hunter2-not-printed' }, 'backup[0].password: passwords never go in a manifest'],
      [{ database: db, optionsFile: join(root, 'nope.cnf') }, `backup[0].optionsFile: ${join(root, 'nope.cnf')} does not exist`],
      [{ database: db, optionsFile: other }, `backup[0].optionsFile: ${other} is readable by others (mode 644)`],
    ];
    for (const [entry, message] of cases) {
      for (const call of [h.backup, h.size, h.check, h.restore]) {
        const error = await call(h.request(entry)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ReleaseError);
        expect((error as ReleaseError).exitCode).toBe(2);
        expect((error as ReleaseError).message).toContain(`packages/shop/manifest.yaml: ${message}`);
        expect(`${(error as ReleaseError).message} ${(error as ReleaseError).hint ?? ''}`).not.toContain('hunter2');
      }
    }
    expect(existsSync(h.dir) ? readdirSync(h.dir) : []).toEqual([]);
  });

  test('a server that does not answer: backup exits 6 and keeps nothing; a dump file already there is neither overwritten nor removed', async () => {
    const h = harness();
    mkdirSync(h.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(h.dir, '0-mariadb.sql'), 'not ours\n');
    const exists = await h.backup(h.entry()).catch((e: unknown) => e);
    expect((exists as ReleaseError).exitCode).toBe(6);
    expect((exists as ReleaseError).message).toBe(`backup of mariadb database ${db} on ${server.host}:${server.port} (service shop) failed: ${join(h.dir, '0-mariadb.sql')} already exists`);
    expect(readFileSync(join(h.dir, '0-mariadb.sql'), 'utf8')).toBe('not ours\n');
    rmSync(h.dir, { recursive: true });

    const error = await h.backup(h.entry({ port: 1 })).catch((e: unknown) => e);
    expect((error as ReleaseError).exitCode).toBe(6);
    expect((error as ReleaseError).message).toMatch(new RegExp(`^backup of mariadb database ${db} on 127\\.0\\.0\\.1:1 \\(service shop\\) failed: mysqldump exited 2: .*Can't connect.*; nothing was kept$`));
    expect(existsSync(h.dir) ? readdirSync(h.dir) : []).toEqual([]);
  });
});
