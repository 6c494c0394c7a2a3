/**
 * `release-run --atomic`: a failure after the pull reverts the release in the same run, under the
 * same lock, on real git, a real engine and a real volume: the data, the code and the service come
 * back as they were, and the outcome says so in words, in the exit code and in --json.
 */
import { execa } from 'execa';
import { createServer, type Server } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ORCHESTRATOR_ROOT, Platform } from './helpers/platform.js';
import { dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';

/** The volume's tree as an operator would compare it: path, mode, link target, content hash. */
async function volumeTree(mount: string): Promise<string> {
  const { stdout } = await execa('sh', ['-c', "find . -printf '%p %m %l\\n' | sort; find . -type f -print0 | sort -z | xargs -0 -r sha256sum"], { cwd: mount });
  return stdout;
}

const ATOMIC_CONFIG = "export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins(), atomic: true });\n";

describe('release-run --atomic', () => {
  let platform: Platform;
  let service: string;
  let port: number;
  let mount: string;
  let base: string;
  let treeBefore: string;
  const backup = () => ['backup:', '  - type: volume', `    volume: ${service}_data`].join('\n');
  /** A ticket script that changes the volume, then exits with `code` (or sleeps first). */
  const script = (code: number, before = '') => ['#!/bin/sh', 'set -e', `cd ${mount}`, 'echo changed > files/a.txt', 'rm latest', 'echo new > files/b.txt', before, `exit ${code}`, ''].join('\n');

  beforeEach(async () => {
    service = uniqueName('atomic');
    port = await freePort();
    platform = await Platform.create([]);
    // The platform makes every release atomic by default; the tests but one still say --atomic.
    await platform.mergeFeature('100', { ...dockerServiceFiles(service, port, { backup: backup() }), 'release.config.ts': ATOMIC_CONFIG });
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(first.all);
    mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', `${service}_data`])).stdout.trim();
    await execa('sh', ['-c', 'mkdir -p files && echo original > files/a.txt && chmod 640 files/a.txt && ln -s files/a.txt latest'], { cwd: mount });
    treeBefore = await volumeTree(mount);
    base = await platform.head();
  });
  afterEach(async () => {
    await removeProjects([service]);
    platform.remove();
  });

  async function expectAsBefore(): Promise<void> {
    expect(await volumeTree(mount)).toBe(treeBefore);
    expect(await platform.git(['rev-parse', 'HEAD^{tree}'])).toBe(await platform.git(['rev-parse', `${base}^{tree}`]));
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');
    const drift = await platform.run('release', [`--service=${service}`]);
    expect(drift.stdout.trim()).toBe('0 actions');
  }

  test('failing in verify: reverted in the same run, data exact, the failure\'s exit 7, and --json says reverted', async () => {
    const files = dockerServiceFiles(service, port, { tag: '2', endpoint: '/nonexistent', timeout: '3s', backup: backup() });
    await platform.mergeFeature('9999', { [`packages/${service}/manifest.yaml`]: files[`packages/${service}/manifest.yaml`]!, 'releases/9999-data.sh': script(0) });

    const result = await platform.run('release-run', ['9999', '--atomic', '--json']);

    expect(result.exitCode).toBe(7);
    expect(result.stderr).toContain('--atomic: reverting release 9999 now');
    expect(result.stderr.trim().split('\n').pop()).toBe('[release-run] release 9999 failed in phase verify, reverted: the data, the code and the services are as they were before it');
    const outcome = JSON.parse(result.stdout.trim().split('\n').pop()!) as { verb: string; event: string; fields: Record<string, unknown> };
    expect(outcome).toMatchObject({ verb: 'release-run', event: 'outcome', fields: { result: 'reverted', atomic: 'reverted', phase_failed: 'verify', exit_code: 7, reason: 'HEALTH_FAILED', next: [] } });
    await expectAsBefore();
    const log = platform.logEvents('9999');
    expect(log).toEqual(expect.arrayContaining([
      'ticket=9999 phase=verify event=failed rc=7 plugin=health-http',
      'ticket=9999 phase=orchestrator event=atomic-revert phase_failed=verify reason=HEALTH_FAILED',
      'ticket=9999 phase=revert-verify event=done rc=0',
      'ticket=9999 phase=orchestrator event=atomic-reverted phase_failed=verify rc=7',
    ]));
    // The lock was this run's throughout: nothing of it is left.
    expect(existsSync(join(platform.prod, '.asd/workspace/release.lock'))).toBe(false);
  });

  test('failing in ticket, atomic by the config\'s default: the script\'s writes are undone, exit 1', async () => {
    await platform.mergeFeature('9998', { [`packages/${service}/manifest.yaml`]: dockerServiceFiles(service, port, { tag: '2', backup: backup() })[`packages/${service}/manifest.yaml`]!, 'releases/9998-data.sh': script(3) });

    const result = await platform.run('release-run', ['9998']);

    expect(result.exitCode).toBe(1);
    expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 9998 failed in phase ticket, reverted: the data, the code and the services are as they were before it');
    await expectAsBefore();
  });

  test('failing in migrate (the new port is taken): the old version is deployed again', async () => {
    const taken = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(taken, '127.0.0.1', resolve));
    try {
      const compose = dockerServiceFiles(service, port)[`packages/${service}/compose.yaml`]!.replace(`"127.0.0.1:${port}:8080"`, `"127.0.0.1:${taken}:8080"`);
      await platform.mergeFeature('9997', { [`packages/${service}/compose.yaml`]: compose });

      const result = await platform.run('release-run', ['9997', '--atomic']);

      expect(result.exitCode).toBe(1);
      expect(result.all).toMatch(/compose up of .* failed/);
      expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 9997 failed in phase migrate, reverted: the data, the code and the services are as they were before it');
      await expectAsBefore();
    } finally {
      blocker.close();
    }
  });

  test('a revert that fails too (its backup damaged): exit 9, the step named, the command to finish printed; it meets the same damaged backup and changes nothing', async () => {
    // The ticket script damages the backup prepare just took, then fails: the revert's check refuses it.
    const backups = join(platform.prod, '.asd/workspace/backups', service);
    const damage = `for f in ${backups}/*/*.tar*; do case "$f" in *.sha256|*.size) ;; *) printf 'x' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null ;; esac; done`;
    const merge = await platform.mergeFeature('9996', { [`packages/${service}/manifest.yaml`]: dockerServiceFiles(service, port, { tag: '2', backup: backup() })[`packages/${service}/manifest.yaml`]!, 'releases/9996-data.sh': script(1, damage) });

    const result = await platform.run('release-run', ['9996', '--atomic', '--json']);

    expect(result.exitCode).toBe(9);
    expect(result.stderr).toContain('[release-run] release 9996 failed in phase ticket, and the revert failed in restore (exit 6): the host is not back where it was');
    expect(result.stderr).toContain('\n  release-revert 9996\n');
    const outcome = JSON.parse(result.stdout.trim().split('\n').pop()!) as { fields: Record<string, unknown> };
    expect(outcome.fields).toMatchObject({ result: 'failed', atomic: 'revert-failed', phase_failed: 'ticket', revert_phase_failed: 'restore', exit_code: 9, reason: 'ATOMIC_REVERT_FAILED', next: ['release-revert 9996'] });
    // Nothing was restored from the damaged backup: the script's writes are still there.
    expect(await volumeTree(mount)).not.toBe(treeBefore);

    // The printed command meets the same damaged backup, and still changes nothing.
    const again = await platform.run('release-revert', ['9996']);
    expect(again.exitCode).toBe(6);
    expect(await platform.head()).toBe(merge);
  });

  test('SIGTERM during an atomic release ends reverted, never half-way (exit 130)', async () => {
    const started = join(platform.root, 'ticket-started');
    await platform.mergeFeature('9995', { [`packages/${service}/manifest.yaml`]: dockerServiceFiles(service, port, { tag: '2', backup: backup() })[`packages/${service}/manifest.yaml`]!, 'releases/9995-data.sh': script(0, `touch ${started}; sleep 30`) });
    const run = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '9995', '--atomic'], { cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false, all: true });
    for (let i = 0; i < 300 && !existsSync(started); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(existsSync(started)).toBe(true);
    run.kill('SIGTERM');
    // A second signal while the revert runs must not cut it short.
    setTimeout(() => run.kill('SIGTERM'), 1500);

    const result = await run;

    expect(result.exitCode).toBe(130);
    expect(String(result.stdout).trim().split('\n').pop()).toBe('[release-run] release 9995 failed in phase ticket, reverted: the data, the code and the services are as they were before it');
    await expectAsBefore();
  });
});
