import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';
import { testContext } from '../../test/helpers/context.js';
import { defaultPlugins } from '../../release.config.js';
import { composeCommand, containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from '../../test/helpers/docker.js';

/** A platform whose first release (ticket 100) deployed `web` (and `other`) on the test image :1. */
async function deployedPlatform() {
  const web = uniqueName('web');
  const other = uniqueName('other');
  const webPort = await freePort();
  const otherPort = await freePort();
  const platform = await Platform.create([]);
  await platform.mergeFeature('100', { ...dockerServiceFiles(web, webPort), ...dockerServiceFiles(other, otherPort) });
  const first = await platform.run('release-run', ['100']);
  if (first.exitCode !== 0) throw new Error(`initial deploy failed:\n${first.all}`);
  return { platform, web, other, webUrl: `http://127.0.0.1:${webPort}`, webPort };
}

describe('the compose runtime on a real Docker engine', () => {
  let ctx: Awaited<ReturnType<typeof deployedPlatform>>;
  beforeEach(async () => { ctx = await deployedPlatform(); });
  afterEach(async () => {
    await removeProjects([ctx.web, ctx.other]);
    ctx.platform.remove();
  });

  test('execIn runs in the container it found before, and finds the new one once that container was replaced behind its back', async () => {
    const { platform, web } = ctx;
    const { context } = testContext(defaultPlugins(), { repoDir: platform.prod });
    const hostname = async () => {
      const result = await context.hooks.execIn.promise({ service: web, target: 'app', argv: ['hostname'] }, context);
      expect(result?.exitCode).toBe(0);
      return result!.stdout.trim();
    };
    const first = await hostname();
    expect(await hostname()).toBe(first);
    // Someone recreates the container by hand: the remembered one is gone.
    await execa(composeCommand()[0], [...composeCommand().slice(1), '-p', web, '-f', join(platform.prod, 'packages', web, 'compose.yaml'), 'up', '-d', '--force-recreate'], { env: { IMAGE: 'local/testsvc:1' } });
    const [replaced] = await containersOf(web);
    expect(await hostname()).toBe(replaced!.id.slice(0, 12));
    expect(first).not.toBe(replaced!.id.slice(0, 12));
  });

  test("the runbook's release: ticket 1234 bumps web's image tag; only web is redeployed", async () => {
    const { platform, web, other, webUrl, webPort } = ctx;
    expect((await httpGet(`${webUrl}/version`)).body).toBe('1');
    const otherBefore = await containersOf(other);
    const base = await platform.head();
    const merge = await platform.mergeFeature('1234', { [`packages/${web}/manifest.yaml`]: dockerServiceFiles(web, webPort, { tag: '2' })[`packages/${web}/manifest.yaml`]! });

    const result = await platform.run('release-run', ['1234']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 1234 complete');
    expect((await httpGet(`${webUrl}/version`)).body).toBe('2');
    expect(await containersOf(other)).toEqual(otherBefore);
    const drift = await platform.run('release', [`--service=${web}`]);
    expect(drift.exitCode).toBe(0);
    expect(drift.stdout.trim()).toBe('0 actions');
    expect(platform.readState('1234')).toEqual({
      TICKET: '1234', BRANCH: 'main', BASE_SHA: base, MERGE_SHA: merge, SERVICES: web, SKIPPED_METADATA: '', BACKUPS: '',
    });
    const events = platform.logEvents('1234');
    expect(events).toEqual(expect.arrayContaining([
      'ticket=1234 phase=prepare event=done rc=0',
      `ticket=1234 phase=apply event=redeployed service=${web} image=local/testsvc:2`,
      'ticket=1234 phase=migrate event=done rc=0',
      'ticket=1234 phase=ticket event=skipped-no-script',
      expect.stringMatching(new RegExp(`^ticket=1234 phase=probe event=healthy service=${web} `)),
      'ticket=1234 phase=verify event=done rc=0',
    ]));
    expect(events[events.length - 1]).toBe('ticket=1234 phase=orchestrator event=done rc=0');
    const script = readFileSync(join(platform.prod, '.asd/workspace/release/migrate.sh'), 'utf8');
    expect(script).toContain(`migrate_${web}() {`);
    expect(script).not.toContain(`migrate_${other}() {`);
  });

  test('--dry-run prints the exact compose command of each action; pasted into a shell, it deploys what the release would', async () => {
    const { platform, web, webUrl, webPort } = ctx;
    await platform.mergeFeature('1240', { [`packages/${web}/manifest.yaml`]: dockerServiceFiles(web, webPort, { tag: '2' })[`packages/${web}/manifest.yaml`]! });

    const preview = await platform.run('release-run', ['1240', '--dry-run']);

    expect(preview.exitCode).toBe(0);
    const file = join(platform.prod, `packages/${web}/compose.yaml`);
    // The image of the merge the dry run previews, not of HEAD (a dry run does not pull).
    const expected = `IMAGE=local/testsvc:2 ${composeCommand().join(' ')} --project-name ${web} --file ${file} up -d --remove-orphans`;
    const printed = preview.stdout.split('\n').map((line) => line.trim());
    expect(printed).toContain(expected);
    expect(printed.indexOf(expected)).toBeGreaterThan(printed.findIndex((line) => line.includes(`would redeploy ${web}`)));
    expect((await httpGet(`${webUrl}/version`)).body).toBe('1');
    const pullFirst = /the commands under each action run after the pull \((git merge --ff-only [0-9a-f]{12})\)/.exec(preview.stdout);
    expect(pullFirst).not.toBeNull();

    // As the preview says: the pull, then the printed command.
    await execa('sh', ['-c', `git fetch -q origin && ${pullFirst![1]} && ${expected}`], { cwd: platform.prod });
    expect((await httpGet(`${webUrl}/version`)).body).toBe('2');
  });

  test('an image tag in the project .env (image: ...:${TAG}): a bump redeploys; the drift check compares the rendered image', async () => {
    const { platform } = ctx;
    const tagged = uniqueName('tagged');
    const port = await freePort();
    const files = dockerServiceFiles(tagged, port);
    const compose = files[`packages/${tagged}/compose.yaml`]!.replace('image: ${IMAGE}', 'image: local/testsvc:${TAG}');
    const manifest = files[`packages/${tagged}/manifest.yaml`]!.replace(/^image: .*\n/m, '');
    try {
      await platform.mergeFeature('600', { [`packages/${tagged}/manifest.yaml`]: manifest, [`packages/${tagged}/compose.yaml`]: compose, [`packages/${tagged}/.env`]: '# the version we run\nTAG=1\n' });
      expect((await platform.run('release-run', ['600'])).exitCode).toBe(0);
      expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');

      await platform.mergeFeature('601', { [`packages/${tagged}/.env`]: '# the version we run\nTAG=2\n' });
      const bumped = await platform.run('release-run', ['601']);

      expect(bumped.exitCode).toBe(0);
      expect(bumped.stdout).toContain(`packages/${tagged}/.env: compose-env (service-files)`);
      expect(bumped.stdout).toMatch(new RegExp(`migrate: redeploy ${tagged}: packages/${tagged}/.env changed: compose substitutes its variables`));
      expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');
      expect((await platform.run('release', [`--service=${tagged}`])).stdout.trim()).toBe('0 actions');

      // Someone runs the old tag by hand: the drift check sees the rendered image differ.
      const [composeBin, ...prefix] = composeCommand();
      await execa(composeBin, [...prefix, '--project-name', tagged, '--file', join(platform.prod, `packages/${tagged}/compose.yaml`), 'up', '-d'], { env: { TAG: '1' } });
      const drift = await platform.run('release', [`--service=${tagged}`]);
      expect(drift.exitCode).toBe(5);
      expect(drift.stdout).toContain(`redeploy ${tagged}: app: image local/testsvc:1 -> local/testsvc:2`);
    } finally {
      await removeProjects([tagged]);
    }
  });

  test('a service deleted from HEAD: its containers and every network compose made for it go, found by label; its volume stays', async () => {
    const { platform, other } = ctx;
    const byLabel = async (kind: 'network' | 'volume') => (await execa('docker', [kind, 'ls', '--quiet', '--filter', `label=com.docker.compose.project=${other}`])).stdout.split('\n').filter(Boolean);
    expect(await byLabel('network')).toHaveLength(1);

    await platform.mergeFeature('500', { [`packages/${other}/manifest.yaml`]: null, [`packages/${other}/compose.yaml`]: null });
    const result = await platform.run('release-run', ['500']);

    expect(result.exitCode).toBe(0);
    expect(await containersOf(other)).toEqual([]);
    expect(await byLabel('network')).toEqual([]);
    expect(await byLabel('volume')).toHaveLength(1);
    expect(platform.logEvents('500')).toContain(`ticket=500 phase=apply event=removed service=${other} containers=1`);
  });

  test("the runbook's failure drill: /nonexistent fails verify with exit 7; release-revert puts the old image back", async () => {
    const { platform, web, webUrl, webPort } = ctx;
    await platform.mergeFeature('9999', {
      [`packages/${web}/manifest.yaml`]: dockerServiceFiles(web, webPort, { tag: '2', endpoint: '/nonexistent', timeout: '3s' })[`packages/${web}/manifest.yaml`]!,
    });

    const failed = await platform.run('release-run', ['9999']);

    expect(failed.exitCode).toBe(7);
    expect(failed.stderr).toMatch(new RegExp(`health probe of ${web} failed: GET ${webUrl}/nonexistent last answered HTTP 404 after \\d+\\.\\ds of trying`));
    expect(failed.stderr).toContain('release-run failed in phase verify. To roll back:');
    expect(failed.stderr).toContain('  release-revert 9999');

    const reverted = await platform.run('release-revert', ['9999']);

    expect(reverted.exitCode).toBe(0);
    expect((await httpGet(`${webUrl}/version`)).body).toBe('1');
    expect((await httpGet(`${webUrl}/health`)).status).toBe(200);
    expect((await platform.run('release', [`--service=${web}`])).stdout.trim()).toBe('0 actions');
  });

  test('a container stopped by hand is drift; release-revert-free recovery is a redeploy', async () => {
    const { platform, web } = ctx;
    const [container] = await containersOf(web);
    await execa('docker', ['stop', container!.id]);

    const drift = await platform.run('release', [`--service=${web}`]);

    expect(drift.exitCode).toBe(5);
    expect(drift.stdout).toMatch(new RegExp(`^redeploy ${web}: not running: .* is exited`, 'm'));
    expect(drift.stdout.trim().split('\n').pop()).toBe('1 action');
  });

  test('an up killed between removing the old container and renaming the new one (`<id>_name` left): the next release and the drift check still converge', async () => {
    const { platform, web, webUrl, webPort } = ctx;
    const [container] = await containersOf(web);
    // What compose leaves when killed there: the project's only container under its temporary name.
    const name = (await execa('docker', ['inspect', '-f', '{{.Name}}', container!.id])).stdout.trim().replace(/^\//, '');
    await execa('docker', ['rename', container!.id, `${container!.id.slice(0, 12)}_${name}`]);
    await platform.mergeFeature('1240', { [`packages/${web}/manifest.yaml`]: dockerServiceFiles(web, webPort, { tag: '2' })[`packages/${web}/manifest.yaml`]! });

    const released = await platform.run('release-run', ['1240']);

    expect(`${released.exitCode}\n${released.all}`).toMatch(/^0\n/);
    expect((await httpGet(`${webUrl}/version`)).body).toBe('2');
    const names = (await execa('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${web}`, '--format', '{{.Names}}'])).stdout.trim().split('\n');
    expect(names).toEqual([name]);
    expect((await platform.run('release', [`--service=${web}`])).stdout.trim()).toBe('0 actions');
  });

  test('a compose file edited by hand since the last apply is drift', async () => {
    const { platform, web } = ctx;
    platform.write(platform.prod, { [`packages/${web}/compose.yaml`]: readFileSync(join(platform.prod, `packages/${web}/compose.yaml`), 'utf8') + '# edited\n' });
    const drift = await platform.run('release', [`--service=${web}`]);
    expect(drift.exitCode).toBe(5);
    expect(drift.stdout).toContain(`changed since the last apply`);
  });

  test('an unclassified file fails migrate with exit 5 and touches no service', async () => {
    const { platform, web, webPort } = ctx;
    const before = await containersOf(web);
    await platform.mergeFeature('5000', {
      [`packages/${web}/src/app.js`]: 'console.log(1)\n',
      'tools/helper.py': 'print(1)\n',
      Makefile: 'all:\n',
      [`packages/${web}/manifest.yaml`]: dockerServiceFiles(web, webPort, { tag: '2' })[`packages/${web}/manifest.yaml`]!,
    });

    const result = await platform.run('release-run', ['5000']);

    expect(result.exitCode).toBe(5);
    expect(result.stderr).toMatch(/2 changed file\(s\) match no classifier rule; no service was touched/);
    const report = result.stderr;
    expect(report).not.toMatch(new RegExp(`^ {2}packages/${web}/src/app.js$`, 'm'));
    expect(report).toMatch(/^ {2}tools\/helper.py$/m);
    expect(report).toMatch(/^ {2}Makefile$/m);
    expect(report).toContain('rules in force, in order:');
    expect(report).toContain('service-files (packages/<svc>/**, roles from packages/<svc>/compose.yaml)');
    expect(report).toContain('release-config (release.config.ts release/** justfile .justfile Justfile)');
    expect(await containersOf(web)).toEqual(before);
  });

  test('a deleted service is stopped and removed, not redeployed; its drift check is clean', async () => {
    const { platform, other } = ctx;
    await platform.mergeFeature('6000', {
      [`packages/${other}/manifest.yaml`]: null,
      [`packages/${other}/compose.yaml`]: null,
    });

    const result = await platform.run('release-run', ['6000']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`remove ${other}`);
    expect(await containersOf(other)).toEqual([]);
    expect(existsSync(join(platform.prod, `.asd/workspace/runtime/${other}.applied`))).toBe(false);
  });
});
