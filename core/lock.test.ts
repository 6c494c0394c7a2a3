import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReleaseLock, liveLockHolder } from './lock.js';

/** The lock file a run on this host would have written, with a live process as its pid and group. */
function lockText(pid: number, boot: string): string {
  return `pid=${pid}\nhost=${hostname()}\nticket=77\nstarted=2026-11-27T00:00:00Z\nboot=${boot}\ngroups=${pid}\n`;
}

describe('the release lock across a reboot', () => {
  let dir: string;
  let sleeper: ReturnType<typeof spawn>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ro-lock-'));
    // A live process that holds its own group: what a pid and group recorded before a reboot may name now.
    sleeper = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  });
  afterEach(() => {
    sleeper.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('a lock written in this boot whose pid runs is held: exit 3', () => {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const path = join(dir, 'release.lock');
    writeFileSync(path, lockText(sleeper.pid!, boot));
    expect(liveLockHolder(path)?.ticket).toBe('77');
    expect(() => new ReleaseLock(path).acquire('78')).toThrow(/another release holds the lock/);
  });

  test('a lock written before the host last booted is stale, whatever its pid and groups name now', () => {
    const path = join(dir, 'release.lock');
    writeFileSync(path, lockText(sleeper.pid!, '00000000-0000-0000-0000-000000000000'));
    expect(liveLockHolder(path)).toBeUndefined();
    const lock = new ReleaseLock(path);
    expect(lock.acquire('78')?.ticket).toBe('77');
    expect(readFileSync(path, 'utf8')).toContain(`pid=${process.pid}\n`);
    lock.release();
  });
});

describe('a takeover interrupted by a kill -9', () => {
  test('the guard it left behind is cleared and the stale lock is taken over in the same run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ro-lock-'));
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const dead = spawnSync('true').pid!;
      const path = join(dir, 'release.lock');
      writeFileSync(path, `pid=${dead}\nhost=${hostname()}\nticket=P8\nstarted=2026-12-03T00:00:00Z\nboot=${boot}\n`);
      writeFileSync(`${path}.takeover`, `pid=${dead}\nhost=${hostname()}\nticket=P8\nstarted=2026-12-03T00:00:01Z\nboot=${boot}\n`);
      const lock = new ReleaseLock(path);
      expect(lock.acquire('P8')?.pid).toBe(dead);
      expect(readFileSync(path, 'utf8')).toContain(`pid=${process.pid}\n`);
      expect(existsSync(`${path}.takeover`)).toBe(false);
      lock.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a live takeover in progress still refuses: exit 3', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ro-lock-'));
    const sleeper = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const dead = spawnSync('true').pid!;
      const path = join(dir, 'release.lock');
      writeFileSync(path, `pid=${dead}\nhost=${hostname()}\nticket=P8\nstarted=2026-12-03T00:00:00Z\nboot=${boot}\n`);
      writeFileSync(`${path}.takeover`, lockText(sleeper.pid!, boot));
      expect(() => new ReleaseLock(path).acquire('P8')).toThrow(/another release is taking over a stale lock of ticket P8/);
    } finally {
      sleeper.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a lock left empty by a crash', () => {
  test('written before this boot: stale, taken over; written in this boot: refused (exit 3) for a human to check', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ro-lock-'));
    try {
      const path = join(dir, 'release.lock');
      writeFileSync(path, '');
      expect(() => new ReleaseLock(path).acquire('P9')).toThrow(/another release holds the lock: unreadable lock file/);
      utimesSync(path, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'));
      const lock = new ReleaseLock(path);
      expect(lock.acquire('P9')).toBeUndefined();
      expect(readFileSync(path, 'utf8')).toContain(`pid=${process.pid}\n`);
      lock.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
