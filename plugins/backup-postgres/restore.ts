/**
 * Restore, all or nothing. `pg_restore --clean` into the live database would leave behind what the
 * release added (new tables, new columns) and would fail half way on a live schema. Instead:
 *
 *   1. create `<db>_ro_restoring` as the dump's CREATE DATABASE says (template0, encoding, locale),
 *      owned by the dump's owner, and `pg_restore --exit-on-error` into it;
 *      a failure drops it and leaves `<db>` untouched;
 *   2. refuse new connections to `<db>`, end its sessions (pg_terminate_backend, logged);
 *   3. in ONE transaction: rename `<db>` to `<db>_ro_replaced`, rename `<db>_ro_restoring` to
 *      `<db>`, and apply the dump's database-level settings (comment, grants, ALTER DATABASE SET);
 *      if any step fails the transaction rolls back, i.e. the first rename is undone, `<db>` accepts
 *      connections again and the restored copy is dropped;
 *   4. drop `<db>_ro_replaced`.
 *
 * A run interrupted at any point leaves `<db>` whole (old or new); the next run drops the leftovers.
 */
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { ReleaseError, hashingCounter, readArchive, type RestoreRequest } from '../../api/index.js';
import { connectionArgs, derivedName, quoteIdent, quoteLiteral } from './connection.js';
import { PgTools, ToolError, type Scratch } from './tools.js';

export const RESTORING_SUFFIX = '_ro_restoring';
export const REPLACED_SUFFIX = '_ro_replaced';

interface RestoreOptions {
  maintenanceDb: string;
  sessionsTimeoutSec: number;
  /** pg_restore's parallel jobs; undefined: min(4, cores). */
  restoreJobs?: number;
}

/** pg_restore -j: one job per core, at most 4 (more rarely helps a service's database and starves the host). */
export const restoreJobs = (options: Pick<RestoreOptions, 'restoreJobs'>) => options.restoreJobs ?? Math.max(1, Math.min(4, availableParallelism()));

/** What the dump says of the database itself, beside its contents. */
interface DatabasePlan {
  /** The WITH clause of the dump's CREATE DATABASE: template0, encoding, locale, tablespace. */
  createWith: string;
  /** The owner, as pg_dump quoted it; undefined: the connecting user. */
  owner?: string;
  /** Database-level SQL (comment, ACL, ALTER DATABASE ... SET), naming the database by its real name. */
  properties: string;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Database-level TOC entries: the database itself, its properties, comment, ACL and labels. */
export const DATABASE_ENTRY = /^\d+; \d+ \d+ (?:DATABASE(?: PROPERTIES)? - |(?:COMMENT|ACL|SECURITY LABEL) - DATABASE )/;

export async function readPlan(pg: PgTools, scratch: Scratch, file: string, hostFile: string, database: string): Promise<DatabasePlan> {
  const fail = (why: string) => new ReleaseError('BACKUP_FAILED', `backup ${hostFile} cannot be restored: ${why}; database ${pg.target.label} was not touched`, {
    hint: 'restore by hand from another copy',
  });
  const listing = await pg.run('pg_restore', ['--create', '--list', file]);
  if (listing.exitCode !== 0) throw fail(pg.failure('pg_restore --list', listing).why);
  const dbname = /^;\s+dbname: (.*)$/m.exec(listing.stdout)?.[1];
  if (dbname !== database) throw fail(`it holds database ${dbname ?? '(none)'}, but the manifest entry names ${database}`);
  const entries = listing.stdout.split('\n').filter((line) => DATABASE_ENTRY.test(line));
  {
    const listFile = await scratch.put('database.list', `${entries.join('\n')}\n`);
    const script = await pg.run('pg_restore', ['--create', '--schema-only', `--use-list=${listFile}`, '--file=-', file]);
    if (script.exitCode !== 0) throw fail(pg.failure('pg_restore', script).why);
    const lines = script.stdout.split('\n');
    const name = `(?:${escapeRegExp(database)}|${escapeRegExp(quoteIdent(database))})`;
    const create = new RegExp(`^CREATE DATABASE ${name} WITH (.*);$`);
    const owner = new RegExp(`^ALTER DATABASE ${name} OWNER TO (.+);$`);
    // pg_restore --create writes the CREATE DATABASE, then `\connect`s to it for everything else.
    const connectAt = lines.findIndex((line) => line.startsWith('\\connect '));
    const head = connectAt < 0 ? lines : lines.slice(0, connectAt);
    let createWith = head.map((line) => create.exec(line)?.[1]).find(Boolean) ?? 'TEMPLATE = template0';
    if (!/\bTEMPLATE = template0\b/.test(createWith)) createWith = `TEMPLATE = template0 ${createWith}`;
    return {
      createWith,
      owner: head.map((line) => owner.exec(line)?.[1]).find(Boolean),
      properties: connectAt < 0 ? '' : lines.slice(connectAt).filter((line) => !line.startsWith('\\connect ')).join('\n'),
    };
  }
}

export async function restoreDatabase(pg: PgTools, request: RestoreRequest, file: string, options: RestoreOptions): Promise<void> {
  const db = pg.target.database;
  if (db === options.maintenanceDb) {
    throw new ReleaseError('BAD_INPUT', `cannot restore database ${db}: it is the maintenance database restore connects to`, {
      hint: `set the maintenanceDb option of plugin backup-postgres to another database (e.g. template1)`,
    });
  }
  await pg.waitReady(options.sessionsTimeoutSec);
  // pg_restore -j needs a seekable archive: the dump file itself on this host; in container mode
  // a copy under the container's /tmp, removed when the restore is over (or replaced by the next).
  const scratch = await pg.scratch();
  try {
    await restoreWith(pg, scratch, request, file, options);
  } finally {
    await scratch.remove();
  }
}

async function restoreWith(pg: PgTools, scratch: Scratch, request: RestoreRequest, file: string, options: RestoreOptions): Promise<void> {
  const { context, target } = pg;
  const db = target.database;
  const service = request.service;
  const restoring = derivedName(db, RESTORING_SUFFIX);
  const replaced = derivedName(db, REPLACED_SUFFIX);
  const say = (message: string) => context.out.phase('restore', `${service}: ${message}`);
  const maintenance = (sql: string) => pg.psql(options.maintenanceDb, sql);
  const failed = (why: string, outcome: string, hint: string, lines: string[] = []) =>
    new ReleaseError('BACKUP_FAILED', `restore of database ${target.label} (service ${service}) failed: ${why}; ${outcome}`, { hint, lines });
  const toolWhy = (error: unknown) => (error instanceof ToolError ? error.failure.why : error instanceof Error ? error.message : String(error));
  const dropQuietly = async (name: string) => {
    try {
      await maintenance(`DROP DATABASE IF EXISTS ${quoteIdent(name)};`);
    } catch (error) {
      context.out.warn(`could not drop ${name}: ${toolWhy(error)}; drop it by hand`);
    }
  };
  const existing = async () => new Set((await maintenance(
    `SELECT datname FROM pg_database WHERE datname IN (${[db, restoring, replaced].map(quoteLiteral).join(', ')});`,
  )).split('\n').filter(Boolean));

  let dumpPath = file;
  if (target.container) {
    const progress = context.transfers.start(`restore ${service}: copying the dump into compose service ${target.container.target}`);
    const counter = hashingCounter(progress);
    // pipeline, not pipe: a read error ends the copy (and the exec) instead of leaving it waiting.
    const feeding = pipeline(readArchive(file), counter.stream).catch(() => undefined);
    try {
      dumpPath = await scratch.put('restore.dump', counter.stream);
      await feeding;
    } catch (error) {
      progress.finish('failed');
      if (!(error instanceof ToolError)) throw error;
      throw failed(`copying the dump into the container: ${error.failure.why}`, `database ${db} was not touched`, error.failure.hint, error.failure.lines);
    }
    progress.finish('copied');
  }
  const plan = await readPlan(pg, scratch, dumpPath, file, db);

  // Leftovers of an interrupted earlier run.
  let present: Set<string>;
  try {
    present = await existing();
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    throw failed(error.failure.why, `database ${db} was not touched`, error.failure.hint, error.failure.lines);
  }
  if (present.has(replaced)) {
    if (!present.has(db)) {
      throw failed(`${db} is missing but ${replaced} exists`, 'nothing was changed',
        `someone dropped or renamed ${db}: check both by hand (ALTER DATABASE ${replaced} RENAME TO ${db} puts the old one back), then run again`);
    }
    say(`dropping ${replaced}, the copy an earlier restore replaced`);
    await dropQuietly(replaced);
  }
  if (present.has(restoring)) {
    say(`dropping ${restoring}, left by an interrupted restore`);
    await maintenance(`DROP DATABASE ${quoteIdent(restoring)};`);
  }

  // 1. Restore into a new database; the target is not touched.
  try {
    await maintenance([
      `CREATE DATABASE ${quoteIdent(restoring)} WITH ${plan.createWith};`,
      ...(plan.owner ? [`ALTER DATABASE ${quoteIdent(restoring)} OWNER TO ${plan.owner};`] : []),
    ].join('\n'));
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    await dropQuietly(restoring);
    throw failed(`creating the temporary database ${restoring}: ${error.failure.why}`, `database ${db} was not touched`, error.failure.hint, error.failure.lines);
  }
  const jobs = restoreJobs(options);
  say(`pg_restore -j ${jobs} into ${restoring}`);
  // synchronous_commit off for the restore's own sessions: a crash loses only the copy, which
  // nothing uses yet and the next run drops; the swap below commits synchronously as always.
  const result = await pg.run('pg_restore', ['--exit-on-error', '-w', `--jobs=${jobs}`, ...connectionArgs(target, restoring), dumpPath],
    { env: { PGOPTIONS: '-c synchronous_commit=off' } });
  if (result.exitCode !== 0) {
    const failure = pg.failure('pg_restore', result, restoring);
    await dropQuietly(restoring);
    throw failed(`pg_restore into the temporary database ${restoring}: ${failure.why}`, `database ${db} was not touched and ${restoring} was dropped`,
      failure.hint === 'see the lines above' ? `the dump does not restore cleanly into an empty database (e.g. a role it needs is gone): fix that, then run release-revert again` : failure.hint,
      failure.lines);
  }
  context.log.event('restore', 'postgres-restored', { service, database: restoring, jobs });

  // 2. and 3. End the target's sessions and swap the restored copy in, in one transaction.
  const targetExists = present.has(db);
  let allowedConnections = true;
  try {
    // A superuser may end the target's autovacuum workers too: after heavy writes (or a restore
    // just before) their analyze of a big table runs for seconds, and the copy they work on is
    // about to be replaced. Anyone else waits for them to finish.
    let endsAutovacuum = false;
    if (targetExists) {
      const [allow, superuser] = (await maintenance(`SELECT datallowconn, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) FROM pg_database WHERE datname = ${quoteLiteral(db)};`)).split('|');
      allowedConnections = allow !== 'f';
      endsAutovacuum = superuser === 't';
      await maintenance(`ALTER DATABASE ${quoteIdent(db)} WITH ALLOW_CONNECTIONS false;`);
    }
    // Autovacuum may still open a session on the target between the last check and the rename
    // (ALLOW_CONNECTIONS does not stop it): the swap is one transaction, so it is safe to retry.
    for (let attempt = 1; ; attempt++) {
      if (targetExists) {
        const ended = Number(await maintenance(
          // An autovacuum worker is a superuser process that only a superuser may end; for anyone
          // else it finishes by itself, and waitForNoSessions waits for it.
          `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${quoteLiteral(db)} AND pid <> pg_backend_pid()${endsAutovacuum ? '' : " AND backend_type <> 'autovacuum worker'"};`,
        ));
        if (ended > 0) {
          say(`ended ${ended} other session(s) of database ${db} (pg_terminate_backend) to swap in the restored copy`);
          context.log.event('restore', 'sessions-ended', { service, database: db, count: ended });
        }
        await waitForNoSessions(pg, options, db);
      }
      try {
        await maintenance([
          'BEGIN;',
          ...(targetExists ? [`ALTER DATABASE ${quoteIdent(db)} RENAME TO ${quoteIdent(replaced)};`] : []),
          `ALTER DATABASE ${quoteIdent(restoring)} RENAME TO ${quoteIdent(db)};`,
          plan.properties,
          'COMMIT;',
        ].join('\n'));
        break;
      } catch (error) {
        if (attempt >= 5 || !/is being accessed by other users/.test(toolWhy(error))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  } catch (error) {
    // The transaction rolled back: `db` still holds the data it had. Let it be used again.
    if (targetExists && allowedConnections) {
      try {
        await maintenance(`ALTER DATABASE ${quoteIdent(db)} WITH ALLOW_CONNECTIONS true;`);
      } catch (reopen) {
        context.out.warn(`could not let connections into ${db} again: ${toolWhy(reopen)}; run ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS true`);
      }
    }
    await dropQuietly(restoring);
    throw failed(`swapping in the restored copy: ${toolWhy(error)}`, `database ${db} keeps the data it had and ${restoring} was dropped`,
      error instanceof ToolError ? error.failure.hint : 'run release-revert again', error instanceof ToolError ? error.failure.lines : []);
  }
  context.log.event('restore', 'postgres-swapped', { service, database: db });
  say(`database ${db} now holds the backup (the previous copy was ${replaced})`);

  // 4. The previous copy goes.
  if (targetExists) await dropQuietly(replaced);
}

/** Waits until no session is connected to `db` (they were told to end; it takes a moment). */
async function waitForNoSessions(pg: PgTools, options: RestoreOptions, db: string): Promise<void> {
  const deadline = Date.now() + options.sessionsTimeoutSec * 1000;
  for (;;) {
    const left = Number(await pg.psql(options.maintenanceDb,
      `SELECT count(*) FROM pg_stat_activity WHERE datname = ${quoteLiteral(db)} AND pid <> pg_backend_pid();`));
    if (left === 0) return;
    if (Date.now() > deadline) throw new Error(`${left} session(s) of ${db} were still connected after ${options.sessionsTimeoutSec}s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
