import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { join } from 'node:path';
import { Platform, snapshot } from '../../test/helpers/platform.js';

describe('release-run on real git: prepare and the full phase chain', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }, { name: 'db' }]); });
  afterEach(() => platform.remove());

  test('a merge commit is released through all four phases', async () => {
    const base = await platform.head();
    const merge = await platform.mergeFeature('1234', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });

    const result = await platform.run('release-run', ['1234']);

    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[lines.length - 1]).toBe('[release-run] release 1234 complete');
    const phaseOrder = lines.map((line) => /^\[release-run\] (\w+): /.exec(line)?.[1]).filter(Boolean);
    expect([...new Set(phaseOrder)]).toEqual(['prepare', 'migrate', 'ticket', 'verify']);
    expect(await platform.head()).toBe(merge);
    expect(platform.readState('1234')).toEqual({
      TICKET: '1234', BRANCH: 'main', BASE_SHA: base, MERGE_SHA: merge,
      SERVICES: 'web', SKIPPED_METADATA: '', BACKUPS: '',
    });
    const events = platform.logEvents('1234');
    for (const expected of [
      'ticket=1234 phase=prepare event=done rc=0',
      'ticket=1234 phase=migrate event=done rc=0',
      'ticket=1234 phase=ticket event=skipped-no-script',
      'ticket=1234 phase=verify event=done rc=0',
    ]) expect(events).toContain(expected);
    expect(events[events.length - 1]).toBe('ticket=1234 phase=orchestrator event=done rc=0');
    expect(platform.readLog('1234')[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ticket=1234 /);
  });

  test('running a completed release again exits 4 and runs nothing', async () => {
    await platform.mergeFeature('54', { 'releases/54-once.sh': '#!/bin/sh\necho ran >> "$(git rev-parse --show-toplevel)/../ran-54"\n' });
    expect((await platform.run('release-run', ['54'])).exitCode).toBe(0);
    const again = await platform.run('release-run', ['54']);
    expect(again.exitCode).toBe(4);
    expect(again.stderr).toMatch(/nothing to release: release 54 already went through \(HEAD \w+ is its MERGE_SHA\)/);
    expect(again.all).not.toMatch(/pulled|To roll back/);
    expect(readFileSync(join(platform.root, 'ran-54'), 'utf8')).toBe('ran\n');
  });

  test('a clone pulled by hand exits 4: nothing to release, and says why', async () => {
    await platform.mergeFeature('55', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);

    const result = await platform.run('release-run', ['55']);

    expect(result.exitCode).toBe(4);
    expect(result.stderr).toMatch(/nothing to release: HEAD \(\w+\) already equals origin\/main/);
    expect(result.all).toMatch(/pulled on this host by hand/);
  });

  test('a dirty work tree is refused before anything changes', async () => {
    await platform.mergeFeature('56', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    platform.write(platform.prod, { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:hotfix\n' });
    const before = await snapshot(platform.prod);

    const result = await platform.run('release-run', ['56']);

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/work tree has 1 uncommitted change/);
    expect(result.stderr).toMatch(/release-run stopped in phase prepare; nothing was changed/);
    expect(result.all).not.toMatch(/To roll back|release-revert/);
    const after = await snapshot(platform.prod);
    // Only the audit log may appear: the refusal is recorded.
    expect(after.split('\n').filter((l) => !l.includes('.asd'))).toEqual(before.split('\n').filter((l) => !l.includes('.asd')));
    expect(platform.logEvents('56')).toContain('ticket=56 phase=prepare event=failed rc=1 plugin=prepare');
  });

  test('local commits that origin lacks are refused', async () => {
    await platform.mergeFeature('57', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    platform.write(platform.prod, { 'notes.md': 'local\n' });
    await platform.git(['add', '-A']);
    await platform.git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-q', '-m', 'local edit']);
    const head = await platform.head();

    const result = await platform.run('release-run', ['57']);

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/diverged: the pull would not be a fast-forward; nothing was changed/);
    expect(await platform.head()).toBe(head);
  });

  test('a clone ahead of origin is refused as local commits', async () => {
    platform.write(platform.prod, { 'notes.md': 'local\n' });
    await platform.git(['add', '-A']);
    await platform.git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-q', '-m', 'local edit']);

    const result = await platform.run('release-run', ['58']);

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/this clone has local commits that origin\/main lacks/);
  });

  test('changed services are the package folders with a manifest', async () => {
    await platform.mergeFeature('60', {
      'packages/db/manifest.yaml': 'name: db\nruntime: none\nimage: local/db:2\n',
      'packages/web/README.md': 'docs\n',
      'docs/notes.md': 'x\n',
    });
    const result = await platform.run('release-run', ['60']);
    expect(result.exitCode).toBe(0);
    expect(platform.readState('60').SERVICES).toBe('db web');
  });

  test('--dry-run leaves HEAD, the work tree, the index and the workspace byte-identical', async () => {
    await platform.mergeFeature('61', {
      'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n',
      'releases/61-touch.sh': '#!/bin/sh\ntouch "$(git rev-parse --show-toplevel)/touched"\n',
    });
    // A workspace from an earlier release must stay as it is too.
    platform.write(platform.prod, { '.asd/workspace/releases/1.log': 'earlier\n' });
    const before = await snapshot(platform.prod);

    const result = await platform.run('release-run', ['61', '--dry-run']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/would pull --ff-only origin main/);
    expect(result.stdout).toMatch(/would redeploy web/);
    expect(result.stdout).toMatch(/would run releases\/61-touch.sh --yes/);
    expect(result.stdout).toMatch(/dry run of release 61 finished: nothing was changed/);
    expect(await snapshot(platform.prod)).toBe(before);
  });

  test('an attempt whose backup failed is not adopted once other releases have passed it', async () => {
    const db = join(platform.root, 'web.sqlite');
    const withBackup = (tag: string) => ({ 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:${tag}\nbackup:\n  - type: sqlite\n    path: ${db}\n` });
    await platform.pushCommits([withBackup('1')]);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    await platform.mergeFeature('80', withBackup('2'));
    const first = await platform.run('release-run', ['80']);
    expect(first.exitCode).toBe(6);
    const abandonedBase = platform.readState('80').BASE_SHA!;

    // The database appears, and another ticket releases what origin holds (80's commit included).
    await execa('sqlite3', [db, 'CREATE TABLE t (a INTEGER);']);
    await platform.mergeFeature('81', { 'docs/notes.md': 'x\n' });
    expect((await platform.run('release-run', ['81'])).exitCode).toBe(0);

    const again = await platform.run('release-run', ['80']);

    // Nothing of 80 is left to release: it is not re-released from its old BASE_SHA with 81 inside.
    expect(again.exitCode).toBe(4);
    expect(again.stderr).toContain(`an earlier attempt of 80 from BASE_SHA ${abandonedBase.slice(0, 12)} never pulled and HEAD has moved since: starting afresh from HEAD`);
    expect(platform.logEvents('80')).toContain(`ticket=80 phase=prepare event=attempt-replaced old_base=${abandonedBase}`);
  });

  test('a ticket whose release HEAD has moved past is never overwritten', async () => {
    await platform.mergeFeature('82', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\n' });
    expect((await platform.run('release-run', ['82'])).exitCode).toBe(0);
    const state = readFileSync(platform.stateFile('82'), 'utf8');
    await platform.mergeFeature('83', { 'docs/a.md': 'a\n' });
    expect((await platform.run('release-run', ['83'])).exitCode).toBe(0);
    await platform.mergeFeature('82b', { 'docs/b.md': 'b\n' });

    const reused = await platform.run('release-run', ['82']);

    expect(reused.exitCode).toBe(2);
    expect(reused.stderr).toMatch(/ticket 82 was already released \(\w{12}\.\.\w{12}\) and HEAD has moved past it; nothing was changed/);
    expect(readFileSync(platform.stateFile('82'), 'utf8')).toBe(state);
  });
});
