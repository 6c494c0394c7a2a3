/**
 * release-revert checks every backup of the release before it restores any: with two backups and
 * the second corrupt, it stops with exit 6 naming the bad file, and the first is not restored
 * either (its data keeps what was written since), nor the code reverted.
 */
import { execa } from 'execa';
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';

const sqlite = async (db: string, sql: string) => (await execa('sqlite3', ['-bail', db, sql])).stdout;
const manifest = (name: string, db: string, tag: string) => `name: ${name}\nruntime: none\nimage: local/${name}:${tag}\nbackup:\n  - type: sqlite\n    path: ${db}\n`;

describe('release-revert with two backups, the second corrupt', () => {
  let platform: Platform;
  afterEach(() => platform?.remove());

  test('restores none of them: exit 6 naming the corrupt file, the first service\'s data and HEAD unchanged', async () => {
    platform = await Platform.create([{ name: 'alpha' }, { name: 'beta' }]);
    const dbs = { alpha: join(platform.root, 'alpha.sqlite'), beta: join(platform.root, 'beta.sqlite') };
    for (const db of Object.values(dbs)) await sqlite(db, "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('before');");
    await platform.mergeFeature('140', { 'packages/alpha/manifest.yaml': manifest('alpha', dbs.alpha, '2'), 'packages/beta/manifest.yaml': manifest('beta', dbs.beta, '2') });
    const released = await platform.run('release-run', ['140']);
    expect(`${released.exitCode}\n${released.all}`).toMatch(/^0\n/);
    for (const db of Object.values(dbs)) await sqlite(db, "INSERT INTO t VALUES ('after');");

    // BACKUPS lists them in the order revert checks and restores them: corrupt the second.
    const [first, second] = platform.readState('140').BACKUPS!.split(' ').map((entry) => entry.split('=') as [keyof typeof dbs, string]);
    const secondDir = join(platform.prod, '.asd/workspace/backups', second![0], second![1]);
    const dataFile = readdirSync(secondDir).find((name) => !name.startsWith('.') && !/\.(sha256|size)$/.test(name))!;
    appendFileSync(join(secondDir, dataFile), 'garbage');
    const head = await platform.head();

    const revert = await platform.run('release-revert', ['140']);

    expect(revert.exitCode).toBe(6);
    expect(revert.stderr.split('\n')[0]).toContain(dataFile);
    expect(await sqlite(dbs[first![0]], 'SELECT v FROM t')).toBe('before\nafter');
    expect(await sqlite(dbs[second![0]], 'SELECT v FROM t')).toBe('before\nafter');
    expect(platform.logEvents('140').filter((event) => event.includes('event=restored'))).toEqual([]);
    const firstDir = join(platform.prod, '.asd/workspace/backups', first![0], first![1]);
    expect(readdirSync(firstDir).filter((name) => name.startsWith('.restored'))).toEqual([]);
    expect(await platform.head()).toBe(head);
    expect(existsSync(join(platform.prod, '.asd/workspace/release.lock'))).toBe(false);
  });
});
