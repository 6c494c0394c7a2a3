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

  test('HEAD moved past MERGE_SHA: exit 8 and nothing changed', async () => {
    await platform.mergeFeature('44', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    await platform.run('release-run', ['44']);
    await platform.mergeFeature('45', { 'docs/later.md': 'later\n' });
    await platform.run('release-run', ['45']);
    const head = await platform.head();

    const result = await platform.run('release-revert', ['44']);

    expect(result.exitCode).toBe(8);
    expect(result.stderr).toMatch(/HEAD \(\w+\) has moved past MERGE_SHA/);
    expect(await platform.head()).toBe(head);
    expect(await platform.git(['status', '--porcelain'])).toBe('');
    expect(platform.logEvents('44')).toContain('ticket=44 phase=orchestrator event=failed rc=8 phase_failed=orchestrator');
  });

  test('HEAD moved past MERGE_SHA: exit 8 before any backup is restored, so newer data stays', async () => {
    const db = join(platform.root, 'web.sqlite');
    await execa('sqlite3', [db, "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('before 600')"]);
    const withBackup = (tag: string) => ({ 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:${tag}\nbackup:\n  - type: sqlite\n    path: ${db}\n` });
    await platform.pushCommits([withBackup('1')]);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await platform.mergeFeature('600', withBackup('2'));
    expect((await platform.run('release-run', ['600'])).exitCode).toBe(0);
    await execa('sqlite3', [db, "INSERT INTO t VALUES ('written after 600')"]);
    await platform.mergeFeature('601', withBackup('3'));
    expect((await platform.run('release-run', ['601'])).exitCode).toBe(0);

    const result = await platform.run('release-revert', ['600']);

    expect(result.exitCode).toBe(8);
    expect((await execa('sqlite3', [db, 'SELECT v FROM t'])).stdout).toBe('before 600\nwritten after 600');
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
