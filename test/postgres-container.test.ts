/**
 * Issue #11, items 0-2: a platform service whose compose project holds web (${IMAGE}), db (a real
 * PostgreSQL image, local/testpg:15, on a named volume, no published port) and a cache sidecar.
 * The postgres entry `{ type: postgres, service: db, database: shop }` backs up and restores inside
 * the db container; the drift check compares each compose service with what the file asks.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { freePort, removeProjects, uniqueName, httpGet } from './helpers/docker.js';
import { CACHE_IMAGE, WEB_IMAGE, containerOf, pgComposeFiles as files, sql, stateOf, waitForDb } from './helpers/pg-compose.js';

const SEED = `
  SET ROLE shop;
  CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(8, 2));
  CREATE TABLE orders (id bigserial PRIMARY KEY, product_id int REFERENCES products (id), qty int);
  INSERT INTO products (name, price) SELECT 'p' || g, g * 1.25 FROM generate_series(1, 300) g;
  INSERT INTO orders (product_id, qty) SELECT 1 + g % 300, g % 7 FROM generate_series(1, 3000) g;
`;

/** The ticket's real schema change, run through the db container (as an operator's script would). */
const ticketScript = (project: string) => `#!/bin/sh
set -eu
db=$(docker ps -q --filter label=com.docker.compose.project=${project} --filter label=com.docker.compose.service=db)
docker exec -i -u postgres "$db" psql -X -q -v ON_ERROR_STOP=1 -d shop <<'SQL'
SET ROLE shop;
ALTER TABLE products ADD COLUMN sku text;
CREATE TABLE discounts (product_id int REFERENCES products (id), pct int);
INSERT INTO discounts SELECT id, 10 FROM products WHERE id < 50;
UPDATE products SET price = price * 2, sku = 'S' || id;
DELETE FROM orders WHERE qty = 0;
SQL
echo "schema changed"
`;

describe('postgres in a compose service, on real containers', () => {
  const projects: string[] = [];
  const platforms: Platform[] = [];

  beforeAll(async () => {
    const built = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test', 'infra', 'build-pg-image.sh')], { reject: false });
    if (built.exitCode !== 0) throw new Error(`build-pg-image.sh failed: ${built.stderr}`);
  });
  afterAll(async () => {
    await removeProjects(projects);
    for (const platform of platforms) platform.remove();
  });

  test('web + db + cache: release, drift 0 actions; ticket changes the schema, verify fails, revert brings every row back; kill -9 mid-restore, revert again', async () => {
    const name = uniqueName('shop');
    projects.push(name);
    const port = await freePort();
    const platform = await Platform.create([]);
    platforms.push(platform);
    await platform.mergeFeature('100', files(name, port));
    const first = await platform.run('release-run', ['100']);
    expect({ exit: first.exitCode, out: first.all }).toEqual({ exit: 0, out: expect.stringContaining(`${name} is new in this release: nothing to back up`) });

    // Item 0: every compose service runs what the file asks: no drift (db and cache are not ${IMAGE}).
    const drift = await platform.run('release', [`--service=${name}`]);
    expect({ exit: drift.exitCode, out: drift.stdout.trim() }).toEqual({ exit: 0, out: '0 actions' });

    await waitForDb(name);
    await sql(name, SEED);
    const before = await stateOf(name);
    expect(before.rows['public.products']!.split('\n')).toHaveLength(300);

    // The ticket changes the schema through the container; verify fails (404 within 3 s): exit 7.
    await platform.mergeFeature('T', {
      ...files(name, port, { endpoint: '/nonexistent', timeout: '3s' }),
      'releases/T-schema.sh': ticketScript(name),
    });
    const run = await platform.run('release-run', ['T']);
    expect({ exit: run.exitCode, err: run.stderr }).toEqual({ exit: 7, err: expect.stringContaining('release-run failed in phase verify') });
    expect(run.stdout).toContain('schema changed');
    expect(run.stdout).toContain('read back with pg_restore --list');
    const changed = await stateOf(name);
    expect(changed.schema).toContain('discounts');
    expect(changed.rows['public.products']).not.toBe(before.rows['public.products']);
    // The dump was streamed out: nothing of it stayed in the container.
    expect((await execa('docker', ['exec', await containerOf(name, 'db'), 'ls', '-A', '/tmp'])).stdout.trim()).toBe('');

    // The restore test of the dump, in the same container: a scratch database, dropped after; nothing left in /tmp.
    const tested = await platform.run('release', ['verify-backups', 'T']);
    expect({ exit: tested.exitCode, out: tested.stdout }).toEqual({ exit: 0, out: expect.stringMatching(/backup\[0\] postgres: passed: \d+ schema objects and \d+ rows in \d+ tables restored into scratch database shop_ro_verify match the dump/) });
    expect(await sql(name, `SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shop%';`)).toBe('shop');
    expect((await execa('docker', ['exec', await containerOf(name, 'db'), 'ls', '-A', '/tmp'])).stdout.trim()).toBe('');
    expect(await stateOf(name)).toEqual(changed);

    // kill -9 of the revert once the restore is done but before it is marked; then revert again.
    const killed = await platform.run('release-revert', ['T'], { RELEASE_FAILPOINT: 'mid-restore' });
    expect({ exit: killed.exitCode, out: killed.all }).toEqual({ exit: -1, out: expect.stringContaining('failpoint mid-restore: killing this process') });
    const reverted = await platform.run('release-revert', ['T']);
    expect({ exit: reverted.exitCode, out: reverted.all }).toEqual({ exit: 0, out: expect.stringContaining('[release-revert] release T reverted') });

    // The schema and every row are back; no temporary database, no file left in the container.
    await waitForDb(name);
    expect(await stateOf(name)).toEqual(before);
    expect(reverted.stdout).toMatch(/pg_restore -j [1-4] into shop_ro_restoring/);
    expect(await sql(name, `SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shop%';`)).toBe('shop');
    expect((await execa('docker', ['exec', await containerOf(name, 'db'), 'ls', '-A', '/tmp'])).stdout.trim()).toBe('');
    expect((await httpGet(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect((await platform.run('release', [`--service=${name}`])).stdout.trim()).toBe('0 actions');
    // No password anywhere: the log and the output never name one, and none was configured.
    expect(platform.readLog('T').join('\n')).not.toMatch(/password/i);

    // Item 0, the other way: a sidecar run by hand on another image is drift.
    const sidecar = await execa('docker', ['run', '-d', '--label', `com.docker.compose.project=${name}`, '--label', 'com.docker.compose.service=cache',
      '--name', `${name}-cache-byhand`, WEB_IMAGE]);
    expect(sidecar.exitCode).toBe(0);
    const drifted = await platform.run('release', [`--service=${name}`]);
    expect({ exit: drifted.exitCode, out: drifted.stdout }).toEqual({ exit: 5, out: expect.stringContaining(`cache: image ${WEB_IMAGE} -> ${CACHE_IMAGE}`) });
  });
});
