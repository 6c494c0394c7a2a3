/**
 * The worked example end to end: a platform repo ships its own MariaDB backup strategy
 * (release/plugins/mariadb.ts, registered by its release.config.ts) together with the strategy's
 * first use in ONE merge. release-run backs the database up with it before the ticket script
 * changes schema and rows; verify fails (exit 7); release-revert restores the database with it,
 * checked row by row against a real MariaDB server.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT, snapshot } from './helpers/platform.js';
import { databaseState, databasesLike, dropDatabases, ensureMariadb, sql, uniqueDatabase, SHOP_SEED, type MariadbServer } from './helpers/mariadb.js';

const FIXTURE = join(ORCHESTRATOR_ROOT, 'test', 'fixtures', 'mariadb-platform');
const fixture = (path: string) => readFileSync(join(FIXTURE, path), 'utf8');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let server: MariadbServer;
beforeAll(async () => {
  server = await ensureMariadb();
}, 300_000);

describe('worked example: a platform MariaDB strategy shipped with its first use, released and reverted', () => {
  let platform: Platform;
  let db: string;
  beforeEach(async () => {
    db = uniqueDatabase('shop');
    await sql(server, undefined, `CREATE DATABASE ${db} CHARACTER SET utf8mb4;`);
    await sql(server, db, SHOP_SEED);
    // Before the release: the service exists, with no backup entry and no platform config.
    platform = await Platform.create([{ name: 'shop' }]);
  });
  afterEach(async () => {
    platform?.remove();
    await dropDatabases(server, db);
  });

  test('release-run backs up with the new plugin, the ticket changes schema and rows, verify fails (7); release-revert puts every row back', async () => {
    const port = await closedPort();
    const manifest = [
      'name: shop',
      'runtime: none',
      'image: local/shop:2',
      'health:',
      `  url: http://127.0.0.1:${port}`,
      '  endpoint: /health',
      '  timeout: 2s',
      'backup:',
      '  - type: mariadb',
      `    database: ${db}`,
      `    host: ${server.host}`,
      `    port: ${server.port}`,
      `    optionsFile: ${server.optionsFile}`,
      '',
    ].join('\n');
    const ticketScript = [
      '#!/bin/sh',
      'set -e',
      `mariadb --defaults-extra-file='${server.optionsFile}' --protocol=TCP --host=${server.host} --port=${server.port} --database=${db} <<'SQL'`,
      "ALTER TABLE customers ADD COLUMN tier VARCHAR(10) NOT NULL DEFAULT 'basic';",
      "UPDATE customers SET tier = 'gold', balance = balance + 100 WHERE id = 1;",
      'DELETE FROM orders WHERE status = \'shipped\';',
      'INSERT INTO orders (customer_id, total) VALUES (3, 42.00);',
      'CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY);',
      "INSERT INTO coupons VALUES ('WELCOME');",
      'DROP VIEW big_orders;',
      'SQL',
      'echo "schema and rows migrated"',
      '',
    ].join('\n');
    await platform.mergeFeature('4711', {
      'release.config.ts': fixture('release.config.ts'),
      'release/plugins/mariadb.ts': fixture('release/plugins/mariadb.ts'),
      'packages/shop/manifest.yaml': manifest,
      'releases/4711-shop-tiers.sh': ticketScript,
    });
    const before = await databaseState(server, db);

    // The dry run already uses the plugin of the merge, and changes nothing.
    const prodBefore = await snapshot(platform.prod);
    const dry = await platform.run('release-run', ['4711', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/would back up shop: mariadb \(about [\d.]+ KiB before compression\)/);
    expect(await snapshot(platform.prod)).toBe(prodBefore);

    let started = Date.now();
    const run = await platform.run('release-run', ['4711']);
    const runMs = Date.now() - started;

    expect(run.exitCode).toBe(7);
    expect(run.stderr).toContain('release-run failed in phase verify. To roll back:');
    expect(run.stderr).toContain(`health probe of shop failed: GET http://127.0.0.1:${port}/health`);
    expect(run.all).toContain('schema and rows migrated');
    expect(run.all).not.toContain(server.password);
    const stamp = platform.readState('4711').BACKUPS!.replace(/^shop=/, '');
    expect(stamp).toMatch(/^\d{8}_\d{6}$/);
    const folder = join(platform.prod, '.asd', 'workspace', 'backups', 'shop', stamp);
    expect(readdirSync(folder).sort()).toEqual(['.entries.json', '0-mariadb.sql', '0-mariadb.sql.sha256', '0-mariadb.sql.size']);
    expect(run.stdout).toContain(`shop: ${join(folder, '0-mariadb.sql')} holds ${db} (3 tables, "-- Dump completed" read back)`);
    const released = await databaseState(server, db);
    expect(released.tables.coupons!.rows).toEqual(['WELCOME']);
    expect(released).not.toEqual(before);

    // Before the revert trusts it: the plugin's restore test loads the dump into a scratch database.
    const tested = await platform.run('release', ['verify-backups', '4711']);
    expect(tested.exitCode).toBe(0);
    expect(tested.stdout).toContain(`shop=${stamp} backup[0] mariadb: passed: 3 tables loaded into scratch database ${db}__verify, each passing CHECK TABLE`);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);
    expect(await databaseState(server, db)).toEqual(released);

    started = Date.now();
    const revert = await platform.run('release-revert', ['4711']);
    const revertMs = Date.now() - started;

    expect(revert.exitCode).toBe(0);
    expect(revert.stdout.trim().split('\n').pop()).toBe('[release-revert] release 4711 reverted');
    expect(revert.stdout).toContain(`shop: restored mariadb database ${db} on ${server.host}:${server.port} from ${join(folder, '0-mariadb.sql')}`);
    const after = await databaseState(server, db);
    expect(Object.keys(after.tables).sort()).toEqual(Object.keys(before.tables).sort());
    for (const [table, { create, rows }] of Object.entries(before.tables)) {
      expect(after.tables[table]!.create).toBe(create);
      expect(after.tables[table]!.rows).toHaveLength(rows.length);
      rows.forEach((row, i) => expect(after.tables[table]!.rows[i]).toBe(row));
    }
    expect(after.objects).toEqual(before.objects);
    expect(await databasesLike(server, `${db}__`)).toEqual([]);
    expect(platform.logEvents('4711')).toContain('ticket=4711 phase=restore event=restored service=shop type=mariadb');
    expect(revert.all).not.toContain(server.password);
    for (const file of readdirSync(join(platform.prod, '.asd', 'workspace', 'releases'))) {
      expect(readFileSync(join(platform.prod, '.asd', 'workspace', 'releases', file), 'utf8')).not.toContain(server.password);
    }
    expect(existsSync(join(platform.prod, 'release', 'plugins', 'mariadb.ts'))).toBe(false);
    process.stdout.write(`mariadb worked example: release-run ${runMs} ms (exit 7), release-revert ${revertMs} ms\n`);
  });
});
