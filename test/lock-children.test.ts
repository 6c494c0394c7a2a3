import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { ReleaseEventSchema } from '../core/event-schema.js';

/**
 * The scenario: the orchestrator alone is killed (-9, not its group) while the ticket
 * script it started sleeps; the script lives on, re-parented to pid 1. Nothing may take the lock
 * over, or start the script a second time, until it is gone.
 */

const isAlive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const groupAlive = (pgid: number) => { try { process.kill(-pgid, 0); return true; } catch { return false; } };

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const SCRIPT = (root: string) => `#!/bin/bash
[ "$1" = --yes ] || exit 9
echo "$$" >> ${root}/script-runs
# Two copies at once would both see the other's file.
if [ -e ${root}/script-running ] && kill -0 "$(cat ${root}/script-running)" 2>/dev/null; then echo second-copy >> ${root}/script-runs; fi
echo "$$" > ${root}/script-running
if [ -e ${root}/slow ]; then sleep "$(cat ${root}/slow)"; fi
rm -f ${root}/script-running
echo finished
`;

describe('the lock covers the children of a run', () => {
  let platform: Platform;
  let orchestrator: ResultPromise | undefined;
  const lockFile = () => join(platform.prod, '.asd', 'workspace', 'release.lock');
  const recordedGroups = () => {
    if (!existsSync(lockFile())) return [];
    const line = readFileSync(lockFile(), 'utf8').split('\n').find((l) => l.startsWith('groups='));
    return line ? line.slice(7).split(',').map(Number) : [];
  };
  const scriptPids = () => (existsSync(join(platform.root, 'script-runs'))
    ? readFileSync(join(platform.root, 'script-runs'), 'utf8').split('\n').filter((l) => /^\d+$/.test(l)).map(Number) : []);

  beforeEach(async () => {
    platform = await Platform.create([{ name: 'web' }], {}, 'roev-platform-');
  });

  afterEach(async () => {
    // Whatever happened, nothing this test started outlives it.
    if (orchestrator?.pid && isAlive(orchestrator.pid)) process.kill(orchestrator.pid, 'SIGKILL');
    for (const pgid of [...recordedGroups(), ...scriptPids()]) {
      try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
    }
    await orchestrator?.catch(() => undefined);
    platform.remove();
  });

  test('after a kill -9 of the orchestrator alone, --from and revert refuse (exit 3) naming the running script and the command that stops it; once it is gone, --from takes the lock over', async () => {
    writeFileSync(join(platform.root, 'slow'), '60');
    await platform.mergeFeature('500', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n', 'releases/500-slow.sh': SCRIPT(platform.root) });
    orchestrator = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '500'], {
      cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false,
    });
    await until('the ticket script to start', () => scriptPids().length === 1 && recordedGroups().length > 0);
    const [scriptPid] = scriptPids();
    // The script's group is in the lock while it runs.
    expect(recordedGroups()).toContain(scriptPid);

    process.kill(orchestrator.pid!, 'SIGKILL');
    await orchestrator;
    expect(isAlive(scriptPid!)).toBe(true);

    const resumed = await platform.run('release-run', ['500', '--from=ticket']);

    expect(resumed.exitCode).toBe(3);
    expect(resumed.stderr).toContain(`a process it started still runs after 5s of waiting: pid ${scriptPid} (/bin/bash ${join(platform.prod, 'releases/500-slow.sh')} --yes)`);
    expect(resumed.stderr).toMatch(/^\s+pid \d+ in process group \d+: sleep 60$/m);
    const stop = /fix: wait for it to end, or stop it and everything it started: (kill -TERM -- -\d+);/.exec(resumed.stderr);
    expect(stop?.[1]).toBe(`kill -TERM -- -${scriptPid}`);
    const revert = await platform.run('release-revert', ['500', '--json']);
    expect(revert.exitCode).toBe(3);
    expect(revert.stderr).toContain(`of waiting: pid ${scriptPid}`);
    // A program driving the revert reads the same from its events.
    const events = revert.stdout.trim().split('\n').map((line) => ReleaseEventSchema.parse(JSON.parse(line)));
    expect(events.find((e) => e.event === 'error')!.fields).toMatchObject({ code: 'LOCKED', exit_code: 3, hint: expect.stringContaining(`kill -TERM -- -${scriptPid}`) });
    expect(events.at(-1)!.fields).toMatchObject({ result: 'refused', exit_code: 3 });
    // Never a second copy of the script.
    expect(scriptPids()).toEqual([scriptPid]);

    // The printed command, pasted into a shell, stops the script and its sleep.
    await execa('bash', ['-c', stop![1]!]);
    await until('the script group to end', () => !groupAlive(scriptPid!), 10_000);
    rmSync(join(platform.root, 'slow'));

    const finished = await platform.run('release-run', ['500', '--from=ticket']);

    expect(finished.stderr).toContain('took over a stale lock of ticket 500');
    expect(finished.exitCode).toBe(0);
    expect(scriptPids()).toHaveLength(2);
    expect(readFileSync(join(platform.root, 'script-runs'), 'utf8')).not.toContain('second-copy');
    expect(existsSync(lockFile())).toBe(false);
  });

  test('a child that ends within the wait is waited for: --from then runs the script once more, never beside it', async () => {
    writeFileSync(join(platform.root, 'slow'), '2');
    await platform.mergeFeature('501', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n', 'releases/501-slow.sh': SCRIPT(platform.root) });
    orchestrator = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '501'], {
      cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false,
    });
    await until('the ticket script to start', () => scriptPids().length === 1 && recordedGroups().length > 0);
    process.kill(orchestrator.pid!, 'SIGKILL');
    await orchestrator;
    rmSync(join(platform.root, 'slow'));

    const resumed = await platform.run('release-run', ['501', '--from=ticket']);

    expect(resumed.exitCode).toBe(0);
    expect(resumed.stderr).toContain('took over a stale lock of ticket 501');
    expect(scriptPids()).toHaveLength(2);
    expect(readFileSync(join(platform.root, 'script-runs'), 'utf8')).not.toContain('second-copy');
  });
});
