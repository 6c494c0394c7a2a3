/**
 * A folder as a compressed tar stream and back, with host GNU tar: `tar -c` writes the stream,
 * the compressor (node's zlib for gzip, the host's zstd, or none) shrinks it, and archive.ts hashes
 * it and puts it on disk. Reading back runs the same chain the other way into `tar -t` or `tar -x`.
 */
import { rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import {
  ReleaseError, createArchiveStream, formatBytes, hashingCounter, readArchive, removeArchive, sealArchive,
  type Artifact, type ExecResult, type RunContext, type TransferProgress,
} from '../../api/index.js';

export type Compressor = 'gzip' | 'zstd' | 'none';

export const EXTENSIONS: Record<Compressor, string> = { gzip: 'tar.gz', zstd: 'tar.zst', none: 'tar' };

/**
 * What `tar -c` records: numeric owners (a restore on a host whose /etc/passwd differs keeps the
 * ids), modes, symlinks as links, hard links once, sparse files as sparse, xattrs and ACLs (pax
 * format). Dotfiles come with `.`.
 */
const CREATE_ARGS = ['--create', '--file=-', '--format=posix', '--numeric-owner', '--xattrs', "--xattrs-include=*", '--acls', '--sparse'];
/**
 * Reading an archive from stdin, tar reads to the end of the stream (--ignore-zeros): it would
 * otherwise stop at the end-of-archive blocks and close its stdin while the last bytes are still
 * being written, a broken pipe that fails the read. The sha256 proves the stream is one archive.
 */
export const LIST_ARGS = ['--list', '--ignore-zeros', '--file=-'];
/** Root extracts owners and modes as recorded (GNU tar's default for root, said explicitly), and every xattr namespace. */
const EXTRACT_ARGS = ['--extract', '--ignore-zeros', '--file=-', '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs', "--xattrs-include=*", '--acls'];

const CHUNK = 256 * 1024;

/** A compressor or decompressor: a node transform, a process, or nothing. */
interface Stage {
  stream?: Duplex;
  /** The process's result, for a process stage. */
  done?: Promise<ExecResult>;
  /** Stops a process stage when the chain around it failed (a Duplex.from pair does not pass that on reliably). */
  abort?: (error: unknown) => void;
  name: string;
}

function processStage(context: RunContext, file: string, args: string[]): Stage {
  const input = new PassThrough({ highWaterMark: CHUNK });
  const output = new PassThrough({ highWaterMark: CHUNK });
  const done = context.exec(file, args, { stdinFrom: input, stdoutTo: output });
  const abort = (error: unknown) => {
    const reason = error instanceof Error ? error : new Error(String(error));
    input.destroy(reason);
    output.destroy(reason);
  };
  return { stream: Duplex.from({ writable: input, readable: output }), done, abort, name: `${file} ${args.join(' ')}` };
}

function compressStage(context: RunContext, compressor: Compressor, level: number): Stage {
  switch (compressor) {
    case 'gzip': return { stream: createGzip({ level, chunkSize: CHUNK }), name: `gzip -${level}` };
    case 'zstd': return processStage(context, 'zstd', ['-q', `-${level}`, '-T0', '-c']);
    case 'none': return { name: 'none' };
  }
}

function decompressStage(context: RunContext, compressor: Compressor): Stage {
  switch (compressor) {
    case 'gzip': return { stream: createGunzip({ chunkSize: CHUNK }), name: 'gunzip' };
    case 'zstd': return processStage(context, 'zstd', ['-q', '-d', '-c']);
    case 'none': return { name: 'none' };
  }
}

/** Fails early and clearly when the host lacks the compressor a backup needs. */
export async function requireCompressor(context: RunContext, compressor: Compressor, what: string): Promise<void> {
  if (compressor !== 'zstd') return;
  const probe = await context.exec('zstd', ['--version'], {});
  if (probe.exitCode !== 0) {
    throw new ReleaseError('BACKUP_FAILED', `${what} needs zstd, which this host does not have`, {
      hint: 'apt-get install zstd, or set the backup-volume option compressor to gzip',
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
  /** Bytes of the tar stream before compression. */
  tarBytes: number;
  entries: number;
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
  try {
    const file = createArchiveStream(dir, name).stream;
    const raw = counting(progress);
    const hashed = hashingCounter();
    const stage = compressStage(context, compressor, level);
    const written = pipeline([raw.stream, ...(stage.stream ? [stage.stream] : []), hashed.stream, file as Writable] as [Readable, ...Writable[]])
      .then(() => undefined, (error: unknown) => {
        stage.abort?.(error);
        return error ?? new Error('stream failed');
      });
    const tarLines: string[] = [];
    const excludes = (request.exclude ?? []).map((pattern) => `--exclude=${pattern}`);
    const tar = await context.exec('tar', [...CREATE_ARGS, ...excludes, `--directory=${source}`, '.'], {
      stdoutTo: raw.stream,
      onLine: (line) => tarLines.push(line),
    });
    const writeError = await written;
    const stageResult = stage.done ? await stage.done : undefined;
    const totals = hashed.totals();
    let problem: ReleaseError | undefined;
    if (writeError) {
      const why = errorText(writeError);
      problem = failure(`${why} while writing ${path}`, /no space|quota/.test(why)
        ? `free space where the backups go (df -h ${dir}) or move old backups away, then run again`
        : 'check the disk and the backup folder, then run again');
    } else if (tar.exitCode !== 0 && tar.exitCode !== 1) {
      // GNU tar exits 1 when a file changed while it was read: the archive is whole, that file may be torn.
      problem = failure(`tar could not read ${source} (exit ${tar.exitCode})`, "check that the folder is readable by the orchestrator's user (root)", lastLines(tarLines));
    } else if (stageResult && stageResult.exitCode !== 0) {
      problem = failure(`${stage.name} exited ${stageResult.exitCode}`, 'see the lines above', lastLines(stageResult.stderr.split('\n')));
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
    removeArchive(path);
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
  options: { expectSha256: string; countLines?: boolean; progress?: TransferProgress },
): Promise<TarOnArchive> {
  const hashed = hashingCounter(options.progress);
  const stage = decompressStage(context, compressor);
  const head = [readArchive(path), hashed.stream, ...(stage.stream ? [stage.stream] : [])] as [Readable, ...Duplex[]];
  const fed = pipeline(head).then(() => undefined, (error: unknown) => {
    stage.abort?.(error);
    return error ?? new Error('stream failed');
  });
  const counter = options.countLines ? lineCounter() : undefined;
  const tar = await context.exec('tar', args, { stdinFrom: head[head.length - 1] as Readable, ...(counter ? { stdoutTo: counter.stream } : {}) });
  const readError = await fed;
  const stageResult = stage.done ? await stage.done : undefined;
  const tarLines = lastLines(tar.stderr.split('\n'));
  const result = (why: string, lines: string[] = []): TarOnArchive => ({ ok: false, why, lines, entries: counter?.lines() ?? 0 });
  if (readError) return result(`${stage.name === 'gunzip' ? 'gunzip: ' : ''}${errorText(readError)}`, tarLines);
  if (stageResult && stageResult.exitCode !== 0) return result(`${stage.name} exited ${stageResult.exitCode}`, lastLines(stageResult.stderr.split('\n')));
  if (tar.exitCode !== 0) return result(`tar exited ${tar.exitCode}`, tarLines);
  const sha256 = hashed.totals().sha256;
  if (sha256 !== options.expectSha256) return result(`its sha256 ${sha256.slice(0, 12)}… is not the recorded ${options.expectSha256.slice(0, 12)}…`);
  return { ok: true, why: '', lines: [], entries: counter?.lines() ?? 0 };
}

/** Extracts the archive into `into` (an empty folder), exactly: owners, modes, links, xattrs. */
export function extractArgs(into: string): string[] {
  return [...EXTRACT_ARGS, `--directory=${into}`];
}
