/**
 * `release status` on a real engine: a healthy, a drifted and a stopped service side by side, the
 * exit code a monitor reads, and a release in progress shown by its lock.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ORCHESTRATOR_ROOT, Platform } from './helpers/platform.js';
import { dockerServiceFiles, freePort, removeProjects, testManifest, uniqueName } from './helpers/docker.js';

describe('release status', () => {
  let platform: Platform;
  let names: { healthy: string; drifted: string; stopped: string; gone: string };
  let ports: Record<string, number>;
  beforeAll(async () => {
    names = { healthy: uniqueName('st-ok'), drifted: uniqueName('st-drift'), stopped: uniqueName('st-stop'), gone: uniqueName('st-gone') };
    ports = {};
    const files: Record<string, string> = {};
    for (const name of Object.values(names)) {
      ports[name] = await freePort();
      Object.assign(files, dockerServiceFiles(name, ports[name]!));
    }
    platform = await Platform.create([]);
    await platform.mergeFeature('100', files);
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(first.all);
  });
  afterAll(async () => {
    await removeProjects(Object.values(names));
    platform.remove();
  });

  test('healthy, drifted, stopped, an unknown container and a service HEAD dropped: each said as such, exit 7 for a monitor', async () => {
    // HEAD asks for a new image of one service and drops another, without a release (pulled by hand): drift.
    await platform.mergeFeature('200', {
      [`packages/${names.drifted}/manifest.yaml`]: testManifest(names.drifted, ports[names.drifted]!, { tag: '2' }),
      [`packages/${names.gone}/manifest.yaml`]: null, [`packages/${names.gone}/compose.yaml`]: null,
    });
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await execa('docker', ['stop', `${names.stopped}-app-1`]).catch(() => execa('docker', ['stop', `${names.stopped}_app_1`]));
    // Someone started a container into the healthy service's project by hand.
    await execa('docker', ['run', '--detach', '--name', `${names.healthy}-sidecar`, '--label', `com.docker.compose.project=${names.healthy}`, '--label', 'com.docker.compose.service=sidecar', 'local/testsvc:1']);

    const result = await platform.run('release', ['status']);

    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(7);
    const out = result.stdout;
    expect(out).toContain(`${names.healthy} (compose): running, healthy, in sync`);
    expect(out).toMatch(new RegExp(`  ${names.healthy}[-_]app[-_]1  local/testsvc:1 \\(sha256:[0-9a-f]{12}\\)  running\n`));
    expect(out).toMatch(new RegExp(`  ${names.healthy}-sidecar  local/testsvc:1 \\(sha256:[0-9a-f]{12}\\)  running  \\(unknown: compose service sidecar is not in packages/${names.healthy}/compose.yaml\\)`));
    expect(out).toContain(`${names.gone} (not in HEAD): 1 container(s) or service(s) still run, no health check, drift: 1 action(s)`);
    expect(out).toContain(`  drift: remove ${names.gone}: not in HEAD, but 1 container(s) remain`);
    expect(out).toContain(`${names.drifted} (compose): running, healthy, drift: 1 action(s)`);
    expect(out).toContain(`  drift: redeploy ${names.drifted}: app: image local/testsvc:1 -> local/testsvc:2`);
    expect(out).toContain(`  see it with: release --service=${names.drifted}`);
    expect(out).toContain(`${names.stopped} (compose): not running as it should, unhealthy, drift: 1 action(s)`);
    expect(out).toMatch(new RegExp(`  health: GET http://127\\.0\\.0\\.1:${ports[names.stopped]}/health: ECONNREFUSED`));
    expect(out).toMatch(/  last: release-run 100 complete, ended \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(MERGE_SHA [0-9a-f]{12}\)/);
    expect(out.trim().split('\n').pop()).toBe(`4 service(s): 1 not well (${names.stopped}), 3 with drift (${[names.drifted, names.stopped, names.gone].join(', ')})`);

    const json = await platform.run('release', ['status', `--service=${names.drifted}`, '--json']);
    expect(json.exitCode).toBe(5);
    const events = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as { event: string; fields: Record<string, unknown> });
    expect(events.find((event) => event.event === 'service')!.fields).toMatchObject({ service: names.drifted, health: 'healthy', drift: 1, running_ok: true, ok: false });
    expect(events.at(-1)!.fields).toMatchObject({ exit_code: 5, drifted: [names.drifted], unhealthy: [] });

    const healthy = await platform.run('release', ['status', `--service=${names.healthy}`]);
    expect(healthy.exitCode).toBe(0);
    expect(healthy.stdout.trim().split('\n').pop()).toBe('1 service(s): all running, healthy and in sync');
  });

  test('during a release: the lock holder, its ticket and its phase', async () => {
    const started = join(platform.root, 'ticket-started');
    await platform.mergeFeature('300', { 'releases/300-wait.sh': `#!/bin/sh\ntouch ${started}\nsleep 8\n` });
    const release = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '300'], { cwd: platform.prod, env: { NO_COLOR: '1' }, reject: false });
    for (let i = 0; i < 300 && !existsSync(started); i++) await new Promise((resolve) => setTimeout(resolve, 100));

    const result = await platform.run('release', ['status', `--service=${names.healthy}`]);

    expect(result.stdout.split('\n')[0]).toMatch(/^release in progress: ticket 300 \(pid \d+ on \S+, since \S+\), in phase ticket$/);
    await release;
  });
});
