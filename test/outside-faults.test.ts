/**
 * Faults from outside the orchestrator, each on real parts: a remote that refuses connections or
 * accepts them and never answers, a ticket script that hangs, a PostgreSQL server that is down
 * when prepare backs it up. Each ends with a clear error, the documented exit code and playbook,
 * and a state that the recovery the operator is told to use finishes once the cause is fixed.
 * The rows are printed at the end (the fault matrix of outside faults).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform, snapshot } from './helpers/platform.js';
import { FaultRows } from './helpers/fault-rows.js';
import { PrivatePostgres } from './helpers/private-postgres.js';

/** Ports of this file (19250-19269): nothing listens on REFUSING; HANGING accepts and never answers. */
const REFUSING_PORT = 19250;
const HANGING_PORT = 19251;
const PG_PORT = 19260;

const rows = new FaultRows();
afterAll(() => rows.print('outside faults: the cause, then the recovery the operator is told to use'));

/**
 * A platform whose config shortens the deadlines, so a hang is stopped within seconds (the fetch's
 * 5 s leave a refused connection, which git reports at once, room on a loaded machine).
 */
const SHORT_DEADLINES = `export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ deadlines: { fetch: '5s', ticket: '3s' } }) });\n`;

const webManifest = (tag: string, extra = '') => `name: web\nruntime: none\nimage: local/web:${tag}\n${extra}`;

/** Files of the work tree and workspace, HEAD, branches and index, with the audit log left out. */
async function snapshotWithoutLog(platform: Platform, ticket: string): Promise<string> {
  const log = join(platform.prod, '.asd', 'workspace', 'releases', `${ticket}.log`);
  return (await snapshot(platform.prod)).split('\n').filter((line) => !line.includes('./.asd') && !line.includes(log)).join('\n');
}

/** Gone, or a zombie waiting to be reaped by init: no longer running either way. */
function processGone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function workspaceFiles(platform: Platform): string[] {
  const walk = (dir: string, prefix = ''): string[] => (existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`]) : []);
  return walk(join(platform.prod, '.asd', 'workspace'));
}

describe('origin unreachable at fetch', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }], { 'release.config.ts': SHORT_DEADLINES }); });
  afterEach(() => platform.remove());

  test('refused: exit 1 naming the remote and its URL (never its credentials), nothing written but the log; once reachable, the same command releases', async () => {
    await platform.mergeFeature('501', { 'packages/web/manifest.yaml': webManifest('2') });
    const head = await platform.head();
    await platform.git(['remote', 'set-url', 'origin', `http://deploy:rofl-s3cret-token@127.0.0.1:${REFUSING_PORT}/platform.git`]);
    const before = await snapshotWithoutLog(platform, '501');

    const failed = await platform.run('release-run', ['501']);

    await rows.record({ fault: 'origin refuses connections at fetch', seen: `exit ${failed.exitCode}, prepare`, recovery: 'release-run 501', result: 'released; nothing but the log was written before' }, async () => {
      expect(failed.exitCode).toBe(1);
      expect(failed.stderr.split('\n')[0]).toMatch(new RegExp(`^\\[release-run\\] error: cannot fetch from remote origin \\(http://127\\.0\\.0\\.1:${REFUSING_PORT}/platform\\.git\\): .*(Failed to connect|Connection refused|Could not connect).*; nothing was changed`));
      expect(failed.all).not.toContain('rofl-s3cret-token');
      expect(platform.readLog('501').join('\n')).not.toContain('rofl-s3cret-token');
      expect(failed.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
      expect(failed.stderr).toContain('Recovery playbook release-origin-unreachable');
      expect(failed.stderr).not.toMatch(/To roll back/);
      expect(workspaceFiles(platform)).toEqual(['releases/501.log']);
      expect(platform.logEvents('501')).toContain('ticket=501 phase=prepare event=failed rc=1 plugin=prepare');
      expect(await snapshotWithoutLog(platform, '501')).toBe(before);
      expect(await platform.head()).toBe(head);

      await platform.git(['remote', 'set-url', 'origin', platform.origin]);
      const recovered = await platform.run('release-run', ['501']);
      expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
      expect(recovered.stdout).toContain('[release-run] release 501 complete');
    });
  });

  test('hanging (accepts, never answers): the fetch is stopped at its deadline, exit 1 naming the command and how long it ran', async () => {
    const held: Socket[] = [];
    const server: Server = createServer((socket) => { held.push(socket); });
    await new Promise<void>((resolve) => server.listen(HANGING_PORT, '127.0.0.1', resolve));
    try {
      await platform.mergeFeature('502', { 'packages/web/manifest.yaml': webManifest('2') });
      await platform.git(['remote', 'set-url', 'origin', `http://127.0.0.1:${HANGING_PORT}/platform.git`]);
      const before = await snapshotWithoutLog(platform, '502');

      const started = Date.now();
      const failed = await platform.run('release-run', ['502']);
      const took = Date.now() - started;

      await rows.record({ fault: 'origin accepts and never answers (fetch hangs)', seen: `exit ${failed.exitCode}, prepare, after ${(took / 1000).toFixed(1)}s`, recovery: 'release-run 502', result: 'fetch stopped at its deadline; released once reachable' }, async () => {
        expect(failed.exitCode).toBe(1);
        expect(failed.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: `git fetch --quiet --end-of-options origin` ran past its deadline \(fetch\) of 5s and was stopped after 5(\.\d)?s/);
        expect(failed.stderr).toContain('fix: find out why it hung; if it needs longer, raise deadlines.fetch');
        expect(failed.stderr).toContain('Recovery playbook release-deadline-passed');
        expect(failed.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
        expect(took).toBeLessThan(15_000);
        // The whole process group went: no git helper is left talking to the remote.
        const left = await execa('pgrep', ['-f', `127.0.0.1:${HANGING_PORT}`], { reject: false });
        expect(left.stdout).toBe('');
        expect(workspaceFiles(platform)).toEqual(['releases/502.log']);
        expect(await snapshotWithoutLog(platform, '502')).toBe(before);

        await platform.git(['remote', 'set-url', 'origin', platform.origin]);
        const recovered = await platform.run('release-run', ['502']);
        expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
      });
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('a ticket script that hangs', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }], { 'release.config.ts': SHORT_DEADLINES }); });
  afterEach(() => platform.remove());

  test('is stopped with its process group at the ticket deadline: exit 1 in phase ticket naming the script and how long it ran; --from=ticket finishes once what it waited for is there', async () => {
    const gate = join(platform.root, 'data-service-ready');
    const child = join(platform.root, 'child.pid');
    await platform.mergeFeature('503', {
      'packages/web/manifest.yaml': webManifest('2'),
      // Waits for a resource that does not come; its own child (a sleep) is in its process group.
      'releases/503-wait.sh': `#!/bin/sh\necho "waiting for the data service"\nsleep 300 &\necho $! > ${child}\nwhile [ ! -f ${gate} ]; do sleep 0.2; done\nkill $! 2>/dev/null\necho "migrated"\n`,
    });

    const failed = await platform.run('release-run', ['503']);

    await rows.record({ fault: 'ticket script hangs', seen: `exit ${failed.exitCode}, ticket`, recovery: 'release-run 503 --from=ticket', result: 'script and its child stopped at the deadline; released once the cause was fixed' }, async () => {
      expect(failed.exitCode).toBe(1);
      expect(failed.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: `\S+\/releases\/503-wait\.sh --yes` ran past its deadline \(ticket\) of 3s and was stopped after 3(\.\d)?s/);
      expect(failed.stderr).toContain('release-run failed in phase ticket. To roll back:');
      expect(failed.stderr).toContain('  release-run 503 --from=ticket');
      expect(failed.stderr).toMatch(/Recovery playbook release-deadline-passed[^]*next: release-run 503 --from=ticket/);
      expect(platform.logEvents('503')).toContain('ticket=503 phase=ticket event=failed rc=1 plugin=ticket');
      const sleeper = Number((await execa('cat', [child])).stdout);
      expect(processGone(sleeper)).toBe(true);
      expect(existsSync(join(platform.prod, '.asd/workspace/release.lock'))).toBe(false);

      platform.write(platform.root, { 'data-service-ready': 'yes\n' });
      const recovered = await platform.run('release-run', ['503', '--from=ticket']);
      expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
      expect(recovered.stdout).toContain('migrated');
    });
  });
});

describe('PostgreSQL down when prepare backs it up', () => {
  let platform: Platform;
  let server: PrivatePostgres;
  beforeAll(async () => { server = await PrivatePostgres.create('rofl', PG_PORT); });
  afterAll(async () => { await server?.remove(); });
  afterEach(() => platform?.remove());

  test('exit 6 in prepare before any pull, no partial backup; once the server is up, the same command releases with the backup taken', async () => {
    await server.psql('postgres', 'CREATE DATABASE rofl_app;');
    await server.psql('rofl_app', "CREATE TABLE notes(id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'kept');");
    const backup = `backup:\n  - type: postgres\n    url: ${server.url('rofl_app')}\n    passfile: ${server.passfile}\n`;
    platform = await Platform.create([{ name: 'web', extra: backup }]);
    await platform.mergeFeature('504', { 'packages/web/manifest.yaml': webManifest('2', backup) });
    const head = await platform.head();
    await server.stop();

    const failed = await platform.run('release-run', ['504']);

    await rows.record({ fault: 'PostgreSQL down at backup time', seen: `exit ${failed.exitCode}, prepare`, recovery: 'release-run 504', result: 'no pull, no partial backup; released with the backup once the server was up' }, async () => {
      expect(failed.exitCode).toBe(6);
      // The size estimate meets the stopped server first: a warning, then the backup's own error.
      expect(failed.stderr.split('\n')[0]).toMatch(/^\[release-run\] warning: web: backup\[0\] postgres: its size could not be estimated .*Connection refused/);
      expect(failed.stderr.split('\n').find((line) => line.startsWith('[release-run] error:'))).toMatch(/^\[release-run\] error: .*pg_dump exited \d+: .*127\.0\.0\.1.*19260.*(Connection refused|failed)/);
      expect(failed.stderr).toContain(`is the PostgreSQL server at 127.0.0.1:${PG_PORT} running and reachable from this host?`);
      expect(failed.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
      expect(failed.stderr).toContain('Recovery playbook release-backup-failed');
      expect(await platform.head()).toBe(head);
      expect(platform.logEvents('504').some((event) => event.includes('event=pulling'))).toBe(false);
      expect(platform.logEvents('504')).toContain('ticket=504 phase=prepare event=failed rc=6 plugin=backup-postgres');
      expect(existsSync(join(platform.prod, '.asd/workspace/backups/web'))).toBe(false);
      expect(platform.readState('504').BACKUPS).toBe('');

      await server.start();
      const recovered = await platform.run('release-run', ['504']);
      expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
      const stamp = /^web=(\d{8}_\d{6})$/.exec(platform.readState('504').BACKUPS ?? '')?.[1];
      expect(readdirSync(join(platform.prod, '.asd/workspace/backups/web', stamp ?? 'missing'))).toContain('0-postgres.dump');
      expect(await server.psql('rofl_app', 'SELECT body FROM notes')).toBe('kept');
    });
  });
});
