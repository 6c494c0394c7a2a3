import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, chmodSync, writeSync, unlinkSync, existsSync, readdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { isProcessAlive } from './pid.js';

/**
 * Everything the orchestrator writes (state, logs, locks, backups) is private to the operator:
 * folders 0700, files 0600, set explicitly so a permissive umask cannot widen them.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export function ensurePrivateDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  }
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Flushes a file or a folder (a rename is durable only once its folder is flushed). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  /** Runs just before the rename (a last check that may still refuse the write). */
  beforeRename?: () => void;
  /**
   * false skips the fsyncs: for records that matter only while this boot lasts (a crash or a
   * reboot makes them meaningless anyway), where a flush per write would cost more than it saves.
   */
  durable?: boolean;
  /**
   * false leaves the folder as it is (a file the operator asked for in a folder of theirs, e.g. a
   * plan in /tmp); by default the folder is made private (0700) as the workspace's are.
   */
  privateFolder?: boolean;
}

/** Write temp, fsync, rename, fsync the folder: a reader sees the old file or the new one, never half. */
export function writeFileAtomic(path: string, content: string, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  if (options.privateFolder ?? true) ensurePrivateDir(dir);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    writeSync(fd, content);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, PRIVATE_FILE_MODE);
  try {
    options.beforeRename?.();
    renameSync(tmp, path);
  } catch (error) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw error;
  }
  if (durable) fsyncPath(dir);
}

/** Append one record and flush it to disk before returning. */
export function appendPrivateLine(path: string, line: string): void {
  ensurePrivateDir(dirname(path));
  const fd = openSync(path, 'a', PRIVATE_FILE_MODE);
  try {
    writeSync(fd, line.endsWith('\n') ? line : `${line}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, PRIVATE_FILE_MODE);
}


/** Temp files of writeFileAtomic whose writer is gone (killed between write and rename). */
export function removeStaleTempFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const match = /^(?:\..+|release\.lock.*)\.(\d+)\.tmp$/.exec(name);
    if (!match || isProcessAlive(Number(match[1]))) continue;
    unlinkSync(join(dir, name));
    removed.push(name);
  }
  return removed;
}
