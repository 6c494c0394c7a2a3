/**
 * The swarm runtime on a real single-node swarm (test/infra/ensure-swarm.sh): releases, a bump,
 * a new version whose health check fails (Swarm rolls it back, exit 7, revert restores the data),
 * a kill -9 inside the apply, and images pushed to a real registry and run by digest.
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';
import { httpGet, uniqueName } from '../../test/helpers/docker.js';
import { ensureSwarm, removeStacks, runningTaskImages, specImage, swarmRollingServiceFiles, swarmServiceFiles, TEST_REGISTRY, volumeFiles } from '../../test/helpers/swarm.js';
import { startProbe } from '../../test/helpers/traffic-probe.js';

// This suite's ports (the registry is 19350).
const PORT = { first: 19361, drill: 19363, registry: 19365, rolling: 19369 } as const;

const drift = async (platform: Platform, service: string) => (await platform.run('release', [`--service=${service}`])).stdout.trim();

describe('the swarm runtime on a real single-node swarm', () => {
  let platform: Platform | undefined;
  const stacks: string[] = [];
  beforeAll(ensureSwarm, 60_000);
  afterEach(async () => {
    await removeStacks(stacks.splice(0));
    platform?.remove();
    platform = undefined;
  });

  async function released(port: number, ticket: string, files: (name: string) => Record<string, string>, prefix = 'rosw') {
    const name = uniqueName(prefix);
    stacks.push(name);
    platform = await Platform.create([]);
    await platform.mergeFeature(ticket, files(name));
    const result = await platform.run('release-run', [ticket]);
    return { name, platform, result, url: `http://127.0.0.1:${port}` };
  }

  test('first release deploys the stack; an image bump killed -9 after docker stack deploy finishes with --from=migrate; a deleted service is removed with docker stack rm', async () => {
    const { name, platform, result, url } = await released(PORT.first, '100', (n) => swarmServiceFiles(n, PORT.first));
    expect(`${result.exitCode}\n${result.all}`).toMatch(/^0\n/);
    expect(result.stdout).toContain(`migrate: redeploy ${name}: packages/${name}/compose.yaml changed`);
    expect(result.stdout).toContain(`Creating service ${name}_app`);
    expect(await specImage(name)).toBe('local/testsvc:1');
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(await drift(platform, name)).toBe('0 actions');
    expect(platform.logEvents('100')).toContain(`ticket=100 phase=apply event=redeployed service=${name} image=local/testsvc:1`);

    await platform.mergeFeature('101', { [`packages/${name}/manifest.yaml`]: swarmServiceFiles(name, PORT.first, { tag: '2' })[`packages/${name}/manifest.yaml`]! });
    // kill -9 right after `docker stack deploy`, while Swarm rolls the update on its own.
    const killed = await platform.run('release-run', ['101'], { RELEASE_FAILPOINT: 'swarm-after-stack-deploy' });
    expect(killed.exitCode).not.toBe(0);
    expect(killed.stderr).toContain('failpoint swarm-after-stack-deploy: killing this process');
    expect(killed.stdout).toContain(`Updating service ${name}_app`);

    const bumped = await platform.run('release-run', ['101', '--from=migrate']);

    expect(`${bumped.exitCode}\n${bumped.all}`).toMatch(/^0\n/);
    expect(bumped.stdout.trim().split('\n').pop()).toBe('[release-run] release 101 complete');
    expect(await specImage(name)).toBe('local/testsvc:2');
    expect(await runningTaskImages(name)).toEqual(['local/testsvc:2']);
    expect((await httpGet(`${url}/version`)).body).toBe('2');
    expect(await drift(platform, name)).toBe('0 actions');

    // Changed by hand on the engine: the drift check reads the running spec.
    await execa('docker', ['service', 'update', '--detach', '--image', 'local/testsvc:1', `${name}_app`]);
    const handEdited = await platform.run('release', [`--service=${name}`]);
    expect(handEdited.exitCode).toBe(5);
    expect(handEdited.stdout).toContain(`redeploy ${name}: app: image local/testsvc:1 -> local/testsvc:2`);

    await platform.mergeFeature('102', { [`packages/${name}/manifest.yaml`]: null, [`packages/${name}/compose.yaml`]: null });
    const removed = await platform.run('release-run', ['102']);

    expect(`${removed.exitCode}\n${removed.all}`).toMatch(/^0\n/);
    expect(removed.stdout).toContain(`migrate: remove ${name}: packages/${name}/compose.yaml was deleted`);
    expect((await execa('docker', ['stack', 'ls', '--format', '{{.Name}}'])).stdout.split('\n')).not.toContain(name);
    expect(existsSync(join(platform.prod, `.asd/workspace/runtime/${name}.stack.yaml`))).toBe(false);
    // Five releases and a drift check in one story: on a loaded 2-core machine more than jest's default 120 s.
  }, 240_000);

  test('a new version failing its health check is rolled back by swarm (exit 7, old version serving); release-revert restores the volume data', async () => {
    const backup = (n: string) => `backup:\n  - type: volume\n    volume: ${n}_data\n    consistency: stop`;
    const { name, platform, result, url } = await released(PORT.drill, '200', (n) => swarmServiceFiles(n, PORT.drill, { backup: backup(n) }));
    expect(`${result.exitCode}\n${result.all}`).toMatch(/^0\n/);
    const [task] = (await execa('docker', ['ps', '--quiet', '--filter', `label=com.docker.swarm.service.name=${name}_app`])).stdout.split('\n');
    await execa('docker', ['exec', task!, 'sh', '-c', 'echo before > /data/state']);
    const filesBefore = await volumeFiles(`${name}_data`);
    expect(filesBefore).toBe('./state before');

    // Image 2 with a health check that never passes.
    await platform.mergeFeature('201', swarmServiceFiles(name, PORT.drill, { tag: '2', healthcheckPath: '/nonexistent', backup: backup(name) }));
    const failed = await platform.run('release-run', ['201']);

    expect(failed.exitCode).toBe(7);
    expect(failed.stderr).toMatch(new RegExp(`swarm rolled ${name}_app back to its previous version`));
    expect(failed.stderr).toContain('release-run failed in phase migrate. To roll back:');
    expect(failed.stderr).toContain('  release-revert 201');
    expect(await runningTaskImages(name)).toEqual(['local/testsvc:1']);
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(platform.logEvents('201')).toContain(`ticket=201 phase=apply event=rolled-back service=${name}_app`);
    // The data changes after the backup (as a migration or the old version still serving would change it).
    await execa('docker', ['exec', (await execa('docker', ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${name}_app`])).stdout.split('\n')[0]!, 'sh', '-c', 'echo after > /data/state']);
    expect(await volumeFiles(`${name}_data`)).toBe('./state after');

    const reverted = await platform.run('release-revert', ['201']);

    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
    expect(await volumeFiles(`${name}_data`)).toBe(filesBefore);
    expect(await specImage(name)).toBe('local/testsvc:1');
    expect(await runningTaskImages(name)).toEqual(['local/testsvc:1']);
    expect((await httpGet(`${url}/health`)).status).toBe(200);
    expect(await drift(platform, name)).toBe('0 actions');
    expect(platform.logEvents('201')).toContain(`ticket=201 phase=restore event=restored service=${name} type=volume`);
  });

  test("with swarm the repo's default runtime and a registry: a manifest without runtime: is a stack; its image is pushed and run by digest", async () => {
    const config = `export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ runtime: 'swarm', swarm: { registry: '${TEST_REGISTRY}' } }) });\n`;
    const { name, platform, result, url } = await released(PORT.registry, '400', (n) => {
      const files = swarmServiceFiles(n, PORT.registry, { tag: '2' });
      const manifest = `packages/${n}/manifest.yaml`;
      return { ...files, [manifest]: files[manifest]!.replace('runtime: swarm\n', ''), 'release.config.ts': config };
    });

    expect(`${result.exitCode}\n${result.all}`).toMatch(/^0\n/);
    expect(readFileSync(join(platform.prod, `packages/${name}/manifest.yaml`), 'utf8')).not.toContain('runtime:');
    expect((await execa('docker', ['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${name}`])).stdout).toBe('');
    const manifest = await fetch(`http://${TEST_REGISTRY}/v2/local/testsvc/manifests/2`, {
      method: 'HEAD', headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(manifest.status).toBe(200);
    const digest = manifest.headers.get('docker-content-digest');
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await specImage(name)).toBe(`${TEST_REGISTRY}/local/testsvc@${digest}`);
    expect((await httpGet(`${url}/version`)).body).toBe('2');
    expect(platform.logEvents('400')).toContain(`ticket=400 phase=apply event=pushed image=${TEST_REGISTRY}/local/testsvc@${digest}`);
    expect(await drift(platform, name)).toBe('0 actions');
  });

  test('rolling behind the edge proxy: a start-first image bump under a 20 Hz probe fails no request; drift 0; remove takes the proxy too', async () => {
    const { name, platform, result, url } = await released(PORT.rolling, '500', (n) => swarmRollingServiceFiles(n, PORT.rolling));
    expect(`${result.exitCode}\n${result.all}`).toMatch(/^0\n/);
    expect(result.stdout).toContain(`edge proxy ${name}-edge-proxy listens on 127.0.0.1:${PORT.rolling} for tasks.app`);
    expect(result.stdout).toContain('app: updates start-first, gated on its healthcheck');
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(await drift(platform, name)).toBe('0 actions');
    await platform.mergeFeature('501', { [`packages/${name}/manifest.yaml`]: swarmRollingServiceFiles(name, PORT.rolling, { tag: '2' })[`packages/${name}/manifest.yaml`]! });

    const probe = startProbe(`${url}/version`);
    const bumped = await platform.run('release-run', ['501']);
    const report = await probe.stop();

    expect(`${bumped.exitCode}\n${bumped.all}`).toMatch(/^0\n/);
    expect(report.requests).toBeGreaterThan(20);
    expect(report.failures).toEqual([]); // the first few failed requests, with when and why
    expect((await httpGet(`${url}/version`)).body).toBe('2');
    expect(await runningTaskImages(name)).toEqual(['local/testsvc:2']);
    expect(await drift(platform, name)).toBe('0 actions');

    await execa('docker', ['stop', `${name}-edge-proxy`]);
    expect(await drift(platform, name)).toBe(`redeploy ${name}: edge proxy ${name}-edge-proxy is exited\n1 action`);

    await platform.mergeFeature('502', { [`packages/${name}/manifest.yaml`]: null, [`packages/${name}/compose.yaml`]: null });
    expect((await platform.run('release-run', ['502'])).exitCode).toBe(0);
    expect((await execa('docker', ['ps', '--all', '--quiet', '--filter', `name=^${name}-edge-proxy$`])).stdout).toBe('');
  });
});
