/**
 * A folder as a compressed tar archive and back, with host GNU tar.
 *
 * zstd (the default) runs as tar's own compress program (`--use-compress-program`) and writes the
 * file itself: node never copies the data. The file is then read back twice at once: node's
 * sha256 of it (recorded beside it) and `zstd -t` of it. A restore lets tar read the file (with
 * `zstd -d` inside) while node hashes the same file; nothing is swapped in unless the hash matches.
 *
 * gzip (node's zlib) and none run the older chain: tar's stream through node's zlib, hashed,
 * written, then read back from the file through gunzip into `tar -t`.
 */
import { rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import {
  PRIVATE_FILE_MODE, ReleaseError, createArchiveStream, ensurePrivateDir, formatBytes, hashingCounter, readArchive, removeArchive, sealArchive, sha256OfFile,
  type Artifact, type RunContext, type TransferProgress,
} from '../../api/index.js';

export type Compressor = 'gzip' | 'zstd' | 'none';

export const EXTENSIONS: Record<Compressor, string> = { gzip: 'tar.gz', zstd: 'tar.zst', none: 'tar' };

/**
 * What `tar -c` records: numeric owners (a restore on a host whose /etc/passwd differs keeps the
 * ids), modes, symlinks as links, hard links once, sparse files as sparse, xattrs and ACLs (pax
 * format). Dotfiles come with `.`.
 */
const CREATE_ARGS = ['--create', '--format=posix', '--numeric-owner', '--xattrs', "--xattrs-include=*", '--acls', '--sparse'];
/**
 * Reading an archive from stdin, tar reads to the end of the stream (--ignore-zeros): it would
 * otherwise stop at the end-of-archive blocks and close its stdin while the last bytes are still
 * being written, a broken pipe that fails the read. The sha256 proves the stream is one archive.
 */
export const LIST_ARGS = ['--list', '--ignore-zeros', '--file=-'];
/** Root extracts owners and modes as recorded (GNU tar's default for root, said explicitly), and every xattr namespace. */
const EXTRACT_ARGS = ['--extract', '--ignore-zeros', '--file=-', '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs', "--xattrs-include=*", '--acls'];

const CHUNK = 256 * 1024;

/** GNU tar's `--totals` line on stderr. */
const TOTALS = /^Total bytes written: (\d+)/;

/**
 * tar says every CHECKPOINT_RECORDS records (of 10 KiB, the default record size) how far it is:
 * the progress of the uncompressed stream when the compressor runs inside tar.
 */
const CHECKPOINT_RECORDS = 256;
const CHECKPOINT_BYTES = CHECKPOINT_RECORDS * 10240;
const CHECKPOINT_TEXT = 'release-orchestrator-checkpoint';
const CHECKPOINT_ARGS = [`--checkpoint=${CHECKPOINT_RECORDS}`, `--checkpoint-action=echo=${CHECKPOINT_TEXT}`];

/** The arguments that make tar run zstd itself: multi-threaded (-T0) when compressing. */
export function zstdProgramArgs(level?: number): string[] {
  return [`--use-compress-program=${level === undefined ? 'zstd -q' : `zstd -q -T0 -${level}`}`];
}

/** A compressor or decompressor node runs itself (node's zlib), or nothing. */
interface Stage {
  stream?: Duplex;
  name: string;
}

/** The stage node runs between tar and the file; zstd runs inside tar (see zstdProgramArgs). */
function compressStage(compressor: Compressor, level: number): Stage {
  switch (compressor) {
    case 'gzip': return { stream: createGzip({ level, chunkSize: CHUNK }), name: `gzip -${level}` };
    case 'zstd': case 'none': return { name: compressor };
  }
}

function decompressStage(compressor: Compressor): Stage {
  switch (compressor) {
    case 'gzip': return { stream: createGunzip({ chunkSize: CHUNK }), name: 'gunzip' };
    case 'zstd': case 'none': return { name: compressor };
  }
}

/**
 * Fails early, before anything is read or written, when the host lacks zstd: one line that says
 * how to install it or how to choose gzip instead (the hint repeats the config line).
 */
export async function requireCompressor(context: RunContext, compressor: Compressor, what: string): Promise<void> {
  if (compressor !== 'zstd') return;
  const probe = await context.exec('zstd', ['--version'], {});
  if (probe.exitCode !== 0) {
    throw new ReleaseError('BACKUP_FAILED', `${what} needs zstd, which is not on this host's PATH: install it (apt-get install zstd) or choose compressor: 'gzip' in release.config.ts (defaultPlugins({ backupVolume: { compressor: 'gzip' } }))`, {
      hint: "apt-get install zstd; or in release.config.ts: export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ backupVolume: { compressor: 'gzip' } }) })",
    });
  }
}

function counting(progress?: TransferProgress) {
  let bytes = 0;
  const stream = new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      progress?.add(chunk.length);
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes };
}

/** Counts the lines of `tar -t` without keeping them. */
function lineCounter() {
  let lines = 0;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const byte of chunk) if (byte === 10) lines++;
      done();
    },
  });
  return { stream, lines: () => lines };
}

const lastLines = (lines: string[], count = 3) => lines.filter((line) => line.trim() !== '').slice(-count);

function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') return 'no space left on device';
  if (code === 'EDQUOT') return 'disk quota exceeded';
  return (error as Error | undefined)?.message ?? String(error);
}

export interface WriteRequest {
  context: RunContext;
  /** The tar stream's expected size (the files' sizes), for percent and ETA. */
  expectedBytes?: number;
  /** The folder whose contents are archived. */
  source: string;
  dir: string;
  name: string;
  compressor: Compressor;
  level: number;
  /** What is backed up, for messages: "web volume web_data". */
  what: string;
  /** tar --exclude patterns. */
  exclude?: string[];
  /** Called once the source has been read in full (before the archive is read back). */
  afterRead?: () => Promise<void>;
}

export interface Written extends Artifact {
  /** Bytes of the tar stream before compression (zstd: as tar --totals says). */
  tarBytes?: number;
  /** Entries `tar --list` read back (gzip and none; a zstd archive is read back with `zstd -t`). */
  entries?: number;
  /** tar's warnings (e.g. a file changed while it was read). */
  warnings: string[];
}

/**
 * Streams `tar -c` of `source` through the compressor into `dir/name` (0600), records its sha256
 * and size, then reads it back (sha256 again, decompress, `tar -t`) to prove it whole. Any failure
 * removes the partial files and throws BACKUP_FAILED naming the file and the reason.
 */
export async function writeTarArchive(request: WriteRequest): Promise<Written> {
  const { context, source, dir, name, compressor, level, what } = request;
  const progress = context.transfers.start(`backup ${what}`, { total: request.expectedBytes });
  let finished = false;
  const finish = (outcome: string) => {
    if (!finished) progress.finish(outcome);
    finished = true;
  };
  const path = join(dir, name);
  const failure = (why: string, hint: string, lines: string[] = []) =>
    new ReleaseError('BACKUP_FAILED', `backup of ${what} failed: ${why}; ${path} was removed`, { hint, lines });
  // The source is released (e.g. its service started again) as soon as it has been read; a failure
  // to do so is reported once the archive is proven, or as a warning when the backup failed anyway.
  let afterReadDone = false;
  let afterReadError: unknown;
  const afterRead = async () => {
    if (afterReadDone) return;
    afterReadDone = true;
    try { await request.afterRead?.(); } catch (error) { afterReadError = error; }
  };
  const excludes = (request.exclude ?? []).map((pattern) => `--exclude=${pattern}`);
  const tarLines: string[] = [];
  const writeFailure = (why: string) => failure(`${why} while writing ${path}`, /no space|quota/.test(why)
    ? `free space where the backups go (df -h ${dir}) or move old backups away, then run again`
    : 'check the disk and the backup folder, then run again');
  // Set once this call created the archive file: a failure removes only what it made itself.
  let created = false;
  try {
    if (compressor === 'zstd') {
      // tar runs zstd and zstd writes the file: node is not in the data path. The file is made
      // first (0600, never over an existing one); tar opens it without changing its mode.
      ensurePrivateDir(dir);
      writeFileSync(path, '', { flag: 'wx', mode: PRIVATE_FILE_MODE });
      created = true;
      let tarBytes: number | undefined;
      // --totals: the tar stream's size, which a restore extracts (its space is checked before it starts).
      const tar = await context.exec('tar', [...CREATE_ARGS, '--force-local', `--file=${path}`, ...zstdProgramArgs(level), ...CHECKPOINT_ARGS, '--totals', ...excludes, `--directory=${source}`, '.'], {
        onLine: (line) => {
          const totals = TOTALS.exec(line);
          if (line.endsWith(CHECKPOINT_TEXT)) progress.add(CHECKPOINT_BYTES);
          else if (totals) tarBytes = Number(totals[1]);
          else tarLines.push(line);
        },
      });
      const full = tarLines.find((line) => /no space left on device|disk quota exceeded/i.test(line));
      const problem = full
        ? writeFailure(/quota/i.test(full) ? 'disk quota exceeded' : 'no space left on device')
        : tar.exitCode !== 0 && tar.exitCode !== 1
          // exit 1: a file changed while it was read (the archive is whole, that file may be torn);
          // exit 2: a fatal error, its compress program's included, named in the last lines.
          ? failure(`tar could not read ${source} or write ${path} (exit ${tar.exitCode})`, "check that the folder is readable by the orchestrator's user (root) and the disk", lastLines(tarLines))
          : undefined;
      finish(problem ? 'failed' : `done (${formatBytes(statSync(path).size)} zstd in ${name})`);
      await afterRead();
      if (problem) throw problem;
      const warnings = tar.exitCode === 1 ? lastLines(tarLines, 5) : [];
      // Read back: the file's sha256 (recorded) and `zstd -t` of the file (every frame decodes and
      // zstd's checksum of the whole tar stream matches), both reading the file at once.
      const [sha256, test] = await Promise.all([sha256OfFile(path), context.exec('zstd', ['-t', '-q', '--', path], {})]);
      if (test.exitCode !== 0) {
        throw failure(`it did not read back: zstd -t exited ${test.exitCode}`, 'the disk may be failing or full; check dmesg and df, then run again', lastLines(test.stderr.split('\n')));
      }
      const artifact = await sealArchive(path, { bytes: statSync(path).size, sha256 });
      if (afterReadError) throw afterReadError; // the backup is good; the service did not come back
      return { ...artifact, tarBytes, warnings };
    }
    const file = createArchiveStream(dir, name).stream;
    created = true;
    const raw = counting(progress);
    const hashed = hashingCounter();
    const stage = compressStage(compressor, level);
    const written = pipeline([raw.stream, ...(stage.stream ? [stage.stream] : []), hashed.stream, file as Writable] as [Readable, ...Writable[]])
      .then(() => undefined, (error: unknown) => error ?? new Error('stream failed'));
    const tar = await context.exec('tar', [...CREATE_ARGS, '--file=-', ...excludes, `--directory=${source}`, '.'], {
      stdoutTo: raw.stream,
      onLine: (line) => tarLines.push(line),
    });
    const writeError = await written;
    const totals = hashed.totals();
    let problem: ReleaseError | undefined;
    if (writeError) {
      problem = writeFailure(errorText(writeError));
    } else if (tar.exitCode !== 0 && tar.exitCode !== 1) {
      // GNU tar exits 1 when a file changed while it was read: the archive is whole, that file may be torn.
      problem = failure(`tar could not read ${source} (exit ${tar.exitCode})`, "check that the folder is readable by the orchestrator's user (root)", lastLines(tarLines));
    }
    finish(problem ? 'failed' : `done (${formatBytes(totals.bytes)} ${compressor === 'none' ? 'tar' : compressor} in ${name})`);
    await afterRead();
    if (problem) throw problem;
    const warnings = tar.exitCode === 1 ? lastLines(tarLines, 5) : [];
    const artifact = await sealArchive(path, totals);
    const readBack = await runTarOnArchive(context, path, compressor, LIST_ARGS, { expectSha256: totals.sha256, countLines: true });
    if (!readBack.ok) {
      throw failure(`it did not read back: ${readBack.why}`, 'the disk may be failing or full; check dmesg and df, then run again', readBack.lines);
    }
    if (afterReadError) throw afterReadError; // the backup is good; the service did not come back
    return { ...artifact, tarBytes: raw.bytes(), entries: readBack.entries, warnings };
  } catch (error) {
    if (afterReadDone && error === afterReadError) throw error;
    finish('failed');
    if (created) removeArchive(path);
    try { rmdirSync(dir); } catch { /* other entries' files are there, or it is gone */ }
    await afterRead();
    if (afterReadError) context.out.warn(`after reading ${source}: ${errorText(afterReadError)}`);
    if (error instanceof ReleaseError && error.code === 'BACKUP_FAILED') throw error;
    throw failure(errorText(error), 'see the reason above, then run again');
  }
}

interface TarOnArchive {
  ok: boolean;
  why: string;
  lines: string[];
  entries: number;
}

/**
 * Feeds the archive at `path` (hashed as it is read, decompressed) to `tar ARGS`. Not ok when the
 * sha256 differs from `expectSha256`, the decompressor fails or tar fails.
 */
export async function runTarOnArchive(
  context: RunContext, path: string, compressor: Compressor, args: string[],
  options: { expectSha256: string; countLines?: boolean; progress?: TransferProgress; onLine?: (line: string) => void },
): Promise<TarOnArchive> {
  const hashed = hashingCounter(options.progress);
  const counter = options.countLines ? lineCounter() : undefined;
  const output = { ...(counter ? { stdoutTo: counter.stream } : {}), ...(options.onLine ? { onLine: options.onLine } : {}) };
  let fed: Promise<unknown>;
  let tar: Awaited<ReturnType<RunContext['exec']>>;
  const stage = decompressStage(compressor);
  if (compressor === 'zstd') {
    // tar reads the file (zstd -d inside it) while node hashes the same file: node copies nothing.
    const sink = new Writable({ write(_chunk, _encoding, done) { done(); } });
    fed = pipeline(readArchive(path), hashed.stream, sink).then(() => undefined, (error: unknown) => error ?? new Error('stream failed'));
    // --force-local: a colon in the path never names a remote host.
    tar = await context.exec('tar', ['--force-local', ...zstdProgramArgs(), ...args.map((arg) => (arg === '--file=-' ? `--file=${path}` : arg))], output);
  } else {
    const head = [readArchive(path), hashed.stream, ...(stage.stream ? [stage.stream] : [])] as [Readable, ...Duplex[]];
    fed = pipeline(head).then(() => undefined, (error: unknown) => error ?? new Error('stream failed'));
    tar = await context.exec('tar', args, { stdinFrom: head[head.length - 1] as Readable, ...output });
  }
  const readError = await fed;
  const tarLines = lastLines(tar.stderr.split('\n'));
  const result = (why: string, lines: string[] = []): TarOnArchive => ({ ok: false, why, lines, entries: counter?.lines() ?? 0 });
  if (readError) return result(`${stage.name === 'gunzip' ? 'gunzip: ' : ''}${errorText(readError)}`, tarLines);
  if (tar.exitCode !== 0) return result(`tar${compressor === 'zstd' ? ' (zstd -d)' : ''} exited ${tar.exitCode}`, tarLines);
  const sha256 = hashed.totals().sha256;
  if (sha256 !== options.expectSha256) return result(`its sha256 ${sha256.slice(0, 12)}… is not the recorded ${options.expectSha256.slice(0, 12)}…`);
  return { ok: true, why: '', lines: [], entries: counter?.lines() ?? 0 };
}

/**
 * Compares the archive with the tree in `root` (`tar --compare`): every member's contents, size,
 * mode, owner, modification time, link target and hard links; tar names each difference on
 * stdout ("./a: Contents differ") and exits 1. `--verbose` names every member it compares.
 */
export function compareArgs(root: string): string[] {
  return ['--compare', '--verbose', '--ignore-zeros', '--file=-', '--numeric-owner', `--directory=${root}`];
}

/** Extracts the archive into `into` (an empty folder), exactly: owners, modes, links, xattrs. */
export function extractArgs(into: string): string[] {
  return [...EXTRACT_ARGS, `--directory=${into}`];
}
