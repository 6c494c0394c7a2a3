import { createServer, type Server } from 'node:http';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform, ORCHESTRATOR_ROOT } from '../../test/helpers/platform.js';

/** Each shipped playbook, triggered by the failure it is for, on a real git platform. */
describe('a failure prints and logs the playbooks that match it', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterEach(() => platform.remove());

  const bump = (tag: string) => ({ 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:${tag}\n` });

  function expectPlaybook(output: string, ticket: string, id: string, next: string) {
    expect(output).toContain(`Recovery playbook ${id}: `);
    expect(output).toContain(`  next: ${next}`);
    if (!['release-lock-held'].includes(id)) expect(platform.logEvents(ticket)).toContain(`ticket=${ticket} phase=orchestrator event=playbook id=${id}`);
  }

  test('release-nothing-to-release (exit 4)', async () => {
    await platform.mergeFeature('40', bump('2'));
    await platform.git(['pull', '-q', 'origin', 'main']);
    const result = await platform.run('release-run', ['40']);
    expect(result.exitCode).toBe(4);
    expectPlaybook(result.stderr, '40', 'release-nothing-to-release', 'release-run 40');
  });

  test('release-run-exit-5-with-drift (an unclassified file)', async () => {
    await platform.mergeFeature('41', { 'tools/helper.py': 'x\n' });
    const result = await platform.run('release-run', ['41']);
    expect(result.exitCode).toBe(5);
    expectPlaybook(result.stderr, '41', 'release-run-exit-5-with-drift', 'release-run 41 --from=prepare');
  });

  test('release-orchestrator-source-drift (orchestrator files edited on the host)', async () => {
    await platform.mergeFeature('42', bump('2'));
    platform.write(platform.prod, { 'plugins/local-hack.ts': 'export {};\n' });
    const result = await platform.run('release-run', ['42']);
    expect(result.exitCode).toBe(1);
    expectPlaybook(result.stderr, '42', 'release-orchestrator-source-drift', 'release-run 42');
  });

  test('release-state-file (--from without a state file)', async () => {
    const result = await platform.run('release-run', ['43', '--from=verify']);
    expect(result.exitCode).toBe(2);
    expectPlaybook(result.stderr, '43', 'release-state-file', 'release-run 43 --from=prepare');
  });

  test('release-state-file (a garbled state file, and one of another repo)', async () => {
    await platform.mergeFeature('44', bump('2'));
    expect((await platform.run('release-run', ['44'])).exitCode).toBe(0);
    const stateFile = platform.stateFile('44');
    writeFileSync(stateFile, 'TICKET=44\nBRANCH=ma');
    const garbled = await platform.run('release-revert', ['44']);
    expect(garbled.exitCode).toBe(2);
    expect(garbled.stderr).toMatch(/state file .*44.env is damaged: the last line is cut off/);
    expectPlaybook(garbled.stderr, '44', 'release-state-file', 'release-run 44 --from=prepare');

    writeFileSync(stateFile, `TICKET=44\nBRANCH=main\nBASE_SHA=${'1'.repeat(40)}\nMERGE_SHA=${'2'.repeat(40)}\nSERVICES="web"\nSKIPPED_METADATA=""\nBACKUPS=""\n`);
    const foreign = await platform.run('release-revert', ['44']);
    expect(foreign.exitCode).toBe(2);
    expect(foreign.stderr).toMatch(/BASE_SHA 111111111111 is not a commit of this repo .* the file belongs to another repo/);
  });

  test('release-revert-later-releases (a later release touched the same service)', async () => {
    await platform.mergeFeature('45', bump('2'));
    await platform.run('release-run', ['45']);
    await platform.mergeFeature('46', bump('3'));
    await platform.run('release-run', ['46']);
    const result = await platform.run('release-revert', ['45']);
    expect(result.exitCode).toBe(2);
    expectPlaybook(result.stderr, '45', 'release-revert-later-releases', 'release-revert 45 --code-only');
  });

  test('release-revert-blocked (the revert no longer applies)', async () => {
    await platform.mergeFeature('45', bump('2'));
    await platform.run('release-run', ['45']);
    await platform.mergeFeature('46', bump('3'));
    await platform.run('release-run', ['46']);
    const result = await platform.run('release-revert', ['45', '--code-only']);
    expect(result.exitCode).toBe(8);
    expectPlaybook(result.stderr, '45', 'release-revert-blocked', 'release-revert 45');
  });

  test('release-lock-held (exit 3), without writing to the holder’s log', async () => {
    platform.write(platform.prod, { '.asd/workspace/release.lock': `pid=${process.pid}\nhost=${(await execa('hostname')).stdout}\nticket=47\nstarted=x\n` });
    const result = await platform.run('release-run', ['47']);
    expect(result.exitCode).toBe(3);
    expectPlaybook(result.stderr, '47', 'release-lock-held', 'release-run 47');
    expect(platform.readLog('47')).toEqual([]);
  });

  test('release-verify-race (a health probe that times out, exit 7)', async () => {
    const server: Server = createServer((_req, res) => res.writeHead(503, { connection: 'close' }).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await platform.mergeFeature('48', { 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:2\nhealth:\n  url: http://127.0.0.1:${port}\n  endpoint: /health\n  timeout: 1s\n` });
      const result = await platform.run('release-run', ['48']);
      expect(result.exitCode).toBe(7);
      expect(result.stderr).toMatch(new RegExp(`GET http://127.0.0.1:${port}/health last answered HTTP 503 after`));
      expectPlaybook(result.stderr, '48', 'release-verify-race', 'release-run 48 --from=verify');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('release-interrupted: SIGTERM stops the running step, logs it, frees the lock, exits 130', async () => {
    const started = join(platform.root, 'started');
    await platform.mergeFeature('49', { 'releases/49-slow.sh': `#!/bin/sh\ntouch ${started}\nsleep 30\n` });
    const run = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '49'], { cwd: platform.prod, reject: false, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' } });
    while (!existsSync(started)) await new Promise((resolve) => setTimeout(resolve, 50));
    const sentAt = Date.now();
    run.kill('SIGTERM');
    const result = await run;
    expect(Date.now() - sentAt).toBeLessThan(5000);
    expect(result.exitCode).toBe(130);
    expect(String(result.stderr)).toContain('release-run failed in phase ticket. To roll back:');
    expect(String(result.stderr)).toContain('  release-run 49 --from=ticket');
    expectPlaybook(String(result.stderr), '49', 'release-interrupted', 'release-run 49 --from=ticket');
    expect(platform.logEvents('49')).toContain('ticket=49 phase=ticket event=interrupted rc=130');
    expect(existsSync(join(platform.prod, '.asd/workspace/release.lock'))).toBe(false);
  });

  test('no playbook matches: says so and how to add one', async () => {
    await platform.mergeFeature('50', { 'releases/50-fail.sh': '#!/bin/sh\nexit 3\n' });
    const result = await platform.run('release-run', ['50']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('No recovery playbook matches this failure (phase ticket, exit 1, reason TICKET_SCRIPT_FAILED).');
    expect(result.stderr).toContain('add one as recovery/playbooks/release-<name>.yaml');
    expect(platform.logEvents('50')).toContain('ticket=50 phase=orchestrator event=playbook id=none');
  });

  test("a platform repo's own playbook is matched too, and a broken one is reported", async () => {
    await platform.mergeFeature('51', {
      'releases/51-fail.sh': '#!/bin/sh\necho "vendor API quota exceeded" >&2\nexit 1\n',
      'recovery/playbooks/release-vendor-quota.yaml': 'id: release-vendor-quota\ntitle: the vendor API quota is spent\nmatches:\n  phase: ticket\n  output: quota exceeded\ncause: the nightly sync used it up\nsteps:\n  - wait for midnight UTC\nnext: just release-run {ticket} --from=ticket\n',
      'recovery/playbooks/release-broken.yaml': 'id: release-broken\ntitle: x\n',
    });
    const result = await platform.run('release-run', ['51']);
    expect(result.exitCode).toBe(1);
    expectPlaybook(result.stderr, '51', 'release-vendor-quota', 'release-run 51 --from=ticket');
    expect(result.stderr).toMatch(/playbook skipped: .*release-broken.yaml: matches: /);
  });
});
