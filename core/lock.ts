import { hostname } from 'node:os';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensurePrivateDir, PRIVATE_FILE_MODE } from './fs-private.js';
import { ReleaseError } from './errors.js';
import { findProcesses, isProcessAlive, type RunningProcess } from './pid.js';
import { isGroupAlive, watchChildGroups } from './exec.js';
import { writeFileAtomic } from './fs-private.js';

export interface LockHolder {
  pid: number;
  host: string;
  ticket: string;
  started: string;
  /** The process groups of the run's children (core/exec.ts), recorded while they run. */
  groups?: number[];
  /** The kernel's boot id when the lock was written: after a reboot its pids and groups name other processes. */
  boot?: string;
}

/**
 * The release lock: one release or revert at a time per repo. Written by hand rather than with
 * proper-lockfile because that library calls a lock stale by its age; an hours-long backup is
 * not stale. Ours is stale only when its pid is gone on this same host.
 */
export class ReleaseLock {
  private held = false;
  private stopWatching?: () => void;

  constructor(readonly path: string) {}

  static describe(holder: LockHolder): string {
    return `ticket ${holder.ticket} (pid ${holder.pid} on ${holder.host}, since ${holder.started})`;
  }

  /** Takes the lock, or throws LOCKED naming the holder. Returns the holder it took over from, if any. */
  acquire(ticket: string): LockHolder | undefined {
    ensurePrivateDir(dirname(this.path));
    const me: LockHolder = { pid: process.pid, host: hostname(), ticket, started: new Date().toISOString() };
    if (this.createExclusive(this.path, me)) {
      this.hold(me);
      return undefined;
    }
    let holder = this.readHolder();
    if (!holder && writtenBeforeBoot(this.path)) {
      // Its contents never reached the disk before a crash (the groups record is not flushed): stale.
      try { unlinkSync(this.path); } catch { /* another run cleared it */ }
      if (this.createExclusive(this.path, me)) {
        this.hold(me);
        return undefined;
      }
      holder = this.readHolder();
    }
    if (holder && isInheritedFromParent(holder)) {
      // Put our own pid in it, so the lock stays live even if the parent is killed meanwhile.
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, holderText(me), { mode: PRIVATE_FILE_MODE });
      renameSync(tmp, this.path);
      this.hold(me);
      return undefined;
    }
    if (holder && !isFromEarlierBoot(holder) && holder.host === hostname() && !isProcessAlive(holder.pid) && !waitForGroups(holder)) {
      const orphans = orphansOf(holder);
      if (orphans.length > 0) throw orphanedLockError(holder, orphans, this.path);
    }
    if (!holder || !isStale(holder)) {
      throw new ReleaseError('LOCKED', `another release holds the lock: ${holder ? ReleaseLock.describe(holder) : 'unreadable lock file'}`, {
        hint: holder ? `wait for it to finish; the lock is ${this.path}` : `check ${this.path} by hand`,
      });
    }
    this.takeOver(holder, me);
    this.hold(me);
    return holder;
  }

  /** From now on every child group this process starts is recorded in the lock, until release(). */
  private hold(me: LockHolder): void {
    this.held = true;
    this.stopWatching = watchChildGroups((groups) => {
      const current = this.readHolder();
      // Only ever rewrite our own lock (a handoff's child may have taken it on meanwhile).
      if (!this.held || !current || current.pid !== process.pid || current.host !== me.host) return;
      // Not flushed: the groups mean something only in this boot, the lock names its boot, and a
      // lock left empty by a crash is older than the next boot, which makes it stale (acquire).
      writeFileAtomic(this.path, holderText({ ...me, groups: [...groups] }), { durable: false });
    });
  }

  /**
   * A takeover is guarded by a second exclusive file, so of many processes that saw the same stale
   * lock exactly one replaces it; the others then find a live holder and exit 3.
   */
  private takeOver(stale: LockHolder, me: LockHolder): void {
    const guard = `${this.path}.takeover`;
    if (!this.createExclusive(guard, me)) {
      // A run killed in the middle of its own takeover leaves its guard behind: clear it and try once more.
      const guardHolder = readHolderFile(guard);
      const cleared = guardHolder !== undefined && isStale(guardHolder) && clearStaleFile(guard, guardHolder);
      if (!cleared || !this.createExclusive(guard, me)) {
        throw new ReleaseError('LOCKED', `another release is taking over a stale lock of ${ReleaseLock.describe(stale)}`, {
          hint: 'wait and run again',
        });
      }
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
    this.stopWatching?.();
    this.stopWatching = undefined;
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

/**
 * Removes a stale guard, but only the one that was read: it is moved aside under a name of our own
 * first, so of two runs that saw it, the second moves nothing (or another run's live guard, which
 * it puts back) and refuses.
 */
function clearStaleFile(path: string, stale: LockHolder): boolean {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return false; // already moved by another run
  }
  const moved = readHolderFile(aside);
  if (moved && moved.pid === stale.pid && moved.started === stale.started && moved.host === stale.host) {
    unlinkSync(aside);
    return true;
  }
  try { linkSync(aside, path); } catch { /* a third run made a guard meanwhile */ }
  unlinkSync(aside);
  return false;
}

/** This boot of the host (Linux); empty where the kernel does not say, which then never counts as another boot. */
const BOOT_ID = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
})();

function holderText(holder: LockHolder): string {
  const groups = holder.groups && holder.groups.length > 0 ? `groups=${holder.groups.join(',')}\n` : '';
  const boot = BOOT_ID ? `boot=${BOOT_ID}\n` : '';
  return `pid=${holder.pid}\nhost=${holder.host}\nticket=${holder.ticket}\nstarted=${holder.started}\n${boot}${groups}`;
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
  const groups = (fields.groups ?? '').split(',').map(Number).filter((group) => Number.isInteger(group) && group > 1);
  return { pid, host: fields.host, ticket: fields.ticket, started: fields.started, groups, boot: fields.boot };
}

/** When this boot began (Linux `btime`, in ms); 0 where the kernel does not say. */
const BOOT_TIME_MS = (() => {
  try {
    return Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? 0) * 1000;
  } catch {
    return 0;
  }
})();

/** A lock file last written before this boot began. */
function writtenBeforeBoot(path: string): boolean {
  try {
    return BOOT_TIME_MS > 0 && statSync(path).mtimeMs < BOOT_TIME_MS;
  } catch {
    return false;
  }
}

/** Written before the host last booted: whatever it recorded is gone, whatever holds its numbers now is unrelated. */
const isFromEarlierBoot = (holder: LockHolder) => holder.host === hostname() && Boolean(holder.boot) && Boolean(BOOT_ID) && holder.boot !== BOOT_ID;

/** The holder of the lock file at `path` while its run, or a child of it, still runs on this host. */
export function liveLockHolder(path: string): LockHolder | undefined {
  const holder = readHolderFile(path);
  return holder && holder.host === hostname() && !isStale(holder) ? holder : undefined;
}

/** Env var naming the pid that handed its lock to this process (a re-run of the remaining phases). */
export const INHERITED_LOCK_ENV = 'RELEASE_INHERITED_LOCK';

/** A lock our parent holds and handed to us; we use it but never release it. */
function isInheritedFromParent(holder: LockHolder): boolean {
  return process.env[INHERITED_LOCK_ENV] === String(holder.pid) && holder.pid === process.ppid && holder.host === hostname();
}

/** Stale only when its orchestrator AND every process group it recorded are gone from this host. */
function isStale(holder: LockHolder): boolean {
  if (isFromEarlierBoot(holder)) return true;
  return holder.host === hostname() && !isProcessAlive(holder.pid) && !(holder.groups ?? []).some(isGroupAlive);
}

/**
 * How long a run waits for the children of a killed run to end by themselves (a script finishing
 * its last command) before it refuses with exit 3.
 */
export const ORPHAN_WAIT_MS = 5000;

/** Waits (blocking: nothing else runs before the lock is taken) until the holder's groups are gone; false if they outlive the wait. */
function waitForGroups(holder: LockHolder, waitMs = ORPHAN_WAIT_MS): boolean {
  const deadline = Date.now() + waitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while ((holder.groups ?? []).some(isGroupAlive)) {
    if (Date.now() >= deadline) return false;
    Atomics.wait(pause, 0, 0, 100);
  }
  return true;
}

/** The processes still running in the recorded groups of a lock (from /proc: this host only). */
export function orphansOf(holder: LockHolder): RunningProcess[] {
  const groups = new Set((holder.groups ?? []).filter(isGroupAlive));
  if (groups.size === 0) return [];
  const found = findProcesses({ groups });
  if (found.length === 0) return [...groups].map((pgid) => ({ pid: pgid, pgid, command: '(unknown)' }));
  // The group's leader first (the command the orchestrator started), then what it started.
  return found.sort((a, b) => Number(b.pid === b.pgid) - Number(a.pid === a.pgid) || a.pid - b.pid);
}

function orphanedLockError(holder: LockHolder, orphans: RunningProcess[], path: string): ReleaseError {
  const groups = [...new Set(orphans.map((orphan) => orphan.pgid))];
  const first = orphans[0]!;
  return new ReleaseError('LOCKED', `the release of ticket ${holder.ticket} (pid ${holder.pid}, since ${holder.started}) is gone, but a process it started still runs after ${ORPHAN_WAIT_MS / 1000}s of waiting: pid ${first.pid} (${first.command.slice(0, 200)})`, {
    lines: orphans.map((orphan) => `pid ${orphan.pid} in process group ${orphan.pgid}: ${orphan.command.slice(0, 200)}`),
    hint: `wait for it to end, or stop it and everything it started: kill -TERM -- ${groups.map((group) => `-${group}`).join(' ')}; then run this again (the lock ${path} is then taken over)`,
  });
}
