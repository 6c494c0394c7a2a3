import { execa } from 'execa';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, withGatedChildren } from './helpers/gated.js';
import { Platform, sh, snapshot, ORCHESTRATOR_ROOT } from './helpers/platform.js';

/**
 * Bad input of every kind an operator or a repo can hand the orchestrator: each exits with its
 * documented code and a one-line error naming what was wrong, and changes nothing.
 */
describe('hostile input', () => {
  let platform: Platform;
  beforeAll(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterAll(() => platform.remove());

  /** The first stderr line is the error; the clone is byte-identical afterwards. */
  async function expectRefused(verb: 'release-run' | 'release', args: string[], code: number, message: RegExp) {
    const before = await snapshot(platform.prod);
    const result = await platform.run(verb, args);
    expect(result.exitCode).toBe(code);
    const first = result.stderr.split('\n')[0]!;
    expect(first).toMatch(message);
    expect(first).toMatch(/^\[release(-run)?\] error: /);
    expect(await snapshot(platform.prod)).toBe(before);
  }

  test.each([
    ['a wrong type', 'name: web\nimage: 42\n', /packages\/web\/manifest.yaml: image: Invalid input: expected string, received number/],
    ['an unknown key', 'name: web\nruntime: none\nimage: local/web:1\nimgae: typo\n', /packages\/web\/manifest.yaml: unknown key imgae/],
    ['a missing name', 'image: local/web:1\n', /packages\/web\/manifest.yaml: name: Invalid input/],
    ['a name that is not its folder', 'name: api\nruntime: none\nimage: local/web:1\n', /packages\/web\/manifest.yaml: name: "api" must equal its folder "web"/],
    ['YAML that does not parse', 'name: web\nimage: [local/web:1\n', /packages\/web\/manifest.yaml: not valid YAML/],
    ['a health url that is not a URL', 'name: web\nimage: x\nhealth:\n  url: localhost\n  endpoint: /h\n', /packages\/web\/manifest.yaml: health.url: /],
  ])('a manifest with %s: exit 2 naming the file and key', async (_name, manifest, message) => {
    platform.write(platform.prod, { 'packages/web/manifest.yaml': manifest });
    try {
      await expectRefused('release', ['--service=web'], 2, message);
    } finally {
      await platform.git(['checkout', '--', 'packages/web/manifest.yaml']);
    }
  });

  test('a bad manifest in a release stops prepare with exit 2 before anything changes', async () => {
    await platform.mergeFeature('70', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\nbackup:\n  - kind: volume\n' });
    const head = await platform.head();
    const result = await platform.run('release-run', ['70']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/packages\/web\/manifest.yaml: backup\[0\].type: /);
    expect(await platform.head()).toBe(head);
    await platform.mergeFeature('70b', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:1\n' });
  });

  const aliasBomb = ['name: web', 'runtime: none', 'image: local/web:2', 'a: &a ["x","x","x","x","x","x","x","x","x"]',
    ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`), ''].join('\n');
  test.each([
    ['a name that is not its folder', { 'packages/web/manifest.yaml': 'name: api\nruntime: none\nimage: local/web:2\n' }, /packages\/web\/manifest.yaml: name: "api" must equal its folder "web"/],
    ['a YAML alias bomb', { 'packages/web/manifest.yaml': aliasBomb }, /packages\/web\/manifest.yaml: not valid YAML: .*alias/i],
    ['an image that is not an image reference', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: "Local/Web:2 --privileged"\n' }, /packages\/web\/manifest.yaml: image: expected an image reference/],
    ['a folder that cannot be a service name', { 'packages/Web App/manifest.yaml': 'name: Web App\nruntime: none\nimage: local/web:2\n' }, /packages\/Web App\/: "Web App" is not a valid service name; nothing was changed/],
    ['a compose service with neither image nor build', { 'packages/web/manifest.yaml': 'name: web\nimage: local/web:2\n', 'packages/web/compose.yaml': 'services:\n  app:\n    ports: ["80"]\n' }, /packages\/web\/compose.yaml: services.app: needs an image: or a build:/],
    ['a compose runtime without a compose file', { 'packages/web/manifest.yaml': 'name: web\nimage: local/web:2\n' }, /packages\/web\/compose.yaml does not exist, but packages\/web\/manifest.yaml deploys web with compose; nothing was changed/],
  ])('a release with %s exits 2 in prepare, before any backup or pull', async (_name, files, message) => {
    await platform.mergeFeature('75', files);
    // Only the audit log may change: it records the refused attempt.
    const withoutLog = async () => (await snapshot(platform.prod)).split('\n').filter((line) => !line.includes('/releases/75.log')).join('\n');
    const before = await withoutLog();
    try {
      const result = await platform.run('release-run', ['75']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.split('\n')[0]).toMatch(message);
      expect(await withoutLog()).toBe(before);
      expect(existsSync(platform.stateFile('75'))).toBe(false);
    } finally {
      // Put origin back to what prod holds, for the next case.
      await sh(platform.dev, 'git', ['reset', '-q', '--hard', await platform.head()]);
      await sh(platform.dev, 'git', ['push', '-q', '--force', 'origin', 'main']);
    }
  });

  test('a manifest that is a symlink exits 2 in prepare, naming it', async () => {
    await platform.mergeFeature('76', { 'packages/web/real.yaml': 'name: web\nruntime: none\nimage: local/web:2\n', 'packages/web/manifest.yaml': null });
    await sh(platform.dev, 'ln', ['-s', 'real.yaml', 'packages/web/manifest.yaml']);
    await sh(platform.dev, 'git', ['add', '-A']);
    await sh(platform.dev, 'git', ['commit', '-q', '-m', 'symlink']);
    await sh(platform.dev, 'git', ['push', '-q', 'origin', 'main']);
    const head = await platform.head();
    const result = await platform.run('release-run', ['76']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/packages\/web\/manifest.yaml: must be a regular file \(git mode 120000, a symlink\); nothing was changed/);
    expect(await platform.head()).toBe(head);
    await sh(platform.dev, 'git', ['reset', '-q', '--hard', head]);
    await sh(platform.dev, 'git', ['push', '-q', '--force', 'origin', 'main']);
  });

  test.each([
    ['remote', "{ remote: '--upload-pack=touch /tmp/pwned' }", /remote: must start with a letter or digit/],
    ['branch', "{ branch: '-main' }", /branch: must start with a letter or digit/],
  ])('a %s name starting with "-" in the config: exit 2', async (_key, options, message) => {
    platform.write(platform.prod, { 'release.config.ts': `export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins(${options}) });\n` });
    try {
      await expectRefused('release-run', ['71'], 2, message);
    } finally {
      platform.write(platform.prod, { 'release.config.ts': null });
    }
    expect(existsSync('/tmp/pwned')).toBe(false);
  });

  test('unknown options and extra arguments: exit 2', async () => {
    await expectRefused('release-run', ['72', '--force'], 2, /unknown option '--force'/);
    await expectRefused('release-run', ['72', '73'], 2, /expected one ticket id, got 2 arguments/);
    await expectRefused('release', [], 2, /missing --service=NAME/);
  });
});

describe('twenty release-run at once on one repo', () => {
  let platform: Platform;
  beforeAll(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterAll(() => platform.remove());

  test('exactly one runs; nineteen exit 3 naming the holder', async () => {
    const gate = join(platform.root, 'gate');
    await platform.mergeFeature('900', { 'releases/900-hold.sh': `#!/bin/sh\nwhile [ ! -f ${gate} ]; do sleep 0.05; done\n` });
    const bin = join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js');
    const results: { exitCode?: number; stderr: unknown }[] = [];
    // Whatever fails here, the gate is opened and every release still running stopped: jest never hangs on them.
    const losers = await withGatedChildren(gate, async (spawn) => {
      const runs = Array.from({ length: 20 }, () => spawn('node', [bin, '900'], { cwd: platform.prod, env: { NO_COLOR: '1' } }));
      // The losers finish on their own; the winner waits at the gate until they have.
      const finished = runs.map((run) => run.then((result) => { results.push(result); return result; }));
      await waitFor('nineteen of the twenty releases to finish', () => results.length >= 19);
      const early = [...results];
      platform.write(platform.root, { gate: 'open\n' });
      await Promise.all(finished);
      return early;
    });
    const winner = results.find((result) => !losers.includes(result));
    expect(winner?.exitCode).toBe(0);
    expect(losers.map((r) => r.exitCode)).toEqual(Array(19).fill(3));
    for (const loser of losers) {
      expect(String(loser.stderr)).toMatch(/another release holds the lock: ticket 900 \(pid \d+ on \S+, since \S+\)/);
    }
    expect(platform.logEvents('900').filter((e) => e === 'ticket=900 phase=orchestrator event=done rc=0')).toHaveLength(1);
    expect(existsSync(join(platform.prod, '.asd/workspace/release.lock'))).toBe(false);
  });
});

describe('with umask 000', () => {
  test('every state, log and workspace file is 0600 and every folder 0700', async () => {
    const platform = await Platform.create([{ name: 'web' }]);
    try {
      await platform.mergeFeature('910', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n', 'releases/910-x.sh': '#!/bin/sh\necho hi\n' });
      const bin = join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js');
      const result = await execa('sh', ['-c', `umask 000 && exec node ${bin} 910`], { cwd: platform.prod, reject: false });
      expect(result.exitCode).toBe(0);
      const walk = (dir: string): string[] => readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? [path, ...walk(path)] : [path];
      });
      const root = join(platform.prod, '.asd');
      const entries = [root, ...walk(root)];
      expect(entries.length).toBeGreaterThan(5);
      for (const path of entries) {
        const mode = statSync(path).mode & 0o777;
        expect(`${path.slice(root.length)} ${mode.toString(8)}`).toBe(`${path.slice(root.length)} ${statSync(path).isDirectory() ? '700' : '600'}`);
      }
    } finally {
      platform.remove();
    }
  });
});
