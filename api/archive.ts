/**
 * The files every backup strategy writes: an archive streamed to disk (0600, in a 0700 folder),
 * its sha256 and size recorded beside it, and the check that it is still what was written.
 * Strategies call these; none writes a backup file another way.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { ReleaseError, ensurePrivateDir, writeFileAtomic, PRIVATE_FILE_MODE, type TransferProgress } from '../core/index.js';
import { open } from 'node:fs/promises';

export interface Artifact {
  /** Absolute path of the archive. */
  path: string;
  bytes: number;
  sha256: string;
}

const sumFile = (path: string) => `${path}.sha256`;
const sizeFile = (path: string) => `${path}.size`;

/**
 * A pass-through that hashes and counts what flows into the archive, and reports progress.
 * `finish()` gives the totals once the stream has ended.
 */
export function hashingCounter(progress?: TransferProgress) {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      progress?.add(chunk.length);
      done(null, chunk);
    },
  });
  return { stream, totals: () => ({ bytes, sha256: hash.digest('hex') }) };
}

/**
 * Opens `dir/name` for writing (0600, never over an existing file), making `dir` 0700. The file is
 * created here, at once: an existing one throws EEXIST before the caller owns anything to clean up.
 */
export function createArchiveStream(dir: string, name: string): { path: string; stream: NodeJS.WritableStream } {
  ensurePrivateDir(dir);
  const path = join(dir, name);
  const fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
  return { path, stream: createWriteStream(path, { fd }) };
}

/** Flushes the archive to disk and records its sha256 and size beside it (`sha256sum -c` reads the first). */
export async function sealArchive(path: string, totals: { bytes: number; sha256: string }): Promise<Artifact> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  const actual = statSync(path).size;
  if (actual !== totals.bytes) {
    throw new ReleaseError('BACKUP_FAILED', `${path}: wrote ${totals.bytes} bytes but the file holds ${actual}`);
  }
  writeFileAtomic(sumFile(path), `${totals.sha256}  ${basename(path)}\n`);
  writeFileAtomic(sizeFile(path), `${totals.bytes}\n`);
  return { path, ...totals };
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const badArchive = (path: string, why: string) => new ReleaseError('BACKUP_FAILED', `backup ${path} ${why}; nothing was restored`, {
  hint: 'restore by hand from another copy, or revert without this backup after checking the data yourself',
});

/**
 * The archive is there with its recorded size: the recorded sha256 is returned unchecked, for a
 * restore that checks it on the bytes it streams (and touches nothing unless they match).
 */
export function recordedArchive(path: string): Artifact {
  const bad = (why: string) => badArchive(path, why);
  if (!existsSync(path)) throw bad('is missing');
  if (!existsSync(sumFile(path)) || !existsSync(sizeFile(path))) throw bad('has no recorded checksum or size');
  const recordedSha = readFileSync(sumFile(path), 'utf8').split(/\s+/)[0] ?? '';
  const recordedBytes = Number(readFileSync(sizeFile(path), 'utf8').trim());
  const bytes = statSync(path).size;
  if (bytes !== recordedBytes) throw bad(`is ${bytes} bytes, ${recordedBytes} were recorded`);
  return { path, bytes, sha256: recordedSha };
}

/** The archive is there, its size and sha256 are what was recorded; else BACKUP_FAILED naming the file. */
export async function verifyArchive(path: string): Promise<Artifact> {
  const bad = (why: string) => badArchive(path, why);
  const { bytes, sha256: recordedSha } = recordedArchive(path);
  const sha256 = await sha256OfFile(path);
  if (sha256 !== recordedSha) throw bad(`does not match its recorded sha256 (corrupt)`);
  return { path, bytes, sha256 };
}

/** Removes an archive and what was recorded beside it (a failed backup leaves nothing behind). */
export function removeArchive(path: string): void {
  for (const file of [path, sumFile(path), sizeFile(path)]) rmSync(file, { force: true });
}

/** A stream of the archive's bytes, for a restore. */
export function readArchive(path: string): Readable {
  return createReadStream(path);
}
