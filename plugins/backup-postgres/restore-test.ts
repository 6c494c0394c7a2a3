/**
 * The restore test of a postgres backup (`release verify-backups`): the dump is restored, as a
 * revert would restore it, into a scratch database `<db>_ro_verify` of the same server (or
 * container), never the service's database; then what came back is compared with the dump itself:
 *
 *   - every schema object of the dump's table of contents (`pg_restore --list`: tables, indexes,
 *     constraints, views, functions, types, sequences, ...) is in the scratch database, read back
 *     by a schema-only dump of it (`pg_dump -s` then `--list`, so both sides are pg_dump's words);
 *   - every table holds as many rows as the dump's data for it (`pg_restore --data-only`, COPY rows
 *     counted as they stream by) against `SELECT count(*)` in the scratch database.
 *
 * The scratch database is dropped when the test ends, on failure and after an interrupt too; one
 * a kill -9 left is dropped when the next test of the same database starts.
 */
import { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { ReleaseError, forCleanup, readArchive, type BackupRequest, type RestoreTestResult, type RunContext } from '../../api/index.js';
import { connectionArgs, derivedName, quoteIdent, quoteLiteral } from './connection.js';
import { DATABASE_ENTRY, readPlan, restoreJobs } from './restore.js';
import { PgTools, ToolError } from './tools.js';

export const VERIFY_SUFFIX = '_ro_verify';

/** Entries that carry data or name the database itself: not schema objects of it. */
const NOT_SCHEMA = /^(?:TABLE DATA|SEQUENCE SET|BLOBS?|BLOB DATA|LARGE OBJECT|MATERIALIZED VIEW DATA|STATISTICS DATA) /;

/** `TYPE schema name owner` of each schema object a `pg_restore --list` names, sorted. */
export function schemaObjects(listing: string): string[] {
  return listing.split('\n')
    .filter((line) => /^\d+; \d+ \d+ /.test(line) && !DATABASE_ENTRY.test(line))
    .map((line) => line.replace(/^\d+; \d+ \d+ /, ''))
    .filter((entry) => !NOT_SCHEMA.test(entry))
    .sort();
}

/** Counts the rows of each `COPY table (...) FROM stdin;` block of a data-only SQL stream. */
export function copyRowCounter() {
  const rows = new Map<string, number>();
  let table: string | undefined;
  let rest = '';
  // A chunk may end inside a multi-byte character: decoded across chunks, never one by one.
  const decoder = new StringDecoder('utf8');
  const line = (text: string) => {
    if (table !== undefined) {
      if (text === '\\.') table = undefined;
      else rows.set(table, rows.get(table)! + 1);
      return;
    }
    const copy = /^COPY (.+?) (?:\(.*\) )?FROM stdin;$/.exec(text);
    if (copy) {
      table = copy[1]!;
      rows.set(table, rows.get(table) ?? 0);
    }
  };
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const lines = (rest + decoder.write(chunk)).split('\n');
      rest = lines.pop()!;
      for (const text of lines) line(text);
      done();
    },
    final(done) {
      rest += decoder.end();
      if (rest !== '') line(rest);
      done();
    },
  });
  return { stream, rows };
}

/** Collects a binary stdout (a dump) in memory: a schema-only dump is small. */
function collector() {
  const chunks: Buffer[] = [];
  const stream = new Writable({ write(chunk: Buffer, _encoding, done) { chunks.push(chunk); done(); } });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

/** A multiset difference, for the message: what `expected` has that `actual` lacks. */
function missingFrom(expected: string[], actual: string[]): string[] {
  const left = new Map<string, number>();
  for (const item of actual) left.set(item, (left.get(item) ?? 0) + 1);
  const missing: string[] = [];
  for (const item of expected) {
    const count = left.get(item) ?? 0;
    if (count === 0) missing.push(item);
    else left.set(item, count - 1);
  }
  return missing;
}

interface TestOptions {
  maintenanceDb: string;
  connectTimeoutSec: number;
  restoreJobs?: number;
  binDir?: string;
}

export async function testRestoreDatabase(pg: PgTools, request: BackupRequest, file: string, options: TestOptions, context: RunContext): Promise<RestoreTestResult> {
  const { target } = pg;
  const scratchDb = derivedName(target.database, VERIFY_SUFFIX);
  const cleanup = new PgTools(forCleanup(context), target, options);
  const fail = (why: string, lines: string[] = []) => new ReleaseError('BACKUP_FAILED', `restore test of database ${target.label} (service ${request.service}) from ${file}: ${why}`, {
    lines, hint: 'this dump would not restore as it was taken: take a new backup (the next release of the service does) and find out what damaged it (disk errors: dmesg; pg_dump and pg_restore versions)',
  });
  const tool = async (name: string, run: Promise<Awaited<ReturnType<PgTools['run']>>>, database = target.database) => {
    const result = await run;
    if (result.exitCode !== 0) {
      const failure = pg.failure(name, result, database);
      throw fail(failure.why, failure.lines);
    }
    return result;
  };
  // Its sessions first: after an interrupt a pg_restore job (or one left running in a container) may still be connected.
  const drop = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await cleanup.psql(options.maintenanceDb, [
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${quoteLiteral(scratchDb)} AND pid <> pg_backend_pid();`,
          `DROP DATABASE IF EXISTS ${quoteIdent(scratchDb)};`,
        ].join('\n'));
        return;
      } catch (error) {
        if (attempt >= 10 || !(error instanceof ToolError) || !/is being accessed by other users/.test(error.failure.why)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
  };
  await pg.waitReady(options.connectTimeoutSec);
  if (scratchDb === target.database || scratchDb === options.maintenanceDb) throw fail(`its scratch database name ${scratchDb} is taken by the service or the maintenance database`);
  // A scratch database a killed test left.
  await drop();
  const scratch = await pg.scratch();
  try {
    // pg_restore -j needs a seekable file: in container mode a copy in the container.
    const dumpPath = target.container ? await scratch.put('verify.dump', readArchive(file)) : file;
    const plan = await readPlan(pg, scratch, dumpPath, file, target.database);
    const listing = await tool('pg_restore --list', pg.run('pg_restore', ['--list', dumpPath]));
    const expectedObjects = schemaObjects(listing.stdout);
    try {
      await pg.psql(options.maintenanceDb, [
        `CREATE DATABASE ${quoteIdent(scratchDb)} WITH ${plan.createWith};`,
        ...(plan.owner ? [`ALTER DATABASE ${quoteIdent(scratchDb)} OWNER TO ${plan.owner};`] : []),
      ].join('\n'));
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      throw fail(`creating the scratch database ${scratchDb}: ${error.failure.why}`, error.failure.lines);
    }
    context.failpoint('restore-test-postgres-restoring');
    await tool('pg_restore', pg.run('pg_restore', ['--exit-on-error', '-w', `--jobs=${restoreJobs(options)}`, ...connectionArgs(target, scratchDb), dumpPath],
      { env: { PGOPTIONS: '-c synchronous_commit=off' } }), scratchDb);

    // Schema objects: the scratch database's own table of contents against the dump's.
    const schemaDump = collector();
    await tool('pg_dump --schema-only', pg.run('pg_dump', ['-Fc', '--schema-only', '-w', ...connectionArgs(target, scratchDb)], { stdoutTo: schemaDump.stream }), scratchDb);
    const relisted = await tool('pg_restore --list', pg.run('pg_restore', ['--list'], { stdinFrom: Readable.from([schemaDump.bytes()]), stdinMayStopEarly: true }), scratchDb);
    const actualObjects = schemaObjects(relisted.stdout);
    const missing = missingFrom(expectedObjects, actualObjects);
    if (missing.length > 0) throw fail(`${missing.length} schema object(s) of the dump are not in the restored copy: ${missing.slice(0, 5).join('; ')}`);

    // Rows: what the dump's data holds per table against what the scratch database counts.
    const counter = copyRowCounter();
    await tool('pg_restore --data-only', pg.run('pg_restore', ['--data-only', '--file=-', dumpPath], { stdoutTo: counter.stream }));
    const tables = [...counter.rows.keys()];
    const counted = new Map<string, number>();
    if (tables.length > 0) {
      // The COPY lines name each table as pg_dump quoted it: valid SQL as it stands.
      const sql = tables.map((table, index) => `SELECT ${index}, count(*) FROM ONLY ${table}`).join('\nUNION ALL ') + ';';
      const answer = await pg.psql(scratchDb, sql).catch((error: unknown) => {
        throw fail(`counting the rows of the restored copy: ${error instanceof ToolError ? error.failure.why : String(error)}`);
      });
      for (const row of answer.split('\n').filter(Boolean)) {
        const [index, count] = row.split('|');
        counted.set(tables[Number(index)]!, Number(count));
      }
    }
    const wrong = tables.filter((table) => counted.get(table) !== counter.rows.get(table));
    if (wrong.length > 0) {
      throw fail(`${wrong.length} table(s) hold other row counts than the dump: ${wrong.slice(0, 5).map((table) => `${table} ${counted.get(table) ?? '?'} of ${counter.rows.get(table)}`).join('; ')}`);
    }
    const rows = [...counter.rows.values()].reduce((sum, count) => sum + count, 0);
    return {
      words: `${actualObjects.length} schema objects and ${rows} rows in ${tables.length} tables restored into scratch database ${scratchDb} match the dump (pg_restore --list, COPY rows counted)`,
    };
  } finally {
    await drop().catch((error: unknown) => context.out.warn(`could not drop the scratch database ${scratchDb}: ${error instanceof ToolError ? error.failure.why : String(error)}; drop it by hand`));
    await scratch.remove();
  }
}

