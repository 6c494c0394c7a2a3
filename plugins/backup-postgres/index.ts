/**
 * Backup strategy `postgres`: a manifest entry `{ type: postgres, url: postgres://USER@HOST:PORT/DB }`
 * is backed up with `pg_dump -Fc -w` into `<index>-postgres.dump` and restored all or nothing:
 * into a temporary database first, then swapped in by renames (see restore.ts).
 */
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ReleaseError, createArchiveStream, defineBackupStrategy, hashingCounter, parseOptions, registerSecret, readArchive, removeArchive, sealArchive, verifyArchive, writeFileAtomic, z,
  type BackupRequest, type BackupResult, type Plugin, type RunContext, type WritesSince,
} from '../../api/index.js';
import {
  PASSWORD_HINT, PG_NAME, checkPassfile, connectionArgs, expandPath, parsePostgresUrl, quoteLiteral, registerPassfileSecrets,
  type PassfileChoice, type PgTarget,
} from './connection.js';
import { PgTools, ToolError, type Failure } from './tools.js';
import { restoreDatabase } from './restore.js';
import { testRestoreDatabase } from './restore-test.js';

export const PLUGIN_NAME = 'backup-postgres';
export const BACKUP_TYPE = 'postgres';

const optionsSchema = z.strictObject({
  /** Folder holding pg_dump, pg_restore and psql (e.g. /usr/lib/postgresql/15/bin); default: PATH. */
  binDir: z.string().min(1).refine((path) => isAbsolute(path), 'must be an absolute path').optional(),
  /** The password file for every entry that names none; default: $PGPASSFILE, else ~/.pgpass. */
  passfile: z.string().min(1).optional(),
  /** The database restore connects to while it creates, renames and drops the service's database. */
  maintenanceDb: z.string().regex(PG_NAME, 'must be a database name').default('postgres'),
  /** libpq's connect timeout: an unreachable server fails fast. */
  connectTimeoutSec: z.number().int().positive().default(10),
  /** How long restore waits for the sessions it ended to go away before it gives up. */
  sessionsTimeoutSec: z.number().positive().default(30),
  /** pg_restore's parallel jobs; default min(4, cores). */
  restoreJobs: z.number().int().min(1).max(32).optional(),
});

export type PostgresBackupOptions = z.infer<typeof optionsSchema>;

/** A manifest `backup:` entry of type postgres. */
const entrySchema = z.strictObject({
  type: z.literal(BACKUP_TYPE),
  /** postgres://USER@HOST:PORT/DATABASE, never with a password. */
  url: z.string().min(1),
  /** This entry's password file (absolute, `~/...`, or relative to the platform repo). */
  passfile: z.string().min(1).optional(),
});

/**
 * A manifest `backup:` entry of type postgres whose server is a compose service of the same
 * platform service: the tools run inside its container (hooks.execIn), over its local socket.
 */
const containerEntrySchema = z.strictObject({
  type: z.literal(BACKUP_TYPE),
  /** The compose service running PostgreSQL (e.g. db). */
  service: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a compose service name'),
  database: z.string().regex(PG_NAME, 'must be 1-63 of A-Z a-z 0-9 _ . $ - and not start with . $ or -'),
  /** The role the tools log in as; the container's local auth must admit osUser as it. */
  user: z.string().regex(PG_NAME, 'must be 1-63 of A-Z a-z 0-9 _ . $ - and not start with . $ or -').default('postgres'),
  /** The OS user the tools run as inside the container (peer authentication maps it to a role). */
  osUser: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be an OS user name').default('postgres'),
});

/** The dump's file name in the backup folder: `<index>-postgres.dump`. */
export const dumpName = (request: BackupRequest) => `${request.index}-${BACKUP_TYPE}.dump`;

/** Validates the manifest entry (errors name the manifest and the key, exit 2) and says where it points. */
export function resolveTarget(request: BackupRequest, context: RunContext, options: PostgresBackupOptions): PgTarget {
  const file = request.manifest;
  const at = `backup[${request.index}]`;
  const entry = request.entry;
  if (!('url' in entry) && 'service' in entry) {
    const parsed = containerEntrySchema.safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const secretKeys = issue.code === 'unrecognized_keys' ? issue.keys.filter((key) => /pass|secret|token/i.test(key)) : [];
      for (const key of secretKeys) if (typeof entry[key] === 'string') registerSecret(entry[key]);
      const key = secretKeys[0] ?? (issue.code === 'unrecognized_keys' ? issue.keys[0]! : issue.path.join('.'));
      throw new ReleaseError('BAD_INPUT', `${file}: ${at}${key ? `.${key}` : ''}: ${issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message}${secretKeys.length > 0 ? '; passwords never go in a manifest' : ''}`, {
        hint: secretKeys.length > 0 ? 'the tools run inside the container and log in with its local auth (peer or trust): no password is needed'
          : 'write it as { type: postgres, service: COMPOSE_SERVICE, database: DB } (optionally user: ROLE, osUser: OS_USER), or { type: postgres, url: ... }',
      });
    }
    const { service: target, database, user, osUser } = parsed.data;
    return {
      user, host: '', port: 0, database, passfile: '',
      label: `${user}@${request.service}/${target}/${database}`,
      container: { service: request.service, target, osUser },
    };
  }
  // The URL first: a password in it is registered as a secret before any other message is made.
  if (typeof entry.url === 'string') parsePostgresUrl(entry.url, `${file}: ${at}.url`);
  const parsed = entrySchema.safeParse(entry);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const secretKeys = issue.keys.filter((key) => /pass|secret|token/i.test(key));
      for (const key of secretKeys) if (typeof entry[key] === 'string') registerSecret(entry[key]);
      const key = secretKeys[0] ?? issue.keys[0]!;
      throw new ReleaseError('BAD_INPUT', `${file}: ${at}.${key}: unknown key${secretKeys.length > 0 ? '; passwords never go in a manifest' : ''}`, {
        hint: secretKeys.length > 0 ? PASSWORD_HINT : 'a postgres backup entry has the keys type, url and passfile (host mode) or type, service, database, user, osUser (in a container)',
      });
    }
    const key = issue.path.join('.');
    throw new ReleaseError('BAD_INPUT', `${file}: ${at}${key ? `.${key}` : ''}: ${issue.message}`, {
      hint: 'write it as { type: postgres, url: postgres://USER@HOST:PORT/DATABASE } (optionally passfile: PATH)',
    });
  }
  const where = parsePostgresUrl(parsed.data.url, `${file}: ${at}.url`);
  let choice: PassfileChoice;
  if (parsed.data.passfile) choice = { path: expandPath(parsed.data.passfile, context.repoDir), key: `${file}: ${at}.passfile` };
  else if (options.passfile) choice = { path: expandPath(options.passfile, context.repoDir), key: `options of plugin ${PLUGIN_NAME}: passfile` };
  else if (process.env.PGPASSFILE) choice = { path: expandPath(process.env.PGPASSFILE, context.repoDir), key: 'PGPASSFILE' };
  else choice = { path: expandPath('~/.pgpass', context.repoDir) };
  checkPassfile(choice);
  const target: PgTarget = { ...where, passfile: choice.path, label: `${where.user}@${where.host}:${where.port}/${where.database}` };
  registerPassfileSecrets(target);
  return target;
}

function removeDirIfEmpty(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    /* gone already, or not ours to remove */
  }
}

/** Beside a dump: the database's oid and row-write counter when the dump started, for writesSince. */
const statsName = (request: BackupRequest) => `.${dumpName(request)}.writes`;
const WRITES_SQL = 'SELECT d.oid, s.tup_inserted + s.tup_updated + s.tup_deleted FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid WHERE d.datname = current_database();';

/** The oid and row writes of the entry's database now, from pg_stat_database; undefined when unreadable. */
async function writeCounter(pg: PgTools, database: string): Promise<{ oid: string; rows: number } | undefined> {
  const [oid, rows] = (await pg.psql(database, WRITES_SQL).catch(() => '')).split('|');
  return oid && Number.isFinite(Number(rows)) ? { oid, rows: Number(rows) } : undefined;
}

/**
 * The rows written since the backup, from pg_stat_database's counters against those recorded when
 * the dump started (rows written while it ran count too). Undefined when the backup recorded none.
 */
async function writesSince(request: BackupRequest, context: RunContext, options: PostgresBackupOptions): Promise<WritesSince | undefined> {
  const target = resolveTarget(request, context, options);
  const pg = new PgTools(context, target, options);
  const exists = await pg.psql(options.maintenanceDb, `SELECT count(*) FROM pg_database WHERE datname = ${quoteLiteral(target.database)};`).catch(() => undefined);
  if (exists === '0') return { words: `database ${target.label} is not there now: nothing of it is replaced`, absent: true };
  const statsFile = join(request.dir, statsName(request));
  const recorded = existsSync(statsFile) ? /^(\d+) (\d+)$/.exec(readFileSync(statsFile, 'utf8').trim()) : null;
  if (!recorded) return undefined;
  const now = await writeCounter(pg, target.database);
  const words = (what: string) => ({ words: `database ${target.label}${what}` });
  if (!now) return words(': its statistics cannot be read now, so what was written since cannot be told');
  if (now.oid !== recorded[1]) return words(' was replaced since the backup (restored or created again): what was written since cannot be told');
  const rows = now.rows - Number(recorded[2]);
  if (rows < 0) return words(': its statistics were reset since the backup, so what was written since cannot be told');
  return words(rows === 0 ? ': no row written since the backup (pg_stat_database)' : `: ${rows} row(s) inserted, updated or deleted since the backup (pg_stat_database)`);
}

/** `pg_dump -Fc -w` streamed through archive.ts, then read back with `pg_restore --list`. */
async function backup(request: BackupRequest, context: RunContext, options: PostgresBackupOptions): Promise<BackupResult> {
  const target = resolveTarget(request, context, options);
  const pg = new PgTools(context, target, options);
  await pg.waitReady(options.connectTimeoutSec);
  const name = dumpName(request);
  const { path, stream } = createArchiveStream(request.dir, name);
  const progress = context.transfers.start(`backup ${request.service}: postgres ${target.label}`);
  let finished = false;
  let cleaned = false;
  const fail = (failure: Pick<Failure, 'why' | 'hint'> & { lines?: string[]; cause?: unknown }) => {
    if (!finished) progress.finish('failed');
    finished = true;
    removeArchive(path);
    removeDirIfEmpty(request.dir);
    cleaned = true;
    return new ReleaseError('BACKUP_FAILED', `backup of database ${target.label} (service ${request.service}) failed: ${failure.why}; nothing was kept`, {
      hint: failure.hint, lines: failure.lines, cause: failure.cause,
    });
  };
  try {
    const writes = await writeCounter(pg, target.database);
    const counter = hashingCounter(progress);
    // Our own leg (counter -> file) reports disk errors such as ENOSPC; exec's leg stops pg_dump.
    const toDisk = pipeline(counter.stream, stream).then(() => undefined, (error: NodeJS.ErrnoException) => error);
    const dump = await pg.run('pg_dump', ['-Fc', '-w', ...connectionArgs(target)], { stdoutTo: counter.stream });
    const diskError = await toDisk;
    if (diskError?.code === 'EEXIST') {
      progress.finish('failed');
      cleaned = true; // not ours: left as it is
      throw new ReleaseError('BACKUP_FAILED', `backup of database ${target.label} (service ${request.service}) failed: ${path} already exists`, {
        hint: 'run again (a new backup folder is made each time)',
      });
    }
    if (diskError?.syscall) {
      throw fail({ why: `writing ${path} failed: ${diskError.code === 'ENOSPC' ? 'no space left on device' : diskError.message}`, hint: `free space on the disk holding ${request.dir}, then run again` });
    }
    if (dump.exitCode !== 0) throw fail(pg.failure('pg_dump', dump));
    if (diskError) throw fail({ why: `writing ${path} failed: ${diskError.message}`, hint: 'run again' });
    const artifact = await sealArchive(path, counter.totals());
    progress.finish('dumped');
    finished = true;
    // Proof that what is on disk is a dump pg_restore can read, of the database we meant.
    // In a container the file is on this host: the tool reads its head from stdin.
    const listing = target.container
      ? await pg.run('pg_restore', ['--list'], { stdinFrom: readArchive(path), stdinMayStopEarly: true })
      : await pg.run('pg_restore', ['--list', path]);
    if (listing.exitCode !== 0) {
      throw fail({ ...pg.failure('pg_restore --list', listing), hint: 'the dump on disk is unreadable: check the disk and the pg_dump/pg_restore versions, then run again' });
    }
    const dbname = /^;\s+dbname: (.*)$/m.exec(listing.stdout)?.[1];
    if (dbname !== target.database) throw fail({ why: `pg_restore --list reads database ${dbname ?? '(none)'} from the dump, not ${target.database}`, hint: 'run again' });
    const entries = listing.stdout.split('\n').filter((line) => /^\d+;/.test(line)).length;
    if (writes) writeFileAtomic(join(request.dir, statsName(request)), `${writes.oid} ${writes.rows}\n`);
    context.out.phase('backup', `${request.service}: ${path} holds ${target.database} (${entries} objects, read back with pg_restore --list)`);
    return { files: [name, `${name}.sha256`, `${name}.size`], bytes: artifact.bytes };
  } catch (error) {
    if (cleaned) throw error;
    throw fail({ why: error instanceof Error ? error.message : String(error), hint: 'run again', cause: error });
  }
}

/** The dry run's estimate: pg_database_size, read-only. */
async function sizeBackup(request: BackupRequest, context: RunContext, options: PostgresBackupOptions): Promise<number> {
  const target = resolveTarget(request, context, options);
  const pg = new PgTools(context, target, options);
  try {
    await pg.waitReady(options.connectTimeoutSec);
    return Number(await pg.psql(target.database, 'SELECT pg_database_size(current_database());'));
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    throw new ReleaseError('BACKUP_FAILED', `cannot read the size of database ${target.label} (service ${request.service}): ${error.failure.why}; a backup would fail too`, {
      hint: error.failure.hint,
    });
  }
}

/**
 * Before revert restores anything: the dump is there and is what was written (size and sha256),
 * else BACKUP_FAILED naming the file; and the server is reachable with a role that may create
 * databases, so a restore does not fail after other backups were already put back.
 */
async function checkBackup(request: BackupRequest, context: RunContext, options: PostgresBackupOptions): Promise<void> {
  const target = resolveTarget(request, context, options);
  const untouched = `it is the dump of database ${target.label} (service ${request.service}); that database was not touched`;
  try {
    await verifyArchive(join(request.dir, dumpName(request)));
  } catch (error) {
    if (!(error instanceof ReleaseError)) throw error;
    throw new ReleaseError(error.code, error.message, { hint: error.hint, lines: [untouched], reason: error.reason });
  }
  if (target.database === options.maintenanceDb) {
    throw new ReleaseError('BAD_INPUT', `cannot restore database ${target.label}: it is the maintenance database restore connects to; nothing was restored`, {
      hint: `set the maintenanceDb option of plugin ${PLUGIN_NAME} to another database (e.g. template1)`,
    });
  }
  const pg = new PgTools(context, target, options);
  let canCreate: string;
  try {
    await pg.waitReady(options.connectTimeoutSec);
    canCreate = await pg.psql(options.maintenanceDb, 'SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user;');
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    throw new ReleaseError('BACKUP_FAILED', `cannot restore database ${target.label} (service ${request.service}): ${error.failure.why}; nothing was restored`, {
      hint: error.failure.hint, lines: error.failure.lines,
    });
  }
  if (canCreate !== 't') {
    throw new ReleaseError('BACKUP_FAILED', `cannot restore database ${target.label} (service ${request.service}): role ${target.user} may not create databases; nothing was restored`, {
      hint: `restore builds a new database and swaps it in: ALTER ROLE ${target.user} CREATEDB, or point the entry at a role that has it`,
    });
  }
}

export function postgresBackupPlugin(rawOptions: z.input<typeof optionsSchema> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  return defineBackupStrategy({
    type: BACKUP_TYPE,
    name: PLUGIN_NAME,
    // resolveTarget validates the entry itself: a password in it must be registered as a secret
    // before any message names the entry.
    entry: z.looseObject({}),
    backup: (request, context) => backup(request, context, options),
    size: (request, context) => sizeBackup(request, context, options),
    check: (request, context) => checkBackup(request, context, options),
    writesSince: (request, _since, context) => writesSince(request, context, options),
    restore: async (request, context) => {
      const target = resolveTarget(request, context, options);
      await restoreDatabase(new PgTools(context, target, options), request, join(request.dir, dumpName(request)), options);
    },
    testRestore: async (request, context) => {
      const target = resolveTarget(request, context, options);
      return testRestoreDatabase(new PgTools(context, target, options), request, join(request.dir, dumpName(request)), options, context);
    },
  });
}
