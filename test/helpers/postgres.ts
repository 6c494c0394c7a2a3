/**
 * The real PostgreSQL test server for this plugin's tests (test/infra/ensure-postgres.sh), and
 * what an operator would look at: the schema as pg_dump prints it, and every table's rows.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT } from './platform.js';

export interface PgServer {
  passfile: string;
  binDir: string;
  host: string;
  port: number;
  user: string;
}

export async function ensurePostgres(): Promise<PgServer> {
  const result = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test', 'infra', 'ensure-postgres.sh')], { reject: false });
  if (result.exitCode !== 0) throw new Error(`ensure-postgres.sh failed: ${result.stderr}`);
  const values = Object.fromEntries(result.stdout.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  const url = new URL(values.DATABASE_URL!);
  return { passfile: values.PGPASSFILE!, binDir: values.PG_BINDIR!, host: url.hostname, port: Number(url.port), user: url.username };
}

/** A database name no other test (or parallel worker) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

export interface Login {
  user?: string;
  passfile?: string;
}

function connection(server: PgServer, db: string, login: Login = {}) {
  return {
    args: ['-h', server.host, '-p', String(server.port), '-U', login.user ?? server.user, '-d', db],
    env: { PGPASSFILE: login.passfile ?? server.passfile },
  };
}

/** Runs SQL (on stdin) and returns the unaligned rows. */
export async function psql(server: PgServer, db: string, sql: string, login: Login = {}): Promise<string> {
  const { args, env } = connection(server, db, login);
  const result = await execa(join(server.binDir, 'psql'), ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...args], { input: sql, env, reject: false });
  if (result.exitCode !== 0) throw new Error(`psql on ${db} failed: ${result.stderr}`);
  return result.stdout.trim();
}

/** `with`: more CREATE DATABASE options, e.g. a locale other than the server's default. */
export async function createDatabase(server: PgServer, db: string, owner?: string, options = ''): Promise<void> {
  await psql(server, 'postgres', `CREATE DATABASE "${db}"${owner ? ` OWNER "${owner}"` : ''} ${options};`);
}

/** Drops the database and whatever a restore of it may have left. */
export async function dropDatabase(server: PgServer, db: string): Promise<void> {
  for (const name of [db, `${db}_ro_restoring`, `${db}_ro_replaced`]) {
    await psql(server, 'postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE);`);
  }
}

export async function databasesLike(server: PgServer, db: string): Promise<string[]> {
  const rows = await psql(server, 'postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}%' ORDER BY 1;`);
  return rows.split('\n').filter(Boolean);
}

/** `pg_dump --schema-only`, without the per-run `\restrict` keys. */
export async function schemaOf(server: PgServer, db: string): Promise<string> {
  const { args, env } = connection(server, db);
  const result = await execa(join(server.binDir, 'pg_dump'), ['-w', '--schema-only', ...args], { env });
  return result.stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
}

/** Every table's rows (sorted) and every sequence's position. */
export async function rowsOf(server: PgServer, db: string): Promise<Record<string, string>> {
  const tables = (await psql(server, db, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;`)).split('\n').filter(Boolean);
  const sequences = (await psql(server, db, `SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1;`)).split('\n').filter(Boolean);
  const rows: Record<string, string> = {};
  for (const table of tables) rows[table] = await psql(server, db, `SELECT t::text FROM ${table} t ORDER BY 1;`);
  for (const sequence of sequences) rows[sequence] = await psql(server, db, `SELECT last_value, is_called FROM ${sequence};`);
  return rows;
}

/** Database-level state that pg_dump --schema-only does not show: owner, encoding, locale, ACL, limit, comment, settings. */
export async function databaseLevelOf(server: PgServer, db: string): Promise<string> {
  return psql(server, 'postgres', `
    SELECT concat_ws(' | ', pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
      (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a), d.datconnlimit, shobj_description(d.oid, 'pg_database'),
      (SELECT string_agg(array_to_string(s.setconfig, ','), ';') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid))
    FROM pg_database d WHERE d.datname = '${db}';`);
}

export async function oidOf(server: PgServer, db: string): Promise<string> {
  return psql(server, 'postgres', `SELECT oid FROM pg_database WHERE datname = '${db}';`);
}

/** A manifest `backup:` block with one postgres entry. */
export function backupYaml(url: string, extra: Record<string, string> = {}): string {
  return ['backup:', '  - type: postgres', `    url: ${url}`, ...Object.entries(extra).map(([key, value]) => `    ${key}: ${value}`), ''].join('\n');
}

export function urlOf(server: PgServer, db: string, user = server.user): string {
  return `postgres://${user}@${server.host}:${server.port}/${db}`;
}
