/**
 * Services on the real Docker engine for tests and the demo: the local test images
 * (local/testsvc:1 and :2, built by test/infra/build-test-images.sh) serve /health and /version.
 */
import { createServer } from 'node:net';
import { execa } from 'execa';

export const TEST_IMAGE = 'local/testsvc';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A unique compose project (= service) name, so parallel tests never share containers. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
}

export interface DockerServiceOptions {
  tag?: string;
  endpoint?: string;
  timeout?: string;
  backup?: string;
}

/**
 * The manifest of a test service: the test image at `tag`, its health probe on 127.0.0.1:`port`,
 * then `extra` lines (a runtime, a backup, a deploy strategy), as the compose, rolling and Swarm
 * helpers all write it.
 */
export function testManifest(name: string, port: number, options: { tag?: string; endpoint?: string; timeout?: string; runtime?: string; extra?: (string | undefined)[] } = {}): string {
  return [
    `name: ${name}`,
    ...(options.runtime ? [`runtime: ${options.runtime}`] : []),
    `image: ${TEST_IMAGE}:${options.tag ?? '1'}`,
    'health:',
    `  url: http://127.0.0.1:${port}`,
    `  endpoint: ${options.endpoint ?? '/health'}`,
    `  timeout: ${options.timeout ?? '20s'}`,
    ...(options.extra ?? []).filter((line) => line !== undefined),
    '',
  ].join('\n');
}

/** A manifest and compose file of a service that runs the test image on a loopback port. */
export function dockerServiceFiles(name: string, port: number, options: DockerServiceOptions = {}): Record<string, string> {
  return {
    [`packages/${name}/manifest.yaml`]: testManifest(name, port, { ...options, extra: [options.backup] }),
    [`packages/${name}/compose.yaml`]: [
      'services:',
      '  app:',
      '    image: ${IMAGE}',
      '    ports:',
      `      - "127.0.0.1:${port}:8080"`,
      '    volumes:',
      '      - data:/data',
      'volumes:',
      '  data:',
      '',
    ].join('\n'),
  };
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

export async function containersOf(project: string): Promise<{ id: string; image: string; state: string }[]> {
  const { stdout } = await execa('docker', ['ps', '--all', '--no-trunc', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.ID}} {{.Image}} {{.State}}']);
  return stdout.split('\n').filter(Boolean).map((line) => {
    const [id, image, state] = line.split(' ') as [string, string, string];
    return { id, image, state };
  });
}

/** The compose command of this test pass (the legacy pass pins v1 as an operator would): argv. */
export function composeCommand(): [string, ...string[]] {
  const words = (process.env.RELEASE_COMPOSE_COMMAND ?? 'docker compose').trim().split(/\s+/);
  return words as [string, ...string[]];
}

/** The names of a compose project's containers (of one compose service, when given), as the engine labels them. */
export async function containerNames(project: string, composeService?: string): Promise<string[]> {
  const filters = ['--filter', `label=com.docker.compose.project=${project}`, ...(composeService ? ['--filter', `label=com.docker.compose.service=${composeService}`] : [])];
  const { stdout } = await execa('docker', ['ps', '--all', ...filters, '--format', '{{.Names}}']);
  return stdout.split('\n').filter(Boolean).sort();
}

/** Removes everything a test's compose projects made: containers, networks, volumes. */
export async function removeProjects(projects: string[]): Promise<void> {
  for (const project of projects) {
    const ids = (await containersOf(project)).map((c) => c.id);
    if (ids.length > 0) await execa('docker', ['rm', '--force', '--volumes', ...ids], { reject: false });
    await execa('docker', ['network', 'rm', `${project}_default`], { reject: false });
    const volumes = await execa('docker', ['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`], { reject: false });
    const names = String(volumes.stdout).split('\n').filter(Boolean);
    if (names.length > 0) await execa('docker', ['volume', 'rm', '--force', ...names], { reject: false });
  }
}
