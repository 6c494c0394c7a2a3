/**
 * The operator's first hour, end to end: the README's install commands, run as written into a
 * temporary npm prefix from a fresh clone of this repo (its last commit); then `release init` in a
 * platform repo, releases by the bare verb names and through `just` and the platform justfile; and
 * every command a failure prints, pasted into a shell as it is.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT, Platform, sh } from './helpers/platform.js';

/** The fenced block between `<!-- install` and `<!-- /install -->` in README.md. */
export function readmeInstallCommands(): string[] {
  const readme = readFileSync(join(ORCHESTRATOR_ROOT, 'README.md'), 'utf8');
  const section = /<!-- install[^>]*-->\s*```sh\n([\s\S]*?)```\s*<!-- \/install -->/.exec(readme);
  if (!section) throw new Error('README.md has no <!-- install --> block');
  return section[1]!.split('\n').filter((line) => line.trim() !== '');
}

interface Shell {
  exitCode: number;
  all: string;
}

/** Runs one line in bash, as an operator pastes it, with the installed commands first on PATH. */
async function paste(line: string, cwd: string, binDir: string, env: Record<string, string> = {}): Promise<Shell> {
  const result = await execa('bash', ['-c', line], {
    cwd, reject: false, all: true,
    env: { PATH: `${binDir}:${process.env.PATH}`, NO_COLOR: '1', RELEASE_INVOKED_VIA: '', GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.test', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.test', ...env },
  });
  return { exitCode: result.exitCode ?? -1, all: String(result.all) };
}

/** The commands a failure printed: the indented lines of the failure block and each playbook's `next:`. */
export function printedCommands(output: string): string[] {
  const commands = new Set<string>();
  for (const line of output.split('\n')) {
    const block = /^ {2}((?:just )?release(?:-run|-revert)? .*)$/.exec(line);
    const next = /^ {2}next: (.*)$/.exec(line);
    if (block) commands.add(block[1]!);
    if (next) commands.add(next[1]!);
  }
  return [...commands];
}

describe("the README's install, on a fresh clone, into a temporary prefix", () => {
  let root: string;
  let binDir: string;
  let platform: Platform;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ro-install-'));
    const clone = join(root, 'orchestrator');
    const prefix = join(root, 'prefix');
    binDir = join(prefix, 'bin');
    // The README's lines, with this repo for the URL and a temp folder for /opt.
    const script = readmeInstallCommands()
      .map((line) => line.replace(/https:\/\/\S+\.git/, ORCHESTRATOR_ROOT).replaceAll('/opt/release-orchestrator', clone))
      .join('\n');
    const installed = await execa('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: root, reject: false, all: true,
      env: { npm_config_prefix: prefix, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
    });
    if (installed.exitCode !== 0) throw new Error(`the README's install failed:\n${script}\n${String(installed.all).slice(-3000)}`);
    platform = await Platform.create([{ name: 'web' }]);
  }, 600_000);

  afterAll(() => {
    platform?.remove();
    rmSync(root, { recursive: true, force: true });
  });

  test('puts release-run, release-revert, release and just on PATH; --version names the commit', async () => {
    for (const name of ['release-run', 'release-revert', 'release', 'just']) expect(existsSync(join(binDir, name))).toBe(true);
    const commit = (await execa('git', ['-C', ORCHESTRATOR_ROOT, 'rev-parse', 'HEAD'])).stdout.trim();
    for (const verb of ['release-run', 'release-revert', 'release']) {
      const version = await paste(`${verb} --version`, platform.prod, binDir);
      expect(version.exitCode).toBe(0);
      // the fresh clone is of this repo's last commit, so that is the commit the install was built from
      expect(version.all.trim()).toMatch(new RegExp(`^${verb} \\d+\\.\\d+\\.\\d+ \\(orchestrator commit ${commit}\\)$`));
    }
    expect((await paste('command -v just', platform.prod, binDir)).all.trim()).toBe(join(binDir, 'just'));
  });

  test('release init, then releases by the bare verb names and through just and the platform justfile', async () => {
    const init = await paste('release init', platform.dev, binDir);
    expect(init.exitCode).toBe(0);
    expect(init.all).toContain('wrote justfile');
    await sh(platform.dev, 'git', ['add', '-A']);
    await sh(platform.dev, 'git', ['commit', '-q', '-m', 'release init']);
    await sh(platform.dev, 'git', ['push', '-q', 'origin', 'main']);
    const bare = await paste('release-run 1', platform.prod, binDir);
    expect(`${bare.exitCode}\n${bare.all}`).toMatch(/^0\n[\s\S]*\[release-run\] release 1 complete$/);

    await platform.mergeFeature('2', { 'docs/two.md': 'two\n' });
    const viaJust = await paste('just release-run 2', platform.prod, binDir);
    expect(`${viaJust.exitCode}\n${viaJust.all}`).toMatch(/^0\n[\s\S]*\[release-run\] release 2 complete$/);
    const drift = await paste('just release --service=web', platform.prod, binDir);
    expect(drift.all).toMatch(/actions?$/);
  });

  test.each([
    ['through just', 'just release-run', 'just '],
    ['by the bare name', 'release-run', ''],
  ])('%s: every command a failure prints runs as pasted and does what it says', async (_how, run, prefix) => {
    const ticket = prefix ? '30' : '31';
    const flag = join(platform.root, `fixed-${ticket}`);
    await platform.mergeFeature(ticket, {
      'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:${ticket}\n`,
      [`releases/${ticket}-flaky.sh`]: `#!/bin/sh\nif [ ! -f ${flag} ]; then echo "the API is down" >&2; exit 1; fi\necho the API answered\n`,
    });
    const failed = await paste(`${run} ${ticket}`, platform.prod, binDir);
    expect(failed.exitCode).toBe(1);
    const commands = printedCommands(failed.all);
    expect(commands).toEqual(expect.arrayContaining([`${prefix}release-revert ${ticket}`, `${prefix}release-run ${ticket} --from=ticket`]));
    for (const command of commands) expect(command.startsWith(prefix || 'release')).toBe(true);

    // The resume, with the cause fixed, finishes the release.
    platform.write(platform.root, { [`fixed-${ticket}`]: 'yes\n' });
    const resumed = await paste(`${prefix}release-run ${ticket} --from=ticket`, platform.prod, binDir);
    expect(`${resumed.exitCode}\n${resumed.all}`).toMatch(new RegExp(`^0\\n[\\s\\S]*release ${ticket} complete`));
    // Then every printed command, pasted: none is unknown to the shell or to the verb, and the
    // roll back rolls back.
    const head = await platform.head();
    for (const command of commands.filter((c) => !c.includes('release-revert'))) {
      const result = await paste(command, platform.prod, binDir);
      expect({ command, exitCode: result.exitCode }).not.toEqual({ command, exitCode: 127 });
      expect(result.all).not.toMatch(/command not found|unknown option|Justfile does not contain recipe/);
    }
    const reverted = await paste(`${prefix}release-revert ${ticket}`, platform.prod, binDir);
    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(new RegExp(`^0\\n[\\s\\S]*release ${ticket} reverted`));
    expect((await platform.git(['rev-parse', 'HEAD^'])).trim()).toBe(head);
    await sh(platform.prod, 'git', ['push', '-q', 'origin', 'main']); // publish the revert, as the verb asks
    await sh(platform.dev, 'git', ['pull', '-q', 'origin', 'main']);
  });

  test("through just: an unclassified file's printed commands, the playbook's next: included, finish the release and undo it", async () => {
    const base = await platform.head();
    await platform.mergeFeature('40', { 'tools/rotate.py': 'print(1)\n', 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:40\n' });
    const stopped = await paste('just release-run 40', platform.prod, binDir);
    expect(stopped.exitCode).toBe(5);
    const commands = printedCommands(stopped.all);
    expect(commands.sort()).toEqual(['just release-revert 40', 'just release-run 40 --from=prepare']);
    expect(stopped.all).toContain('  next: just release-run 40 --from=prepare');

    // The rule, through a PR, in the platform's own config (release init wrote it).
    await platform.mergeFeature('40-rule', {
      'release.config.ts': "export default ({ defaultPlugins, builtins }) => ({\n  plugins: [...defaultPlugins(), builtins.globRule({ name: 'tools', patterns: ['tools/**'], kind: 'tooling' })],\n});\n",
    });
    const finished = await paste('just release-run 40 --from=prepare', platform.prod, binDir);
    expect(`${finished.exitCode}\n${finished.all}`).toMatch(/^0\n[\s\S]*release 40 complete/);
    const reverted = await paste('just release-revert 40', platform.prod, binDir);
    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n[\s\S]*release 40 reverted/);
    expect(await platform.git(['rev-parse', 'HEAD^{tree}'])).toBe(await platform.git(['rev-parse', `${base}^{tree}`]));
  });
});
