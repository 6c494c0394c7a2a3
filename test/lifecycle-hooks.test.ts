/**
 * Lifecycle hooks (`hooks:` of a manifest and of the config) on real git and a real engine: they
 * run in the documented order across a release and its revert, with the release's variables, on
 * the host or inside the service's container; a dry run lists them and runs none; a failing
 * pre-deploy hook leaves the service untouched, and --from=migrate runs it again.
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from './helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';

describe('lifecycle hooks', () => {
  let platform: Platform;
  let service: string;
  let port: number;
  let scratch: string;
  /** Where the host hooks write one line each: the hook, the service, the phase, the ticket and the two commits. */
  let journal: string;

  const record = (what: string) => ['sh', '-c', `echo "${what} $RELEASE_HOOK [$RELEASE_SERVICE] $RELEASE_PHASE $RELEASE_TICKET $RELEASE_BASE_SHA $RELEASE_MERGE_SHA" >> ${journal}`];
  const flow = (list: string[]) => `[${list.map((word) => JSON.stringify(word)).join(', ')}]`;
  /** The manifest's backup and its hooks: every moment on the host but post-deploy, which runs inside the app container. */
  const manifestExtra = (preDeploy = flow(record('service'))) => [
    'backup:', '  - type: volume', `    volume: ${service}_data`,
    'hooks:',
    `  pre-backup: ${flow(record('service'))}`,
    `  post-backup: ${flow(record('service'))}`,
    `  pre-deploy: ${preDeploy}`,
    `  post-deploy: { run: ${flow(['sh', '-c', 'echo "$RELEASE_HOOK $RELEASE_TICKET in $(hostname)" >> /data/hooks.txt'])}, in: app }`,
    `  pre-revert: ${flow(record('service'))}`,
    `  post-revert: ${flow(record('service'))}`,
  ].join('\n');
  const config = () => `export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ hooks: { 'pre-deploy': ${flow(record('repo'))}, 'post-deploy': ${flow(record('repo'))}, 'post-revert': ${flow(record('repo'))} } }) });\n`;
  const mountOf = async () => (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', `${service}_data`])).stdout.trim();
  const journalLines = () => (existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').filter(Boolean) : []);
  /** The hooks the ticket's audit log recorded, as `phase hook service where rc`. */
  const loggedHooks = (ticket: string) => readFileSync(join(platform.prod, `.asd/workspace/releases/${ticket}.log`), 'utf8').split('\n')
    .filter((line) => line.includes(' event=hook '))
    .map((line) => ['phase', 'hook', 'service', 'where', 'rc'].map((key) => new RegExp(` ${key}=(\\S+)`).exec(line)?.[1] ?? '-').join(' '));

  beforeEach(async () => {
    service = uniqueName('hooks');
    port = await freePort();
    scratch = mkdtempSync(join(tmpdir(), 'ro-hooks-'));
    journal = join(scratch, 'journal.txt');
    platform = await Platform.create([]);
    await platform.mergeFeature('100', { ...dockerServiceFiles(service, port, { backup: manifestExtra() }), 'release.config.ts': config() });
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(first.all);
    writeFileSync(journal, '');
  });
  afterEach(async () => {
    await removeProjects([service]);
    platform.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a release and its revert run every hook in order, with the release\'s variables; a dry run lists them and runs none', async () => {
    const files = dockerServiceFiles(service, port, { tag: '2', backup: manifestExtra() });
    const merge = await platform.mergeFeature('200', { [`packages/${service}/manifest.yaml`]: files[`packages/${service}/manifest.yaml`]! });
    const base = await platform.head();

    const dry = await platform.run('release-run', ['200', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain(`[release-run] prepare: would run the pre-backup hook of ${service} on the host: sh -c`);
    expect(dry.stdout).toContain('[release-run] migrate: would run the pre-deploy hook of the repo on the host: sh -c');
    expect(dry.stdout).toContain(`[release-run] migrate: would run the post-deploy hook of ${service} in ${service}'s app: sh -c`);
    expect(dry.stdout).toContain(`"\${step[@]}" 'pre-deploy' '${service}'`);
    expect(journalLines()).toEqual([]);

    const run = await platform.run('release-run', ['200']);
    expect(run.exitCode).toBe(0);
    const vars = `200 ${base} ${merge}`;
    expect(journalLines()).toEqual([
      // Backups come before the pull: MERGE_SHA is what was fetched, or empty before it is recorded.
      expect.stringMatching(new RegExp(`^service pre-backup \\[${service}\\] prepare 200 ${base}`)),
      expect.stringMatching(new RegExp(`^service post-backup \\[${service}\\] prepare 200 ${base}`)),
      `repo pre-deploy [] migrate ${vars}`,
      `service pre-deploy [${service}] migrate ${vars}`,
      `repo post-deploy [] migrate ${vars}`,
    ]);
    const container = (await execa('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${service}`])).stdout.trim();
    expect(readFileSync(join(await mountOf(), 'hooks.txt'), 'utf8')).toContain(`post-deploy 200 in ${container.slice(0, 12)}`);
    expect(loggedHooks('200')).toEqual([
      `prepare pre-backup ${service} host 0`, `prepare post-backup ${service} host 0`,
      'migrate pre-deploy - host 0', `migrate pre-deploy ${service} host 0`, `migrate post-deploy ${service} app 0`, 'migrate post-deploy - host 0',
    ]);

    writeFileSync(journal, '');
    const revert = await platform.run('release-revert', ['200']);
    expect(revert.exitCode).toBe(0);
    expect(journalLines()).toEqual([
      `service pre-revert [${service}] restore ${vars}`,
      `service pre-backup [${service}] restore ${vars}`,
      `service post-backup [${service}] restore ${vars}`,
      `service post-revert [${service}] redeploy ${vars}`,
      `repo post-revert [] redeploy ${vars}`,
    ]);
    expect(loggedHooks('200').slice(6)).toEqual([
      `restore pre-revert ${service} host 0`, `restore pre-backup ${service} host 0`, `restore post-backup ${service} host 0`,
      `redeploy post-revert ${service} host 0`, 'redeploy post-revert - host 0',
    ]);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');

    const show = await platform.run('release', ['show', '200']);
    expect(show.stdout).toContain(`hook pre-deploy of ${service} (on the host, migrate): ok in`);
    expect(show.stdout).toContain(`hook post-deploy of ${service} (in app, migrate): ok in`);
    expect(show.stdout).toContain('hook post-revert of the repo (on the host, redeploy): ok in');
  });

  test('a failing pre-deploy hook fails migrate and leaves the service untouched; --from=migrate runs it again', async () => {
    const ready = join(scratch, 'ready');
    const guard = flow(['sh', '-c', `test -f ${ready} || { echo "migrations of the old version still running" >&2; exit 3; }`]);
    const files = dockerServiceFiles(service, port, { tag: '2', backup: manifestExtra(guard) });
    await platform.mergeFeature('300', { [`packages/${service}/manifest.yaml`]: files[`packages/${service}/manifest.yaml`]! });
    const before = await containersOf(service);

    const failed = await platform.run('release-run', ['300', '--json']);

    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain(`[release-run] error: the pre-deploy hook of ${service} exited 3: sh -c 'test -f ${ready}`);
    expect(failed.stderr).toContain('migrations of the old version still running');
    expect(failed.stderr).toContain('its step did not start; fix what the hook reports (or the hook), then release-run 300 --from=migrate');
    const outcome = failed.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { event: string; fields: Record<string, unknown> }).find((event) => event.event === 'outcome')!;
    expect(outcome.fields).toMatchObject({ reason: 'HOOK_FAILED', phase_failed: 'migrate' });
    expect(await containersOf(service)).toEqual(before);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');
    expect(loggedHooks('300')).toContain(`migrate pre-deploy ${service} host 3`);
    expect(existsSync(join(await mountOf(), 'hooks.txt')) && readFileSync(join(await mountOf(), 'hooks.txt'), 'utf8')).not.toContain('300');

    writeFileSync(ready, '');
    const resumed = await platform.run('release-run', ['300', '--from=migrate']);
    expect(resumed.exitCode).toBe(0);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');
    expect(loggedHooks('300').filter((line) => line.startsWith('migrate'))).toEqual([
      'migrate pre-deploy - host 0', `migrate pre-deploy ${service} host 3`,
      'migrate pre-deploy - host 0', `migrate pre-deploy ${service} host 0`, `migrate post-deploy ${service} app 0`, 'migrate post-deploy - host 0',
    ]);
  });

  test('a failing pre-backup hook fails prepare with HOOK_FAILED (exit 1, not a backup failure): no backup folder, nothing pulled', async () => {
    const flag = join(scratch, 'refuse-backups');
    const guarded = (tag: string) => dockerServiceFiles(service, port, { tag, backup: manifestExtra() })[`packages/${service}/manifest.yaml`]!
      .replace(/  pre-backup: .*\n/, `  pre-backup: ${flow(['sh', '-c', `test ! -f ${flag} || { echo "redis BGSAVE refused" >&2; exit 2; }`])}\n`);
    // The running code's hook is the one that runs before a backup: release it first.
    await platform.mergeFeature('590', { [`packages/${service}/manifest.yaml`]: guarded('1') });
    expect((await platform.run('release-run', ['590'])).exitCode).toBe(0);
    await platform.mergeFeature('600', { [`packages/${service}/manifest.yaml`]: guarded('2') });
    const head = await platform.head();
    rmSync(join(platform.prod, '.asd/workspace/backups', service), { recursive: true, force: true });
    writeFileSync(flag, '');

    const failed = await platform.run('release-run', ['600', '--json']);

    const outcome = failed.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { event: string; fields: Record<string, unknown> }).find((event) => event.event === 'outcome')!;
    expect(outcome.fields).toMatchObject({ reason: 'HOOK_FAILED', phase_failed: 'prepare', exit_code: 1 });
    expect(failed.stderr).toContain(`the pre-backup hook of ${service} exited 2`);
    expect(failed.stderr).toContain('redis BGSAVE refused');
    expect(existsSync(join(platform.prod, '.asd/workspace/backups', service))).toBe(false);
    expect(await platform.head()).toBe(head);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');
  });

  test('a failing post-deploy hook fails migrate after the deploy, which stays; --from=migrate runs only that hook again', async () => {
    const ready = join(scratch, 'ready');
    const files = dockerServiceFiles(service, port, { tag: '2', backup: manifestExtra() });
    const manifest = files[`packages/${service}/manifest.yaml`]!.replace(/  post-deploy: .*\n/, `  post-deploy: ${flow(['sh', '-c', `test -f ${ready} || exit 4`])}\n`);
    await platform.mergeFeature('400', { [`packages/${service}/manifest.yaml`]: manifest });

    const failed = await platform.run('release-run', ['400']);

    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain(`[release-run] error: the post-deploy hook of ${service} exited 4`);
    expect(failed.stderr).toContain('its step was done and is not undone');
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');

    writeFileSync(ready, '');
    const resumed = await platform.run('release-run', ['400', '--from=migrate']);
    expect(resumed.exitCode).toBe(0);
    expect(resumed.stdout).toContain(`redeploy ${service}: done before this resume (APPLIED in the state file), not repeated`);
    expect(loggedHooks('400').filter((line) => line.startsWith('migrate'))).toEqual([
      'migrate pre-deploy - host 0', `migrate pre-deploy ${service} host 0`, `migrate post-deploy ${service} host 4`,
      'migrate pre-deploy - host 0', `migrate post-deploy ${service} host 0`, 'migrate post-deploy - host 0',
    ]);
  });
});
