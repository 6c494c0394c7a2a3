/**
 * A private Docker engine for a test that must stop, start or freeze its engine: its own network
 * namespace, data root, exec root, pid file and unix socket under a temp folder, its own
 * containerd namespace, no iptables rules. The shared engine is never touched; point the
 * orchestrator at this one with DOCKER_HOST and run it inside the namespace (`exec`), where this
 * engine publishes its ports.
 *
 * Why a network namespace: a dockerd started with `--bridge=none`, or restarted on a data root
 * that holds a default bridge network, deletes the host's `docker0`, the shared engine's bridge.
 * In a namespace of its own it only ever sees its own interfaces.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options } from 'execa';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class PrivateDocker {
  readonly host: string;
  /** The network namespace the engine, its containers' published ports and the orchestrator run in. */
  readonly netns: string;
  private pid = 0;

  private constructor(readonly root: string, private readonly prefix: string) {
    this.host = `unix://${join(root, 'docker.sock')}`;
    this.netns = `${prefix}-${process.pid}`;
  }

  /** Starts an engine in a new network namespace, under a new temp folder named after `prefix`. */
  static async create(prefix: string): Promise<PrivateDocker> {
    const engine = new PrivateDocker(mkdtempSync(join(tmpdir(), `${prefix}-dockerd-`)), prefix);
    try {
      await execa('ip', ['netns', 'del', engine.netns], { reject: false });
      await execa('ip', ['netns', 'add', engine.netns]);
      await engine.exec('ip', ['link', 'set', 'lo', 'up'], { reject: true });
      await engine.start();
    } catch (error) {
      await engine.remove([]);
      throw error;
    }
    return engine;
  }

  /** The environment that points docker, compose and the orchestrator at this engine. */
  get env(): Record<string, string> {
    return { DOCKER_HOST: this.host };
  }

  /**
   * Runs a command in the engine's network namespace (e.g. the orchestrator, or curl of a published
   * port). nsenter, not `ip netns exec`: that also remounts /sys, which hides the cgroups dockerd needs.
   */
  exec(file: string, args: readonly string[], options: Options = {}) {
    return execa('nsenter', [`--net=/run/netns/${this.netns}`, file, ...args], { reject: false, ...options });
  }

  async start(): Promise<void> {
    const log = openSync(join(this.root, 'dockerd.log'), 'a');
    const pidfile = join(this.root, 'docker.pid');
    rmSync(pidfile, { force: true });
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, 'dockerd',
      '--data-root', join(this.root, 'data'), '--exec-root', join(this.root, 'exec'), '--pidfile', pidfile,
      '--host', this.host, '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
      '--containerd-namespace', this.prefix, '--containerd-plugins-namespace', `${this.prefix}-plugins`,
      '--default-address-pool', 'base=10.213.0.0/16,size=24', '--shutdown-timeout', '2',
    ], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    for (let waited = 0; ; waited += 100) {
      if (existsSync(pidfile) && (await this.docker(['version', '--format', '{{.Server.Version}}'])).exitCode === 0) {
        this.pid = Number(readFileSync(pidfile, 'utf8').trim());
        return;
      }
      if (waited > 30_000 || child.exitCode !== null) throw new Error(`the private dockerd did not start; see ${join(this.root, 'dockerd.log')}`);
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

  /** Removes the compose projects' containers, networks and volumes, stops the engine, removes its folder and namespace. */
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
    await execa('ip', ['netns', 'del', this.netns], { reject: false });
  }
}
