/**
 * "release bumping N services" rows of `npm run bench` (mode `waves`): N small web services (the
 * busybox test image, a docker volume each, backed up by the release) get a new image in one
 * release-run, beside the raw floor: the same `compose up -d` calls at the same concurrency, plus the
 * same backups taken by the raw tool (`tar | zstd` of each volume, as many at once as prepare takes).
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pMap from 'p-map';
import { Platform } from '../test/helpers/platform.js';
import { containersOf, dockerServiceFiles, removeProjects } from '../test/helpers/docker.js';
import { timed, type Row } from './backups.js';

/** Loopback ports of the bench's services (the start of a range nothing else on the host uses). */
const PORT_BASE = Number(process.env.BENCH_PORT_BASE ?? 19100);
/** Prefix of the bench's compose projects, so they never meet another's. */
const PREFIX = process.env.BENCH_PREFIX ?? 'bench';
/** prepare's default backupConcurrency. */
const BACKUP_CONCURRENCY = 2;

async function composeCommand(): Promise<string[]> {
  const v2 = await execa('docker', ['compose', 'version'], { reject: false });
  return v2.exitCode === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

/** One row: release-run of a merge bumping all `count` services from tag 1 to 2, beside the floor. */
async function bumpRow(count: number, concurrency: number): Promise<Row> {
  const names = Array.from({ length: count }, (_, i) => `${PREFIX}-w${count}-${i}`);
  const files = (tag: string) => Object.assign({}, ...names.map((name, i) => dockerServiceFiles(name, PORT_BASE + i, {
    tag, backup: `backup:\n  - type: volume\n    volume: ${name}_data`,
  }))) as Record<string, string>;
  const platform = await Platform.create([]);
  const scratch = mkdtempSync(join(tmpdir(), `${PREFIX}-waves-`));
  const [bin, ...prefix] = await composeCommand();
  try {
    await platform.mergeFeature('1', files('1'));
    const first = await platform.run('release-run', ['1']);
    if (first.exitCode !== 0) throw new Error(`the first release of ${count} services failed:\n${first.all}`);
    // Something in each volume, so that each backup has files to archive.
    await pMap(names, async (name) => execa('docker', ['exec', (await containersOf(name))[0]!.id, 'sh', '-c', 'for i in 1 2 3 4; do head -c 65536 /dev/urandom > /data/f$i; done'], { reject: false }), { concurrency: 4 });

    await platform.mergeFeature('2', files('2'));
    let released = '';
    const ours = await timed(async () => { released = (await platform.run('release-run', ['2'])).all; });
    if (!released.includes('release 2 complete')) throw new Error(`the bench release of ${count} services failed:\n${released}`);

    // The floor: the same backups with the raw tool, then the same `up -d` (back to tag 1: the same work).
    const raw = await timed(async () => {
      await pMap(names, async (name) => {
        const mount = (await execa('docker', ['volume', 'inspect', '-f', '{{.Mountpoint}}', `${name}_data`])).stdout.trim();
        await execa('sh', ['-c', 'tar -C "$1" -cf - . | zstd -q -T0 -1 > "$2"', 'sh', mount, join(scratch, `${name}.tar.zst`)]);
      }, { concurrency: BACKUP_CONCURRENCY });
      await pMap(names, (name) => execa(bin!, [...prefix, '--project-name', name, '--file', join(platform.prod, 'packages', name, 'compose.yaml'), 'up', '-d', '--remove-orphans'], {
        env: { IMAGE: 'local/testsvc:1' },
      }), { concurrency });
    });
    return {
      what: `release bumping ${count} service${count === 1 ? '' : 's'} (image, volume backup each; migrate and verify ${concurrency} at once)`,
      ours,
      rawName: `\`tar | zstd\` of each volume (${BACKUP_CONCURRENCY} at once) + \`compose up -d\` of each (${concurrency} at once)`,
      raw,
    };
  } finally {
    await removeProjects(names);
    platform.remove();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Rows for N = 1, 8 and 24 (or BENCH_WAVES="1 8"), at this host's default concurrency. */
export async function waveRows(counts = (process.env.BENCH_WAVES ?? '1 8 24').split(' ').map(Number)): Promise<Row[]> {
  const concurrency = Math.min(64, availableParallelism());
  const rows: Row[] = [];
  for (const count of counts) {
    const started = loadavg()[0]!;
    rows.push({ ...(await bumpRow(count, concurrency)), load: [started, loadavg()[0]!] });
  }
  return rows;
}
