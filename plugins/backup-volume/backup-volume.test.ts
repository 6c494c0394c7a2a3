import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ReleaseError, type BackupRequest, type RunContext } from '../../core/index.js';
import { composeRuntimePlugin } from '../runtime-compose/index.js';
import { uniqueName, containersOf } from '../../test/helpers/docker.js';
import { backupVolumePlugin, entrySchema, type BackupVolumeOptions } from './index.js';
import { settleDeletions } from './replace.js';
import { applyPlugins } from '../../core/runner.js';
import { createVolume, filesUnder, listing, mutate, pathWithoutZstd, populate, removeVolume, run } from '../../test/helpers/volume.js';
import { testContext } from '../../test/helpers/context.js';
import { defaultPlugins } from '../../release.config.js';

const repos: string[] = [];
afterEach(() => {
  for (const repo of repos.splice(0)) rmSync(repo, { recursive: true, force: true });
});

/** The four hooks of the plugin on a fresh context; the compose runtime answers stop/start. */
function setup(options: BackupVolumeOptions = {}) {
  const test = testContext([composeRuntimePlugin({ command: ['docker-compose'] }), backupVolumePlugin(options)]);
  repos.push(test.repoDir);
  const { hooks } = test.context;
  const call = {
    backup: (request: BackupRequest) => hooks.backup.get('volume')!.promise(request, test.context),
    size: (request: BackupRequest) => hooks.sizeBackup.get('volume')!.promise(request, test.context),
    check: (request: BackupRequest) => hooks.checkBackup.get('volume')!.promise(request, test.context),
    restore: (request: BackupRequest) => hooks.restore.get('volume')!.promise(request, test.context),
  };
  return { ...test, call };
}

async function failure(promise: Promise<unknown>): Promise<ReleaseError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ReleaseError) return error;
    throw error;
  }
  throw new Error('expected a ReleaseError');
}

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('backup-volume on real docker volumes and host folders', () => {
  let scratch: string;
  let outside: string;
  const volumes: string[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  let umask: number;

  beforeEach(() => {
    umask = process.umask(0); // backups must stay private whatever the umask
    scratch = mkdtempSync(join(tmpdir(), 'bv-'));
    outside = join(scratch, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep.txt'), 'not part of any volume\n');
  });
  afterEach(async () => {
    process.umask(umask);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    for (const volume of volumes.splice(0)) await removeVolume(volume);
    rmSync(scratch, { recursive: true, force: true });
  });

  async function newVolume(): Promise<{ name: string; mountpoint: string }> {
    const name = uniqueName('bv').replace(/-/g, '_');
    volumes.push(name);
    return { name, mountpoint: await createVolume(name) };
  }

  /** Backup, mutate, check, restore: the tree must come back exactly. */
  async function roundTrip(entry: Record<string, unknown>, dir: string, options: BackupVolumeOptions = {}, leftover?: () => void) {
    const { call, printed } = setup(options);
    const request: BackupRequest = { service: 'svc', entry: { type: 'volume', ...entry }, dir: join(scratch, 'backups', 'svc', '20260518_153012'), index: 0, manifest: 'packages/svc/manifest.yaml' };
    await populate(dir, outside);
    const before = await listing(dir);

    const size = await call.size(request);
    expect(size).toBe(Number((await run('du', ['-sb', dir])).split('\t')[0]));
    expect(existsSync(request.dir)).toBe(false); // the estimate wrote nothing

    const result = await call.backup(request);
    const compressor = options.compressor ?? 'zstd'; // the default
    const ext = compressor === 'zstd' ? 'tar.zst' : 'tar.gz';
    expect(result).toEqual({ files: [`0-volume.${ext}`, `0-volume.${ext}.sha256`, `0-volume.${ext}.size`, `0-volume.${ext}.tar-size`], bytes: statSync(join(request.dir, `0-volume.${ext}`)).size });
    for (const file of result!.files) expect(mode(join(request.dir, file))).toBe('600');
    expect(mode(request.dir)).toBe('700');
    expect(await listing(dir)).toBe(before); // a backup changes nothing
    expect(printed()).toMatch(new RegExp(`backup svc (volume|path) \\S+: done \\(.* ${compressor} in 0-volume\\.${ext.replace('.', '\\.')}\\), .* in \\d+\\.\\ds \\(.*/s\\)`));
    expect(printed()).toMatch(compressor === 'zstd' ? /0-volume\.tar\.zst: read back \(sha256 [0-9a-f]{12}…, zstd -t\)/ : /0-volume\.tar\.gz: \d+ entries read back/);
    // The sha256 beside it is what sha256sum -c reads.
    await run('sh', ['-c', `cd "$1" && sha256sum -c --quiet 0-volume.${ext}.sha256`, 'sh', request.dir]);

    mutate(dir, outside);
    expect(await listing(dir)).not.toBe(before);
    leftover?.();
    expect(await call.check(request)).toBe(true);
    expect(await call.restore(request)).toBe(true);

    expect(await listing(dir)).toBe(before);
    expect(readFileSync(join(outside, 'keep.txt'), 'utf8')).toBe('not part of any volume\n');
    expect(readdirSync(outside)).toEqual(['keep.txt']);
    return { request, printed };
  }

  test('(1) a docker volume comes back exactly: dotfiles, modes, owners, links, empty dirs, xattrs; additions gone', async () => {
    const { name, mountpoint } = await newVolume();
    // What a restore killed midway leaves beside the volume's _data: removed by the next one.
    const leftover = () => {
      mkdirSync(join(mountpoint, '..', '._data.release-restore-new-XyZ123', 'half'), { recursive: true });
      writeFileSync(join(mountpoint, '..', '._data.release-restore-new-XyZ123', 'half', 'f'), 'x');
    };
    const { printed } = await roundTrip({ volume: name }, mountpoint, {}, leftover);
    expect(printed()).toContain('removed 1 staging folder(s) an interrupted restore left in');
    expect(printed()).toContain(`${mountpoint} now holds exactly the backup`);
    // No staging folder is left beside the volume's _data, once the old contents' deletion (in the background) is done.
    await settleDeletions();
    expect(readdirSync(join(mountpoint, '..'))).toEqual(['_data']);
  });

  test('(2) a host path comes back exactly (gzip); a symlink out of it is never followed by the wipe', async () => {
    const data = join(scratch, 'srv', 'files');
    mkdirSync(data, { recursive: true });
    await roundTrip({ path: data }, data, { compressor: 'gzip' });
    await settleDeletions();
    expect(readdirSync(join(scratch, 'srv'))).toEqual(['files']);
  });

  test('(2b) a host path that is a mount point of its own is restored in place, with zstd', async () => {
    const data = join(scratch, 'mnt');
    mkdirSync(data);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', data]);
    cleanups.push(() => run('umount', [data]).then(() => undefined));
    const leftover = () => mkdirSync(join(data, '.release-restore-old-Q1w2E3', 'x'), { recursive: true });
    const { request, printed } = await roundTrip({ path: data }, data, { compressor: 'zstd', level: 3 }, leftover);
    expect(printed()).toContain(`removed 1 staging folder(s) an interrupted restore left in ${data}`);
    expect(existsSync(join(request.dir, '0-volume.tar.zst'))).toBe(true);
    // still the same mount, and nothing of the restore's staging left inside it
    expect((await run('findmnt', ['-n', '-o', 'FSTYPE', data]))).toBe('tmpfs');
    expect(readdirSync(data).filter((name) => name.includes('release-restore'))).toEqual([]);
  });

  test('(3) one flipped byte: checkBackup fails naming the file, and restore touches nothing', async () => {
    const { name, mountpoint } = await newVolume();
    const { call } = setup();
    const request: BackupRequest = { service: 'svc', entry: { type: 'volume', volume: name }, dir: join(scratch, 'b'), index: 2, manifest: 'packages/svc/manifest.yaml' };
    await populate(mountpoint, outside);
    await call.backup(request);
    const archive = join(request.dir, '2-volume.tar.zst');
    const fd = openSync(archive, 'r+');
    const byte = Buffer.alloc(1);
    const at = Math.floor(statSync(archive).size / 2);
    readSync(fd, byte, 0, 1, at);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
    closeSync(fd);
    mutate(mountpoint, outside);
    const mutated = await listing(mountpoint);

    const checked = await failure(call.check(request));
    expect(checked.code).toBe('BACKUP_FAILED');
    expect(checked.exitCode).toBe(6);
    expect(checked.message).toBe(`backup ${archive} does not match its recorded sha256 (corrupt); nothing was restored`);

    const restored = await failure(call.restore(request));
    expect(restored.code).toBe('BACKUP_FAILED');
    expect(restored.message).toContain(archive);
    expect(await listing(mountpoint)).toBe(mutated);

    // A whole archive whose recorded sha256 differs: the restore checks the hash of what it
    // extracts and swaps nothing in.
    const again = openSync(archive, 'r+');
    writeSync(again, byte, 0, 1, at);
    closeSync(again);
    expect(await call.check(request)).toBe(true);
    writeFileSync(`${archive}.sha256`, `${'0'.repeat(64)}  2-volume.tar.zst\n`);
    const wrongSum = await failure(call.restore(request));
    expect(wrongSum.message).toMatch(new RegExp(`^restore of svc volume ${name} from ${archive} failed: its sha256 [0-9a-f]{12}… is not the recorded 000000000000…; `));
    expect(await listing(mountpoint)).toBe(mutated);
  });

  test('(4) a full disk: BACKUP_FAILED, no partial file left (gzip and zstd)', async () => {
    const { name, mountpoint } = await newVolume();
    await run('sh', ['-c', 'head -c 3000000 /dev/urandom > "$1"', 'sh', join(mountpoint, 'random.bin')]);
    const small = join(scratch, 'small');
    mkdirSync(small);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    cleanups.push(() => run('umount', [small]).then(() => undefined));
    for (const compressor of ['gzip', 'zstd'] as const) {
      const { call, printed } = setup({ compressor });
      const request: BackupRequest = { service: 'svc', entry: { type: 'volume', volume: name }, dir: join(small, 'backups', 'svc', compressor), index: 0, manifest: 'packages/svc/manifest.yaml' };

      const error = await failure(call.backup(request));

      expect(error.code).toBe('BACKUP_FAILED');
      expect(error.message).toMatch(new RegExp(`^backup of svc volume ${name} failed: no space left on device while writing ${request.dir}/0-volume\\.tar\\.(gz|zst); .* was removed$`));
      expect(error.hint).toMatch(/free space where the backups go/);
      expect(filesUnder(small)).toEqual([]);
      expect(printed()).toMatch(/backup svc volume \S+: failed/);
    }
  });

  test('(5) consistency: stop stops the service while its volume is read, and starts it again', async () => {
    const { name, mountpoint } = await newVolume();
    const service = uniqueName('bvstop');
    writeFileSync(join(mountpoint, 'f'), 'x');
    const container = await run('docker', ['run', '-d', '--label', `com.docker.compose.project=${service}`, '-v', `${name}:/data`, 'local/testsvc:1']);
    cleanups.push(async () => { await execa('docker', ['rm', '--force', container], { reject: false }); });
    // A one-shot job of the same project that ran and exited: the backup must leave it so. Started
    // again, it would stay up (its first run left /ran behind), which the check below would see.
    const oneShot = await run('docker', ['run', '-d', '--label', `com.docker.compose.project=${service}`, '--entrypoint', 'sh', 'local/testsvc:1', '-c', 'if [ -e /ran ]; then exec sleep 600; fi; touch /ran']);
    cleanups.push(async () => { await execa('docker', ['rm', '--force', oneShot], { reject: false }); });
    await run('docker', ['wait', oneShot]);
    const stateOf = async (id: string) => (await containersOf(service)).find((c) => id.startsWith(c.id) || c.id.startsWith(id))?.state;
    const { call, context, printed } = setup();
    const seen: string[] = [];
    const exec = context.exec.bind(context);
    context.exec = async (file, args, options) => {
      if (file === 'tar' && args.includes('--create')) seen.push((await containersOf(service)).map((c) => c.state).join(','));
      return exec(file, args, options);
    };
    const request: BackupRequest = { service, entry: { type: 'volume', volume: name, consistency: 'stop' }, dir: join(scratch, 'b'), index: 0, manifest: 'packages/svc/manifest.yaml' };

    await call.backup(request);

    expect(seen).toEqual(['exited,exited']);
    expect(await stateOf(container)).toBe('running');
    expect(await stateOf(oneShot)).toBe('exited');
    expect(printed()).toContain(`${service} stopped: consistent backup of ${service} volume ${name}`);
    expect(printed()).toContain(`${service} started again`);

    // The default is a live copy: the container keeps running.
    seen.length = 0;
    await call.backup({ ...request, entry: { type: 'volume', volume: name }, index: 1 });
    expect(seen.map((states) => states.split(',').sort().join(','))).toEqual(['exited,running']);
  });

  test('(7) a gzip backup taken before zstd became the default restores with the new default in force', async () => {
    const data = join(scratch, 'srv', 'files');
    mkdirSync(data, { recursive: true });
    await populate(data, outside);
    const before = await listing(data);
    const request: BackupRequest = { service: 'svc', entry: { type: 'volume', path: data }, dir: join(scratch, 'b', 'svc', '20260101_000000'), index: 0, manifest: 'packages/svc/manifest.yaml' };
    // What the old default (gzip level 1) wrote.
    await setup({ compressor: 'gzip', level: 1 }).call.backup(request);
    expect(readdirSync(request.dir).sort()).toEqual(['0-volume.tar.gz', '0-volume.tar.gz.sha256', '0-volume.tar.gz.size', '0-volume.tar.gz.tar-size']);
    mutate(data, outside);

    const now = setup(); // the new default: zstd
    expect(await now.call.check(request)).toBe(true);
    expect(await now.call.restore(request)).toBe(true);

    expect(await listing(data)).toBe(before);
    expect(now.printed()).toContain(`${data} now holds exactly the backup ${join(request.dir, '0-volume.tar.gz')}`);
    // and a backup taken now is zstd
    await now.call.backup({ ...request, dir: join(scratch, 'b', 'svc', '20260101_000001') });
    expect(readdirSync(join(scratch, 'b', 'svc', '20260101_000001')).sort()).toEqual(['0-volume.tar.zst', '0-volume.tar.zst.sha256', '0-volume.tar.zst.size', '0-volume.tar.zst.tar-size']);
  });

  test('(8) a host without zstd: backup and zstd restore fail with exit 6 and one line saying what to do; gzip still works', async () => {
    const data = join(scratch, 'srv', 'files');
    mkdirSync(data, { recursive: true });
    await populate(data, outside);
    const request = (dir: string): BackupRequest => ({ service: 'svc', entry: { type: 'volume', path: data }, dir: join(scratch, dir), index: 0, manifest: 'packages/svc/manifest.yaml' });
    await setup().call.backup(request('zst')); // taken while zstd was there
    mutate(data, outside);
    const mutated = await listing(data);
    const path = process.env.PATH;
    process.env.PATH = pathWithoutZstd(join(scratch, 'bin'));
    try {
      const { call, printed } = setup();
      const error = await failure(call.backup(request('new')));
      expect(error.exitCode).toBe(6);
      expect(error.message).toBe(`backup of svc path ${data} needs zstd, which is not on this host's PATH: install it (apt-get install zstd) or choose compressor: 'gzip' in release.config.ts (defaultPlugins({ backupVolume: { compressor: 'gzip' } }))`);
      expect(error.message).not.toContain('\n');
      expect(existsSync(join(scratch, 'new'))).toBe(false); // checked before anything was written
      expect(printed()).not.toMatch(/backup svc path/); // no backup started

      const restore = await failure(call.restore(request('zst')));
      expect(restore.exitCode).toBe(6);
      expect(restore.message).toMatch(/^restore of svc path \S+ needs zstd, which is not on this host's PATH: install it \(apt-get install zstd\)/);
      expect(await listing(data)).toBe(mutated);

      // gzip needs nothing from the host but tar
      const gzip = setup({ compressor: 'gzip' });
      await gzip.call.backup(request('gz'));
      expect(await gzip.call.restore(request('gz'))).toBe(true);
      expect(await listing(data)).toBe(mutated);
    } finally {
      process.env.PATH = path;
    }
  });

  test('a missing volume or path fails the backup naming it; a short compose name gets a hint', async () => {
    const { name } = await newVolume();
    const { call } = setup();
    const short = name.slice(name.indexOf('_') + 1);
    const dir = join(scratch, 'b');
    const missing = await failure(call.backup({ service: 'svc', entry: { type: 'volume', volume: short }, dir, index: 0, manifest: 'packages/svc/manifest.yaml' }));
    expect(missing.code).toBe('BACKUP_FAILED');
    expect(missing.message).toBe(`svc volume ${short}: docker volume ${short} does not exist`);
    expect(missing.hint).toContain(`did you mean ${name}`);
    const noPath = await failure(call.backup({ service: 'svc', entry: { type: 'volume', path: join(scratch, 'nope') }, dir, index: 0, manifest: 'packages/svc/manifest.yaml' }));
    expect(noPath.message).toBe(`svc path ${join(scratch, 'nope')}: ${join(scratch, 'nope')} does not exist`);
    expect(existsSync(dir)).toBe(false);
  });

  test('a restore into a volume that was removed creates it again, labelled for compose', async () => {
    const { call } = setup();
    const service = uniqueName('bvgone').replace(/-/g, '');
    const name = `${service}_data`;
    volumes.push(name);
    const mountpoint = await createVolume(name);
    await populate(mountpoint, outside, false);
    const before = await listing(mountpoint, false);
    const request: BackupRequest = { service, entry: { type: 'volume', volume: name }, dir: join(scratch, 'b'), index: 0, manifest: 'packages/svc/manifest.yaml' };
    await call.backup(request);
    await removeVolume(name);

    expect(await call.restore(request)).toBe(true);

    const again = await run('docker', ['volume', 'inspect', '--format', '{{.Mountpoint}} {{index .Labels "com.docker.compose.project"}} {{index .Labels "com.docker.compose.volume"}}', name]);
    expect(again).toBe(`${mountpoint} ${service} data`);
    expect(await listing(mountpoint, false)).toBe(before);
  });
});

describe('backup-volume manifest entries and options', () => {
  const request = (entry: Record<string, unknown>): BackupRequest => ({ service: 'web', entry: { type: 'volume', ...entry }, dir: '/x', index: 1, manifest: 'packages/web/manifest.yaml' });
  /** An entry is parsed before anything is read: a bad one fails every part with exit 2. */
  const bad = async (entry: Record<string, unknown>) => {
    const hooks = applyPlugins({ plugins: [backupVolumePlugin()] });
    try {
      await hooks.checkBackup.for('volume').promise(request(entry), {} as RunContext);
    } catch (error) {
      expect((error as ReleaseError).exitCode).toBe(2);
      return (error as ReleaseError).message;
    }
    throw new Error('accepted');
  };

  test('exactly one of volume or path; consistency live by default', async () => {
    expect(entrySchema.parse({ volume: 'web_data' })).toEqual({ volume: 'web_data', consistency: 'live' });
    expect(entrySchema.parse({ path: '/srv/web/files', consistency: 'stop' })).toEqual({ path: '/srv/web/files', consistency: 'stop' });
    expect(await bad({})).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]: give exactly one of volume \(a docker volume name\) or path \(an absolute host folder\)/);
    expect(await bad({ volume: 'web_data', path: '/srv' })).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]: give exactly one of/);
  });

  test('errors name the manifest file and the key', async () => {
    expect(await bad({ path: 'srv/files' })).toBe('packages/web/manifest.yaml: backup[1].path: expected an absolute host path such as /srv/web/files');
    expect(await bad({ path: '/srv/../etc' })).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]\.path: expected a normalised path/);
    expect(await bad({ path: '/' })).toMatch(/backup\[1\]\.path: the root folder cannot be/);
    expect(await bad({ volume: '-v' })).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]\.volume: expected a docker volume name/);
    expect(await bad({ volume: 'web_data', consistency: 'pause' })).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]\.consistency: /);
    expect(await bad({ volume: 'web_data', compress: true })).toMatch(/^packages\/web\/manifest.yaml: backup\[1\]: unknown key compress/);
  });

  test('plugin options are validated', () => {
    expect(() => backupVolumePlugin({ compressor: 'gzip', level: 12 })).toThrow('options of plugin backup-volume: level: gzip levels are 1 to 9');
    expect(() => backupVolumePlugin({ level: 12 })).not.toThrow(); // zstd by default
    // The options reach the plugin from defaultPlugins() too (the way a platform picks gzip).
    expect(() => defaultPlugins({ backupVolume: { compressor: 'xz' as never } })).toThrow(/options of plugin backup-volume: compressor:/);
    expect(() => defaultPlugins({ backupVolume: 'gzip' as never })).toThrow(/defaultPlugins\(\).*backupVolume/);
    expect(defaultPlugins({ backupVolume: { compressor: 'gzip' } }).filter((plugin) => plugin.name === 'backup-volume')).toHaveLength(1);
    expect(() => backupVolumePlugin({ compressor: 'xz' as never })).toThrow(/options of plugin backup-volume: compressor:/);
    expect(() => backupVolumePlugin({ compressor: 'zstd', level: 12 })).not.toThrow();
  });
});
