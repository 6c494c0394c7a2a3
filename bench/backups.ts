/**
 * Backup and restore rows of `npm run bench`: each strategy through its hooks, beside the raw tool
 * it wraps, measured in the same run on the same data.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { applyPlugins } from '../core/runner.js';
import { createContext } from '../core/context.js';
import { Output } from '../core/output.js';
import type { BackupRequest } from '../core/index.js';
import { defaultPlugins } from '../release.config.js';
import { ensurePostgres, psql, createDatabase, dropDatabase } from '../plugins/backup-postgres/pg-test-helpers.js';

export interface Row { what: string; ours: number; rawName: string; raw: number }

/** A run context on a scratch repo folder, its output swallowed. */
export function benchContext() {
  const repoDir = mkdtempSync(join(tmpdir(), 'ro-bench-'));
  const hooks = applyPlugins({ plugins: defaultPlugins() });
  const sink = new PassThrough();
  sink.resume();
  const out = new Output('bench', sink as unknown as NodeJS.WriteStream, sink as unknown as NodeJS.WriteStream);
  const context = createContext({ verb: 'release-run', ticket: 'bench', repoDir, dryRun: false, hooks, out, signal: new AbortController().signal });
  return { repoDir, hooks, context };
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Our postgres backup and restore beside pg_dump -Fc and pg_restore alone, on a pgbench database. */
export async function postgresRows(scale: number): Promise<Row[]> {
  const server = await ensurePostgres();
  process.env.PGPASSFILE = server.passfile;
  const db = `bench_pgbench_${scale}`;
  const restoreTarget = `${db}_raw_restore`;
  const { repoDir, hooks, context } = benchContext();
  const conn = ['-h', server.host, '-p', String(server.port), '-U', server.user];
  const env = { PGPASSFILE: server.passfile };
  try {
    await dropDatabase(server, db);
    await createDatabase(server, db);
    await execa(join(server.binDir, 'pgbench'), ['-i', '-q', '-s', String(scale), ...conn, db], { env });
    const size = await psql(server, db, 'SELECT pg_size_pretty(pg_database_size(current_database()))');
    const request = (run: number): BackupRequest => ({
      service: 'bench', index: 0, dir: join(repoDir, 'backups', String(run)),
      entry: { type: 'postgres', url: `postgres://${server.user}@${server.host}:${server.port}/${db}` },
    });
    const rawDump = join(repoDir, 'raw.dump');
    const ours = await timed(() => hooks.backup.for('postgres').promise(request(1), context));
    const raw = await timed(() => execa(join(server.binDir, 'pg_dump'), ['-Fc', '-w', ...conn, '-d', db, '-f', rawDump], { env }));
    const oursRestore = await timed(() => hooks.restore.for('postgres').promise(request(1), context));
    await dropDatabase(server, restoreTarget);
    const rawRestore = await timed(async () => {
      await createDatabase(server, restoreTarget);
      await execa(join(server.binDir, 'pg_restore'), ['-w', ...conn, '-d', restoreTarget, rawDump], { env });
    });
    return [
      { what: `postgres backup, pgbench scale ${scale} (${size}): dump, sha256, pg_restore --list`, ours, rawName: '`pg_dump -Fc` alone', raw },
      { what: `postgres restore of it: into a new database, swap, end sessions`, ours: oursRestore, rawName: '`createdb` + `pg_restore` alone', raw: rawRestore },
    ];
  } finally {
    await dropDatabase(server, db);
    await dropDatabase(server, restoreTarget);
    rmSync(repoDir, { recursive: true, force: true });
  }
}
