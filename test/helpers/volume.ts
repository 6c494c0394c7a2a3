/**
 * Test helpers of backup-volume: docker volumes, a tree with every kind of entry the backup must
 * keep, and a listing that tells two trees apart.
 */
import { chmodSync, chownSync, linkSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

export async function run(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, { reject: false, all: true });
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${String(result.all)}`);
  return String(result.stdout).trim();
}

export async function createVolume(name: string): Promise<string> {
  await run('docker', ['volume', 'create', name]);
  return run('docker', ['volume', 'inspect', '--format', '{{.Mountpoint}}', name]);
}

export async function removeVolume(name: string): Promise<void> {
  await execa('docker', ['volume', 'rm', '--force', name], { reject: false });
}

/**
 * Fills `dir` with what a service's data holds: a dotfile, modes 0600/0755/2775, numeric owners
 * without a passwd entry, a symlink inside, one pointing out of the tree, an empty folder, a hard
 * link, a name with spaces, a deep file and (when `xattrs`) a user xattr. The root gets 0751 1234:5678.
 */
export async function populate(dir: string, outside: string, xattrs = true): Promise<void> {
  mkdirSync(join(dir, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  writeFileSync(join(dir, '.hidden'), 'dotfile\n');
  writeFileSync(join(dir, 'secret.key'), 'k3y\n');
  chmodSync(join(dir, 'secret.key'), 0o600);
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'run.sh'), 0o755);
  writeFileSync(join(dir, 'owned'), 'owned by 1234:5678\n');
  chownSync(join(dir, 'owned'), 1234, 5678);
  writeFileSync(join(dir, 'sub', 'deeper', 'file with spaces.txt'), 'deep\n');
  writeFileSync(join(dir, 'data.bin'), Buffer.alloc(70_000, 7));
  linkSync(join(dir, 'data.bin'), join(dir, 'sub', 'hard-link-of-data.bin'));
  symlinkSync('a.txt', join(dir, 'link-to-a'));
  symlinkSync('sub/deeper', join(dir, 'link-to-dir'));
  symlinkSync(outside, join(dir, 'link-outside'));
  mkdirSync(join(dir, 'empty'));
  chmodSync(join(dir, 'empty'), 0o750);
  mkdirSync(join(dir, 'shared'));
  chownSync(join(dir, 'shared'), 0, 5678);
  chmodSync(join(dir, 'shared'), 0o2775);
  if (xattrs) await run('setfattr', ['-n', 'user.note', '-v', 'kept', join(dir, 'a.txt')]);
  chownSync(dir, 1234, 5678);
  chmodSync(dir, 0o751);
}

/** What a release might do to the data: add, delete, chmod, chown, rewrite, relink. */
export function mutate(dir: string, outside: string): void {
  writeFileSync(join(dir, 'added-by-release.txt'), 'new\n');
  mkdirSync(join(dir, 'new-dir', 'nested'), { recursive: true });
  writeFileSync(join(dir, 'new-dir', 'nested', 'f'), 'x');
  rmSync(join(dir, '.hidden'));
  rmSync(join(dir, 'empty'), { recursive: true });
  chmodSync(join(dir, 'secret.key'), 0o644);
  chownSync(join(dir, 'owned'), 0, 0);
  writeFileSync(join(dir, 'data.bin'), 'rewritten');
  rmSync(join(dir, 'link-to-a'));
  symlinkSync('run.sh', join(dir, 'link-to-a'));
  rmSync(join(dir, 'sub', 'hard-link-of-data.bin'));
  // A link out of the tree that a careless wipe would follow.
  symlinkSync(outside, join(dir, 'added-link-outside'));
  chmodSync(dir, 0o700);
  chownSync(dir, 0, 0);
}

/**
 * The tree as an operator compares it: every entry's type, mode, numeric owner, link count and
 * symlink target, the sha256 of every file, which names share an inode, and the xattrs of a.txt.
 */
export async function listing(dir: string, xattrs = true): Promise<string> {
  const entries = await run('sh', ['-c', `cd "$1" && find . -printf '%p %y %m %U:%G %n %l\\n' | LC_ALL=C sort`, 'sh', dir]);
  const sums = await run('sh', ['-c', `cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`, 'sh', dir]);
  const inodes = await run('sh', ['-c', `cd "$1" && find . -type f -links +1 -printf '%i %p\\n'`, 'sh', dir]);
  const groups = new Map<string, string[]>();
  for (const line of inodes.split('\n').filter(Boolean)) {
    const [inode, ...name] = line.split(' ');
    groups.set(inode!, [...(groups.get(inode!) ?? []), name.join(' ')]);
  }
  const hardLinks = [...groups.values()].map((names) => names.sort().join(' = ')).sort().join('\n');
  const attrs = xattrs ? await execa('getfattr', ['--absolute-names', '-d', '-m', 'user\\.', join(dir, 'a.txt')], { reject: false, all: true }) : undefined;
  return [entries, sums, hardLinks, String(attrs?.all ?? '').replace(dir, 'DIR')].join('\n--\n');
}

/** Every file under `dir` (relative paths), to show a failed backup left nothing behind. */
export function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}

/**
 * A PATH that holds every program of the current PATH except zstd and its aliases (symlinks in
 * `dir`): a host on which zstd was never installed.
 */
export function pathWithoutZstd(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const folder of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    let names: string[];
    try { names = readdirSync(folder); } catch { continue; }
    for (const name of names) {
      if (/zst/.test(name)) continue;
      try { symlinkSync(join(folder, name), join(dir, name)); } catch { /* an earlier folder's program of that name wins */ }
    }
  }
  return dir;
}
