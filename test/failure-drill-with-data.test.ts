/**
 * The runbook's failure drill, with data: release 9999 changes a service's database and volume,
 * then fails verify; release-revert 9999 must give back the schema, every row, every file of the
 * volume (names, contents, modes), and the old image, healthy.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { Platform } from './helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';
import { createDatabase, dropDatabase, ensurePostgres, psql, rowsOf, schemaOf, uniqueName as uniqueDb, type PgServer } from './helpers/postgres.js';

/** The volume's tree as an operator would compare it: path, mode, owner, link target, content hash. */
async function volumeTree(volume: string): Promise<string> {
  const mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', volume])).stdout.trim();
  const { stdout } = await execa('sh', ['-c', "find . -printf '%p %m %U:%G %l\\n' | sort; find . -type f -print0 | sort -z | xargs -0 -r sha256sum"], { cwd: mount });
  return stdout;
}

describe("the runbook's failure drill with data", () => {
  let platform: Platform;
  let server: PgServer;
  let service: string;
  let db: string;
  beforeEach(async () => {
    server = await ensurePostgres();
    service = uniqueName('redmine');
    db = uniqueDb('redmine');
    await createDatabase(server, db);
    await psql(server, db, "CREATE TABLE issues(id int PRIMARY KEY, subject text); INSERT INTO issues VALUES (1, 'first'), (2, 'second');");
  });
  afterEach(async () => {
    await removeProjects([service]);
    await dropDatabase(server, db);
    platform?.remove();
  });

  test('release-revert 9999 restores the database and the volume exactly, on the old image, healthy', async () => {
    const port = await freePort();
    const backup = [
      'backup:',
      `  - type: volume`,
      `    volume: ${service}_data`,
      `  - type: postgres`,
      `    url: postgres://${server.user}@${server.host}:${server.port}/${db}`,
      `    passfile: ${server.passfile}`,
    ].join('\n');
    platform = await Platform.create([]);
    await platform.mergeFeature('100', dockerServiceFiles(service, port, { backup }));
    expect((await platform.run('release-run', ['100'])).all).toMatch(/release 100 complete/);
    const volume = `${service}_data`;
    const mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', volume])).stdout.trim();
    await execa('sh', ['-c', 'mkdir -p files/2026 && echo attachment > files/2026/a.txt && echo secret > .env && chmod 600 .env && ln -s files/2026/a.txt latest', ], { cwd: mount });
    const schemaBefore = await schemaOf(server, db);
    const rowsBefore = await rowsOf(server, db);
    const treeBefore = await volumeTree(volume);

    const manifest = dockerServiceFiles(service, port, { tag: '2', endpoint: '/nonexistent', timeout: '3s', backup })[`packages/${service}/manifest.yaml`]!;
    await platform.mergeFeature('9999', {
      [`packages/${service}/manifest.yaml`]: manifest,
      'releases/9999-data.sh': [
        '#!/bin/sh',
        'set -e',
        `export PGPASSFILE=${server.passfile}`,
        `psql -X -w -q -v ON_ERROR_STOP=1 -h ${server.host} -p ${server.port} -U ${server.user} -d ${db} -c "CREATE TABLE journals(id int); ALTER TABLE issues ADD COLUMN priority int; INSERT INTO issues VALUES (3, 'third', 1); INSERT INTO journals VALUES (1)"`,
        `cd ${mount} && echo new > files/2026/b.txt && rm latest && chmod 644 .env && echo changed > files/2026/a.txt`,
        '',
      ].join('\n'),
    });

    const failed = await platform.run('release-run', ['9999']);
    expect(failed.exitCode).toBe(7);
    expect(failed.stderr).toContain('  release-revert 9999');
    expect(await rowsOf(server, db)).not.toEqual(rowsBefore);

    const reverted = await platform.run('release-revert', ['9999']);

    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
    expect(await schemaOf(server, db)).toBe(schemaBefore);
    expect(await rowsOf(server, db)).toEqual(rowsBefore);
    expect(await volumeTree(volume)).toBe(treeBefore);
    expect((await containersOf(service)).map((c) => `${c.image} ${c.state}`)).toEqual(['local/testsvc:1 running']);
    expect((await httpGet(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect((await platform.run('release', [`--service=${service}`])).stdout.trim()).toBe('0 actions');
    const events = platform.logEvents('9999');
    expect(events).toEqual(expect.arrayContaining([
      `ticket=9999 phase=restore event=restored service=${service} type=volume`,
      `ticket=9999 phase=restore event=restored service=${service} type=postgres`,
    ]));
  });

  test('a corrupt backup (one byte flipped) makes release-revert refuse before touching any data', async () => {
    const port = await freePort();
    const backup = `backup:\n  - type: postgres\n    url: postgres://${server.user}@${server.host}:${server.port}/${db}\n    passfile: ${server.passfile}`;
    platform = await Platform.create([]);
    await platform.mergeFeature('100', dockerServiceFiles(service, port, { backup }));
    await platform.run('release-run', ['100']);
    await platform.mergeFeature('9998', {
      ...dockerServiceFiles(service, port, { tag: '2', backup }),
      'releases/9998-data.sh': `#!/bin/sh\nPGPASSFILE=${server.passfile} psql -X -w -q -h ${server.host} -p ${server.port} -U ${server.user} -d ${db} -c "INSERT INTO issues VALUES (9, 'added')"\nexit 1\n`,
    });
    expect((await platform.run('release-run', ['9998'])).exitCode).toBe(1);
    const rowsAfterRelease = await rowsOf(server, db);
    const stamp = platform.readState('9998').BACKUPS!.split('=')[1]!;
    const dump = join(platform.prod, '.asd/workspace/backups', service, stamp, '0-postgres.dump');
    await execa('python3', ['-c', `import sys\nf=open(sys.argv[1],'r+b'); f.seek(200); b=f.read(1); f.seek(200); f.write(bytes([b[0]^1])); f.close()`, dump]);
    const head = await platform.head();

    const result = await platform.run('release-revert', ['9998']);

    expect(result.exitCode).toBe(6);
    expect(result.stderr.split('\n')[0]).toContain(dump);
    expect(result.stderr).toContain('Recovery playbook release-restore-failed');
    expect(await rowsOf(server, db)).toEqual(rowsAfterRelease);
    expect(await platform.head()).toBe(head);
  });
});
