import { edgeProxyCommands } from './commands.js';

const line = (command: { file: string; args: string[] }) => [command.file, ...command.args];

describe('the edge proxy\'s command lines', () => {
  test('run: on the service\'s network, soft stop, the listen address published, its config and fingerprint with it', () => {
    expect(line(edgeProxyCommands.run({
      name: 'web-edge-proxy', owner: 'web', network: 'web_default', listen: { host: '127.0.0.1', port: 8080 },
      image: 'local/edge-haproxy:bookworm', config: 'global\n', fingerprint: 'f00d',
    }))).toEqual(['docker', 'run', '--detach', '--name', 'web-edge-proxy', '--restart', 'unless-stopped', '--network', 'web_default',
      '--stop-signal', 'SIGUSR1', '--publish', '127.0.0.1:8080:8080', '--label', 'release-orchestrator.edge-proxy.owner=web',
      '--label', 'release-orchestrator.edge-proxy.config=f00d', '--env', 'HAPROXY_CONFIG=global\n', 'local/edge-haproxy:bookworm']);
  });

  test('the runtime API: the command is an argument of the script, never part of it', () => {
    const admin = edgeProxyCommands.admin('web-edge-proxy', 'set server backends/s1 state drain');
    expect(admin.args.slice(0, 4)).toEqual(['exec', 'web-edge-proxy', 'bash', '-c']);
    expect(admin.args.slice(5)).toEqual(['admin', 'set server backends/s1 state drain']);
    expect(admin.args[4]).not.toContain('set server');
  });

  test('status and addresses', () => {
    expect(line(edgeProxyCommands.status('web-edge-proxy'))).toEqual(['docker', 'inspect', '--format', '{{.State.Status}}\t{{index .Config.Labels "release-orchestrator.edge-proxy.config"}}', 'web-edge-proxy']);
    expect(line(edgeProxyCommands.addressOn('c1', 'web_default'))).toEqual(['docker', 'inspect', '--format', '{{with index .NetworkSettings.Networks "web_default"}}{{.IPAddress}}{{end}}', 'c1']);
  });
});
