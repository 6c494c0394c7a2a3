import { execa } from 'execa';
import { Platform } from '../../test/helpers/platform.js';
import { containersOf, freePort, httpGet, removeProjects, uniqueName } from '../../test/helpers/docker.js';

/**
 * A service that builds its image (a Dockerfile FROM the local test image, COPYing a file it
 * serves), bind-mounts a page and reads an env_file, released and reverted on a real engine.
 */
function buildService(name: string, port: number): Record<string, string> {
  return {
    [`packages/${name}/manifest.yaml`]: `name: ${name}\nhealth:\n  url: http://127.0.0.1:${port}\n  endpoint: /health\n  timeout: 20s\n`,
    [`packages/${name}/compose.yaml`]: [
      'services:',
      '  app:',
      '    image: ${IMAGE}',
      '    build: ./app',
      `    ports: ["127.0.0.1:${port}:8080"]`,
      '    env_file: app.env',
      '    volumes:',
      '      - ./conf/page.txt:/www/page:ro',
      '',
    ].join('\n'),
    [`packages/${name}/app/Dockerfile`]: 'FROM local/testsvc:1\nCOPY content.txt /www/content\n',
    [`packages/${name}/app/content.txt`]: 'v1',
    [`packages/${name}/conf/page.txt`]: 'p1',
    [`packages/${name}/app.env`]: 'GREETING=hello\n',
    [`packages/${name}/README.md`]: `# ${name}\n`,
  };
}

async function greeting(project: string): Promise<string> {
  const [container] = (await containersOf(project)).filter((c) => c.state === 'running');
  const result = await execa('docker', ['exec', container!.id, 'sh', '-c', 'echo "$GREETING"']);
  return result.stdout.trim();
}

/** The containers of `project` the engine created since `since` (ms; to the millisecond, as the first deploy of beforeEach may create its container in the same second), by its event log. */
async function createdSince(project: string, since: number): Promise<string[]> {
  const until = Math.ceil(Date.now() / 1000) + 1;
  const { stdout } = await execa('docker', ['events', '--since', (since / 1000).toFixed(3), '--until', String(until), '--filter', 'type=container', '--filter', 'event=create',
    '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Actor.Attributes.name}}']);
  return stdout.split('\n').filter(Boolean);
}

describe('build and recreate on a real Docker engine', () => {
  let platform: Platform;
  let svc: string;
  let url: string;
  const builtImages: string[] = [];

  beforeEach(async () => {
    svc = uniqueName('site');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    platform = await Platform.create([]);
    await platform.mergeFeature('100', buildService(svc, port));
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(`initial deploy failed:\n${first.all}`);
  });
  afterEach(async () => {
    await removeProjects([svc]);
    const images = await execa('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', `local/${svc}`]);
    builtImages.push(...images.stdout.split('\n').filter(Boolean));
    if (builtImages.length > 0) await execa('docker', ['rmi', '--force', ...builtImages], { reject: false });
    builtImages.length = 0;
    platform.remove();
  });

  test('a changed file of the build context is built and redeployed; revert brings the old image back without a rebuild', async () => {
    expect((await httpGet(`${url}/content`)).body).toBe('v1');
    await platform.mergeFeature('101', { [`packages/${svc}/app/content.txt`]: 'v2', [`packages/${svc}/README.md`]: '# new docs\n' });

    const released = await platform.run('release-run', ['101']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain(`packages/${svc}/app/content.txt: build-context (service-files)`);
    expect(released.stdout).toContain(`packages/${svc}/README.md: service-file (service-files)`);
    expect(released.stdout).toMatch(new RegExp(`migrate: build ${svc} \\(app\\): `));
    expect(released.stdout).toMatch(new RegExp(`migrate: redeploy ${svc}: `));
    expect((await httpGet(`${url}/content`)).body).toBe('v2');
    expect((await platform.run('release', [`--service=${svc}`])).stdout.trim()).toBe('0 actions');

    const reverted = await platform.run('release-revert', ['101']);

    expect(reverted.exitCode).toBe(0);
    expect(reverted.stdout).toMatch(new RegExp(`redeploy: build ${svc}: its build context changed since the last apply`));
    expect(platform.logEvents('101')).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`phase=apply event=build-reused service=${svc} image=local/${svc}:[0-9a-f]{12}`))]));
    expect((await httpGet(`${url}/content`)).body).toBe('v1');
    expect((await platform.run('release', [`--service=${svc}`])).stdout.trim()).toBe('0 actions');
  });

  test('a changed mounted file and env_file recreate the container, which sees both; revert puts both back', async () => {
    expect((await httpGet(`${url}/page`)).body).toBe('p1');
    expect(await greeting(svc)).toBe('hello');
    const [before] = await containersOf(svc);
    await platform.mergeFeature('102', { [`packages/${svc}/conf/page.txt`]: 'p2', [`packages/${svc}/app.env`]: 'GREETING=bye\n' });

    const released = await platform.run('release-run', ['102']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain(`packages/${svc}/conf/page.txt: mounted-config (service-files)`);
    expect(released.stdout).toContain(`packages/${svc}/app.env: mounted-config (service-files)`);
    expect(released.stdout).toMatch(new RegExp(`migrate: recreate ${svc} \\(app\\): `));
    expect(released.stdout).not.toMatch(/migrate: (build|redeploy) /);
    const [after] = await containersOf(svc);
    expect(after!.id).not.toBe(before!.id);
    expect((await httpGet(`${url}/page`)).body).toBe('p2');
    expect(await greeting(svc)).toBe('bye');
    expect((await platform.run('release', [`--service=${svc}`])).stdout.trim()).toBe('0 actions');

    const reverted = await platform.run('release-revert', ['102']);

    expect(reverted.exitCode).toBe(0);
    expect(reverted.stdout).toContain(`redeploy: recreate ${svc}: a mounted file changed since the last apply`);
    expect((await httpGet(`${url}/page`)).body).toBe('p1');
    expect(await greeting(svc)).toBe('hello');
  });

  test('one replacement per container: a compose file and a mounted file changed together are one redeploy; a first deploy creates each container once', async () => {
    const since = Date.now();
    const compose = buildService(svc, Number(new URL(url).port))[`packages/${svc}/compose.yaml`]!;
    await platform.mergeFeature('105', {
      [`packages/${svc}/compose.yaml`]: compose.replace('    env_file: app.env\n', '    env_file: app.env\n    environment:\n      EXTRA: "1"\n'),
      [`packages/${svc}/conf/page.txt`]: 'p3',
    });

    const released = await platform.run('release-run', ['105']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toMatch(new RegExp(`migrate: redeploy ${svc}, recreating app: packages/${svc}/compose.yaml changed; packages/${svc}/conf/page.txt is mounted by app`));
    expect(released.stdout).not.toMatch(/migrate: recreate /);
    expect(await createdSince(svc, since)).toHaveLength(1);
    expect((await httpGet(`${url}/page`)).body).toBe('p3');
    const [container] = await containersOf(svc);
    expect((await execa('docker', ['exec', container!.id, 'sh', '-c', 'echo "$EXTRA"'])).stdout.trim()).toBe('1');
    expect((await platform.run('release', [`--service=${svc}`])).stdout.trim()).toBe('0 actions');

    // A first deploy: compose file, build context, mounted page and env_file all new in one merge.
    const fresh = uniqueName('fresh');
    const freshSince = Date.now();
    try {
      await platform.mergeFeature('106', buildService(fresh, await freePort()));
      const first = await platform.run('release-run', ['106']);
      expect(first.exitCode).toBe(0);
      expect(await createdSince(fresh, freshSince)).toHaveLength(1);
    } finally {
      await removeProjects([fresh]);
      builtImages.push(...(await execa('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', `local/${fresh}`])).stdout.split('\n').filter(Boolean));
    }
  });

  test("a rule in the platform's release.config.ts carries an action for a named service", async () => {
    await platform.mergeFeature('103', {
      'release.config.ts': `export default ({ defaultPlugins, builtins }: any) => ({
  plugins: [
    builtins.globRule({ name: 'shared-pages', patterns: ['shared/**'], kind: 'shared-page', action: 'recreate', service: '${svc}' }),
    ...defaultPlugins(),
  ],
});
`,
    });
    expect((await platform.run('release-run', ['103'])).exitCode).toBe(0);
    const [before] = await containersOf(svc);
    await platform.mergeFeature('104', { 'shared/banner.txt': 'hi\n' });

    const released = await platform.run('release-run', ['104']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain('shared/banner.txt: shared-page (shared-pages)');
    expect(released.stdout).toMatch(new RegExp(`migrate: recreate ${svc}: shared/banner.txt changed \\(rule shared-pages\\)`));
    const [after] = await containersOf(svc);
    expect(after!.id).not.toBe(before!.id);
  });
});
