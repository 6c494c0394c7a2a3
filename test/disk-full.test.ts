/**
 * Faults from outside: the disk fills during a backup and during a restore, on real small tmpfs
 * filesystems mounted where the backups go and where a volume's staging copy is extracted. The
 * service (a real compose project) writes its caches to its data folder when it is stopped, so
 * the disk fills after the space check passed and while the orchestrator writes: the honest way
 * a correct estimate still meets a full disk. Each scenario is a row of the printed fault matrix.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform } from './helpers/platform.js';
import { containersOf, removeProjects, TEST_IMAGE, uniqueName } from './helpers/docker.js';
import { filesUnder, listing } from './helpers/volume.js';

const MiB = 1024 * 1024;
const matrix: string[] = [];

interface Setup {
  platform: Platform;
  service: string;
  scratch: string;
  data: string;
  /** The service reads how many MiB to write on stop from here. */
  flush: (mib: number) => void;
  mounts: string[];
}

const manifest = (service: string, data: string, tag: number) =>
  `name: ${service}\nimage: ${TEST_IMAGE}:${tag}\nbackup:\n  - type: volume\n    path: ${data}\n    consistency: stop\n`;

/** The test image, whose shell writes `/ctl/flush-mib` MiB of random bytes to /data/flush when stopped (a cache flushed on shutdown). */
const compose = (data: string, ctl: string) => [
  'services:',
  '  app:',
  '    image: ${IMAGE}',
  `    command: ["/bin/sh", "-c", "trap 'n=$$(cat /ctl/flush-mib 2>/dev/null || echo 0); head -c $$((n * 1048576)) /dev/urandom > /data/flush; exit 0' TERM INT; httpd -f -p 8080 -h /www & wait"]`,
  '    volumes:',
  `      - ${data}:/data`,
  `      - ${ctl}:/ctl:ro`,
  '',
].join('\n');

async function mountTmpfs(dir: string, mib: number): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'rodk-diskfull', dir]);
}

const grow = (dir: string, mib: number) => execa('mount', ['-o', `remount,size=${mib}m`, dir]);

/** A platform with one compose service whose data folder is `data` (4 MiB of random bytes), released once so it runs. */
async function setUp(layout: (scratch: string) => Promise<{ data: string; mounts: string[]; backupsMiB?: number }>): Promise<Setup> {
  const scratch = mkdtempSync(join(tmpdir(), 'rodk-diskfull-'));
  const { data, mounts, backupsMiB } = await layout(scratch);
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'blob'), randomBytes(4 * MiB));
  const ctl = join(scratch, 'ctl');
  mkdirSync(ctl);
  const service = uniqueName('rodk');
  const platform = await Platform.create([], {
    [`packages/${service}/manifest.yaml`]: manifest(service, data, 1),
    [`packages/${service}/compose.yaml`]: compose(data, ctl),
    'release.config.ts': 'export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ diskSpace: { marginPercent: 10, keepFree: 0 } }) });\n',
  });
  if (backupsMiB !== undefined) {
    const backups = join(platform.prod, '.asd', 'workspace', 'backups');
    await mountTmpfs(backups, backupsMiB);
    mounts.unshift(backups);
  }
  const setup: Setup = { platform, service, scratch, data, mounts, flush: (mib) => writeFileSync(join(ctl, 'flush-mib'), `${mib}\n`) };
  setup.flush(0);
  const first = await release(setup, '900', 2);
  expect(`${first.exitCode}\n${first.all}`).toMatch(/^0\n/);
  expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
  return setup;
}

async function tearDown(setup: Setup | undefined): Promise<void> {
  if (!setup) return;
  await removeProjects([setup.service]);
  for (const mount of setup.mounts) await execa('umount', [mount], { reject: false });
  setup.platform.remove();
  rmSync(setup.scratch, { recursive: true, force: true });
}

async function release(setup: Setup, ticket: string, tag: number) {
  await setup.platform.mergeFeature(ticket, { [`packages/${setup.service}/manifest.yaml`]: manifest(setup.service, setup.data, tag) });
  return setup.platform.run('release-run', [ticket]);
}

const row = (fault: string, seen: string, recovery: string, result: string) => matrix.push(`| ${fault} | ${seen} | ${recovery} | ${result} |`);

describe('the disk fills (real tmpfs), then the recovery the operator is told to use', () => {
  let setup: Setup | undefined;
  afterEach(async () => { await tearDown(setup); setup = undefined; });
  afterAll(() => {
    const header = ['| fault | what the operator sees | recovery | result |', '|---|---|---|---|'];
    process.stdout.write(`\nFault matrix (faults from outside: the disk fills, then the recovery):\n${[...header, ...matrix].join('\n')}\n\n`);
  });

  test('during a backup: exit 6, partial files removed, clone and service as they were; --from=prepare finishes once there is room', async () => {
    const fault = 'disk full (ENOSPC) during a backup, tmpfs at `.asd/workspace/backups`';
    try {
      setup = await setUp(async (scratch) => ({ data: join(scratch, 'data'), mounts: [], backupsMiB: 16 }));
      const { platform, service } = setup;
      const backups = join(platform.prod, '.asd', 'workspace', 'backups');
      const head = await platform.head();
      // 4 MiB of data fit; on stop the service writes 24 MiB more, and the archive no longer does.
      setup.flush(24);
      const failed = await release(setup, '901', 1);

      expect(failed.exitCode).toBe(6);
      expect(failed.stdout).toMatch(/prepare: space for the backups of this release: about 4\.0 MiB \+ 10% margin/);
      expect(failed.stderr).toMatch(/error: backup of \S+ path \S+ failed: no space left on device while writing \S+; \S+ was removed/);
      expect(failed.stderr).toMatch(/the partial files were removed; the filesystem of \S+ now has [\d.]+ MiB free of 16\.0 MiB/);
      expect(failed.stderr).toContain('Recovery playbook release-disk-full');
      expect(failed.stderr).not.toContain('Recovery playbook release-backup-failed');
      expect(failed.stderr).toContain('next: release-run 901 --from=prepare');
      expect(failed.stderr).toContain('release-run stopped in phase prepare; nothing was changed');
      // Partial files removed: only release 900's backup is there, nothing half-written beside it.
      const stamps = readdirSync(join(backups, service));
      expect(stamps).toHaveLength(1);
      expect(filesUnder(backups).filter((file) => !file.includes(`/${stamps[0]}/`))).toEqual([]);
      // Nothing else changed: the clone did not pull, the state records no backup, the service runs again.
      expect(await platform.head()).toBe(head);
      expect(platform.readState('901')).toMatchObject({ MERGE_SHA: '', BACKUPS: '' });
      expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
      expect(platform.logEvents('901')).toContainEqual(expect.stringMatching(new RegExp(`event=backup-failed service=${service} `)));

      await grow(backups, 96);
      const resumed = await platform.run('release-run', ['901', '--from=prepare']);
      expect(`${resumed.exitCode}\n${resumed.all}`).toMatch(/^0\n/);
      expect(platform.readState('901').BACKUPS).toMatch(new RegExp(`^${service}=\\d{8}_\\d{6}$`));
      expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
      row(fault, 'release-run exit 6 in prepare (before the pull); partial files removed; clone, state and service as they were; playbook `release-disk-full`', 'make room (grow the disk, or `release prune`), then `release-run T --from=prepare`', 'released');
    } catch (error) {
      row(fault, 'FAILED', '`release-run T --from=prepare`', 'FAILED');
      throw error;
    }
  });

  test('during a restore: refused before any service stops when short; exit 6 with the data untouched when the disk fills midway; release-revert finishes once there is room', async () => {
    const fault = 'disk full (ENOSPC) during a restore, tmpfs where the volume\'s staging copy goes';
    try {
      setup = await setUp(async (scratch) => {
        const volume = join(scratch, 'vol');
        await mountTmpfs(volume, 16);
        return { data: join(volume, 'data'), mounts: [volume] };
      });
      const { platform, service, data } = setup;
      const volume = join(setup.scratch, 'vol');
      const base = await platform.head();
      const released = await release(setup, '902', 1);
      expect(`${released.exitCode}\n${released.all}`).toMatch(/^0\n/);
      const backedUp = await listing(data, false);
      writeFileSync(join(data, 'added-by-release'), randomBytes(MiB));

      // 1. Too little room for the staging copy: refused before the service is stopped (a stop would flush 1 MiB).
      setup.flush(1);
      writeFileSync(join(volume, 'filler'), randomBytes(8 * MiB));
      const refused = await platform.run('release-revert', ['902']);
      expect(refused.exitCode).toBe(6);
      expect(refused.stderr).toMatch(new RegExp(`error: not enough space for the pre-revert backups and the restores of this release: 4\\.\\d MiB needed .* free in ${volume}; no service was stopped and nothing was restored`));
      expect(refused.stderr).toContain(`staging copy of ${service} path ${data}: about 4.0 MiB`);
      expect(refused.stderr).toContain('Recovery playbook release-restore-disk-full');
      expect(refused.stderr).not.toContain('Recovery playbook release-restore-failed');
      expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
      expect(statSync(join(data, 'flush')).size).toBe(0);
      rmSync(join(volume, 'filler'));

      // 2. Room enough when checked, but the service flushes 8 MiB on stop: the extraction fills the disk.
      setup.flush(8);
      const full = await platform.run('release-revert', ['902']);
      expect(full.exitCode).toBe(6);
      expect(full.stdout).toMatch(/restore: space for the pre-revert backups and the restores of this release: about [0-9.]+ MiB \+ 10% margin/);
      expect(full.stderr).toMatch(new RegExp(`error: restore of ${service} path ${data} from \\S+ failed: no space left on device in ${volume} \\([\\d.]+ MiB free once the partial copy was removed\\); the partial copy was removed and ${data} was not touched`));
      expect(full.stderr).toContain('Recovery playbook release-restore-disk-full');
      expect(full.stderr).toContain('next: release-revert 902');
      // The partial staging copy is gone and the data is what the service left: nothing of the backup was swapped in.
      expect(readdirSync(volume)).toEqual(['data']);
      expect(readdirSync(data).sort()).toEqual(['added-by-release', 'blob', 'flush']);
      expect(await platform.head()).not.toBe(base);

      await grow(volume, 64);
      const reverted = await platform.run('release-revert', ['902']);
      expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
      expect(await listing(data, false)).toBe(backedUp);
      expect(await platform.git(['rev-parse', 'HEAD^{tree}'])).toBe(await platform.git(['rev-parse', `${base}^{tree}`]));
      expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
      row(fault, 'release-revert exit 6 in restore: refused before any service stops when short; when the disk fills midway the staging copy is removed and the data untouched; playbook `release-restore-disk-full`', 'make room, then `release-revert T`', 'reverted: data as backed up');
    } catch (error) {
      row(fault, 'FAILED', '`release-revert T`', 'FAILED');
      throw error;
    }
  });
});
