/**
 * Backup strategy `sqlite`: one SQLite database file, copied with sqlite3's online backup API
 * (`.backup`), so a running writer never yields a torn copy. The copy is integrity-checked,
 * streamed (gzip by default) through archive.ts, and read back before the backup counts.
 * A restore rebuilds the database beside the target, checks it, and renames it into place.
 *
 *   backup:
 *     - type: sqlite
 *       path: /srv/notes/notes.sqlite   # absolute; no single quote or line break
 *       consistency: stop               # optional: stop the service around the copy (default live)
 *       compress: false                 # optional: store the database as is (default gzip)
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, createReadStream, createWriteStream, existsSync, openSync, realpathSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { PassThrough, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import {
  ReleaseError, createArchiveStream, defineBackupStrategy, ensurePrivateDir, formatBytes, fsyncPath, hashingCounter, parseOptions,
  PRIVATE_FILE_MODE, readArchive, removeArchive, sealArchive, verifyArchive, withServiceStopped, z,
  type BackupResult, type Plugin, type RestoreTestResult, type RunContext, type StrategyRequest, type WritesSince,
} from '../../api/index.js';

export const PLUGIN_NAME = 'backup-sqlite';
export const TYPE = 'sqlite';

const optionsSchema = z.strictObject({
  /** The sqlite3 command-line shell. */
  sqlite3: z.string().min(1).default('sqlite3'),
  gzipLevel: z.number().int().min(1).max(9).default(6),
  /** How long sqlite3 waits for a writer's lock before it gives up. */
  busyTimeoutMs: z.number().int().nonnegative().default(10_000),
});

export type SqliteBackupOptions = z.infer<typeof optionsSchema>;

const databasePath = z.string()
  .min(1, 'must be the absolute path of the database file')
  .refine((path) => isAbsolute(path), 'must be an absolute path, e.g. /srv/notes/notes.sqlite')
  .refine((path) => !/['\n\r\0]/.test(path), "must not contain a single quote or a line break (sqlite3's dot-commands cannot quote them): move the file or give it a plain path")
  .refine((path) => !path.endsWith('/'), 'must name a file, not a folder');

/** A manifest entry's keys besides `type`. */
export const entrySchema = z.strictObject({
  path: databasePath,
  /** `stop`: stop the service while the copy is taken; `live` (default): sqlite's online backup alone. */
  consistency: z.enum(['live', 'stop']).default('live'),
  compress: z.boolean().default(true),
});

export type SqliteEntry = z.infer<typeof entrySchema>;
type Request = StrategyRequest<SqliteEntry>;

const archiveName = (index: number, compress: boolean) => `${index}-${TYPE}.db${compress ? '.gz' : ''}`;

/** The archive a backup wrote: the one the entry asks for, else the other form if only it exists. */
function archiveOf(request: Request, entry: SqliteEntry): string {
  const wanted = join(request.dir, archiveName(request.index, entry.compress));
  const other = join(request.dir, archiveName(request.index, !entry.compress));
  return !existsSync(wanted) && existsSync(other) ? other : wanted;
}

/** `file:` URI that opens an existing database read-write and never creates one. */
function openExistingUri(path: string): string {
  let encoded = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += /[A-Za-z0-9/._~-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `file:${encoded}?mode=rw`;
}

const uniqueSuffix = () => `${process.pid}-${randomBytes(4).toString('hex')}`;

/** SQLite's side files of a database: they belong to that file and to no other. */
const SIDE_FILES = ['-wal', '-shm', '-journal'];
const removeWithSideFiles = (path: string) => {
  for (const file of [path, ...SIDE_FILES.map((suffix) => `${path}${suffix}`)]) rmSync(file, { force: true });
};

/** A sink that only drains, for reading an archive back. */
const discard = () => new Writable({ write(_chunk, _encoding, done) { done(); } });

class Sqlite {
  constructor(private readonly options: SqliteBackupOptions) {}

  async run(context: RunContext, args: string[], cwd?: string) {
    const result = await context.exec(this.options.sqlite3, ['-bail', '-batch', '-cmd', `.timeout ${this.options.busyTimeoutMs}`, ...args], cwd ? { cwd } : {});
    if (result.exitCode === 127) {
      throw new ReleaseError('BACKUP_FAILED', `${this.options.sqlite3} was not found: the sqlite strategy needs the sqlite3 shell`, {
        hint: 'install it (apt-get install sqlite3), or set the option sqlite3 of backup-sqlite in release.config.ts',
      });
    }
    return result;
  }

  /** `PRAGMA integrity_check` on a file of ours, opened read-only; returns the problems, none if ok. */
  async problems(context: RunContext, path: string): Promise<string[]> {
    try {
      const result = await this.run(context, ['-readonly', path, 'PRAGMA integrity_check;']);
      const lines = result.output.split('\n').map((line) => line.trim()).filter(Boolean);
      return result.exitCode === 0 && lines.length === 1 && lines[0] === 'ok' ? [] : lines.length > 0 ? lines : [`sqlite3 exited ${result.exitCode}`];
    } finally {
      // A read-only connection to a WAL database cannot delete the -wal and -shm it made.
      for (const suffix of ['-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    }
  }
}

/** Runs `body` with the service stopped when the entry asks for `consistency: stop`. */
async function stoppedIfAsked<T>(context: RunContext, request: Request, what: string, body: () => Promise<T>): Promise<T> {
  if (request.options.consistency !== 'stop') return body();
  const done = await withServiceStopped(context, request.service, `${what} of ${request.options.path}`, body);
  if (!done) {
    throw new ReleaseError('BACKUP_FAILED', `${request.manifest}: backup[${request.index}].consistency is stop, but no runtime plugin can stop ${request.service}`, {
      hint: `give ${request.service} a runtime (e.g. a compose.yaml), or drop consistency: stop (the online copy is consistent by itself)`,
    });
  }
  return done.result;
}

function asBackupError(error: unknown, message: string, hint: string): ReleaseError {
  if (error instanceof ReleaseError) return error;
  return new ReleaseError('BACKUP_FAILED', `${message}: ${error instanceof Error ? error.message : String(error)}`, { hint, cause: error });
}

function requireDatabaseFile(request: Request, entry: SqliteEntry): Stats {
  const stats = existsSync(entry.path) ? statSync(entry.path) : undefined;
  if (!stats?.isFile()) {
    throw new ReleaseError('BACKUP_FAILED', `sqlite backup of ${request.service}: ${entry.path} ${stats ? 'is not a file' : 'does not exist'}`, {
      hint: `fix backup[${request.index}].path in ${request.manifest}`,
    });
  }
  return stats;
}

async function backUp(sqlite: Sqlite, options: SqliteBackupOptions, request: Request, context: RunContext): Promise<BackupResult> {
  const entry = request.options;
  const { service } = request;
  const source = entry.path;
  requireDatabaseFile(request, entry);
  ensurePrivateDir(request.dir);
  // The copy's name is ours and plain, and sqlite3 runs in the backup folder, so the dot-command
  // never has to quote a path: the source travels as an argument of its own (a file: URI).
  const copyName = `.${request.index}-${TYPE}.${uniqueSuffix()}.copy.db`;
  if (!/^[A-Za-z0-9._-]+$/.test(copyName)) throw new Error(`unsafe temporary name ${copyName}`);
  const copy = join(request.dir, copyName);
  const name = archiveName(request.index, entry.compress);
  let archivePath: string | undefined;
  try {
    // sqlite3 writes into this empty 0600 file and keeps its mode, whatever the umask.
    closeSync(openSync(copy, 'wx', PRIVATE_FILE_MODE));
    chmodSync(copy, PRIVATE_FILE_MODE);
    await stoppedIfAsked(context, request, 'sqlite backup', async () => {
      const result = await sqlite.run(context, [openExistingUri(source), `.backup '${copyName}'`], request.dir);
      if (result.exitCode !== 0) {
        throw new ReleaseError('BACKUP_FAILED', `sqlite backup of ${service}: sqlite3 .backup of ${source} failed (exit ${result.exitCode}): ${result.output.split('\n').pop() ?? ''}`, {
          hint: 'check that the file is a SQLite database this user can read and that the disk has room',
        });
      }
    });
    const problems = await sqlite.problems(context, copy);
    if (problems.length > 0) {
      throw new ReleaseError('BACKUP_FAILED', `sqlite backup of ${service}: the copy of ${source} fails PRAGMA integrity_check: ${problems[0]}`, {
        lines: problems.slice(1, 5), hint: `the live database may be damaged: check it with sqlite3 ${source} 'PRAGMA integrity_check'`,
      });
    }

    const progress = context.transfers.start(`backup ${TYPE} ${service} ${source}`);
    const raw = hashingCounter();
    const stored = hashingCounter(progress);
    const archive = createArchiveStream(request.dir, name);
    archivePath = archive.path;
    let rawTotals: { bytes: number; sha256: string };
    try {
      await pipeline(createReadStream(copy), raw.stream, entry.compress ? createGzip({ level: options.gzipLevel }) : new PassThrough(), stored.stream, archive.stream);
      rawTotals = raw.totals();
      await sealArchive(archive.path, stored.totals());
    } catch (error) {
      progress.finish('failed');
      throw error;
    }
    const { bytes } = progress.finish(`${formatBytes(rawTotals.bytes)} database ${entry.compress ? 'gzipped' : 'stored'}`);

    // The proof: the archive, as it lies on disk, gives back exactly the copy that passed the check.
    const back = hashingCounter();
    await pipeline(readArchive(archive.path), entry.compress ? createGunzip() : new PassThrough(), back.stream, discard());
    const backTotals = back.totals();
    if (backTotals.sha256 !== rawTotals.sha256 || backTotals.bytes !== rawTotals.bytes) {
      throw new ReleaseError('BACKUP_FAILED', `sqlite backup of ${service}: ${archive.path} does not read back as the database it was written from`, {
        hint: 'check the disk holding .asd/workspace (space, errors), then run again',
      });
    }
    context.out.info(`${service}: ${source} -> ${archive.path} (integrity_check ok, read back ok)`);
    return { files: [name], bytes };
  } catch (error) {
    if (archivePath) removeArchive(archivePath);
    throw asBackupError(error, `sqlite backup of ${service} (${source}) failed`, 'see the message; nothing of this backup was kept');
  } finally {
    removeWithSideFiles(copy);
  }
}

/**
 * Moves the target's side files aside, renames the restored file over the target, then drops the
 * side files. A stale -wal or -journal left beside the restored file would be replayed into it.
 * If the rename fails, the side files go back: the target is as it was.
 */
function swapIn(restored: string, target: string): string[] {
  const aside: [string, string][] = [];
  try {
    for (const suffix of SIDE_FILES) {
      const file = `${target}${suffix}`;
      if (!existsSync(file)) continue;
      const parked = `${restored}${suffix}.stale`;
      renameSync(file, parked);
      aside.push([file, parked]);
    }
    renameSync(restored, target);
  } catch (error) {
    for (const [file, parked] of aside.reverse()) renameSync(parked, file);
    throw error;
  }
  fsyncPath(dirname(target));
  for (const [, parked] of aside) rmSync(parked, { force: true });
  return aside.map(([file]) => basename(file));
}

async function restore(sqlite: Sqlite, request: Request, context: RunContext): Promise<void> {
  const entry = request.options;
  const { service } = request;
  // SQLite follows a symlinked database to its file, and names the -wal and -journal after it: so do we.
  const target = existsSync(entry.path) ? realpathSync(entry.path) : entry.path;
  const archive = await verifyArchive(archiveOf(request, entry));
  const folder = dirname(target);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new ReleaseError('BACKUP_FAILED', `cannot restore ${target} for ${service}: its folder ${folder} does not exist; nothing was restored`, {
      hint: `create ${folder} with the owner and mode the service expects, then run release-revert again`,
    });
  }
  const current = existsSync(target) ? statSync(target) : undefined;
  // Beside the target, so the final rename stays on one file system and is atomic.
  const restored = join(folder, `.${basename(target)}.restore-${uniqueSuffix()}`);
  try {
    const mode = current ? current.mode & 0o7777 : PRIVATE_FILE_MODE;
    closeSync(openSync(restored, 'wx', mode));
    chmodSync(restored, mode);
    if (current && process.getuid?.() === 0) chownSync(restored, current.uid, current.gid);

    const progress = context.transfers.start(`restore ${TYPE} ${service} ${target}`);
    const counter = hashingCounter(progress);
    try {
      const compressed = archive.path.endsWith('.gz');
      await pipeline(readArchive(archive.path), compressed ? createGunzip() : new PassThrough() as Transform, counter.stream, createWriteStream(restored, { flags: 'r+' }));
      fsyncPath(restored);
    } catch (error) {
      progress.finish('failed');
      throw error;
    }
    progress.finish();

    const problems = await sqlite.problems(context, restored);
    if (problems.length > 0) {
      throw new ReleaseError('BACKUP_FAILED', `restore of ${target} for ${service}: the database in ${archive.path} fails PRAGMA integrity_check: ${problems[0]}; nothing was restored`, {
        lines: problems.slice(1, 5), hint: 'restore by hand from another copy',
      });
    }
    // release-revert has stopped the service already; redeploy starts it once code and data match.
    const dropped = swapIn(restored, target);
    if (dropped.length > 0) {
      context.out.info(`${service}: dropped the stale ${dropped.join(', ')} of ${basename(target)}`);
      if (entry.consistency !== 'stop') {
        context.out.warn(`${target} had ${dropped.join(', ')}: a process may still hold the old database open; restart it (or use consistency: stop)`);
      }
    }
    context.out.info(`${service}: restored ${target} from ${archive.path} (integrity_check ok)`);
  } catch (error) {
    throw asBackupError(error, `restore of ${target} for ${service} failed; the database was left as it was`, 'fix the cause, then run release-revert again');
  } finally {
    removeWithSideFiles(restored);
  }
}

/**
 * The restore test: the archive (its sha256 checked) decompressed into a scratch file, which must
 * pass `PRAGMA integrity_check` and name its tables; the service's database is not touched.
 */
async function testRestore(sqlite: Sqlite, request: Request & { scratchDir: string }, context: RunContext): Promise<RestoreTestResult> {
  const archive = await verifyArchive(archiveOf(request, request.options));
  const copy = join(request.scratchDir, `${request.index}-${TYPE}.db`);
  const fail = (why: string, lines: string[] = []) => new ReleaseError('BACKUP_FAILED', `restore test of ${request.options.path} (service ${request.service}) from ${archive.path}: ${why}`, {
    lines, hint: 'this backup would not restore as it was taken: take a new one (the next release of the service does), and check the disk (dmesg)',
  });
  try {
    await pipeline(readArchive(archive.path), archive.path.endsWith('.gz') ? createGunzip() : new PassThrough() as Transform, createWriteStream(copy, { mode: PRIVATE_FILE_MODE }));
  } catch (error) {
    throw fail(`decompressing it into a scratch file failed: ${(error as Error).message}`);
  }
  const problems = await sqlite.problems(context, copy);
  if (problems.length > 0) throw fail(`the restored copy fails PRAGMA integrity_check: ${problems[0]}`, problems.slice(1, 5));
  const tables = await sqlite.run(context, ['-readonly', copy, "SELECT count(*) FROM sqlite_schema WHERE type = 'table';"]);
  const bytes = statSync(copy).size;
  removeWithSideFiles(copy);
  return { words: `${formatBytes(bytes)} database restored into a scratch file: PRAGMA integrity_check ok, ${tables.stdout.trim() || '?'} table(s)` };
}

/** Whether the database (its file or its write-ahead log) was written after `since`, by modification time. */
function writesSince(request: Request, since: Date): WritesSince {
  const times = [request.options.path, `${request.options.path}-wal`].map((path) => statSync(path, { throwIfNoEntry: false })?.mtime).filter((time) => time !== undefined);
  if (times.length === 0) return { words: `${request.options.path} is not there now: nothing of it is replaced`, absent: true };
  const newest = new Date(Math.max(...times.map((time) => time.getTime())));
  return {
    words: newest > since
      ? `${request.options.path} was written since the backup (last at ${newest.toISOString().slice(0, 19).replace('T', ' ')} UTC)`
      : `${request.options.path} was not written since the backup (modification time)`,
  };
}

/** The `sqlite` backup strategy. */
export function sqliteBackupPlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  const sqlite = new Sqlite(options);
  return defineBackupStrategy({
    type: TYPE,
    name: PLUGIN_NAME,
    entry: entrySchema,
    backup: (request, context) => backUp(sqlite, options, request, context),
    size: async (request) => requireDatabaseFile(request, request.options).size,
    check: async (request) => { await verifyArchive(archiveOf(request, request.options)); },
    restore: (request, context) => restore(sqlite, request, context),
    writesSince: async (request, since) => writesSince(request, since),
    testRestore: (request, context) => testRestore(sqlite, request, context),
  });
}
