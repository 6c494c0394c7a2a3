/**
 * Backup and restore rows of `npm run bench`: each strategy through its hooks, beside the raw tool
 * it wraps, measured in the same run on the same data.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { BackupRequest } from '../core/index.js';
import { defaultPlugins } from '../release.config.js';
import { ensurePostgres, psql, createDatabase, dropDatabase } from '../test/helpers/postgres.js';
import { testContext } from '../test/helpers/context.js';
import { restoreJobs } from '../plugins/backup-postgres/restore.js';
import { ORCHESTRATOR_ROOT } from '../test/helpers/platform.js';

import { measureRows, medianOf, timed, type Row } from './measure.js';

export type { Row } from './measure.js';
export { timed } from './measure.js';

/** A run context on a scratch repo folder, its output swallowed. */
export function benchContext() {
  const { context, repoDir } = testContext(defaultPlugins(), { ticket: 'bench' });
  return { repoDir, hooks: context.hooks, context };
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
      service: 'bench', index: 0, manifest: 'packages/bench/manifest.yaml', dir: join(repoDir, 'backups', String(run)),
      entry: { type: 'postgres', url: `postgres://${server.user}@${server.host}:${server.port}/${db}` },
    });
    const rawDump = join(repoDir, 'raw.dump');
    // Each measurement starts from a checkpoint, so none pays for the dirty pages of the one before.
    const checkpoint = () => psql(server, 'postgres', 'CHECKPOINT;');
    return await measureRows([
      { what: `postgres backup, pgbench scale ${scale} (${size}): dump, sha256, pg_restore --list`, rawName: '`pg_dump -Fc` alone' },
      { what: `postgres restore of it (host, pg_restore -j ${restoreJobs({})}): into a new database, swap, end sessions`, rawName: '`createdb` + single-job `pg_restore` alone' },
    ], async (round) => {
      rmSync(request(round).dir, { recursive: true, force: true });
      await checkpoint();
      const ours = await timed(() => hooks.backup.for('postgres').promise(request(round), context));
      await checkpoint();
      const raw = await timed(() => execa(join(server.binDir, 'pg_dump'), ['-Fc', '-w', ...conn, '-d', db, '-f', rawDump], { env }));
      await checkpoint();
      const oursRestore = await timed(() => hooks.restore.for('postgres').promise(request(round), context));
      await dropDatabase(server, restoreTarget);
      await checkpoint();
      const rawRestore = await timed(async () => {
        await createDatabase(server, restoreTarget);
        await execa(join(server.binDir, 'pg_restore'), ['-w', ...conn, '-d', restoreTarget, rawDump], { env });
      });
      return [{ ours, raw }, { ours: oursRestore, raw: rawRestore }];
    });
  } finally {
    await dropDatabase(server, db);
    await dropDatabase(server, restoreTarget);
    rmSync(repoDir, { recursive: true, force: true });
  }
}

/**
 * The same in container mode: a local/testpg:15 container labelled as compose service `db` of
 * service `benchpg`, the entry `{ type: postgres, service: db, database: bench }`; beside
 * `docker exec pg_dump -Fc` and `docker exec createdb` + `docker exec -i pg_restore` (single job,
 * the dump fed on stdin) alone.
 */
export async function postgresContainerRows(scale: number): Promise<Row[]> {
  const built = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test', 'infra', 'build-pg-image.sh')], { reject: false });
  if (built.exitCode !== 0) throw new Error(`build-pg-image.sh failed: ${built.stderr}`);
  const service = `benchpg${process.pid}`;
  const { repoDir, hooks, context } = benchContext();
  const { stdout: id } = await execa('docker', ['run', '-d', '--label', `com.docker.compose.project=${service}`, '--label', 'com.docker.compose.service=db',
    '--env', 'POSTGRES_USER=bench', '--env', 'POSTGRES_DB=bench', 'local/testpg:15']);
  const inside = async (args: string[], options: { reject?: boolean; inputFile?: string } = {}) => {
    const result = await execa('docker', ['exec', ...(options.inputFile ? ['-i'] : []), '-u', 'postgres', id, ...args], { reject: options.reject ?? true, ...(options.inputFile ? { inputFile: options.inputFile } : {}) });
    return { stdout: String(result.stdout) };
  };
  try {
    for (let i = 0; ; i++) {
      const ready = await inside(['psql', '-XAtq', '-d', 'bench', '-c', 'SELECT 1'], { reject: false });
      if (ready.stdout === '1') break;
      if (i > 200) throw new Error('the bench postgres container never answered');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await inside(['pgbench', '-i', '-q', '-s', String(scale), 'bench']);
    const size = (await inside(['psql', '-XAtq', '-d', 'bench', '-c', 'SELECT pg_size_pretty(pg_database_size(current_database()))'])).stdout;
    const request = (round: number): BackupRequest => ({
      service, index: 0, manifest: `packages/${service}/manifest.yaml`, dir: join(repoDir, 'backups', `c${round}`),
      entry: { type: 'postgres', service: 'db', database: 'bench' },
    });
    const rawDump = join(repoDir, 'raw-container.dump');
    const checkpoint = () => inside(['psql', '-XAtq', '-d', 'bench', '-c', 'CHECKPOINT']);
    return await measureRows([
      { what: `postgres backup in a container (docker exec, streamed out), pgbench scale ${scale} (${size}): dump, sha256, pg_restore --list`, rawName: '`docker exec pg_dump -Fc` alone' },
      { what: `postgres restore in a container: dump copied in, pg_restore -j ${restoreJobs({})} into a new database, swap`, rawName: '`docker exec` `createdb` + single-job `pg_restore` (stdin) alone' },
    ], async (round) => {
      rmSync(request(round).dir, { recursive: true, force: true });
      await checkpoint();
      const ours = await timed(() => hooks.backup.for('postgres').promise(request(round), context));
      await checkpoint();
      const raw = await timed(() => execa('sh', ['-c', `docker exec -u postgres ${id} pg_dump -Fc -d bench > "${rawDump}"`]));
      await checkpoint();
      const oursRestore = await timed(() => hooks.restore.for('postgres').promise(request(round), context));
      await inside(['dropdb', '--if-exists', 'bench_raw_restore']);
      await checkpoint();
      const rawRestore = await timed(async () => {
        await inside(['createdb', 'bench_raw_restore']);
        await inside(['pg_restore', '-d', 'bench_raw_restore'], { inputFile: rawDump });
      });
      return [{ ours, raw }, { ours: oursRestore, raw: rawRestore }];
    });
  } finally {
    await execa('docker', ['rm', '-f', '--volumes', id], { reject: false });
    rmSync(repoDir, { recursive: true, force: true });
  }
}

/** `count` files of mixed kinds (compressible text, incompressible bytes) adding up to about `bytes`. */
export async function mixedFiles(dir: string, bytes: number): Promise<void> {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { randomBytes } = await import('node:crypto');
  const chunk = 1024 * 1024;
  for (let written = 0, i = 0; written < bytes; i++) {
    const sub = join(dir, `d${i % 16}`);
    mkdirSync(sub, { recursive: true });
    const size = i % 3 === 0 ? chunk * 4 : i % 3 === 1 ? 64 * 1024 : chunk;
    const data = i % 2 === 0
      ? randomBytes(size)
      : Buffer.from(`${new Date(i * 1000).toISOString()} INFO request ${i} served in ${i % 97} ms\n`.repeat(Math.ceil(size / 60))).subarray(0, size);
    writeFileSync(join(sub, `f${i}.${i % 2 === 0 ? 'bin' : 'log'}`), data);
    written += size;
  }
}


/**
 * Reads every file of `dir` into the page cache the same way before each measured command: a tar
 * piped through cat (GNU tar skips reading file contents when its archive is /dev/null itself).
 */
async function warm(dir: string): Promise<void> {
  await execa('sh', ['-c', 'tar -C "$1" -cf - . | cat > /dev/null', 'sh', dir]);
}

/**
 * Our volume backup and restore beside the raw tools, on the same `gib` GiB tree, `runs` times each
 * (ours, then the raw tool right after, the page cache warmed the same way before each), medians:
 * - backup (the default: tar running `zstd -T0 -1` into the file, then the file read back by its
 *   sha256 and `zstd -t` at once, fsync, sha256 and size files) beside `tar -cf - . | zstd -T0 -1 > file`;
 * - the same backup beside `tar -cf - . | gzip -1 > file` (once: it is slow), the old default's raw tool;
 * - restore of that backup (size check, `tar -x` running `zstd -d` on the file into a staging folder
 *   while node hashes the file, swap, old contents deleted) beside `zstd -d -c ARCHIVE | tar -x`
 *   into an empty folder.
 */
export async function volumeRows(gib: number, runs = Number(process.env.BENCH_VOLUME_RUNS ?? 5)): Promise<Row[]> {
  const { repoDir, hooks, context } = benchContext();
  const source = join(repoDir, 'data');
  const sh = (script: string, ...args: string[]) => execa('sh', ['-c', script, 'sh', ...args]);
  try {
    await mixedFiles(source, gib * 1024 ** 3);
    const request = (run: number): BackupRequest => ({ service: 'bench', index: 0, manifest: 'packages/bench/manifest.yaml', dir: join(repoDir, 'backups', String(run)), entry: { type: 'volume', path: source } });
    const archive = (run: number) => join(request(run).dir, '0-volume.tar.zst');
    const rawZst = join(repoDir, 'raw.tar.zst');
    const rawOut = join(repoDir, 'raw-out');
    const [backup, restore] = await measureRows([
      { what: `volume backup, ${gib} GiB of mixed files: tar + zstd -T0 -1 into the file, read back (sha256 and zstd -t at once), fsync`, rawName: '`tar -cf - . | zstd -T0 -1 > file` alone' },
      { what: 'volume restore of it: tar -x with zstd -d into staging while the file is hashed, swap, old files deleted', rawName: '`zstd -d -c file | tar -x` into an empty folder' },
    ], async (run) => {
      await warm(source);
      const ours = await timed(() => hooks.backup.for('volume').promise(request(run), context));
      await warm(source);
      const raw = await timed(() => sh('tar -C "$1" -cf - . | zstd -q -T0 -1 > "$2"', source, rawZst));
      rmSync(rawZst, { force: true });
      if (run > 0) rmSync(request(run - 1).dir, { recursive: true, force: true });
      // Restores read the archive just written (in the page cache for both).
      const oursRestore = await timed(() => hooks.restore.for('volume').promise(request(run), context));
      await execa('mkdir', [rawOut]);
      const rawRestore = await timed(() => sh('zstd -q -d -c "$1" | tar -C "$2" -xf -', archive(run), rawOut));
      rmSync(rawOut, { recursive: true, force: true });
      return [{ ours, raw }, { ours: oursRestore, raw: rawRestore }];
    }, { maxRounds: runs });
    await warm(source);
    const gzip = await timed(() => sh('tar -C "$1" -cf - . | gzip -1 > "$2"', source, join(repoDir, 'raw.tar.gz')));
    return [
      backup!,
      { what: 'the same volume backup beside the old default\'s raw tool (target: at most 0.5x)', ours: backup!.ours, rawName: '`tar -cf - . | gzip -1 > file` alone (one run)', raw: gzip },
      restore!,
    ];
  } finally {
    rmSync(repoDir, { recursive: true, force: true });
  }
}

/** Three services' backups through prepare's pool: three at once beside one after another. */
export async function parallelRows(mibEach: number): Promise<Row[]> {
  const { backUpAll } = await import('../plugins/backups/take.js');
  const { repoDir, context } = benchContext();
  try {
    const services = ['one', 'two', 'three'];
    for (const service of services) await mixedFiles(join(repoDir, 'data', service), mibEach * 1024 ** 2);
    // backUpAll reads each service's manifest from git: a throwaway repo holds them.
    await execa('git', ['init', '-q', repoDir]);
    for (const service of services) {
      const { mkdirSync, writeFileSync } = await import('node:fs');
      mkdirSync(join(repoDir, 'packages', service), { recursive: true });
      writeFileSync(join(repoDir, 'packages', service, 'manifest.yaml'), `name: ${service}\nruntime: none\nimage: x\nbackup:\n  - type: volume\n    path: ${join(repoDir, 'data', service)}\n`);
    }
    await execa('git', ['add', 'packages'], { cwd: repoDir });
    await execa('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-q', '-m', 'services'], { cwd: repoDir });
    const sha = (await execa('git', ['rev-parse', 'HEAD'], { cwd: repoDir })).stdout;
    const state = () => ({ ticket: 'bench', branch: 'main', baseSha: sha, mergeSha: sha, services, skippedMetadata: [], backups: {} });
    const backups = join(context.workspaceDir, 'backups');
    const once = async (concurrency: number) => {
      for (const service of services) await warm(join(repoDir, 'data', service));
      const time = await timed(() => backUpAll(context, state(), sha, concurrency));
      rmSync(backups, { recursive: true, force: true });
      return time;
    };
    // Alternating which goes first, so neither always finds the other's page cache.
    return [await measureRows([{ what: `three ${mibEach} MiB volume backups, three at once (backupConcurrency 3)`, rawName: 'the same, one after another' }], async (round) => {
      if (round % 2 === 0) { const ours = await once(3); return [{ ours, raw: await once(1) }]; }
      const raw = await once(1);
      return [{ ours: await once(3), raw }];
    }).then(([row]) => row!)];
  } finally {
    rmSync(repoDir, { recursive: true, force: true });
  }
}
