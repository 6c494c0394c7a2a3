import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT, type CliResult } from './helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';

/**
 * What real prod clones and real ticket scripts hold that a tidy test repo does not: host-only
 * files beside the tracked ones, paths git has to quote, scripts that ask questions or leave
 * processes behind, and a diff of tens of thousands of files.
 */

const isAlive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** Everything the orchestrator wrote about a ticket: its log, state, ticket output and history. */
function records(platform: Platform): string {
  const dir = join(platform.prod, '.asd', 'workspace', 'releases');
  return readdirSync(dir).filter((file) => !file.endsWith('.lock')).map((file) => readFileSync(join(dir, file), 'utf8')).join('\n');
}

describe('files the prod clone keeps for itself', () => {
  let platform: Platform;
  afterEach(() => platform.remove());

  test('an untracked file stops the release with the way to keep it (.git/info/exclude); once excluded it is left alone through release and revert', async () => {
    platform = await Platform.create([{ name: 'web' }]);
    writeFileSync(join(platform.prod, 'operator-notes.txt'), 'restart the cache after 17:00\n');
    await platform.mergeFeature('100', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });

    const refused = await platform.run('release-run', ['100']);

    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('the work tree has 1 uncommitted change(s) (1 untracked file(s)); nothing was changed');
    expect(refused.stderr).toContain('?? operator-notes.txt');
    expect(refused.stderr).toMatch(/fix: an untracked file that belongs to this host only \(a \.env, a secret\) goes in \.git\/info\/exclude .*, then run release-run 100 again/);
    expect(refused.stderr).not.toContain('git stash them');

    writeFileSync(join(platform.prod, '.git', 'info', 'exclude'), 'operator-notes.txt\n', { flag: 'a' });
    expect((await platform.run('release-run', ['100'])).exitCode).toBe(0);
    expect((await platform.run('release-revert', ['100'])).exitCode).toBe(0);
    expect(readFileSync(join(platform.prod, 'operator-notes.txt'), 'utf8')).toBe('restart the cache after 17:00\n');
  });
});

describe('a host-only .env of a compose project, on a real engine', () => {
  let platform: Platform;
  let svc: string;
  afterEach(async () => {
    await removeProjects([svc]);
    platform.remove();
  });

  test('a git-ignored .env that compose reads for ${VAR} survives release and revert byte for byte, and its secret reaches no output, log, state or event', async () => {
    svc = uniqueName('envfile');
    const port = await freePort();
    const files = dockerServiceFiles(svc, port);
    const compose = files[`packages/${svc}/compose.yaml`]!.replace('    volumes:\n      - data:/data\n', '    environment:\n      APP_PASSWORD: ${APP_PASSWORD}\n    volumes:\n      - data:/data\n');
    platform = await Platform.create([], { '.gitignore': '.asd/\n.env\n' });
    const password = 'host-only-pw-5e81c2';
    const dotenv = `# kept on this host only\nAPP_PASSWORD=${password}\n`;
    // The operator puts the .env in place before the service's first release.
    const envPath = join(platform.prod, 'packages', svc, '.env');
    mkdirSync(dirname(envPath), { recursive: true });
    writeFileSync(envPath, dotenv);
    await platform.mergeFeature('100', { ...files, [`packages/${svc}/compose.yaml`]: compose });
    const first = await platform.run('release-run', ['100']);
    expect(first.exitCode).toBe(0);
    await platform.mergeFeature('101', { [`packages/${svc}/compose.yaml`]: compose.replace('APP_PASSWORD: ${APP_PASSWORD}', 'APP_PASSWORD: ${APP_PASSWORD}\n      APP_MODE: "2"') });

    const released = await platform.run('release-run', ['101', '--json']);
    const reverted = await platform.run('release-revert', ['101']);
    const drift = await platform.run('release', [`--service=${svc}`]);
    const shown = await platform.run('release', ['show', '101']);

    expect(released.exitCode).toBe(0);
    expect(reverted.exitCode).toBe(0);
    expect(drift.stdout.trim()).toBe('0 actions');
    expect(readFileSync(envPath, 'utf8')).toBe(dotenv);
    const [container] = (await containersOf(svc)).filter((c) => c.state === 'running');
    expect((await execa('docker', ['exec', container!.id, 'sh', '-c', 'echo "$APP_PASSWORD"'])).stdout.trim()).toBe(password);
    for (const result of [first, released, reverted, drift, shown] as CliResult[]) expect(result.all).not.toContain(password);
    expect(records(platform)).not.toContain(password);
  });
});

describe('paths git quotes, through classify, migrate.sh and a real engine', () => {
  let platform: Platform;
  let svc: string;
  afterEach(async () => {
    await removeProjects([svc]);
    platform.remove();
  });

  test('spaces, tabs, UTF-8, a newline, quotes and $(...) in mounted file names: one recreate, shown quoted, nothing run from a name', async () => {
    svc = uniqueName('paths');
    const port = await freePort();
    const files = dockerServiceFiles(svc, port);
    const compose = files[`packages/${svc}/compose.yaml`]!.replace('      - data:/data\n', '      - data:/data\n      - "./my page.txt:/www/page:ro"\n      - ./pages:/www/pages:ro\n');
    platform = await Platform.create([]);
    await platform.mergeFeature('100', { ...files, [`packages/${svc}/compose.yaml`]: compose, [`packages/${svc}/my page.txt`]: 'one', [`packages/${svc}/pages/index.txt`]: 'i' });
    expect((await platform.run('release-run', ['100'])).exitCode).toBe(0);
    expect((await httpGet(`http://127.0.0.1:${port}/page`)).body).toBe('one');
    const [before] = await containersOf(svc);
    const odd = ['tab\there.txt', 'café.txt', 'new\nline.txt', 'say "hi".txt', '$(touch PWNED).txt', '`touch PWNED2`.txt'];

    await platform.mergeFeature('101', {
      [`packages/${svc}/my page.txt`]: 'two',
      ...Object.fromEntries(odd.map((name) => [`packages/${svc}/pages/${name}`, name])),
    });
    const released = await platform.run('release-run', ['101']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain(`packages/${svc}/my page.txt: mounted-config (service-files)`);
    expect(released.stdout).toContain(`    A "packages/${svc}/pages/new\\nline.txt"`);
    expect(released.stdout).toContain(`    A "packages/${svc}/pages/tab\\there.txt"`);
    expect(released.stdout).toContain(`    A "packages/${svc}/pages/say \\"hi\\".txt"`);
    expect(released.stdout).toContain(`    A packages/${svc}/pages/café.txt`);
    expect(released.stdout.match(new RegExp(`migrate: recreate ${svc} \\(app\\)`, 'g'))).toHaveLength(1);
    const [after] = await containersOf(svc);
    expect(after!.id).not.toBe(before!.id);
    expect((await httpGet(`http://127.0.0.1:${port}/page`)).body).toBe('two');
    expect((await execa('docker', ['exec', after!.id, 'cat', '/www/pages/tab\there.txt'])).stdout).toBe('tab\there.txt');
    const script = readFileSync(join(platform.prod, '.asd', 'workspace', 'release', 'migrate.sh'), 'utf8');
    expect(script).toContain(`"packages/${svc}/pages/new\\nline.txt"`);
    expect((await execa('bash', ['-n', join(platform.prod, '.asd', 'workspace', 'release', 'migrate.sh')], { reject: false })).exitCode).toBe(0);
    const pwned = await execa('find', [platform.root, '/tmp', ORCHESTRATOR_ROOT, '-maxdepth', '4', '-name', 'PWNED*'], { reject: false });
    expect(pwned.stdout).toBe('');

    const reverted = await platform.run('release-revert', ['101']);
    expect(reverted.exitCode).toBe(0);
    expect((await httpGet(`http://127.0.0.1:${port}/page`)).body).toBe('one');
    expect(existsSync(join(platform.prod, 'packages', svc, 'pages', 'new\nline.txt'))).toBe(false);
  });
});

describe('ticket scripts as people write them', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterEach(() => platform.remove());

  test('a script that asks a question reads end-of-input at once, even when the operator\'s terminal stays open', async () => {
    await platform.mergeFeature('200', {
      'releases/200-ask.sh': '#!/usr/bin/env bash\necho "Continue? [y/N]"\nif read -r answer; then echo "answered: $answer"; else echo "no input: going on"; fi\n',
    });
    // stdin a pipe that never ends, as a terminal nobody types into.
    const child = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '200'], {
      cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, stdin: 'pipe', reject: false, all: true, timeout: 60_000,
    });
    const result = await child;

    expect(result.exitCode).toBe(0);
    expect(result.all).toContain('no input: going on');
    expect(result.all).toContain('release 200 complete');
  });

  test('a script that leaves processes behind (in its group, after setsid, with its output closed) does not hold the release: they get 5 s, then are stopped and named', async () => {
    await platform.mergeFeature('201', {
      'releases/201-daemon.sh': '#!/bin/sh\necho "starting the workers"\nsleep 301 &\nsetsid sleep 302 &\nsleep 303 >/dev/null 2>&1 &\necho "started"\n',
    });
    const released = await platform.run('release-run', ['201']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain('release 201 complete');
    const warning = released.stderr.split('\n').find((line) => line.includes('left 3 process(es) running past 5s'));
    expect(warning).toMatch(/^\[release-run\] warning: \S+releases\/201-daemon\.sh --yes exited 0 but left 3 process\(es\) running past 5s: pid \d+: sleep 301; pid \d+: sleep 302; pid \d+: sleep 303; stopped them/);
    const pids = [...warning!.matchAll(/pid (\d+)/g)].map((match) => Number(match[1]));
    const deadline = Date.now() + 10_000;
    while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(pids.filter(isAlive)).toEqual([]);
    expect(platform.logEvents('201')).toContain('ticket=201 phase=ticket event=leftovers-stopped command=' + join(platform.prod, 'releases/201-daemon.sh') + ' count=3');
    expect(existsSync(join(platform.prod, '.asd', 'workspace', 'release.lock'))).toBe(false);
  });
});

describe('a diff of 20,000 files', () => {
  let platform: Platform;
  afterAll(() => platform.remove());

  test('is released whole; the terminal shows 100 of each list and where the rest is; migrate.sh names every file', async () => {
    platform = await Platform.create([{ name: 'web' }]);
    const files = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`packages/web/static/${String(i).padStart(5, '0')}.txt`, `${i}\n`]));
    await platform.mergeFeature('300', files);

    const released = await platform.run('release-run', ['300']);

    expect(released.exitCode).toBe(0);
    expect(released.stdout).toContain('prepare: 20000 changed file(s)');
    expect(released.stdout).toMatch(/^ {4}\.\.\. and 19900 more \(all of them: git diff --name-status [0-9a-f]{12} [0-9a-f]{12}\)$/m);
    expect(released.stdout).toMatch(/^ {4}\.\.\. and 19900 more: 19900 service-file \(all of them in the header of \S+migrate\.sh\)$/m);
    expect(released.stdout.split('\n').length).toBeLessThan(300);
    const command = /git diff --name-status ([0-9a-f]{12}) ([0-9a-f]{12})/.exec(released.stdout)!;
    expect((await platform.git(['diff', '--name-status', command[1]!, command[2]!])).split('\n')).toHaveLength(20_000);
    const script = readFileSync(join(platform.prod, '.asd', 'workspace', 'release', 'migrate.sh'), 'utf8');
    expect(script.match(/^# {3}A packages\/web\/static\/\d{5}\.txt/gm)).toHaveLength(20_000);
    expect(readFileSync(join(platform.prod, 'packages/web/static/19999.txt'), 'utf8')).toBe('19999\n');
  });
});
