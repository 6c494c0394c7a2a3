import { join } from 'node:path';
import { execa } from 'execa';
import { Platform } from '../../test/helpers/platform.js';

describe('release-revert on real git', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }]); });
  afterEach(() => platform.remove());

  async function treeOf(ref: string): Promise<string> {
    return platform.git(['rev-parse', `${ref}^{tree}`]);
  }

  test('after a merge release: git revert -m 1, the tree equals BASE_SHA, one commit, logged', async () => {
    const base = await platform.head();
    const merge = await platform.mergeFeature('9999', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    expect((await platform.run('release-run', ['9999'])).exitCode).toBe(0);

    const result = await platform.run('release-revert', ['9999']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim().split('\n').pop()).toBe('[release-revert] release 9999 reverted');
    expect(await treeOf('HEAD')).toBe(await treeOf(base));
    expect(await platform.git(['rev-list', '--count', `${merge}..HEAD`])).toBe('1');
    expect(await platform.git(['log', '-1', '--format=%s'])).toMatch(/^Revert/);
    expect(result.stdout).toMatch(/exists only in this clone; publish it with: git push origin main/);
    const events = platform.logEvents('9999');
    expect(events).toEqual(expect.arrayContaining([
      expect.stringMatching(/^ticket=9999 phase=git-revert event=reverted sha=[0-9a-f]{40}$/),
      'ticket=9999 phase=restore event=done rc=0',
      'ticket=9999 phase=git-revert event=done rc=0',
      'ticket=9999 phase=redeploy event=done rc=0',
      'ticket=9999 phase=revert-verify event=done rc=0',
    ]));
  });

  test('after a fast-forward release of three commits: one revert commit, tree equals BASE_SHA', async () => {
    const base = await platform.head();
    const merge = await platform.pushCommits([
      { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' },
      { 'docs/a.md': 'a\n' },
      { 'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:1\n', 'docs/a.md': null },
    ]);
    expect((await platform.run('release-run', ['42'])).exitCode).toBe(0);
    expect(platform.readState('42').SERVICES).toBe('api web');

    const result = await platform.run('release-revert', ['42']);

    expect(result.exitCode).toBe(0);
    expect(await treeOf('HEAD')).toBe(await treeOf(base));
    expect(await platform.git(['rev-list', '--count', `${merge}..HEAD`])).toBe('1');
    expect(await platform.git(['status', '--porcelain'])).toBe('');
  });

  test('a second revert run finds the work done and changes nothing', async () => {
    await platform.mergeFeature('43', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    await platform.run('release-run', ['43']);
    expect((await platform.run('release-revert', ['43'])).exitCode).toBe(0);
    const head = await platform.head();
    const again = await platform.run('release-revert', ['43']);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/already reverted by/);
    expect(await platform.head()).toBe(head);
  });

  test('a later release touched other services and files: the older release is reverted on top of it, the later commits (its merge) stay', async () => {
    const base = await platform.head();
    await platform.mergeFeature('44', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    await platform.run('release-run', ['44']);
    const later = await platform.mergeFeature('45', { 'docs/later.md': 'later\n' });
    await platform.run('release-run', ['45']);

    const dry = await platform.run('release-revert', ['44', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/would commit one revert of \w{12}\.\.\w{12} on top of HEAD \w{12}, keeping the 2 later commit\(s\)/);
    expect(await platform.head()).toBe(later);

    const result = await platform.run('release-revert', ['44']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/the 2 later commit\(s\) stay/);
    expect(await platform.git(['rev-parse', 'HEAD^'])).toBe(later);
    expect(await platform.git(['show', 'HEAD:packages/web/manifest.yaml'])).toBe(await platform.git(['show', `${base}:packages/web/manifest.yaml`]));
    expect(await platform.git(['show', 'HEAD:docs/later.md'])).toBe('later');
    expect(await platform.git(['status', '--porcelain'])).toBe('');
    const again = await platform.run('release-revert', ['44']);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/already reverted by/);
  });

  describe('a later release touched the same service', () => {
    let db: string;
    const rows = async () => (await execa('sqlite3', [db, 'SELECT v FROM t'])).stdout;
    const manifest = (tag: string) => `name: web\nruntime: none\nimage: local/web:${tag}\nbackup:\n  - type: sqlite\n    path: ${db}\n`;
    beforeEach(async () => {
      db = join(platform.root, 'web.sqlite');
      await execa('sqlite3', [db, "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('before 600')"]);
      await platform.pushCommits([{ 'packages/web/manifest.yaml': manifest('1') }]);
      await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
      await platform.mergeFeature('600', { 'packages/web/manifest.yaml': manifest('2') });
      expect((await platform.run('release-run', ['600'])).exitCode).toBe(0);
      await execa('sqlite3', [db, "INSERT INTO t VALUES ('written after 600')"]);
    });

    test('refused (exit 2) before any backup is restored, naming the later ticket; its printed commands revert both, newest first', async () => {
      await platform.mergeFeature('601', { 'packages/web/manifest.yaml': manifest('3') });
      expect((await platform.run('release-run', ['601'])).exitCode).toBe(0);
      await execa('sqlite3', [db, "INSERT INTO t VALUES ('written after 601')"]);
      const head = await platform.head();
      const history = await platform.run('release', ['history']);
      expect(history.stdout).toMatch(/600  release-run  complete[^\n]*\n[^\n]*\n    revert as it is: no \(later release\(s\) 601 touched web/);
      expect(history.stdout).toMatch(/601  release-run  complete[^\n]*\n[^\n]*\n    revert as it is: yes/);

      const result = await platform.run('release-revert', ['600']);

      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/release 600 cannot be reverted as it is: 1 later release\(s\) touched what it released; nothing was changed/);
      expect(result.stderr).toMatch(/  601 \(MERGE_SHA \w{12}, ended [^)]+\): services web; files packages\/web\/manifest\.yaml/);
      const hint = /fix: revert the later releases first, newest first: (.*); or revert 600's code only, keeping the data as it is now: (release-revert 600 --code-only)$/m.exec(result.stderr);
      expect(hint?.[1]).toBe('release-revert 601 && release-revert 600');
      expect(await rows()).toBe('before 600\nwritten after 600\nwritten after 601');
      expect(await platform.head()).toBe(head);

      for (const command of hint![1]!.split(' && ')) expect((await platform.run('release-revert', command.split(' ').slice(1))).exitCode).toBe(0);
      expect(await rows()).toBe('before 600');
      expect(await platform.git(['show', 'HEAD:packages/web/manifest.yaml'])).toBe(manifest('1').trim());
    });

    test('--code-only reverts its commits and redeploys, restoring no data', async () => {
      await platform.mergeFeature('601', { 'packages/web/config.txt': 'later\n' });
      expect((await platform.run('release-run', ['601'])).exitCode).toBe(0);
      expect((await platform.run('release-revert', ['600'])).exitCode).toBe(2);

      const result = await platform.run('release-revert', ['600', '--code-only']);

      expect(result.exitCode).toBe(0);
      expect(result.stdout).toMatch(/--code-only: no data is restored; the backups of 600 are kept/);
      expect(await rows()).toBe('before 600\nwritten after 600');
      expect(await platform.git(['show', 'HEAD:packages/web/manifest.yaml'])).toBe(manifest('1').trim());
      expect(await platform.git(['show', 'HEAD:packages/web/config.txt'])).toBe('later');
    });

    test('--code-only is refused (exit 8), nothing changed, naming the files, when a later release changed the same lines', async () => {
      await platform.mergeFeature('601', { 'packages/web/manifest.yaml': manifest('3') });
      expect((await platform.run('release-run', ['601'])).exitCode).toBe(0);
      const head = await platform.head();

      const result = await platform.run('release-revert', ['600', '--code-only']);

      expect(result.exitCode).toBe(8);
      expect(result.stderr).toMatch(/the changes of release 600 no longer revert cleanly on HEAD \(\w{12}\); nothing was changed.*\n  packages\/web\/manifest\.yaml/);
      expect(await platform.head()).toBe(head);
      expect(await platform.git(['status', '--porcelain'])).toBe('');
      expect(await rows()).toBe('before 600\nwritten after 600');
    });
  });

  test('--dry-run previews the revert and changes nothing', async () => {
    const merge = await platform.mergeFeature('46', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    await platform.run('release-run', ['46']);
    const log = platform.readLog('46');

    const result = await platform.run('release-revert', ['46', '--dry-run']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`would run git revert -m 1 ${merge}`);
    expect(await platform.head()).toBe(merge);
    expect(platform.readLog('46')).toEqual(log);
  });

  test('without a state file: exit 2 naming the file', async () => {
    const result = await platform.run('release-revert', ['47']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/state file .*47\.env is missing/);
  });
});
