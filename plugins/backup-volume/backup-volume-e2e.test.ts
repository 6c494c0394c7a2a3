import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform, manifestYaml } from '../../test/helpers/platform.js';
import { containersOf, dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from '../../test/helpers/docker.js';
import { listing, pathWithoutZstd, populate, run } from '../../test/helpers/volume.js';

describe('a volume backup through release-run and release-revert (real git, real compose service)', () => {
  let platform: Platform;
  let service: string;
  let scratch: string;
  beforeEach(async () => {
    platform = await Platform.create([]);
    service = uniqueName('vol');
    scratch = mkdtempSync(join(tmpdir(), 'bv-e2e-'));
  });
  afterEach(async () => {
    await removeProjects([service]);
    platform.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('(6) ticket 9999 writes into the volume and fails; release-revert 9999 puts the volume back exactly, the service healthy', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const volume = `${service}_data`; // compose names the volume `data` of project <service> so
    await platform.mergeFeature('100', dockerServiceFiles(service, port));
    const deployed = await platform.run('release-run', ['100']);
    expect(deployed.exitCode).toBe(0);

    const mountpoint = await run('docker', ['volume', 'inspect', '--format', '{{.Mountpoint}}', volume]);
    const outside = join(scratch, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep.txt'), 'keep\n');
    await populate(mountpoint, outside);
    const before = await listing(mountpoint);

    const manifest = dockerServiceFiles(service, port, {
      tag: '2',
      backup: ['backup:', '  - type: volume', `    volume: ${volume}`].join('\n'),
    })[`packages/${service}/manifest.yaml`]!;
    await platform.mergeFeature('9999', {
      [`packages/${service}/manifest.yaml`]: manifest,
      'releases/9999-fill-volume.sh': [
        '#!/bin/sh',
        'set -e',
        `docker run --rm -v ${volume}:/data local/testsvc:1 sh -c 'echo junk > /data/added-by-9999.txt; rm -f /data/a.txt /data/.hidden; chmod 600 /data/run.sh; chown 0:0 /data/owned; mkdir -p /data/new/dir; rmdir /data/empty; echo changed > /data/secret.key'`,
        'echo "step 2 of the data migration failed" >&2',
        'exit 1',
        '',
      ].join('\n'),
    });

    const preview = await platform.run('release-run', ['9999', '--dry-run']);
    expect(preview.exitCode).toBe(0);
    expect(preview.stdout).toMatch(new RegExp(`would back up ${service}: volume \\(about \\d+(\\.\\d)? KiB before compression\\)`));

    const failed = await platform.run('release-run', ['9999']);

    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('release-run failed in phase ticket. To roll back:');
    expect(failed.stdout).toMatch(new RegExp(`backup ${service} volume ${volume}: done \\(.* zstd in 0-volume\\.tar\\.zst\\)`));
    const stamp = (platform.readState('9999').BACKUPS ?? '').replace(`${service}=`, '');
    expect(stamp).toMatch(/^\d{8}_\d{6}$/);
    const backupDir = join(platform.prod, '.asd/workspace/backups', service, stamp);
    expect(readdirSync(backupDir).sort()).toEqual(['.entries.json', '0-volume.tar.zst', '0-volume.tar.zst.sha256', '0-volume.tar.zst.size', '0-volume.tar.zst.tar-size']);
    // What a restore will extract, for its space check: the tar stream's size, as zstd -d gives it back.
    const unpacked = await execa('sh', ['-c', 'zstd -dc "$1" | wc -c', 'sh', join(backupDir, '0-volume.tar.zst')]);
    expect(readFileSync(join(backupDir, '0-volume.tar.zst.tar-size'), 'utf8')).toBe(`${unpacked.stdout.trim()}\n`);
    expect((statSync(join(backupDir, '0-volume.tar.zst')).mode & 0o777).toString(8)).toBe('600');
    expect(await listing(mountpoint)).not.toBe(before);
    expect((await httpGet(`${url}/version`)).body).toBe('2');

    const reverted = await platform.run('release-revert', ['9999']);

    expect(reverted.exitCode).toBe(0);
    expect(reverted.stdout).toContain(`backup volume of ${service} checked`);
    expect(await listing(mountpoint)).toBe(before);
    expect((await containersOf(service)).map((c) => c.state)).toEqual(['running']);
    expect((await httpGet(`${url}/health`)).status).toBe(200);
    expect((await httpGet(`${url}/version`)).body).toBe('1');
    expect(platform.logEvents('9999')).toEqual(expect.arrayContaining([
      expect.stringMatching(new RegExp(`^ticket=9999 phase=prepare event=backup service=${service} at=${stamp} bytes=\\d+$`)),
      `ticket=9999 phase=restore event=restored service=${service} type=volume`,
      'ticket=9999 phase=revert-verify event=done rc=0',
    ]));
    expect(readdirSync(outside)).toEqual(['keep.txt']);
  });

  test('(9) a prod host without zstd: release-run stops before any backup with exit 6 and one line saying how to install it or choose gzip', async () => {
    const data = join(scratch, 'files');
    mkdirSync(data);
    writeFileSync(join(data, 'f.txt'), 'data\n');
    const files = await Platform.create([{ name: 'files' }]);
    try {
      await files.mergeFeature('200', { 'packages/files/manifest.yaml': manifestYaml({ name: 'files', image: 'local/files:2', extra: `backup:\n  - type: volume\n    path: ${data}\n` }) });
      const noZstd = pathWithoutZstd(join(scratch, 'bin'));

      const result = await files.run('release-run', ['200'], { PATH: noZstd });

      expect(result.exitCode).toBe(6);
      expect(result.stderr.split('\n')).toContain(`[release-run] error: backup of files path ${data} needs zstd, which is not on this host's PATH: install it (apt-get install zstd) or choose compressor: 'gzip' in release.config.ts (defaultPlugins({ backupVolume: { compressor: 'gzip' } })) (plugin backup-volume, hook backup.for(volume))`);
      expect(existsSync(join(files.prod, '.asd/workspace/backups/files'))).toBe(false); // nothing was written
    } finally {
      files.remove();
    }
  });
});
