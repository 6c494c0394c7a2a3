import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform, snapshot, runCli, ORCHESTRATOR_ROOT } from '../test/helpers/platform.js';
import { waitFor, withGatedChildren } from '../test/helpers/gated.js';

describe('the operator verbs', () => {
  let platform: Platform;
  beforeAll(async () => { platform = await Platform.create(); });
  afterAll(() => platform.remove());

  test.each([
    ['1;touch x'],
    ['../x'],
    ['--upload-pack=x'],
    ['$(touch x)'],
    ['a\nb'],
    ['-x'],
    ['a'.repeat(65)],
    [''],
  ])('ticket id %j exits 2 with a one-line error and changes nothing', async (ticket) => {
    await platform.mergeFeature('ok', { 'docs/x.md': `${Date.now()}\n` });
    const before = await snapshot(platform.prod);
    for (const verb of ['release-run', 'release-revert'] as const) {
      const result = await platform.run(verb, [ticket]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.split('\n')[0]).toMatch(new RegExp(`^\\[${verb}\\] error: (invalid ticket id|missing ticket id|unknown option|option)`));
      expect(result.stdout).not.toMatch(/failed in phase/);
    }
    expect(await snapshot(platform.prod)).toBe(before);
    expect(existsSync(join(platform.prod, 'x'))).toBe(false);
    expect(existsSync(join(platform.prod, '.asd'))).toBe(false);
  });

  test('a 64-character ticket id is accepted', async () => {
    const result = await platform.run('release-run', ['a'.repeat(64), '--dry-run']);
    expect(result.stderr).not.toMatch(/invalid ticket id/);
  });

  test.each(['release-run', 'release-revert', 'release'] as const)('%s --help prints its usage and exits 0', async (verb) => {
    const result = await runCli(verb, ['--help'], platform.root);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^usage: ${verb} `));
    expect(result.stdout).toMatch(/Exit codes:/);
  });

  test('an unknown phase for --from exits 2 naming the phases', async () => {
    const result = await platform.run('release-run', ['1', '--from=deploy']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('unknown phase --from=deploy');
    expect(result.stderr).toContain('use one of prepare, migrate, ticket, verify');
  });

  test('outside a git repo: exit 2 and how to fix it', async () => {
    const result = await runCli('release-run', ['1'], '/');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/is not inside a git repo/);
  });

  test('the drift check of an unknown service exits 2; a known one prints 0 actions', async () => {
    const unknown = await platform.run('release', ['--service=nope']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/unknown service nope/);
    const known = await platform.run('release', ['--service=web']);
    expect(known.exitCode).toBe(0);
    expect(known.stdout.trim()).toBe('0 actions');
  });

  test('colour on a terminal, none with NO_COLOR or through a pipe', async () => {
    const onTerminal = (env: Record<string, string>) => execa('script', ['-qec', `node ${join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js')} 1 --from=deploy`, '/dev/null'], {
      cwd: platform.prod, reject: false, env: { TERM: 'xterm', ...env }, extendEnv: false,
    }).then((r) => String(r.stdout));
    expect(await onTerminal({ PATH: process.env.PATH! })).toMatch(/\x1b\[31m\[release-run\] error:/);
    expect(await onTerminal({ PATH: process.env.PATH!, NO_COLOR: '1' })).not.toMatch(/\x1b\[/);
    const piped = await execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '1', '--from=deploy'], { cwd: platform.prod, reject: false, all: true });
    expect(String(piped.all)).toContain('[release-run] error: unknown phase');
    expect(String(piped.all)).not.toMatch(/\x1b\[/);
  });
});

describe('the release lock', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create(); });
  afterEach(() => platform.remove());

  const lockFile = () => join(platform.prod, '.asd', 'workspace', 'release.lock');

  test('a second release-run while one runs exits 3 naming the holder', async () => {
    const gate = join(platform.root, 'gate');
    await platform.mergeFeature('300', {
      'releases/300-wait.sh': `#!/bin/sh\necho waiting\nwhile [ ! -f ${gate} ]; do sleep 0.1; done\n`,
    });
    // Whatever fails here, the gate is opened and the first release stopped: jest never hangs on it.
    await withGatedChildren(gate, async (spawn) => {
      const running = spawn('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '300'], { cwd: platform.prod, env: { NO_COLOR: '1' } });
      await waitFor('release 300 to hold the lock in its ticket phase', () => existsSync(lockFile()) && platform.readLog('300').some((l) => l.includes('phase=migrate event=done')));

      const second = await platform.run('release-run', ['301']);

      expect(second.exitCode).toBe(3);
      expect(second.stderr).toMatch(/another release holds the lock: ticket 300 \(pid \d+ on \S+, since \S+\)/);
      platform.write(platform.root, { gate: 'open\n' });
      expect((await running).exitCode).toBe(0);
      expect(existsSync(lockFile())).toBe(false);
    });
  });

  test('a lock whose process is gone is taken over, and the takeover is logged', async () => {
    const dead = await execa('sh', ['-c', 'echo $$']);
    platform.write(platform.prod, {
      '.asd/workspace/release.lock': `pid=${dead.stdout.trim()}\nhost=${(await execa('hostname')).stdout.trim()}\nticket=old\nstarted=2026-01-01T00:00:00.000Z\n`,
    });
    await platform.mergeFeature('302', { 'docs/a.md': 'a\n' });

    const result = await platform.run('release-run', ['302']);

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/took over a stale lock of ticket old/);
    expect(platform.logEvents('302')).toContain(`ticket=302 phase=orchestrator event=lock-takeover stale_pid=${dead.stdout.trim()} stale_ticket=old`);
    expect(existsSync(lockFile())).toBe(false);
  });

  test('a lock held by a live process or another host is never taken over nor removed', async () => {
    const host = (await execa('hostname')).stdout.trim();
    for (const holder of [`pid=${process.pid}\nhost=${host}`, `pid=999999\nhost=other-host`]) {
      const content = `${holder}\nticket=live\nstarted=2026-01-01T00:00:00.000Z\n`;
      platform.write(platform.prod, { '.asd/workspace/release.lock': content });
      const result = await platform.run('release-run', ['303']);
      expect(result.exitCode).toBe(3);
      expect(readdirSync(join(platform.prod, '.asd', 'workspace'))).toContain('release.lock');
    }
  });
});
