import { chmodSync, chownSync, linkSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, utimesSync, lutimesSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Platform } from '../../test/helpers/platform.js';

const sh = async (dir: string, script: string) => (await execa('sh', ['-c', script, 'sh', dir])).stdout;
const PAST = new Date('2024-02-29T12:34:56.789Z');

/** A volume holding every kind of thing a volume restore must put back as it was. */
async function build(dir: string): Promise<void> {
  mkdirSync(join(dir, 'folder', 'empty'), { recursive: true });
  writeFileSync(join(dir, 'folder', 'plain.txt'), 'plain\n');
  linkSync(join(dir, 'folder', 'plain.txt'), join(dir, 'hard-link'));
  symlinkSync('folder/plain.txt', join(dir, 'symlink'));
  writeFileSync(join(dir, 'setuid-tool'), '#!/bin/sh\n');
  chmodSync(join(dir, 'setuid-tool'), 0o4755);
  mkdirSync(join(dir, 'setgid-dir'));
  chmodSync(join(dir, 'setgid-dir'), 0o2775);
  mkdirSync(join(dir, 'sticky-dir'));
  chmodSync(join(dir, 'sticky-dir'), 0o1777);
  writeFileSync(join(dir, 'owned'), 'owned\n');
  chownSync(join(dir, 'owned'), 1234, 5678);
  await execa('mkfifo', ['-m', '0640', join(dir, 'pipe')]);
  // 64 MiB apparent, a few KiB on disk.
  const sparse = join(dir, 'sparse.img');
  writeFileSync(sparse, '');
  truncateSync(sparse, 64 * 1024 * 1024);
  const fd = openSync(sparse, 'r+');
  writeSync(fd, Buffer.from('middle'), 0, 6, 32 * 1024 * 1024);
  closeSync(fd);
  await execa('setfattr', ['-n', 'user.note', '-v', 'on a file', join(dir, 'folder', 'plain.txt')]);
  await execa('setfattr', ['-n', 'user.kind', '-v', 'a folder', join(dir, 'folder')]);
  await execa('setfacl', ['-m', 'u:1234:rw,g:5678:r', join(dir, 'owned')]);
  await execa('setfacl', ['-d', '-m', 'u:1234:rwx', join(dir, 'setgid-dir')]);
  for (const path of ['folder/plain.txt', 'setuid-tool', 'owned', 'sparse.img', 'pipe', 'folder/empty', 'setgid-dir', 'sticky-dir', 'folder']) utimesSync(join(dir, path), PAST, PAST);
  lutimesSync(join(dir, 'symlink'), PAST, PAST);
}

/** What breaking it looks like: content, modes, owners, links, attributes and holes changed or gone. */
async function breakIt(dir: string): Promise<void> {
  writeFileSync(join(dir, 'folder', 'plain.txt'), 'rewritten\n'); // the hard link sees it too
  rmSync(join(dir, 'hard-link'));
  rmSync(join(dir, 'symlink'));
  symlinkSync('owned', join(dir, 'symlink'));
  chmodSync(join(dir, 'setuid-tool'), 0o755);
  chownSync(join(dir, 'owned'), 0, 0);
  rmSync(join(dir, 'pipe'));
  rmSync(join(dir, 'folder', 'empty'), { recursive: true });
  await execa('setfattr', ['-x', 'user.note', join(dir, 'folder', 'plain.txt')]);
  await execa('setfacl', ['-b', join(dir, 'owned')]);
  await execa('sh', ['-c', 'dd if=/dev/zero of="$1" bs=1M count=8 conv=notrunc status=none', 'sh', join(dir, 'sparse.img')]);
  writeFileSync(join(dir, 'added-later'), 'not in the backup\n');
}

/** Everything an operator would compare: stat of each entry, xattrs, ACLs, link counts, blocks vs apparent size. */
async function inventory(dir: string): Promise<Record<string, string>> {
  return {
    // path, type, mode (with setuid/setgid/sticky), owner, links, size, mtime (ns), link target; the root's own times left out.
    stat: await sh(dir, `cd "$1" && find . -mindepth 1 -printf '%p %y %#m %U:%G %n %s %T@ %l\\n' | LC_ALL=C sort`),
    root: await sh(dir, `stat -c '%a %u:%g' "$1"`),
    content: await sh(dir, `cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum`),
    hardLinks: await sh(dir, `cd "$1" && find . -type f -links +1 -printf '%i %p\\n' | sort | awk '{ names[$1] = names[$1] " " $2 } END { for (i in names) print names[i] }' | sort`),
    xattrs: await sh(dir, `cd "$1" && getfattr -R -d -m '^user\\.' . 2>/dev/null`),
    acls: await sh(dir, `cd "$1" && getfacl -R -p -s . 2>/dev/null`),
    sparse: await sh(dir, `du -k "$1/sparse.img" | cut -f1; du -k --apparent-size "$1/sparse.img" | cut -f1`),
  };
}

describe('a volume restore puts back exactly what was there', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'files' }], {}, 'ro-fidelity-'); });
  afterEach(() => platform.remove());

  test('files, hard links, symlinks, empty folders, owners, setuid/setgid/sticky, mtimes, xattrs, ACLs, sparse files, FIFOs; and --undo the broken state as exactly', async () => {
    const data = join(platform.root, 'files-data');
    mkdirSync(data);
    await build(data);
    const built = await inventory(data);
    // The test itself proves what it builds: a hole, an ACL, an attribute, a FIFO, two names for one file.
    const [blocksKiB, apparentKiB] = built.sparse!.split('\n').map(Number);
    expect(apparentKiB).toBe(65536);
    expect(blocksKiB).toBeLessThan(1024);
    expect(built.acls).toContain('user:1234:rw-');
    expect(built.acls).toContain('default:user:1234:rwx');
    expect(built.xattrs).toContain('user.note="on a file"');
    expect(built.stat).toMatch(/^\.\/pipe p 0640 /m);
    expect(built.stat).toMatch(/^\.\/setuid-tool f 04755 /m);
    expect(built.hardLinks).toContain('./folder/plain.txt ./hard-link');

    await platform.mergeFeature('600', {
      'packages/files/manifest.yaml': `name: files\nruntime: none\nimage: local/files:2\nbackup:\n  - type: volume\n    path: ${data}\n`,
    });
    expect((await platform.run('release-run', ['600'])).exitCode).toBe(0);
    await breakIt(data);
    const broken = await inventory(data);
    for (const key of Object.keys(built)) if (key !== 'root') expect(broken[key]).not.toBe(built[key]);

    const reverted = await platform.run('release-revert', ['600']);

    expect(reverted.exitCode).toBe(0);
    expect(await inventory(data)).toEqual(built);

    const undone = await platform.run('release-revert', ['600', '--undo']);

    expect(undone.exitCode).toBe(0);
    expect(await inventory(data)).toEqual(broken);
  });
});
