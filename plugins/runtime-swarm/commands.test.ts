import { swarmCommands } from './commands.js';

const line = (command: { file: string; args: string[] }) => [command.file, ...command.args];

describe('the Swarm runtime\'s command lines', () => {
  test('deploy: the rendered stack file, pruned, the image reference as written, bounded by the compose deadline', () => {
    const deploy = swarmCommands.stackDeploy('/srv/p/.asd/workspace/runtime/web.stack.yml', 'web');
    expect(line(deploy)).toEqual(['docker', 'stack', 'deploy', '--compose-file', '/srv/p/.asd/workspace/runtime/web.stack.yml', '--prune', '--resolve-image', 'never', '--with-registry-auth', 'web']);
    expect(deploy.deadlineKind).toBe('compose');
  });

  test('remove, and what must be gone before the name is free again', () => {
    expect(line(swarmCommands.stackRemove('web'))).toEqual(['docker', 'stack', 'rm', 'web']);
    expect(line(swarmCommands.stackContainers('web'))).toEqual(['docker', 'ps', '--all', '--quiet', '--filter', 'label=com.docker.stack.namespace=web']);
    expect(line(swarmCommands.stackNetworks('web'))).toEqual(['docker', 'network', 'ls', '--quiet', '--filter', 'label=com.docker.stack.namespace=web']);
  });

  test('stop and start: one detached scale of every service, in the order given', () => {
    expect(line(swarmCommands.scale(new Map([['web_app', 0], ['web_db', 0]])))).toEqual(['docker', 'service', 'scale', '--detach', 'web_app=0', 'web_db=0']);
    expect(line(swarmCommands.scale(new Map([['web_app', 3]])))).toEqual(['docker', 'service', 'scale', '--detach', 'web_app=3']);
  });

  test('push to the registry: tag, then push bounded by the build deadline', () => {
    expect(line(swarmCommands.tag('local/web:2', '127.0.0.1:5000/local/web:2'))).toEqual(['docker', 'tag', 'local/web:2', '127.0.0.1:5000/local/web:2']);
    expect(swarmCommands.push('127.0.0.1:5000/local/web:2')).toEqual({ file: 'docker', args: ['push', '127.0.0.1:5000/local/web:2'], deadlineKind: 'build' });
  });

  test('drift and convergence queries', () => {
    expect(line(swarmCommands.stackServiceIds('web'))).toEqual(['docker', 'service', 'ls', '--quiet', '--filter', 'label=com.docker.stack.namespace=web']);
    expect(line(swarmCommands.inspectServices(['s1', 's2']))).toEqual(['docker', 'service', 'inspect', 's1', 's2']);
    expect(line(swarmCommands.stackReplicas('web'))).toEqual(['docker', 'service', 'ls', '--filter', 'label=com.docker.stack.namespace=web', '--format', '{{.Name}}\t{{.Replicas}}']);
    expect(line(swarmCommands.localTasks('web_db'))).toEqual(['docker', 'ps', '--quiet', '--no-trunc', '--filter', 'label=com.docker.swarm.service.name=web_db', '--filter', 'status=running']);
    expect(line(swarmCommands.shutdownTaskStates('web_app'))).toEqual(['docker', 'service', 'ps', '--filter', 'desired-state=shutdown', '--format', '{{.CurrentState}}', 'web_app']);
    expect(line(swarmCommands.repoDigests('local/web:2'))).toEqual(['docker', 'image', 'inspect', '--format', '{{json .RepoDigests}}', 'local/web:2']);
  });
});
