import { dockerCommandLine, dockerCommands, dockerSubcommand } from '../../shared/docker/command.js';
import { composeCommands, upReplacingCommands, type ComposeProject } from './commands.js';

const FILE = '/srv/platform/packages/web/compose.yaml';
const flavours: [string, string[], string[]][] = [
  // [name, the compose command, what comes before the project arguments on the command line]
  ['compose v2', ['docker', 'compose'], ['docker', 'compose']],
  ['compose v1', ['docker-compose'], ['docker-compose']],
];

describe.each(flavours)('the compose runtime\'s command lines on %s', (_name, compose, prefix) => {
  const web: ComposeProject = { compose, project: 'web', file: FILE, env: { IMAGE: 'local/web:2' } };
  const line = (command: { file: string; args: string[] }) => [command.file, ...command.args];
  const project = [...prefix, '--project-name', 'web', '--file', FILE];

  test('build: the named services, or all; bounded by the build deadline; ${IMAGE} in the environment', () => {
    expect(line(composeCommands.build(web, ['app']))).toEqual([...project, 'build', 'app']);
    expect(line(composeCommands.build(web))).toEqual([...project, 'build']);
    expect(composeCommands.build(web)).toMatchObject({ deadlineKind: 'build', env: { IMAGE: 'local/web:2' } });
  });

  test('redeploy: `up -d --remove-orphans` of the project; of some services, no orphan removal', () => {
    expect(line(composeCommands.up(web))).toEqual([...project, 'up', '-d', '--remove-orphans']);
    expect(line(composeCommands.up(web, ['db']))).toEqual([...project, 'up', '-d', 'db']);
    expect(composeCommands.up(web).deadlineKind).toBe('compose');
  });

  test('an ordinary redeploy is one `up`', () => {
    expect(upReplacingCommands(web, ['app', 'db'], new Set(), []).map(line)).toEqual([[...project, 'up', '-d', '--remove-orphans']]);
  });

  test('recreate of one service: forced alone with --no-deps, then the project converges', () => {
    expect(upReplacingCommands(web, ['app', 'db'], new Set(['app', 'db']), ['app']).map(line)).toEqual([
      [...project, 'up', '-d', '--no-deps', '--force-recreate', 'app'],
      [...project, 'up', '-d', '--remove-orphans'],
    ]);
  });

  test('recreate when a service has no container yet: it is created first, without recreating the others', () => {
    expect(upReplacingCommands(web, ['app', 'db'], new Set(['app']), 'all').map(line)).toEqual([
      [...project, 'up', '-d', '--remove-orphans', '--no-recreate'],
      [...project, 'up', '-d', '--no-deps', '--force-recreate', 'app'],
      [...project, 'up', '-d', '--remove-orphans'],
    ]);
    expect(upReplacingCommands(web, ['db'], new Set(['db']), 'all', ['db']).map(line)).toEqual([
      [...project, 'up', '-d', '--no-deps', '--force-recreate', 'db'],
      [...project, 'up', '-d', 'db'],
    ]);
  });

  test('a rolling step: one more container beside the running ones, none of them recreated', () => {
    expect(line(composeCommands.scaleUpBeside(web, 'app', 2))).toEqual([...project, 'up', '--detach', '--no-deps', '--no-recreate', '--remove-orphans', '--scale', 'app=3', 'app']);
  });

  test('rendering for Swarm, and the version probe', () => {
    expect(line(composeCommands.config(web))).toEqual([...project, 'config']);
    expect(line(composeCommands.version(compose))).toEqual([...prefix, 'version']);
  });

  test('as a line to paste: the variables first, every argument quoted for the shell', () => {
    const spaced = { ...web, file: '/srv/my platform/compose.yaml', env: { IMAGE: 'local/web:2', GREETING: "it's on" } };
    expect(dockerCommandLine(composeCommands.up(spaced))).toBe(`IMAGE=local/web:2 GREETING='it'\\''s on' ${prefix.join(' ')} --project-name web --file '/srv/my platform/compose.yaml' up -d --remove-orphans`);
  });
});

describe('the engine commands every runtime uses', () => {
  const line = (command: { file: string; args: string[] }) => [command.file, ...command.args];

  test('drift queries: the project\'s containers and networks by compose\'s label, an image by name', () => {
    expect(line(dockerCommands.projectContainers('web'))).toEqual(['docker', 'ps', '--all', '--no-trunc', '--filter', 'label=com.docker.compose.project=web',
      '--format', '{{.ID}}\t{{.Names}}\t{{.Image}}\t{{.State}}\t{{.Label "com.docker.compose.service"}}']);
    expect(line(dockerCommands.projectNetworks('web'))).toEqual(['docker', 'network', 'ls', '--quiet', '--filter', 'label=com.docker.compose.project=web']);
    expect(line(dockerCommands.imageId('local/web:2'))).toEqual(['docker', 'image', 'inspect', '--format', '{{.Id}}', 'local/web:2']);
  });

  test('stop, start, remove: containers by id; volumes are never named', () => {
    expect(line(dockerCommands.stop(['a1', 'b2']))).toEqual(['docker', 'stop', 'a1', 'b2']);
    expect(line(dockerCommands.start(['a1']))).toEqual(['docker', 'start', 'a1']);
    expect(line(dockerCommands.remove(['a1']))).toEqual(['docker', 'rm', '--force', 'a1']);
    expect(line(dockerCommands.removeNetworks(['n1']))).toEqual(['docker', 'network', 'rm', 'n1']);
    for (const command of [dockerCommands.stop(['a']), dockerCommands.remove(['a'])]) expect(command.args).not.toContain('--volumes');
  });

  test('exec in a container: -i only when fed, user and environment before the container', () => {
    expect(line(dockerCommands.execIn({ container: 'c1', argv: ['pg_dump', '-Fc', 'app'] }))).toEqual(['docker', 'exec', 'c1', 'pg_dump', '-Fc', 'app']);
    expect(line(dockerCommands.execIn({ container: 'c1', argv: ['psql'], user: 'postgres', env: { PGDATABASE: 'app' }, interactive: true })))
      .toEqual(['docker', 'exec', '-i', '--user', 'postgres', '--env', 'PGDATABASE=app', 'c1', 'psql']);
    // The caller's deadline (a backup's) bounds it, not the docker one.
    expect(dockerCommands.execIn({ container: 'c1', argv: ['true'] }).deadlineKind).toBeUndefined();
  });

  test('volumes: a restore recreates a missing project volume with compose\'s labels; another name gets none', () => {
    expect(line(dockerCommands.createProjectVolume('web', 'web_data'))).toEqual(['docker', 'volume', 'create',
      '--label', 'com.docker.compose.project=web', '--label', 'com.docker.compose.volume=data', 'web_data']);
    expect(line(dockerCommands.createProjectVolume('web', 'shared-files'))).toEqual(['docker', 'volume', 'create', 'shared-files']);
    expect(line(dockerCommands.volumeInspect('web_data'))).toEqual(['docker', 'volume', 'inspect', '--format', '{{json .}}', 'web_data']);
  });

  test('names for errors', () => {
    expect(dockerSubcommand(dockerCommands.stop(['a']))).toBe('docker stop');
    expect(dockerSubcommand(dockerCommands.projectNetworks('web'))).toBe('docker network ls');
  });
});
