/**
 * What a new operator meets first, on real git and a real Docker engine: the runbook's drill on a
 * dev host (`--local`), a release stopped by an unclassified file and finished once the rule is
 * merged (`--from=prepare`), and advice that is true (no roll back when nothing changed).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ORCHESTRATOR_ROOT, Platform, sh, snapshot } from './helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';

const manifestOf = (service: string, port: number, options: Parameters<typeof dockerServiceFiles>[2] = {}) =>
  dockerServiceFiles(service, port, options)[`packages/${service}/manifest.yaml`]!;

describe('on a deployed service', () => {
  let platform: Platform;
  let service: string;
  let port: number;
  beforeEach(async () => {
    service = uniqueName('svc');
    port = await freePort();
    platform = await Platform.create([]);
    await platform.mergeFeature('100', dockerServiceFiles(service, port, { backup: `backup:\n  - type: volume\n    volume: ${service}_data` }));
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(`the first deploy failed:\n${first.all}`);
  });
  afterEach(async () => {
    await removeProjects([service]);
    platform.remove();
  });

  test("the runbook's drill on a dev host: a fast-forward merged locally, release-run --local fails verify, release-revert restores", async () => {
    const clone = platform.prod; // the clone the operator practises in
    const base = await platform.head(clone);
    // exactly as the runbook tells it
    await sh(clone, 'git', ['checkout', '-q', '-b', 'feat/will-fail']);
    platform.write(clone, { [`packages/${service}/manifest.yaml`]: manifestOf(service, port, { endpoint: '/nonexistent', timeout: '60s', backup: `backup:\n  - type: volume\n    volume: ${service}_data` }) });
    await sh(clone, 'git', ['commit', '-q', '-am', 'will fail: health endpoint /nonexistent']);
    await sh(clone, 'git', ['checkout', '-q', 'main']);
    await sh(clone, 'git', ['merge', '-q', '--ff-only', 'feat/will-fail']);
    const merged = await platform.head(clone);

    const refused = await platform.run('release-run', ['9999']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/local commits that origin\/main lacks/);
    expect(refused.stderr).toContain('On a dev host, to release these local commits without a pull: release-run 9999 --local');
    expect(refused.stderr).not.toMatch(/To roll back/);

    const started = Date.now();
    const failed = await platform.run('release-run', ['9999', '--local']);
    expect(`${failed.exitCode}\n${failed.all}`).toMatch(/^7\n/);
    // a 404 does not go away by waiting: the probe gives up after its 10 s grace, not at the 60 s timeout
    expect(failed.stderr).toMatch(new RegExp(`health probe of ${service} failed: GET http://127.0.0.1:${port}/nonexistent kept answering HTTP 404 for 10s`));
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(failed.stdout).toMatch(/waiting for .*answered HTTP 404/);
    expect(failed.stdout).not.toMatch(/git fetch|git pull/);
    expect(failed.stderr).toContain('  release-revert 9999');
    expect(failed.stderr).toContain(`docker ps --all --filter label=com.docker.compose.project=${service}`);
    expect(platform.readState('9999')).toMatchObject({ BASE_SHA: base, MERGE_SHA: merged, SERVICES: service });
    expect(platform.readState('9999').BACKUPS).toMatch(new RegExp(`^${service}=\\d{8}_\\d{6}$`));
    expect(platform.logEvents('9999')).toContain('ticket=9999 phase=orchestrator event=start verb=release-run local=yes');

    const reverted = await platform.run('release-revert', ['9999']);
    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
    expect(await platform.git(['rev-parse', 'HEAD^{tree}'], clone)).toBe(await platform.git(['rev-parse', `${base}^{tree}`], clone));
    expect((await httpGet(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect((await platform.run('release', [`--service=${service}`])).stdout.trim()).toBe('0 actions');
  });

  test('exit 5 in migrate, the rule merged on origin, --from=prepare finishes the release; release-revert goes back to the first BASE_SHA', async () => {
    const base = await platform.head();
    const firstMerge = await platform.mergeFeature('200', {
      [`packages/${service}/manifest.yaml`]: manifestOf(service, port, { tag: '2', backup: `backup:\n  - type: volume\n    volume: ${service}_data` }),
      'tools/rotate-logs.py': 'print("rotate")\n',
    });
    const containersBefore = await containersOf(service);

    const stopped = await platform.run('release-run', ['200']);
    expect(stopped.exitCode).toBe(5);
    expect(stopped.stderr).toMatch(/1 changed file\(s\) match no classifier rule; no service was touched/);
    expect(stopped.stderr).toContain('Recovery playbook release-run-exit-5-with-drift');
    expect(stopped.stderr).toContain(`it keeps BASE_SHA ${base} and the backups`);
    expect(stopped.stderr).toContain('  next: release-run 200 --from=prepare');
    expect(stopped.stderr).toContain('To resume once the cause is fixed:\n  release-run 200 --from=prepare\n');
    expect(stopped.all).not.toMatch(/--from=migrate/);
    expect(stopped.stderr).not.toMatch(/fixed in|#\d{3,}/);
    expect(await containersOf(service)).toEqual(containersBefore);
    const state = platform.readState('200');
    expect(state).toMatchObject({ BASE_SHA: base, MERGE_SHA: firstMerge });

    // The fix goes through a PR: a rule for tools/ in the platform's own release.config.ts.
    const fixed = await platform.mergeFeature('200-rule', {
      'release.config.ts': "export default ({ defaultPlugins, builtins }) => ({\n  plugins: [...defaultPlugins(), builtins.globRule({ name: 'tools', patterns: ['tools/**'], kind: 'tooling' })],\n});\n",
    });
    // --from=migrate cannot see it (HEAD is still the first MERGE_SHA): still exit 5, nothing touched
    expect((await platform.run('release-run', ['200', '--from=migrate'])).exitCode).toBe(5);

    const finished = await platform.run('release-run', ['200', '--from=prepare']);
    expect(`${finished.exitCode}\n${finished.all}`).toMatch(/^0\n[\s\S]*release 200 complete/);
    expect(finished.stdout).toContain(`continuing release 200: origin/main moved from its MERGE_SHA ${firstMerge.slice(0, 12)} to ${fixed.slice(0, 12)}; BASE_SHA and the backups are kept`);
    expect(platform.readState('200')).toEqual({ ...state, MERGE_SHA: fixed });
    expect(platform.logEvents('200')).toContain(`ticket=200 phase=prepare event=continued previous_merge=${firstMerge} target=${fixed}`);
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('2');

    const reverted = await platform.run('release-revert', ['200']);
    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
    expect(await platform.git(['rev-parse', 'HEAD^{tree}'])).toBe(await platform.git(['rev-parse', `${base}^{tree}`]));
    expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe('1');
  });
});

describe('advice that is true', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterEach(() => platform.remove());

  test('a failed dry run offers no roll back and no resume: it says what a real run would do', async () => {
    await platform.mergeFeature('60', { 'tools/x.py': 'x\n' });
    const before = await snapshot(platform.prod);
    const result = await platform.run('release-run', ['60', '--dry-run']);
    expect(result.exitCode).toBe(5);
    expect(result.stderr).toContain('This was a dry run: nothing was changed. A real run would stop here, in phase migrate, with exit 5.');
    expect(result.stderr).toContain('  release-run 60 --dry-run');
    expect(result.all).not.toMatch(/To roll back|release-revert|--from=/);
    expect(result.stderr).toContain('A real run would show the recovery playbook release-run-exit-5-with-drift');
    expect(await snapshot(platform.prod)).toBe(before);
  });

  test('exit 4 (pulled by hand) and a refusal before the pull offer nothing to roll back', async () => {
    await platform.mergeFeature('61', { 'docs/a.md': 'a\n' });
    await platform.git(['pull', '-q', 'origin', 'main']);
    const pulled = await platform.run('release-run', ['61']);
    expect(pulled.exitCode).toBe(4);
    expect(pulled.stderr).toMatch(/already equals origin\/main; nothing was changed/);
    expect(pulled.all).not.toMatch(/To roll back|release-revert 61\b(?! \{)/);

    await platform.mergeFeature('62', { 'docs/b.md': 'b\n' });
    platform.write(platform.prod, { 'docs/local.md': 'edited on the host\n' });
    const refused = await platform.run('release-run', ['62']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
    expect(refused.stderr).toContain('  release-run 62');
    expect(refused.all).not.toMatch(/To roll back|release-revert/);
  });

  test('bad input after the pull (two ticket scripts) says where the clone is and how to resume, without claiming nothing changed', async () => {
    await platform.mergeFeature('65', { 'releases/65-a.sh': '#!/bin/sh\ntrue\n', 'releases/65-b.sh': '#!/bin/sh\ntrue\n' });
    const result = await platform.run('release-run', ['65']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("release-run stopped in phase ticket on bad input or config; the clone is at the release's MERGE_SHA. Once the cause is fixed, resume:\n  release-run 65 --from=ticket");
    expect(result.stderr).not.toMatch(/nothing was changed|To roll back/);
  });

  test('errors, their fix, their lists and the advice all go to stderr; stdout keeps the progress', async () => {
    await platform.mergeFeature('63', { 'tools/y.py': 'y\n', 'tools/z.py': 'z\n' });
    const result = await platform.run('release-run', ['63']);
    expect(result.exitCode).toBe(5);
    expect(result.stdout).not.toMatch(/error|fix:|rules in force|To roll back|Recovery playbook|next:/);
    expect(result.stdout).toMatch(/\[release-run\] prepare: /);
    expect(result.stderr).toMatch(/error: 2 changed file\(s\)[^\n]*\n {2}tools\/y.py\n {2}tools\/z.py\n {2}rules in force, in order:\n( {4}[^\n]*\n)+ {2}fix: /);
    expect(result.stderr).toContain('To roll back:');
  });

  test('through a justfile recipe (RELEASE_INVOKED_VIA) the printed commands start with just', async () => {
    await platform.mergeFeature('64', { 'tools/x.py': 'x\n' });
    const result = await platform.run('release-run', ['64'], { RELEASE_INVOKED_VIA: 'just' });
    expect(result.stderr).toContain('  just release-revert 64');
    expect(result.stderr).toContain('  next: just release-run 64 --from=prepare');
    expect(result.stderr).not.toMatch(/^ {2}release-/m);
  });
});

describe('release init', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([]); });
  afterEach(() => platform.remove());

  test('writes what a platform repo needs, never overwrites, and run twice changes nothing', async () => {
    platform.write(platform.dev, { '.gitignore': 'node_modules/' }); // no trailing newline, no .asd/
    const first = await platform.run('release', ['init', '--example', 'web', '--repo', platform.dev]);
    expect(first.exitCode).toBe(0);
    for (const file of ['justfile', 'recovery/playbooks/README.md', 'release.config.ts', 'packages/web/manifest.yaml', 'packages/web/compose.yaml']) {
      expect(first.stdout).toContain(`wrote ${file}`);
      expect(existsSync(join(platform.dev, file))).toBe(true);
    }
    expect(readFileSync(join(platform.dev, '.gitignore'), 'utf8')).toBe('node_modules/\n.asd/\n');
    expect(first.stdout).toContain('just release --service=web');
    // the justfile is the one the demo uses, and it runs the installed verbs with no variable to set
    expect(readFileSync(join(platform.dev, 'justfile'), 'utf8')).toBe(readFileSync(join(ORCHESTRATOR_ROOT, 'demo', 'platform.justfile'), 'utf8'));
    expect(readFileSync(join(platform.dev, 'justfile'), 'utf8')).not.toMatch(/env_var|RELEASE_ORCHESTRATOR_HOME/);
    const before = await snapshot(platform.dev);

    const second = await platform.run('release', ['init', '--example', 'web', '--repo', platform.dev]);
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toContain('nothing to do: the repo is set up already');
    expect(await snapshot(platform.dev)).toBe(before);

    // what it wrote loads: the config and the example service's manifest
    const drift = await platform.run('release', ['--service=web', '--repo', platform.dev]);
    expect(drift.stdout).toMatch(/^redeploy web: /m);
    expect(drift.exitCode).toBe(5);
  });

  test('an existing justfile is kept; a bad --example name exits 2', async () => {
    platform.write(platform.dev, { Justfile: 'hello:\n    echo hi\n' });
    const result = await platform.run('release', ['init', '--repo', platform.dev]);
    expect(result.stdout).toContain('kept  Justfile');
    expect(existsSync(join(platform.dev, 'justfile'))).toBe(false);
    const bad = await platform.run('release', ['init', '--example', '../x', '--repo', platform.dev]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/invalid service name --example "..\/x"/);
  });
});
