import { execa } from 'execa';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, removeProjects, uniqueName } from '../../test/helpers/docker.js';

/** A service given a file secret (top-level `secrets: { token: { file } }`) on a real engine. */
function secretService(name: string, port: number, token: string): Record<string, string> {
  const files = dockerServiceFiles(name, port);
  return {
    ...files,
    [`packages/${name}/compose.yaml`]: files[`packages/${name}/compose.yaml`]!.replace('    volumes:\n      - data:/data\n', '    volumes:\n      - data:/data\n    secrets: [token]\n')
      + 'secrets:\n  token:\n    file: ./secrets/token.txt\n',
    [`packages/${name}/secrets/token.txt`]: `${token}\n`,
  };
}

const secretInContainer = async (project: string) => {
  const [container] = (await containersOf(project)).filter((c) => c.state === 'running');
  return (await execa('docker', ['exec', container!.id, 'cat', '/run/secrets/token'])).stdout.trim();
};

describe('file secrets of a compose project, on a real engine', () => {
  let platform: Platform;
  let svc: string;
  afterEach(async () => {
    await removeProjects([svc]);
    platform.remove();
  });

  test('a changed secret file recreates the service; its value reaches no output, log, event or ticket record', async () => {
    svc = uniqueName('secret');
    const port = await freePort();
    platform = await Platform.create([]);
    await platform.mergeFeature('100', secretService(svc, port, 'first-token-7f3a'));
    expect((await platform.run('release-run', ['100'])).exitCode).toBe(0);
    expect(await secretInContainer(svc)).toBe('first-token-7f3a');

    const token = 'second-token-c41d9e';
    await platform.mergeFeature('101', {
      [`packages/${svc}/secrets/token.txt`]: `${token}\n`,
      // A ticket script that prints the secret, as a careless one would.
      'releases/101-rotate.sh': `#!/usr/bin/env bash\necho "rotated to $(cat packages/${svc}/secrets/token.txt)"\n`,
    });
    const released = await platform.run('release-run', ['101']);

    expect(released.exitCode).toBe(0);
    expect(await secretInContainer(svc)).toBe(token);
    expect(released.stdout).toContain(`packages/${svc}/secrets/token.txt: mounted-config (service-files)`);
    expect(released.stdout).toMatch(new RegExp(`recreate ${svc} \\(app\\)`));
    expect(released.stdout + released.stderr).toContain('rotated to ***');
    const workspace = join(platform.prod, '.asd/workspace/releases');
    const records = readdirSync(workspace).map((file) => readFileSync(join(workspace, file), 'utf8')).join('\n');
    expect(records).toContain('rotated to ***');
    for (const where of [released.stdout, released.stderr, records]) expect(where).not.toContain(token);

    // Resumed at the ticket phase, nothing of compose ran in this process before the script does.
    const resumed = await platform.run('release-run', ['101', '--from=ticket']);
    expect(resumed.exitCode).toBe(0);
    expect(resumed.stdout + resumed.stderr).toContain('rotated to ***');
    expect(resumed.stdout + resumed.stderr).not.toContain(token);
  });
});
