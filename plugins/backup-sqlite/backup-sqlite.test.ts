import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, symlinkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { testContext } from '../../test/helpers/context.js';
import { ReleaseError, type Action, type BackupRequest, type Plugin } from '../../core/index.js';
import { Platform, snapshot } from '../../test/helpers/platform.js';
import { sqliteBackupPlugin, type SqliteBackupOptions } from './index.js';

const sqlite = async (db: string, sql: string) => (await execa('sqlite3', ['-bail', db, sql])).stdout;
const dump = (db: string) => sqlite(db, '.dump');
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/** A database with a little of everything .dump shows: a schema, an index, text, NULLs, blobs. */
async function seedDatabase(db: string, journal: 'wal' | 'delete' = 'wal'): Promise<void> {
  await sqlite(db, [
    `PRAGMA journal_mode=${journal};`,
    'CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, data BLOB);',
    'CREATE INDEX notes_title ON notes(title);',
    "INSERT INTO notes(title, body, data) VALUES ('first', 'héllo ✓', x'00ff10'), ('second', NULL, NULL), ('it''s', 'quote', x'');",
  ].join('\n'));
}

/** Calls the plugin's hooks directly, as prepare and revert do, with a real run context. */
function harness(root: string, plugins: Plugin[] = [], options: Partial<SqliteBackupOptions> = {}) {
  const { context, printed } = testContext([sqliteBackupPlugin(options), ...plugins], { repoDir: root });
  const { hooks } = context;
  const dir = join(root, '.asd', 'workspace', 'backups', 'notes', '20260518_153012');
  const request = (entry: Record<string, unknown>, index = 0): BackupRequest => ({ service: 'notes', entry: { type: 'sqlite', ...entry }, dir, index, manifest: 'packages/notes/manifest.yaml' });
  return {
    dir, request, output: printed,
    backup: (r: BackupRequest) => hooks.backup.for('sqlite').promise(r, context),
    size: (r: BackupRequest) => hooks.sizeBackup.for('sqlite').promise(r, context),
    check: (r: BackupRequest) => hooks.checkBackup.for('sqlite').promise(r, context),
    restore: (r: BackupRequest) => hooks.restore.for('sqlite').promise(r, context),
  };
}

/** A runtime that only records the stop and start actions it is asked for. */
function recordingRuntime(actions: Action[]): Plugin {
  return {
    name: 'recording-runtime',
    apply({ hooks }) {
      for (const kind of ['stop', 'start']) {
        hooks.act.for(kind).tapPromise('recording-runtime', async (action) => {
          actions.push(action);
          return true;
        });
      }
    },
  };
}

/** An sqlite3 shell that keeps a connection open; `kill()` is a crash (SIGKILL). */
function openConnection(db: string) {
  const child = spawn('sqlite3', ['-bail', db], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    async run(sql: string): Promise<void> {
      const marker = `done-${Math.random().toString(36).slice(2)}`;
      child.stdin.write(`${sql}\nSELECT '${marker}';\n`);
      const deadline = Date.now() + 5000;
      while (!output.includes(marker)) {
        if (Date.now() > deadline) throw new Error(`sqlite3 did not answer: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async kill(): Promise<void> {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('backup-sqlite on real sqlite files', () => {
  let root: string;
  let data: string;
  let db: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'ro-sqlite-'));
    data = join(root, 'data');
    mkdirSync(data);
    db = join(data, 'notes.sqlite');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test('backup while a writer holds un-checkpointed WAL frames, mutate, crash, restore: .dump is identical; 0600/0700 under umask 000', async () => {
    const previousUmask = process.umask(0);
    await seedDatabase(db);
    const writer = openConnection(db);
    try {
      // A live connection whose last rows sit only in the -wal: the backup must still hold them.
      await writer.run("PRAGMA wal_autocheckpoint=0; INSERT INTO notes(title) VALUES ('only in the wal');");
      const before = await dump(db);
      expect(before).toContain('only in the wal');
      chmodSync(db, 0o640);
      const { request, dir, backup, size, check, restore, output } = harness(root);
      const entry = request({ path: db });

      expect(await size(entry)).toBe(statSync(db).size);
      const result = await backup(entry);

      expect(result).toEqual({ files: ['0-sqlite.db.gz'], bytes: statSync(join(dir, '0-sqlite.db.gz')).size });
      expect(readdirSync(dir).sort()).toEqual(['0-sqlite.db.gz', '0-sqlite.db.gz.sha256', '0-sqlite.db.gz.size']);
      for (const file of readdirSync(dir)) expect(mode(join(dir, file))).toBe('600');
      expect(mode(dir)).toBe('700');
      expect((await execa('sha256sum', ['-c', '0-sqlite.db.gz.sha256'], { cwd: dir })).stdout).toBe('0-sqlite.db.gz: OK');
      expect(output()).toContain(`${db} -> ${join(dir, '0-sqlite.db.gz')} (integrity_check ok, read back ok)`);

      // The release changes the schema and the rows, then its process dies: a -wal full of them is left.
      await writer.run("CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO audit(note) VALUES ('x'), ('y'); UPDATE notes SET body = 'changed'; DELETE FROM notes WHERE title = 'second';");
      await writer.kill();
      expect(statSync(`${db}-wal`).size).toBeGreaterThan(0);
      const scratch = join(root, 'scratch.sqlite');
      copyFileSync(db, scratch);
      copyFileSync(`${db}-wal`, `${scratch}-wal`);
      expect(await dump(scratch)).toContain('CREATE TABLE audit');

      expect(await check(entry)).toBe(true);
      expect(await restore(entry)).toBe(true);

      expect(await dump(db)).toBe(before);
      expect(mode(db)).toBe('640');
      expect(readdirSync(data).sort()).toEqual(['notes.sqlite']);
      expect(output()).toMatch(/dropped the stale notes\.sqlite-wal, notes\.sqlite-shm of notes\.sqlite/);
    } finally {
      process.umask(previousUmask);
      await writer.kill();
    }
  });

  test('consistency: stop stops the service around the copy (not the restore: revert owns that), and starts it even when the copy fails', async () => {
    await seedDatabase(db, 'delete');
    const actions: Action[] = [];
    const { request, backup, restore } = harness(root, [recordingRuntime(actions)]);
    const entry = request({ path: db, consistency: 'stop' });

    await backup(entry);
    expect(actions.map((a) => `${a.kind} ${a.service}`)).toEqual(['stop notes', 'start notes']);
    expect(actions[0]!.reason).toBe(`sqlite backup of ${db}`);
    await sqlite(db, 'DROP TABLE notes;');
    await restore(entry);
    expect(actions.map((a) => a.kind)).toEqual(['stop', 'start']);
    expect(await sqlite(db, 'SELECT count(*) FROM notes;')).toBe('3');

    const failing = harness(mkdtempSync(join(root, 'other-')), [recordingRuntime(actions)], { sqlite3: 'false' });
    actions.length = 0;
    const error = await failing.backup(failing.request({ path: db, consistency: 'stop' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReleaseError);
    expect((error as ReleaseError).exitCode).toBe(6);
    expect((error as ReleaseError).message).toMatch(/sqlite3 \.backup of .*notes\.sqlite failed \(exit 1\)/);
    expect(actions.map((a) => a.kind)).toEqual(['stop', 'start']);
    expect(readdirSync(failing.dir)).toEqual([]);

    const noRuntime = harness(root);
    const refused = await noRuntime.backup(noRuntime.request({ path: db, consistency: 'stop' }, 1)).catch((e: unknown) => e);
    expect((refused as ReleaseError).code).toBe('BACKUP_FAILED');
    expect((refused as ReleaseError).message).toBe('packages/notes/manifest.yaml: backup[1].consistency is stop, but no runtime plugin can stop notes');
  });

  test('bad manifest entries exit 2 naming the manifest file and key; a missing database is BACKUP_FAILED naming it', async () => {
    const { request, dir, backup, size } = harness(root);
    const cases: [Record<string, unknown>, string][] = [
      [{ path: 'data/notes.sqlite' }, 'backup[2].path: must be an absolute path'],
      [{ path: "/srv/it's.sqlite" }, 'backup[2].path: must not contain a single quote or a line break'],
      [{ path: '/srv/a\nb.sqlite' }, 'backup[2].path: must not contain a single quote or a line break'],
      [{}, 'backup[2].path: '],
      [{ path: db, consistency: 'sometimes' }, 'backup[2].consistency: '],
      [{ path: db, compress: 'yes' }, 'backup[2].compress: '],
      [{ path: db, volume: 'x' }, 'backup[2]: unknown key volume'],
    ];
    for (const [entry, message] of cases) {
      for (const call of [backup, size]) {
        const error = await call(request(entry, 2)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ReleaseError);
        expect((error as ReleaseError).exitCode).toBe(2);
        expect((error as ReleaseError).message).toContain(`packages/notes/manifest.yaml: ${message}`);
      }
    }
    const missing = await backup(request({ path: join(data, 'nope.sqlite') })).catch((e: unknown) => e);
    expect((missing as ReleaseError).exitCode).toBe(6);
    expect((missing as ReleaseError).message).toBe(`sqlite backup of notes: ${join(data, 'nope.sqlite')} does not exist`);
    expect(existsSync(join(data, 'nope.sqlite'))).toBe(false);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  test('compress: false keeps the database as is; a damaged archive or a sound archive of a broken database restores nothing', async () => {
    await seedDatabase(db, 'delete');
    const { request, dir, backup, check, restore } = harness(root);
    const entry = request({ path: db, compress: false });
    expect((await backup(entry))?.files).toEqual(['0-sqlite.db']);
    const archive = join(dir, '0-sqlite.db');
    // A plain database file: sqlite3 reads it as is.
    expect((await execa('sqlite3', ['-readonly', archive, '.dump'])).stdout).toBe(await dump(db));
    expect(readdirSync(dir).sort()).toEqual(['0-sqlite.db', '0-sqlite.db.sha256', '0-sqlite.db.size']);

    await sqlite(db, "INSERT INTO notes(title) VALUES ('after the backup');");
    const mutated = await dump(db);
    const bytes = readFileSync(archive);
    bytes.writeUInt8(bytes.readUInt8(200) ^ 0xff, 200);
    writeFileSync(archive, bytes);

    for (const call of [check, restore]) {
      const error = await call(entry).catch((e: unknown) => e);
      expect((error as ReleaseError).exitCode).toBe(6);
      expect((error as ReleaseError).message).toBe(`backup ${archive} does not match its recorded sha256 (corrupt); nothing was restored`);
    }
    expect(await dump(db)).toBe(mutated);

    // Checksums that match, of something that is not a database: the integrity check refuses it.
    const junk = join(dir, '1-sqlite.db.gz');
    writeFileSync(junk, gzipSync(Buffer.alloc(8192, 7)), { mode: 0o600 });
    writeFileSync(`${junk}.sha256`, `${sha256(junk)}  1-sqlite.db.gz\n`);
    writeFileSync(`${junk}.size`, `${statSync(junk).size}\n`);
    const junkEntry = request({ path: db }, 1);
    expect(await check(junkEntry)).toBe(true);
    const error = await restore(junkEntry).catch((e: unknown) => e);
    expect((error as ReleaseError).exitCode).toBe(6);
    expect((error as ReleaseError).message).toMatch(new RegExp(`^restore of ${db} for notes: the database in ${junk} fails PRAGMA integrity_check: .*nothing was restored$`));
    expect(await dump(db)).toBe(mutated);
    expect(readdirSync(data)).toEqual(['notes.sqlite']);
  });
  test('a symlinked database is restored into the file it points to; the link stays a link', async () => {
    const real = join(data, 'real.sqlite');
    await seedDatabase(real, 'delete');
    symlinkSync(real, db);
    const before = await dump(real);
    const { request, backup, restore } = harness(root);
    const entry = request({ path: db });
    await backup(entry);
    await sqlite(db, 'DELETE FROM notes;');

    expect(await restore(entry)).toBe(true);

    expect(lstatSync(db).isSymbolicLink()).toBe(true);
    expect(await dump(real)).toBe(before);
    expect(readdirSync(data).sort()).toEqual(['notes.sqlite', 'real.sqlite']);
  });
});

describe('backup-sqlite through release-run and release-revert (real git platform)', () => {
  let platform: Platform;
  let db: string;
  const notesManifest = (path: string, extra = '') => `name: notes\nruntime: none\nimage: local/notes:1\nbackup:\n  - type: sqlite\n    path: ${JSON.stringify(path)}\n${extra}`;

  async function createPlatform(path?: string, files: Record<string, string> = {}): Promise<void> {
    const dataDir = mkdtempSync(join(tmpdir(), 'ro-sqlite-data-'));
    db = join(dataDir, 'notes.sqlite');
    platform = await Platform.create([{ name: 'web' }], { 'packages/notes/manifest.yaml': notesManifest(path ?? db), ...files });
    cleanup.push(dataDir);
    await seedDatabase(db);
  }
  const cleanup: string[] = [];
  afterEach(() => {
    platform?.remove();
    for (const dir of cleanup.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const backupsOf = (service: string) => join(platform.prod, '.asd', 'workspace', 'backups', service);

  test("ticket 9999's script changes the database then exits 1; release-revert 9999 restores it exactly", async () => {
    await createPlatform();
    const before = await dump(db);
    await platform.mergeFeature('9999', {
      'packages/notes/manifest.yaml': notesManifest(db).replace('local/notes:1', 'local/notes:2'),
      'releases/9999-notes-audit.sh': [
        '#!/bin/sh',
        'set -e',
        `sqlite3 "$NOTES_DB" "CREATE TABLE audit(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO audit(note) VALUES ('half done'); UPDATE notes SET body = 'migrated';"`,
        'echo "audit table created; the API is down, giving up" >&2',
        'exit 1',
        '',
      ].join('\n'),
    });

    const run = await platform.run('release-run', ['9999'], { NOTES_DB: db });

    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain('release-run failed in phase ticket. To roll back:');
    const stamp = platform.readState('9999').BACKUPS!.replace(/^notes=/, '');
    expect(stamp).toMatch(/^\d{8}_\d{6}$/);
    const folder = join(backupsOf('notes'), stamp);
    expect(readdirSync(folder).sort()).toEqual(['.entries.json', '0-sqlite.db.gz', '0-sqlite.db.gz.sha256', '0-sqlite.db.gz.size']);
    expect(run.stdout).toMatch(/backup sqlite notes .*notes\.sqlite: \d+(\.\d)? KiB database gzipped, \d+ B in /);
    expect(await dump(db)).not.toBe(before);

    const revert = await platform.run('release-revert', ['9999']);

    expect(revert.exitCode).toBe(0);
    expect(revert.stdout).toContain(`notes: restored ${db} from ${join(folder, '0-sqlite.db.gz')} (integrity_check ok)`);
    expect(revert.stdout.trim().split('\n').pop()).toBe('[release-revert] release 9999 reverted');
    expect(await dump(db)).toBe(before);
    expect(platform.logEvents('9999')).toContain('ticket=9999 phase=restore event=restored service=notes type=sqlite');
    expect(readdirSync(join(db, '..'))).toEqual(['notes.sqlite']);
  });

  test('a corrupt archive: release-revert exits 6 naming the file, and the database keeps what the release made', async () => {
    await createPlatform();
    await platform.mergeFeature('9998', { 'packages/notes/manifest.yaml': notesManifest(db).replace('local/notes:1', 'local/notes:2') });
    expect((await platform.run('release-run', ['9998'])).exitCode).toBe(0);
    await sqlite(db, 'CREATE TABLE after_release(x); INSERT INTO after_release VALUES (1);');
    const changed = await dump(db);
    const stamp = platform.readState('9998').BACKUPS!.replace(/^notes=/, '');
    const archive = join(backupsOf('notes'), stamp, '0-sqlite.db.gz');
    const bytes = readFileSync(archive);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0x01, bytes.length - 10);
    writeFileSync(archive, bytes);
    const head = await platform.head();

    const revert = await platform.run('release-revert', ['9998']);

    expect(revert.exitCode).toBe(6);
    expect(revert.stderr).toContain(`backup ${archive} does not match its recorded sha256 (corrupt); nothing was restored (plugin backup-sqlite, hook checkBackup.for(sqlite))`);
    expect(await dump(db)).toBe(changed);
    expect(await platform.head()).toBe(head);
  });

  test('a database path with a single quote: release-run exits 2 naming the manifest key, and backs nothing up', async () => {
    await createPlatform();
    await platform.mergeFeature('9997', { 'packages/notes/manifest.yaml': notesManifest("/srv/notes/it's.sqlite") });

    const run = await platform.run('release-run', ['9997']);

    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("packages/notes/manifest.yaml: backup[0].path: must not contain a single quote or a line break (sqlite3's dot-commands cannot quote them)");
    expect(existsSync(backupsOf('notes')) ? readdirSync(backupsOf('notes')).flatMap((d) => readdirSync(join(backupsOf('notes'), d))) : []).toEqual([]);
  });

  test("a platform repo's own release.config.ts (function form) registers the strategy; --dry-run shows its size and changes nothing", async () => {
    await createPlatform(undefined, {
      'release.config.ts': [
        'export default ({ builtins, defaultPlugins }) => ({',
        "  plugins: [...defaultPlugins().filter((p) => p.name !== 'backup-sqlite'), builtins.sqliteBackupPlugin({ gzipLevel: 1 })],",
        '});',
        '',
      ].join('\n'),
    });
    await platform.mergeFeature('9996', { 'packages/notes/manifest.yaml': notesManifest(db).replace('local/notes:1', 'local/notes:2') });
    const before = await snapshot(platform.prod);
    const database = readFileSync(db);

    const run = await platform.run('release-run', ['9996', '--dry-run']);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`would back up notes: sqlite (about ${(statSync(db).size / 1024).toFixed(1)} KiB before compression) into `);
    expect(await snapshot(platform.prod)).toBe(before);
    expect(readFileSync(db)).toEqual(database);
  });
});
