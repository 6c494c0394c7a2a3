import { execa } from 'execa';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';
import { renderMigrateScript } from './script.js';
import { forgetGuardsOfPendingActions, type ClassifiedFile } from './index.js';

const sha = (c: string) => c.repeat(40);

function input(services: string[]) {
  const classified: ClassifiedFile[] = services.map((service) => ({
    file: { path: `packages/${service}/manifest.yaml`, status: 'M' },
    classification: { kind: 'manifest', rule: 'service-files', service, actions: [{ service, kind: 'redeploy', reason: `packages/${service}/manifest.yaml changed` }] },
  }));
  classified.push({ file: { path: 'docs/it\'s.md', status: 'A' }, classification: { kind: 'docs', rule: 'docs', actions: [] } });
  return {
    ticket: '1234',
    state: { baseSha: sha('a'), mergeSha: sha('b') },
    classified,
    actions: classified.flatMap((c) => c.classification.actions),
    stepCommand: ['/usr/bin/node', '/opt/ro/dist/cli/bin/release-step.js', '--repo', '/srv/platform repo', '--ticket', '1234'],
  };
}

describe('migrate.sh', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'ro-migrate-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('for a diff of three services: a header, three functions, and it passes shellcheck', async () => {
    const script = renderMigrateScript(input(['web', 'api', 'redis-cache']));
    expect(script).toMatch(/^#!\/usr\/bin\/env bash\n# migrate.sh for release 1234/);
    expect(script).toContain(`#   BASE_SHA:  ${sha('a')}`);
    expect(script).toContain(`#   MERGE_SHA: ${sha('b')}`);
    expect(script).toMatch(/#   M packages\/web\/manifest.yaml\s+manifest \(service-files\) -> redeploy web/);
    expect(script).toMatch(/#   A docs\/it's.md\s+docs \(docs\)\n/);
    expect(script.match(/^migrate_[a-z-]+\(\) \{$/gm)).toEqual(['migrate_api() {', 'migrate_redis-cache() {', 'migrate_web() {']);
    const file = join(dir, 'migrate.sh');
    writeFileSync(file, script);
    const lint = await execa('shellcheck', ['--shell=bash', file], { reject: false });
    expect(lint.stdout).toBe('');
    expect(lint.exitCode).toBe(0);
  });

  test('the same diff always gives the same script, whatever order its actions come in', () => {
    const one = input(['web', 'api', 'db']);
    const other = { ...one, actions: [...one.actions].reverse() };
    expect(renderMigrateScript(other)).toBe(renderMigrateScript(one));
    expect(renderMigrateScript(input(['web', 'api']))).not.toBe(renderMigrateScript(one));
  });

  test('refuses to run outside the orchestrator unless given --debug; --debug runs one service', async () => {
    const script = renderMigrateScript({ ...input(['web', 'api']), stepCommand: ['echo', 'step'] });
    const file = join(dir, 'guarded.sh');
    writeFileSync(file, script);
    const env = { RELEASE_ORCHESTRATOR: '' };
    const refused = await execa('bash', [file, 'all'], { reject: false, env });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toBe('migrate.sh is run by release-run; to run it by hand for debugging, add --debug');
    const debug = await execa('bash', [file, 'web', '--debug'], { reject: false, env });
    expect(debug.stdout.split('\n')).toEqual(['step backup web', 'step redeploy web']);
    const all = await execa('bash', [file, 'all', '--no-backup', '--debug'], { reject: false, env });
    // One wave of both, up to `concurrency` at once: each line names its service.
    expect(all.stdout.split('\n').sort()).toEqual(['[api] step redeploy api', '[web] step redeploy web', 'migrate.sh: api done', 'migrate.sh: wave 1 of 1: api web', 'migrate.sh: web done']);
    const unknown = await execa('bash', [file, 'nope', '--debug'], { reject: false, env });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toBe('migrate.sh: give all or one of: api web');
  });
});

describe('a resumed migrate and the pre-deploy hooks', () => {
  const steps = (service: string) => ['pre-deploy', 'build', 'redeploy', 'post-deploy'].map((kind) => ({ service, kind, reason: 'x' }));

  test('a pre-deploy hook that passed is run again when an action after it is still to do, and only then', () => {
    const state = { applied: ['web:pre-deploy', 'web:build', 'db:pre-deploy', 'db:build', 'db:redeploy'] };
    forgetGuardsOfPendingActions(state, [...steps('web'), ...steps('db')]);
    // web's redeploy is still to do: its guard runs again; db's actions are all done: its post-deploy alone is left.
    expect(state.applied).toEqual(['web:build', 'db:pre-deploy', 'db:build', 'db:redeploy']);
  });
});

describe('the migrate phase on real git', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }, { name: 'api' }, { name: 'db' }]); });
  afterEach(() => platform.remove());

  test('a release of three services regenerates migrate.sh with three functions', async () => {
    await platform.mergeFeature('300', {
      'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n',
      'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:2\n',
      'packages/db/manifest.yaml': 'name: db\nruntime: none\nimage: local/db:2\n',
    });
    const result = await platform.run('release-run', ['300']);
    expect(result.exitCode).toBe(0);
    const script = readFileSync(join(platform.prod, '.asd/workspace/release/migrate.sh'), 'utf8');
    expect(script.match(/^migrate_\w+\(\) \{$/gm)).toEqual(['migrate_api() {', 'migrate_db() {', 'migrate_web() {']);

    // Run by hand with --debug, its steps take the release lock: never beside a running release.
    const holder = `pid=${process.pid}\nhost=${(await execa('hostname')).stdout}\nticket=301\nstarted=now\n`;
    writeFileSync(join(platform.prod, '.asd/workspace/release.lock'), holder);
    const debug = await execa('bash', ['.asd/workspace/release/migrate.sh', 'web', '--no-backup', '--debug'], { cwd: platform.prod, reject: false, env: { RELEASE_ORCHESTRATOR: '', NO_COLOR: '1' } });
    expect(debug.exitCode).toBe(3);
    expect(debug.stderr).toMatch(/another release holds the lock: ticket 301/);
  });

  test('a repo config that swaps a rule changes the classification', async () => {
    await platform.pushCommits([{
      'release.config.ts': `export default ({ defaultPlugins, builtins }: any) => ({
  plugins: [
    ...defaultPlugins().filter((plugin: any) => plugin.name !== 'docs'),
    builtins.globRule({ name: 'handbook', patterns: ['docs/**'], kind: 'handbook' }),
  ],
});
`,
    }]);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await platform.mergeFeature('301', { 'docs/runbook.md': 'x\n' });
    const result = await platform.run('release-run', ['301']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('docs/runbook.md: handbook (handbook)');
    const script = readFileSync(join(platform.prod, '.asd/workspace/release/migrate.sh'), 'utf8');
    expect(script).toMatch(/#   A docs\/runbook.md\s+handbook \(handbook\)/);
    // Nothing to do is said once, in the header and the output, and the script touches no service.
    expect(script).toContain('# No changed file asks for an action: this script touches no service.');
    expect(script).not.toMatch(/^migrate_/m);
    expect(result.stdout).toContain('migrate: no changed file asks for an action: no service is touched');
  });

  test('an action no plugin carries out fails migrate with exit 5 before any service is touched, naming it', async () => {
    await platform.pushCommits([{
      'release.config.ts': `export default ({ defaultPlugins, builtins }: any) => ({
  plugins: [
    builtins.globRule({ name: 'proxy-routes', patterns: ['routes/**'], kind: 'route', action: 'reload-proxy', service: 'web' }),
    ...defaultPlugins(),
  ],
});
`,
    }]);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await platform.mergeFeature('302', { 'routes/api.cfg': 'x\n', 'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:2\n' });

    const result = await platform.run('release-run', ['302']);

    expect(result.exitCode).toBe(5);
    const report = `${result.stdout}\n${result.stderr}`;
    expect(report).toContain('1 action(s) that no plugin carries out; no service was touched');
    expect(report).toContain('reload-proxy web: routes/api.cfg changed (rule proxy-routes)');
    expect(report).toMatch(/plugins that carry out actions: .*redeploy \(runtime-swarm, runtime-compose, runtime-none\)/);
    expect(platform.logEvents('302').filter((line) => line.includes('phase=apply'))).toEqual([]);
  });

  test('a service whose runtime no plugin provides is refused in prepare, before anything changes', async () => {
    await platform.mergeFeature('303', { 'packages/api/manifest.yaml': 'name: api\nruntime: nomad\nimage: local/api:2\n' });
    const head = await platform.head();

    const result = await platform.run('release-run', ['303']);

    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/packages\/api\/manifest.yaml: runtime: no plugin provides runtime "nomad" \(provided: swarm, compose, none\); nothing was changed/);
    expect(await platform.head()).toBe(head);
  });

  test('a folder that could not be a service name may still be deleted', async () => {
    await platform.pushCommits([{ 'packages/Old Stuff/notes.txt': 'old\n' }]);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await platform.mergeFeature('304', { 'packages/Old Stuff/notes.txt': null });
    const result = await platform.run('release-run', ['304']);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
  });
});

describe('migrate.sh all: waves, concurrency and halting', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'rowv-waves-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A step that logs its start and end (ms) to `trace`, sleeps, and fails at once for `failing`. */
  function traced(name: string, waves: string[][], concurrency: number, failing = 'none') {
    const trace = join(dir, `${name}.trace`);
    // The failing service fails at once; the others take a while, so the failure comes first.
    const step = `echo "start $2 $(date +%s%3N)" >> ${trace}; if [ "$2" = ${failing} ]; then echo "end $2" >> ${trace}; exit 1; fi; sleep 1; echo "end $2 $(date +%s%3N)" >> ${trace}`;
    const services = waves.flat();
    const script = renderMigrateScript({ ...input(services), waves, concurrency, stepCommand: ['bash', '-c', step, 'step'] });
    const file = join(dir, `${name}.sh`);
    writeFileSync(file, script);
    return {
      script,
      run: () => execa('bash', [file, 'all', '--no-backup', '--debug'], { reject: false, env: { RELEASE_ORCHESTRATOR: '' }, all: true }),
      events: () => readFileSync(trace, 'utf8').trim().split('\n').map((line) => { const [what, service, at] = line.split(' '); return { what: what!, service: service!, at: Number(at) }; }),
    };
  }

  test('a wave starts once the one before it is done; a wave runs `concurrency` services at once; the header lists the waves', async () => {
    const plan = traced('order', [['db'], ['api', 'web']], 2);
    expect(plan.script).toContain('#   wave 1: db\n#   wave 2: api web\n');
    expect(plan.script).toContain('up to 2 at once');
    const result = await plan.run();
    expect(result.exitCode).toBe(0);
    const events = plan.events();
    const at = (what: string, service: string) => events.find((e) => e.what === what && e.service === service)!.at;
    expect(at('end', 'db')).toBeLessThanOrEqual(Math.min(at('start', 'api'), at('start', 'web')));
    // api and web overlap: each started before the other ended.
    expect(at('start', 'api')).toBeLessThan(at('end', 'web'));
    expect(at('start', 'web')).toBeLessThan(at('end', 'api'));
    expect(result.all).toContain('migrate.sh: wave 2 of 2: api web');
  });

  test('after a failure no further service starts, those running finish, and the exit code is the failure\'s', async () => {
    const plan = traced('halt', [['a', 'b', 'c', 'd']], 2, 'a');
    const result = await plan.run();
    expect(result.exitCode).toBe(1);
    const started = plan.events().filter((e) => e.what === 'start').map((e) => e.service).sort();
    expect(started).toEqual(['a', 'b']);
    expect(plan.events().filter((e) => e.what === 'end').map((e) => e.service).sort()).toEqual(['a', 'b']);
    expect(result.all).toContain('migrate.sh: a failed (exit 1): no further service starts');
    expect(result.all).toContain('migrate.sh: failed: a');
  });

  test('waves and concurrency 1 pass shellcheck', async () => {
    const file = join(dir, 'lint.sh');
    writeFileSync(file, renderMigrateScript({ ...input(['db', 'web']), waves: [['db'], ['web']], concurrency: 1 }));
    const lint = await execa('shellcheck', ['--shell=bash', file], { reject: false });
    expect(lint.stdout).toBe('');
  });
});
