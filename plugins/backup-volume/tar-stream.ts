/**
 * A folder as a compressed tar stream and back, with host GNU tar: `tar -c` writes the stream,
 * the compressor shrinks it, and archive.ts hashes it and puts it on disk.
 *
 * zstd (the default) runs as tar's own compress program (`--use-compress-program`): tar pipes to
 * it directly, so node only sees the compressed bytes, which it hashes, writes to the file and
 * tees into `zstd -t` (the read-back proof, done as the archive is written). A restore feeds the
 * hashed archive to `tar -x`, which runs `zstd -d` the same way.
 *
 * gzip (node's zlib) and none run the older chain: tar's stream through node's zlib, hashed,
 * written, then read back from the file through gunzip into `tar -t`.
 */
import { rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import {
  ReleaseError, createArchiveStream, formatBytes, hashingCounter, readArchive, removeArchive, sealArchive,
  type Artifact, type RunContext, type TransferProgress,
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
 * A pass-through that also writes every chunk to `tester` (a process's stdin), waiting for it when
 * it falls behind: the file and the test see the same bytes, and memory stays bounded.
 */
function teeInto(tester: PassThrough) {
  return new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _encoding, done) {
      if (tester.destroyed || tester.write(chunk)) done(null, chunk);
      else tester.once('drain', () => done(null, chunk));
    },
    flush(done) {
      tester.end();
      done();
    },
  });
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
  /** Bytes of the tar stream before compression (gzip and none: zstd runs inside tar). */
  tarBytes?: number;
  /** Entries `tar --list` read back (gzip and none; zstd is tested with `zstd -t` as it is written). */
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
  try {
    const file = createArchiveStream(dir, name).stream;
    const zstd = compressor === 'zstd';
    // zstd runs inside tar; tar's checkpoints count the uncompressed stream for the progress line.
    const raw = zstd ? undefined : counting(progress);
    const hashed = hashingCounter();
    const stage = compressStage(compressor, level);
    // The read-back proof for zstd: `zstd -t` decodes the very bytes written to the file as they
    // are written and checks zstd's own checksum of the whole tar stream (-T0 frames carry one).
    const testInput = zstd ? new PassThrough({ highWaterMark: CHUNK }) : undefined;
    const tested = testInput ? context.exec('zstd', ['-t', '-q', '-'], { stdinFrom: testInput }) : undefined;
    const chain = [...(raw ? [raw.stream] : []), ...(stage.stream ? [stage.stream] : []), hashed.stream, ...(testInput ? [teeInto(testInput)] : []), file as Writable];
    const tarOutput = chain[0] as Writable;
    const written = (chain.length > 1 ? pipeline(chain as [Readable, ...Writable[]]) : Promise.resolve())
      .then(() => undefined, (error: unknown) => {
        testInput?.destroy(error instanceof Error ? error : new Error(String(error)));
        return error ?? new Error('stream failed');
      });
    const tarLines: string[] = [];
    const excludes = (request.exclude ?? []).map((pattern) => `--exclude=${pattern}`);
    const tar = await context.exec('tar', [...CREATE_ARGS, ...(zstd ? [...zstdProgramArgs(level), ...CHECKPOINT_ARGS] : []), ...excludes, `--directory=${source}`, '.'], {
      stdoutTo: tarOutput,
      onLine: (line) => {
        if (zstd && line.endsWith(CHECKPOINT_TEXT)) {
          progress.add(CHECKPOINT_BYTES);
        } else {
          tarLines.push(line);
        }
      },
    });
    const writeError = await written;
    const test = tested ? await tested : undefined;
    const totals = hashed.totals();
    let problem: ReleaseError | undefined;
    if (writeError) {
      const why = errorText(writeError);
      problem = failure(`${why} while writing ${path}`, /no space|quota/.test(why)
        ? `free space where the backups go (df -h ${dir}) or move old backups away, then run again`
        : 'check the disk and the backup folder, then run again');
    } else if (tar.exitCode !== 0 && tar.exitCode !== 1) {
      // GNU tar exits 1 when a file changed while it was read: the archive is whole, that file may be torn.
      // It exits 2 when its compress program failed too, and says so in its last lines.
      problem = failure(`tar could not read ${source} (exit ${tar.exitCode})`, "check that the folder is readable by the orchestrator's user (root)", lastLines(tarLines));
    } else if (test && test.exitCode !== 0) {
      problem = failure(`it did not read back: zstd -t exited ${test.exitCode}`, 'the disk or memory may be failing; check dmesg, then run again', lastLines(test.stderr.split('\n')));
    }
    finish(problem ? 'failed' : `done (${formatBytes(totals.bytes)} ${compressor === 'none' ? 'tar' : compressor} in ${name})`);
    await afterRead();
    if (problem) throw problem;
    const warnings = tar.exitCode === 1 ? lastLines(tarLines, 5) : [];
    const artifact = await sealArchive(path, totals);
    let entries: number | undefined;
    if (!zstd) {
      const readBack = await runTarOnArchive(context, path, compressor, LIST_ARGS, { expectSha256: totals.sha256, countLines: true });
      if (!readBack.ok) {
        throw failure(`it did not read back: ${readBack.why}`, 'the disk may be failing or full; check dmesg and df, then run again', readBack.lines);
      }
      entries = readBack.entries;
    }
    if (afterReadError) throw afterReadError; // the backup is good; the service did not come back
    return { ...artifact, tarBytes: raw ? raw.bytes() : undefined, entries, warnings };
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
  const stage = decompressStage(compressor);
  const head = [readArchive(path), hashed.stream, ...(stage.stream ? [stage.stream] : [])] as [Readable, ...Duplex[]];
  const fed = pipeline(head).then(() => undefined, (error: unknown) => error ?? new Error('stream failed'));
  const counter = options.countLines ? lineCounter() : undefined;
  // zstd -d runs inside tar, fed the hashed archive: node never sees the decompressed bytes.
  const programArgs = compressor === 'zstd' ? zstdProgramArgs() : [];
  const tar = await context.exec('tar', [...programArgs, ...args], { stdinFrom: head[head.length - 1] as Readable, ...(counter ? { stdoutTo: counter.stream } : {}) });
  const readError = await fed;
  const tarLines = lastLines(tar.stderr.split('\n'));
  const result = (why: string, lines: string[] = []): TarOnArchive => ({ ok: false, why, lines, entries: counter?.lines() ?? 0 });
  // A corrupt archive can fail tar (and its zstd -d) before the sha256 is complete: the sha256 is the clearer reason.
  if (readError) return result(`${stage.name === 'gunzip' ? 'gunzip: ' : ''}${errorText(readError)}`, tarLines);
  if (tar.exitCode !== 0) return result(`tar${compressor === 'zstd' ? ' (zstd -d)' : ''} exited ${tar.exitCode}`, tarLines);
  const sha256 = hashed.totals().sha256;
  if (sha256 !== options.expectSha256) return result(`its sha256 ${sha256.slice(0, 12)}… is not the recorded ${options.expectSha256.slice(0, 12)}…`);
  return { ok: true, why: '', lines: [], entries: counter?.lines() ?? 0 };
}

/** Extracts the archive into `into` (an empty folder), exactly: owners, modes, links, xattrs. */
export function extractArgs(into: string): string[] {
  return [...EXTRACT_ARGS, `--directory=${into}`];
}
