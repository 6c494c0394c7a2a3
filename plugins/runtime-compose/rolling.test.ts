import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleaseError } from '../../core/index.js';
import { Platform } from '../../test/helpers/platform.js';
import { containerNames, containersOf, dockerServiceFiles, httpGet, removeProjects, TEST_IMAGE, uniqueName } from '../../test/helpers/docker.js';
import { startProbe } from '../../test/helpers/traffic-probe.js';
import { parseComposeFile } from '../platform/compose-file.js';
import { parseManifest } from '../platform/manifest.js';
import { proxyName } from '../../shared/edge-proxy/index.js';
import { rollingSettings } from './rolling.js';
import { rollingServiceFiles } from '../../test/helpers/rolling.js';

/** The running containers of the service's compose service `app`, with their images. */
async function appContainers(service: string) {
  return (await containersOf(service)).map(({ image, state }) => `${image} ${state}`).sort();
}

describe('rolling settings (bad input)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roro-rolling-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const settingsOf = (manifest: string, compose: string) => {
    mkdirSync(join(dir, 'packages/web'), { recursive: true });
    writeFileSync(join(dir, 'packages/web/compose.yaml'), compose);
    return rollingSettings('web', parseManifest(manifest, 'packages/web/manifest.yaml', 'web'), compose, parseComposeFile(compose, 'packages/web/compose.yaml'));
  };
  const files = rollingServiceFiles('web', 19309);

  test('defaults: the ${IMAGE} service, the health URL as the listen address, the health endpoint as the check', () => {
    const settings = settingsOf(files['packages/web/manifest.yaml']!, files['packages/web/compose.yaml']!);
    expect(settings).toEqual({
      target: 'app', timeoutMs: 20_000, drainMs: 5_000,
      proxy: { name: 'web-edge-proxy', owner: 'web', network: 'web_default', backendHost: 'app', backendPort: 8080, checkPath: '/health', listen: { host: '127.0.0.1', port: 19309 } },
    });
    expect(settingsOf('name: web\nimage: a/b:1\n', files['packages/web/compose.yaml']!)).toBeUndefined();
  });

  test('a published port on the rolled service is refused, naming the key and the fix', () => {
    const compose = 'services:\n  app:\n    image: ${IMAGE}\n    ports:\n      - "127.0.0.1:19309:8080"\n';
    let error: unknown;
    try { settingsOf(files['packages/web/manifest.yaml']!, compose); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(ReleaseError);
    expect((error as ReleaseError).exitCode).toBe(2);
    expect((error as ReleaseError).message).toBe('packages/web/compose.yaml: services.app.ports: not possible with a rolling deploy (two containers run side by side)');
  });

  test('prepare refuses a rolling service with a published port: exit 2, nothing changed', async () => {
    const platform = await Platform.create([]);
    try {
      const before = await platform.head();
      const service = rollingServiceFiles('roro-bad', 19309);
      await platform.mergeFeature('800', {
        ...service,
        'packages/roro-bad/compose.yaml': service['packages/roro-bad/compose.yaml']!.replace('    image: ${IMAGE}\n', '    image: ${IMAGE}\n    ports:\n      - "127.0.0.1:19309:8080"\n'),
      });

      const result = await platform.run('release-run', ['800']);

      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('packages/roro-bad/compose.yaml: services.app.ports: not possible with a rolling deploy (two containers run side by side); nothing was changed');
      expect(result.stderr).not.toContain('release-revert');
      expect(await platform.head()).toBe(before);
      expect(await containersOf('roro-bad')).toEqual([]);
    } finally {
      platform.remove();
    }
  });

  test('an unknown strategy names the manifest key', () => {
    expect(() => parseManifest('name: web\ndeploy:\n  strategy: blue-green\n', 'packages/web/manifest.yaml', 'web')).toThrow(/packages\/web\/manifest\.yaml.*deploy/);
  });
});

describe('zero-downtime releases on a real Docker engine', () => {
  const projects: string[] = [];
  const platforms: Platform[] = [];
  afterEach(async () => {
    for (const project of projects.splice(0)) {
      await execa('docker', ['rm', '--force', proxyName(project)], { reject: false });
      await removeProjects([project]);
    }
    for (const platform of platforms.splice(0)) platform.remove();
  });

  async function deployed(files: (name: string, port: number) => Record<string, string>, port: number) {
    const name = uniqueName('roro-web');
    projects.push(name);
    const platform = await Platform.create([]);
    platforms.push(platform);
    await platform.mergeFeature('100', files(name, port));
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(`initial deploy failed:\n${first.all}`);
    return { platform, name, url: `http://127.0.0.1:${port}` };
  }

  test('an image bump of a rolling service: a 20 Hz probe through the proxy sees no failed request; drift 0', async () => {
    const { platform, name, url } = await deployed((n, p) => rollingServiceFiles(n, p), 19310);
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    await platform.mergeFeature('200', { [`packages/${name}/manifest.yaml`]: rollingServiceFiles(name, 19310, { tag: '2' })[`packages/${name}/manifest.yaml`]! });

    const probe = startProbe(`${url}/version`);
    const result = await platform.run('release-run', ['200']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const report = await probe.stop();

    expect(result.exitCode).toBe(0);
    expect(report.failures).toEqual([]);
    expect(report.requests).toBeGreaterThan(20);
    expect(report.bodies).toEqual(['1', '2']);
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:2 running`]);
    expect(platform.logEvents('200')).toContain(`ticket=200 phase=apply event=rolled service=${name} image=${TEST_IMAGE}:2 replaced=1`);
    const drift = await platform.run('release', [`--service=${name}`]);
    expect(drift.stdout.trim()).toBe('0 actions');
    expect(drift.exitCode).toBe(0);

    // The proxy is part of what the drift check looks at.
    await execa('docker', ['stop', proxyName(name)]);
    const stopped = await platform.run('release', [`--service=${name}`]);
    expect(stopped.exitCode).toBe(5);
    expect(stopped.stdout).toContain(`redeploy ${name}: edge proxy ${proxyName(name)} is exited`);
  });

  test('the same probe sees the outage of a default (recreate) compose redeploy', async () => {
    const { platform, name, url } = await deployed((n, p) => dockerServiceFiles(n, p), 19311);
    await platform.mergeFeature('200', { [`packages/${name}/manifest.yaml`]: dockerServiceFiles(name, 19311, { tag: '2' })[`packages/${name}/manifest.yaml`]! });

    const probe = startProbe(`${url}/version`);
    const result = await platform.run('release-run', ['200']);
    const report = await probe.stop();

    expect(result.exitCode).toBe(0);
    expect(report.bodies).toEqual(['1', '2']);
    // Between the old container's stop and the new one's start nothing listens.
    expect(report.failed > 0 || report.longestGapMs >= 500).toBe(true);

    // The service switches to rolling: its containers give the port to the proxy (one last outage).
    await platform.mergeFeature('300', rollingServiceFiles(name, 19311, { tag: '1' }));
    const [serving] = await containerNames(name, 'app');
    const switched = await platform.run('release-run', ['300']);
    expect(switched.exitCode).toBe(0);
    expect(switched.stdout).toContain(`switching ${name} to rolling releases: ${serving} stop(s) before the edge proxy takes 127.0.0.1:19311`);
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:1 running`]);
    expect((await platform.run('release', [`--service=${name}`])).stdout.trim()).toBe('0 actions');
  });

  test('a new container failing its health check: exit 7, the old one keeps serving through it all, revert works', async () => {
    const { platform, name, url } = await deployed((n, p) => rollingServiceFiles(n, p), 19312);
    const broken = rollingServiceFiles(name, 19312, { tag: '2', timeout: '4s', command: 'httpd -f -p 9999 -h /www' });
    await platform.mergeFeature('300', broken);

    const serving = await containerNames(name, 'app');
    const probe = startProbe(`${url}/version`);
    const failed = await platform.run('release-run', ['300']);
    const report = await probe.stop();

    expect(failed.exitCode).toBe(7);
    const message = new RegExp(`rolling update of ${name}: the new container (\\S+) did not pass the health check /health in \\d+\\.\\ds \\(health check of [0-9.]+:8080/health failing\\); it was removed, (\\S+) still serve\\(s\\)`).exec(failed.stderr);
    expect(message).not.toBeNull();
    expect(serving).toEqual([message![2]]);
    expect(serving).not.toContain(message![1]);
    expect(await containerNames(name, 'app')).toEqual(serving);
    expect(failed.stderr).toContain('  release-revert 300');
    expect(report.failures).toEqual([]); // the first few failed requests, with when and why
    expect(report.bodies).toEqual(['1']);
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:1 running`]);

    const reverted = await platform.run('release-revert', ['300']);

    expect(reverted.exitCode).toBe(0);
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:1 running`]);
    expect((await platform.run('release', [`--service=${name}`])).stdout.trim()).toBe('0 actions');
  });

  test('a release killed mid-rollout (both versions serving) is drift; --from=migrate finishes it, still without a failed request', async () => {
    const { platform, name, url } = await deployed((n, p) => rollingServiceFiles(n, p), 19313);
    await platform.mergeFeature('400', { [`packages/${name}/manifest.yaml`]: rollingServiceFiles(name, 19313, { tag: '2' })[`packages/${name}/manifest.yaml`]! });

    const probe = startProbe(`${url}/version`);
    const killed = await platform.run('release-run', ['400'], { RELEASE_FAILPOINT: `mid-rollout-${name}` });
    expect(killed.exitCode).not.toBe(0);
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:1 running`, `${TEST_IMAGE}:2 running`]);
    const drift = await platform.run('release', [`--service=${name}`]);
    expect(drift.exitCode).toBe(5);
    expect(drift.stdout).toContain(`redeploy ${name}: app: image ${TEST_IMAGE}:1 -> ${TEST_IMAGE}:2`);

    const resumed = await platform.run('release-run', ['400', '--from=migrate']);
    const report = await probe.stop();

    expect(resumed.exitCode).toBe(0);
    expect(report.failures).toEqual([]);
    expect(report.bodies).toEqual(['1', '2']);
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:2 running`]);
    expect((await platform.run('release', [`--service=${name}`])).stdout.trim()).toBe('0 actions');
  });

  test('a changed mounted file of a rolling service is rolled too: new content, no failed request', async () => {
    const withMount = (n: string, p: number) => {
      const files = rollingServiceFiles(n, p);
      const compose = `packages/${n}/compose.yaml`;
      return { ...files, [compose]: files[compose]!.replace('      - data:/data\n', '      - data:/data\n      - ./site.txt:/www/site.txt:ro\n'), [`packages/${n}/site.txt`]: 'one' };
    };
    const { platform, name, url } = await deployed(withMount, 19314);
    expect((await httpGet(`${url}/site.txt`)).body).toBe('one');
    await platform.mergeFeature('500', { [`packages/${name}/site.txt`]: 'two' });

    const probe = startProbe(`${url}/site.txt`);
    const result = await platform.run('release-run', ['500']);
    const report = await probe.stop();

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`recreate ${name}`);
    expect(report.failures).toEqual([]);
    expect(report.bodies).toEqual(['one', 'two']);
    expect(await appContainers(name)).toEqual([`${TEST_IMAGE}:1 running`]);
    expect((await platform.run('release', [`--service=${name}`])).stdout.trim()).toBe('0 actions');
  });
});
