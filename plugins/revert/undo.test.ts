import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform } from '../../test/helpers/platform.js';

const sqlite = (db: string, sql: string) => execa('sqlite3', [db, sql]);

/** A service whose data is a host folder (volume strategy) and a sqlite file, released with runtime none. */
async function releasedWithData(platform: Platform) {
  const data = join(platform.root, 'web-data');
  mkdirSync(join(data, 'uploads'), { recursive: true });
  writeFileSync(join(data, 'uploads', 'a.txt'), 'as backed up\n');
  const db = join(platform.root, 'web.sqlite');
  await sqlite(db, "CREATE TABLE notes(v TEXT); INSERT INTO notes VALUES ('before the release');");
  const manifest = `name: web\nruntime: none\nimage: local/web:2\nbackup:\n  - type: volume\n    path: ${data}\n  - type: sqlite\n    path: ${db}\n    compress: false\n`;
  const merge = await platform.mergeFeature('500', { 'packages/web/manifest.yaml': manifest });
  expect((await platform.run('release-run', ['500'])).exitCode).toBe(0);
  return { data, db, merge };
}

/** What users wrote after the backup: one file changed, one added, one row. */
async function writeAfterTheBackup(data: string, db: string) {
  // The backup's stamp has whole seconds: a write in the same second could look older.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  writeFileSync(join(data, 'uploads', 'a.txt'), 'written after the release\n');
  writeFileSync(join(data, 'uploads', 'b.txt'), 'new after the release\n');
  await sqlite(db, "INSERT INTO notes VALUES ('written after the release');");
}

const rows = async (db: string) => (await sqlite(db, 'SELECT v FROM notes ORDER BY rowid;')).stdout.split('\n');

describe('release-revert keeps what it replaces: pre-revert backups and --undo', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }], {}, 'ro-undo-'); });
  afterEach(() => platform.remove());

  test('the revert says what it replaces and backs it up first; --undo puts back that data and the released code exactly', async () => {
    const { data, db, merge } = await releasedWithData(platform);
    await writeAfterTheBackup(data, db);

    const reverted = await platform.run('release-revert', ['500']);

    expect(reverted.exitCode).toBe(0);
    const backupStamp = platform.readState('500').BACKUPS!.replace('web=', '');
    expect(reverted.stdout).toMatch(new RegExp(`web: puts back its backup of \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(\\d+ s old\\), replacing its data as it is now`));
    expect(reverted.stdout).toMatch(/web: backup\[0\] volume: web path \S+web-data: 3 of 3 files and folders modified since the backup \(newest: uploads\/[ab]\.txt, /);
    expect(reverted.stdout).toContain(`web: backup[1] sqlite: ${db} was written since the backup`);
    const state = platform.readState('500');
    expect(state.PRE_REVERT_HEAD).toBe(merge);
    const preRevert = state.PRE_REVERT_BACKUPS!.replace('web=', '');
    expect(preRevert).not.toBe(backupStamp);
    expect(reverted.stdout).toContain(`its data as it is now is in the pre-revert backup ${join(platform.prod, '.asd/workspace/backups/web', preRevert)}`);
    expect(reverted.stdout).toContain('to put it and the released code back: release-revert 500 --undo');
    // The revert did its job: the data is as backed up.
    expect(readFileSync(join(data, 'uploads', 'a.txt'), 'utf8')).toBe('as backed up\n');
    expect(existsSync(join(data, 'uploads', 'b.txt'))).toBe(false);
    expect(await rows(db)).toEqual(['before the release']);
    expect(platform.logEvents('500')).toContain(`ticket=500 phase=restore event=backup service=web at=${preRevert} bytes=${/bytes=(\d+) pre_revert=yes/.exec(platform.logEvents('500').join('\n'))?.[1]} pre_revert=yes`);

    const shown = await platform.run('release', ['show', '500']);
    expect(shown.stdout).toContain('pre-revert backups of 500 (the data its last revert replaced):');
    expect(shown.stdout).toContain(`  web=${preRevert}  ${join(platform.prod, '.asd/workspace/backups/web', preRevert)}`);
    expect(shown.stdout).toContain('undo the last revert (its data, the released code, the services): release-revert 500 --undo');

    const undone = await platform.run('release-revert', ['500', '--undo']);

    expect(undone.exitCode).toBe(0);
    expect(readFileSync(join(data, 'uploads', 'a.txt'), 'utf8')).toBe('written after the release\n');
    expect(readFileSync(join(data, 'uploads', 'b.txt'), 'utf8')).toBe('new after the release\n');
    expect(await rows(db)).toEqual(['before the release', 'written after the release']);
    expect(await platform.git(['rev-parse', 'HEAD^{tree}'])).toBe(await platform.git(['rev-parse', `${merge}^{tree}`]));
    expect(await platform.git(['log', '-1', '--format=%s'])).toBe('Undo the revert of release 500');
    expect(platform.readState('500').PRE_REVERT_HEAD).toBeUndefined();
    const history = await platform.run('release', ['history', '--json']);
    const newest = history.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((event) => event.event === 'run');
    expect(newest.fields).toMatchObject({ verb: 'release-revert', undo: true, result: 'undone', revert_possible: true });

    // Undone means released again: a new revert restores the release's backups once more.
    const again = await platform.run('release-revert', ['500']);
    expect(again.exitCode).toBe(0);
    expect(readFileSync(join(data, 'uploads', 'a.txt'), 'utf8')).toBe('as backed up\n');
    expect(await rows(db)).toEqual(['before the release']);
  });

  test('--undo without a revert to undo is refused, naming why, and changes nothing', async () => {
    await releasedWithData(platform);
    const head = await platform.head();

    const refused = await platform.run('release-revert', ['500', '--undo']);

    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('release 500 has no revert to undo');
    expect(refused.stderr).toContain('fix: see what happened to it with: release show 500');
    expect(await platform.head()).toBe(head);
    const both = await platform.run('release-revert', ['500', '--undo', '--code-only']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain('--code-only and --undo do not go together');
  });

  test('preRevertBackup: false takes none and says the replaced data is not kept', async () => {
    platform.remove();
    platform = await Platform.create([{ name: 'web' }], {
      'release.config.ts': 'export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ preRevertBackup: false }) });\n',
    }, 'ro-undo-');
    const { data, db } = await releasedWithData(platform);
    await writeAfterTheBackup(data, db);

    const reverted = await platform.run('release-revert', ['500']);

    expect(reverted.exitCode).toBe(0);
    expect(reverted.stdout).toContain('no pre-revert backup (revert option preRevertBackup: false): the data the restore replaces is not kept');
    expect(platform.readState('500').PRE_REVERT_BACKUPS).toBeUndefined();
    expect(readFileSync(join(data, 'uploads', 'a.txt'), 'utf8')).toBe('as backed up\n');
  });
});
