import { hostname } from 'node:os';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './fs-private.js';
import { ReleaseError } from './errors.js';
import { isProcessAlive } from './pid.js';

export interface LockHolder {
  pid: number;
  host: string;
  ticket: string;
  started: string;
}

/**
 * The release lock: one release or revert at a time per repo. Written by hand rather than with
 * proper-lockfile because that library calls a lock stale by its age; an hours-long backup is
 * not stale. Ours is stale only when its pid is gone on this same host.
 */
export class ReleaseLock {
  private held = false;

  constructor(readonly path: string) {}

  static describe(holder: LockHolder): string {
    return `ticket ${holder.ticket} (pid ${holder.pid} on ${holder.host}, since ${holder.started})`;
  }

  /** Takes the lock, or throws LOCKED naming the holder. Returns the holder it took over from, if any. */
  acquire(ticket: string): LockHolder | undefined {
    ensurePrivateDir(dirname(this.path));
    const me: LockHolder = { pid: process.pid, host: hostname(), ticket, started: new Date().toISOString() };
    if (this.createExclusive(this.path, me)) {
      this.held = true;
      return undefined;
    }
    const holder = this.readHolder();
    if (holder && isInheritedFromParent(holder)) {
      // Put our own pid in it, so the lock stays live even if the parent is killed meanwhile.
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, holderText(me), { mode: PRIVATE_FILE_MODE });
      renameSync(tmp, this.path);
      this.held = true;
      return undefined;
    }
    if (!holder || !isStale(holder)) {
      throw new ReleaseError('LOCKED', `another release holds the lock: ${holder ? ReleaseLock.describe(holder) : 'unreadable lock file'}`, {
        hint: holder ? `wait for it to finish; the lock is ${this.path}` : `check ${this.path} by hand`,
      });
    }
    this.takeOver(holder, me);
    this.held = true;
    return holder;
  }

  /**
   * A takeover is guarded by a second exclusive file, so of many processes that saw the same stale
   * lock exactly one replaces it; the others then find a live holder and exit 3.
   */
  private takeOver(stale: LockHolder, me: LockHolder): void {
    const guard = `${this.path}.takeover`;
    if (!this.createExclusive(guard, me)) {
      const guardHolder = readHolderFile(guard);
      if (guardHolder && isStale(guardHolder)) {
        try { unlinkSync(guard); } catch { /* someone else cleared it */ }
      }
      throw new ReleaseError('LOCKED', `another release is taking over a stale lock of ${ReleaseLock.describe(stale)}`, {
        hint: 'wait and run again',
      });
    }
    try {
      const current = this.readHolder();
      if (!current || current.pid !== stale.pid || current.host !== stale.host || !isStale(current)) {
        throw new ReleaseError('LOCKED', `another release holds the lock: ${current ? ReleaseLock.describe(current) : 'unreadable lock file'}`);
      }
      unlinkSync(this.path);
      if (!this.createExclusive(this.path, me)) throw new ReleaseError('LOCKED', 'another release took the lock over first');
    } finally {
      unlinkSync(guard);
    }
  }

  release(): void {
    if (!this.held) return;
    const holder = this.readHolder();
    // Never remove a lock that is not ours, even if we believe we hold it.
    if (holder && holder.pid === process.pid && holder.host === hostname()) unlinkSync(this.path);
    this.held = false;
  }

  readHolder(): LockHolder | undefined {
    return readHolderFile(this.path);
  }

  /**
   * Creates `path` holding the holder's fields, or returns false if it exists. The content is
   * written to a temp file first and hard-linked into place, so no reader ever sees it empty.
   */
  private createExclusive(path: string, holder: LockHolder): boolean {
    const tmp = `${path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
    try {
      writeSync(fd, holderText(holder));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      unlinkSync(tmp);
    }
  }
}

function holderText(holder: LockHolder): string {
  return `pid=${holder.pid}\nhost=${holder.host}\nticket=${holder.ticket}\nstarted=${holder.started}\n`;
}

function readHolderFile(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const fields = Object.fromEntries(text.split('\n').filter(Boolean).map((line) => {
    const at = line.indexOf('=');
    return [line.slice(0, at), line.slice(at + 1)];
  }));
  const pid = Number(fields.pid);
  if (!Number.isInteger(pid) || pid <= 0 || !fields.host || !fields.ticket || !fields.started) return undefined;
  return { pid, host: fields.host, ticket: fields.ticket, started: fields.started };
}

/** Env var naming the pid that handed its lock to this process (a re-run of the remaining phases). */
export const INHERITED_LOCK_ENV = 'RELEASE_INHERITED_LOCK';

/** A lock our parent holds and handed to us; we use it but never release it. */
function isInheritedFromParent(holder: LockHolder): boolean {
  return process.env[INHERITED_LOCK_ENV] === String(holder.pid) && holder.pid === process.ppid && holder.host === hostname();
}

function isStale(holder: LockHolder): boolean {
  return holder.host === hostname() && !isProcessAlive(holder.pid);
}
