/**
 * A throwaway platform for tests and the demo: a bare `origin`, a `dev` clone where changes are
 * made and pushed, and a `prod` clone the orchestrator releases. All real git, in a temp folder.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

export const ORCHESTRATOR_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BIN_DIR = join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'bin');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, in order. */
  all: string;
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.test',
  GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.test',
};

export async function sh(cwd: string, file: string, args: string[], options: Options = {}): Promise<string> {
  const result = await execa(file, args, { cwd, env: { ...GIT_ENV, ...(options.env ?? {}) }, ...options, reject: false, all: true });
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${String(result.all)}`);
  return String(result.stdout).trim();
}

export interface ServiceSpec {
  name: string;
  image?: string;
  extra?: string;
}

export function manifestYaml(spec: ServiceSpec): string {
  return `name: ${spec.name}\nruntime: none\nimage: ${spec.image ?? `local/${spec.name}:1`}\n${spec.extra ?? ''}`;
}

export class Platform {
  readonly origin: string;
  readonly dev: string;
  readonly prod: string;

  private constructor(readonly root: string) {
    this.origin = join(root, 'origin.git');
    this.dev = join(root, 'dev');
    this.prod = join(root, 'prod');
  }

  /** A platform whose first commit holds `services` and `files`; prod is cloned from it. */
  static async create(services: ServiceSpec[] = [{ name: 'web' }], files: Record<string, string> = {}, tempPrefix = 'ro-platform-'): Promise<Platform> {
    const platform = new Platform(mkdtempSync(join(tmpdir(), tempPrefix)));
    await sh(platform.root, 'git', ['init', '-q', '--bare', '-b', 'main', platform.origin]);
    await sh(platform.root, 'git', ['clone', '-q', platform.origin, platform.dev]);
    await sh(platform.dev, 'git', ['checkout', '-q', '-b', 'main']);
    const initial: Record<string, string> = { '.gitignore': '.asd/\n', 'README.md': '# platform\n', ...files };
    for (const spec of services) initial[`packages/${spec.name}/manifest.yaml`] = manifestYaml(spec);
    platform.write(platform.dev, initial);
    await sh(platform.dev, 'git', ['add', '-A']);
    await sh(platform.dev, 'git', ['commit', '-q', '-m', 'initial platform']);
    await sh(platform.dev, 'git', ['push', '-q', 'origin', 'main']);
    await sh(platform.root, 'git', ['clone', '-q', platform.origin, platform.prod]);
    return platform;
  }

  write(repo: string, files: Record<string, string | null>): void {
    for (const [path, content] of Object.entries(files)) {
      const full = join(repo, path);
      if (content === null) {
        rmSync(full, { force: true });
        continue;
      }
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
      if (path.endsWith('.sh')) chmodSync(full, 0o755);
    }
  }

  /** Commits `files` on a feature branch and merges it into origin's main with a merge commit. */
  async mergeFeature(ticket: string, files: Record<string, string | null>): Promise<string> {
    await sh(this.dev, 'git', ['checkout', '-q', '-b', `feat/${ticket}-${Date.now()}`]);
    this.write(this.dev, files);
    await sh(this.dev, 'git', ['add', '-A']);
    await sh(this.dev, 'git', ['commit', '-q', '-m', `ticket ${ticket}`]);
    const feature = await sh(this.dev, 'git', ['rev-parse', '--abbrev-ref', 'HEAD']);
    await sh(this.dev, 'git', ['checkout', '-q', 'main']);
    await sh(this.dev, 'git', ['merge', '-q', '--no-ff', '-m', `Merge ${ticket}`, feature]);
    await sh(this.dev, 'git', ['push', '-q', 'origin', 'main']);
    return sh(this.dev, 'git', ['rev-parse', 'HEAD']);
  }

  /** Pushes one plain commit per entry straight onto origin's main (a fast-forward range). */
  async pushCommits(commits: Record<string, string | null>[]): Promise<string> {
    for (const [index, files] of commits.entries()) {
      this.write(this.dev, files);
      await sh(this.dev, 'git', ['add', '-A']);
      await sh(this.dev, 'git', ['commit', '-q', '-m', `commit ${index + 1}`]);
    }
    await sh(this.dev, 'git', ['push', '-q', 'origin', 'main']);
    return sh(this.dev, 'git', ['rev-parse', 'HEAD']);
  }

  git(args: string[], repo = this.prod): Promise<string> {
    return sh(repo, 'git', args);
  }

  head(repo = this.prod): Promise<string> {
    return this.git(['rev-parse', 'HEAD'], repo);
  }

  stateFile(ticket: string): string {
    return join(this.prod, '.asd', 'workspace', 'releases', `${ticket}.env`);
  }

  readState(ticket: string): Record<string, string> {
    const text = readFileSync(this.stateFile(ticket), 'utf8');
    return Object.fromEntries(text.trim().split('\n').map((line) => {
      const at = line.indexOf('=');
      return [line.slice(0, at), line.slice(at + 1).replace(/^"(.*)"$/, '$1')];
    }));
  }

  readLog(ticket: string): string[] {
    const file = join(this.prod, '.asd', 'workspace', 'releases', `${ticket}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
  }

  /** The log's lines without their timestamps, to compare with expectations. */
  logEvents(ticket: string): string[] {
    return this.readLog(ticket).map((line) => line.replace(/^\S+ /, ''));
  }

  run(verb: 'release-run' | 'release-revert' | 'release', args: string[], env: Record<string, string> = {}): Promise<CliResult> {
    return runCli(verb, args, this.prod, env);
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export async function runCli(verb: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  const result = await execa('node', [join(BIN_DIR, `${verb}.js`), ...args], {
    // RELEASE_INVOKED_VIA is cleared unless a test sets it: the verbs print bare bin names then.
    cwd, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '', ...env }, reject: false, all: true,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr), all: String(result.all) };
}

/**
 * What must not change in a clone: every file of the work tree and the workspace with its mode and
 * hash, HEAD, the local branches and the index. Fetched remote refs may change.
 */
export async function snapshot(repo: string): Promise<string> {
  const files = await sh(repo, 'sh', ['-c', "find . -path ./.git -prune -o -printf '%m %y %p\\n' | sort; find . -path ./.git -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum"]);
  const refs = await sh(repo, 'git', ['for-each-ref', 'refs/heads', 'refs/tags']);
  const index = await sh(repo, 'git', ['ls-files', '--stage']);
  const head = await sh(repo, 'git', ['rev-parse', 'HEAD']);
  return [files, refs, index, head].join('\n--\n');
}
