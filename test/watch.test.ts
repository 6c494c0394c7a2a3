/**
 * The watch window after verify, on a real engine: a service that goes bad after verify passed is
 * seen, and the release reverts itself with its data; a window that stays green ends complete; both
 * are recorded for `release show`.
 */
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ORCHESTRATOR_ROOT, Platform } from './helpers/platform.js';
import { dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';

describe('the watch window', () => {
  let platform: Platform;
  let service: string;
  let port: number;
  let mount: string;
  /** The manifest's backup of the volume and its watch settings. */
  const extra = () => ['backup:', '  - type: volume', `    volume: ${service}_data`, 'watch:', '  interval: 1s', '  failures: 2'].join('\n');

  beforeEach(async () => {
    service = uniqueName('watch');
    port = await freePort();
    platform = await Platform.create([]);
    await platform.mergeFeature('100', dockerServiceFiles(service, port, { backup: extra() }));
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(first.all);
    mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', `${service}_data`])).stdout.trim();
    await execa('sh', ['-c', 'echo original > a.txt'], { cwd: mount });
  });
  afterEach(async () => {
    await removeProjects([service]);
    platform.remove();
  });

  test('a service that goes bad 10 s after verify: the window sees it, and the release reverts itself, data included', async () => {
    const manifest = dockerServiceFiles(service, port, { tag: '2', backup: extra() })[`packages/${service}/manifest.yaml`]!;
    await platform.mergeFeature('9999', { [`packages/${service}/manifest.yaml`]: manifest, 'releases/9999-data.sh': `#!/bin/sh\necho changed > ${mount}/a.txt\n` });
    const run = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '9999', '--watch=60s'], { cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false, all: true });
    const log = join(platform.prod, '.asd/workspace/releases/9999.log');
    for (let i = 0; i < 600 && !(existsSync(log) && readFileSync(log, 'utf8').includes('phase=watch event=start')); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await execa('docker', ['stop', `${service}-app-1`]).catch(() => execa('docker', ['stop', `${service}_app_1`]));

    const result = await run;

    expect(result.exitCode).toBe(7);
    const output = String(result.all);
    expect(output).toMatch(new RegExp(`watch ${service}: GET http://127.0.0.1:${port}/health: failed \\(ECONNREFUSED\\)`));
    expect(output).toContain(`error: watch window: ${service} went bad after verify: 3 failed of`);
    expect(output).toContain('the watch window failed: reverting release 9999 now');
    expect(output.trim().split('\n').pop()).toBe('[release-run] release 9999 failed in phase verify, reverted: the data, the code and the services are as they were before it');
    expect(readFileSync(join(mount, 'a.txt'), 'utf8')).toBe('original\n');
    // The replaced contents were deleted in the background, before the run ended: nothing left beside the volume.
    expect(readdirSync(join(mount, '..'))).toEqual(['_data']);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');

    const show = await platform.run('release', ['show', '9999']);
    expect(show.stdout).toMatch(new RegExp(`watch window of ${service}: failed, \\d+ checks in 1m00s \\(every 1s\\): \\d+ passed, 3 failed, 0 inconclusive, 2 allowed`));
    expect(show.stdout).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/health: fail \(ECONNREFUSED\)/);
  });

  test('a window that stays green: the release completes after it, and release show has its record', async () => {
    const manifest = dockerServiceFiles(service, port, { tag: '2', backup: extra() })[`packages/${service}/manifest.yaml`]!;
    await platform.mergeFeature('9998', { [`packages/${service}/manifest.yaml`]: manifest });

    const started = Date.now();
    const result = await platform.run('release-run', ['9998', '--watch=4s']);

    expect(result.exitCode).toBe(0);
    expect(Date.now() - started).toBeGreaterThan(4000);
    expect(result.stdout).toContain(`watch window passed: ${service} `);
    expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 9998 complete');
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');
    const show = await platform.run('release', ['show', '9998']);
    expect(show.stdout).toMatch(new RegExp(`watch window of ${service}: passed, [45] checks in 4s \\(every 1s\\): [45] passed, 0 failed, 0 inconclusive, 2 allowed`));
  });

  test('a bad --watch is refused before anything runs (exit 2)', async () => {
    const result = await platform.run('release-run', ['9997', '--watch=soon']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe('[release-run] error: --watch=soon is not a duration');
  });
});
