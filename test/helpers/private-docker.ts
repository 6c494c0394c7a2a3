/**
 * A private Docker engine for a test that must stop, start or freeze its engine: its own data
 * root, exec root, pid file and unix socket under a temp folder, its own containerd namespace,
 * no default bridge and no iptables rules, address pools apart from the shared engine's. The
 * shared engine is never touched; point the orchestrator at this one with DOCKER_HOST.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class PrivateDocker {
  readonly host: string;
  private pid = 0;

  private constructor(readonly root: string, private readonly prefix: string) {
    this.host = `unix://${join(root, 'docker.sock')}`;
  }

  /** Starts an engine under a new temp folder named after `prefix`. */
  static async create(prefix: string): Promise<PrivateDocker> {
    const engine = new PrivateDocker(mkdtempSync(join(tmpdir(), `${prefix}-dockerd-`)), prefix);
    await engine.start();
    return engine;
  }

  /** The environment that points docker, compose and the orchestrator at this engine. */
  get env(): Record<string, string> {
    return { DOCKER_HOST: this.host };
  }

  async start(): Promise<void> {
    const log = openSync(join(this.root, 'dockerd.log'), 'a');
    const child = spawn('dockerd', [
      '--data-root', join(this.root, 'data'), '--exec-root', join(this.root, 'exec'), '--pidfile', join(this.root, 'docker.pid'),
      '--host', this.host, '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
      '--containerd-namespace', this.prefix, '--containerd-plugins-namespace', `${this.prefix}-plugins`,
      '--default-address-pool', 'base=10.213.0.0/16,size=24', '--shutdown-timeout', '2',
    ], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    this.pid = child.pid!;
    for (let waited = 0; ; waited += 100) {
      if ((await this.docker(['version', '--format', '{{.Server.Version}}'])).exitCode === 0) return;
      if (waited > 30_000 || !this.running()) throw new Error(`the private dockerd did not start; see ${join(this.root, 'dockerd.log')}`);
      await sleep(100);
    }
  }

  /** Stops the engine as an operator's `systemctl stop docker` would (SIGTERM), and waits until it is gone. */
  async stop(): Promise<void> {
    if (!this.running()) return;
    process.kill(this.pid, 'SIGTERM');
    for (let waited = 0; this.running(); waited += 100) {
      if (waited > 30_000) process.kill(this.pid, 'SIGKILL');
      await sleep(100);
    }
  }

  /** A hung engine: it still accepts connections on its socket but answers nothing. */
  freeze(): void {
    process.kill(this.pid, 'SIGSTOP');
  }

  thaw(): void {
    process.kill(this.pid, 'SIGCONT');
  }

  running(): boolean {
    if (!this.pid) return false;
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${this.pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }

  docker(args: string[]) {
    return execa('docker', ['--host', this.host, ...args], { reject: false });
  }

  /** Copies an image of the shared engine into this one (images cannot be pulled here). */
  async loadImage(image: string): Promise<void> {
    const result = await execa('sh', ['-c', 'docker save "$1" | docker --host "$2" load', 'sh', image, this.host], { reject: false });
    if (result.exitCode !== 0) throw new Error(`loading ${image} into the private engine failed: ${result.stderr}`);
  }

  /** Removes the compose projects' containers, networks and volumes, stops the engine and removes its folder. */
  async remove(projects: string[]): Promise<void> {
    if (this.running()) {
      this.thaw();
      for (const project of projects) {
        const ids = (await this.docker(['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${project}`])).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await this.docker(['rm', '--force', '--volumes', ...ids]);
        await this.docker(['network', 'rm', `${project}_default`]);
        const volumes = (await this.docker(['volume', 'ls', '--quiet', '--filter', `label=com.docker.compose.project=${project}`])).stdout.split('\n').filter(Boolean);
        if (volumes.length > 0) await this.docker(['volume', 'rm', '--force', ...volumes]);
      }
      await this.stop();
    }
    // Anything the engine left mounted under its folders goes before the folder does.
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '').filter((path) => path.startsWith(`${this.root}/`));
    for (const mount of mounts.sort().reverse()) await execa('umount', ['-l', mount], { reject: false });
    if (existsSync(this.root)) rmSync(this.root, { recursive: true, force: true });
  }
}
