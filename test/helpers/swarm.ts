/** Test helpers for the swarm runtime: a service's files, the swarm's state, cleanup. */
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT } from './platform.js';
import { testManifest } from './docker.js';

/** The loopback registry test/infra/ensure-swarm.sh runs. */
export const TEST_REGISTRY = `127.0.0.1:${process.env.RO_TEST_REGISTRY_PORT ?? '19350'}`;

/** Makes sure the engine is a swarm manager and the registry answers (fast when they are). */
export async function ensureSwarm(): Promise<void> {
  await execa('bash', [join(ORCHESTRATOR_ROOT, 'test/infra/ensure-swarm.sh')]);
}

export interface SwarmServiceOptions {
  tag?: string;
  /** The path the container's health check asks for (the image serves /health and /version). */
  healthcheckPath?: string;
  backup?: string;
}

/** A `runtime: swarm` service running the test image on a host-mode port, with a health check and a volume. */
export function swarmServiceFiles(name: string, port: number, options: SwarmServiceOptions = {}): Record<string, string> {
  return {
    [`packages/${name}/manifest.yaml`]: testManifest(name, port, { runtime: 'swarm', tag: options.tag, extra: [options.backup] }),
    [`packages/${name}/compose.yaml`]: [
      'services:',
      '  app:',
      '    image: ${IMAGE}',
      '    ports:',
      `      - "${port}:8080"`,
      '    volumes:',
      '      - data:/data',
      '    healthcheck:',
      // busybox's wget crashes in the static test image: nc speaks the HTTP.
      `      test: ["CMD-SHELL", "printf 'GET ${options.healthcheckPath ?? '/health'} HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc 127.0.0.1 8080 | grep -q ' 200 '"]`,
      '      interval: 1s',
      '      timeout: 2s',
      '      retries: 2',
      // Swarm watches each new task 5 s by default; the health check already gates it here.
      '    deploy:',
      '      update_config: { monitor: 1s }',
      '      rollback_config: { monitor: 1s }',
      'volumes:',
      '  data:',
      '',
    ].join('\n'),
  };
}

/**
 * A `runtime: swarm` service with `deploy: { strategy: rolling }`: no published port of its own;
 * the edge proxy listens on 127.0.0.1:`port` and sends requests to its tasks.
 */
export function swarmRollingServiceFiles(name: string, port: number, options: SwarmServiceOptions = {}): Record<string, string> {
  const files = swarmServiceFiles(name, port, options);
  const manifest = `packages/${name}/manifest.yaml`;
  const compose = `packages/${name}/compose.yaml`;
  return {
    [manifest]: `${files[manifest]!}deploy:\n  strategy: rolling\n  port: 8080\n  drain: 2s\n`,
    [compose]: files[compose]!.replace(`    ports:\n      - "${port}:8080"\n`, ''),
  };
}

export interface StackTask { image: string; state: string }

/** The swarm service's spec image and running tasks, as an operator would look. */
export async function specImage(stack: string, part = 'app'): Promise<string> {
  return (await execa('docker', ['service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', `${stack}_${part}`])).stdout.trim();
}

export async function runningTaskImages(stack: string): Promise<string[]> {
  const { stdout } = await execa('docker', ['ps', '--filter', `label=com.docker.stack.namespace=${stack}`, '--filter', 'status=running', '--format', '{{.Image}}']);
  return stdout.split('\n').filter(Boolean);
}

/** Removes stacks and their volumes; waits for the tasks to go, as the volumes are in use until then. */
export async function removeStacks(stacks: string[]): Promise<void> {
  for (const stack of stacks) {
    // A rolling service's edge proxy is attached to the stack's network: it goes first.
    await execa('docker', ['rm', '--force', `${stack}-edge-proxy`], { reject: false });
    await execa('docker', ['stack', 'rm', stack], { reject: false });
    for (let i = 0; i < 120; i++) {
      const left = await execa('docker', ['ps', '--all', '--quiet', '--filter', `label=com.docker.stack.namespace=${stack}`], { reject: false });
      if (String(left.stdout).trim() === '') break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const volumes = await execa('docker', ['volume', 'ls', '--quiet', '--filter', `label=com.docker.stack.namespace=${stack}`], { reject: false });
    const names = String(volumes.stdout).split('\n').filter(Boolean);
    if (names.length > 0) await execa('docker', ['volume', 'rm', '--force', ...names], { reject: false });
  }
}

/** The volume's files, as `path content` lines. */
export async function volumeFiles(volume: string): Promise<string> {
  const mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', volume])).stdout.trim();
  const { stdout } = await execa('sh', ['-c', 'find . -type f | sort | while read -r f; do printf "%s %s\\n" "$f" "$(cat "$f")"; done'], { cwd: mount });
  return stdout;
}
