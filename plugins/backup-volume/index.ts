/**
 * backup-volume: backs up and restores a folder of files, a docker volume or a host path, as one
 * compressed tar archive per manifest entry. See README.md beside this file.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, statfsSync } from 'node:fs';
import { isAbsolute, join, posix, relative } from 'node:path';
import {
  ReleaseError, defineBackupStrategy, formatBytes, parseOptions, recordedArchive, verifyArchive, withServiceStopped, writeFileAtomic, z,
  type BackupRequest, type BackupResult, type Plugin, type RestoreTestResult, type RunContext, type SpaceNeed, type StrategyRequest, type WritesSince,
} from '../../api/index.js';
import { makeStagingDir, removeLeftovers, replaceContents, ReplaceError, settleDeletions, stagingFor } from './replace.js';
import { describeEntry, inspectVolume, mountsInside, sourceFolder, targetFolder, type VolumeEntry } from './source.js';
import { EXTENSIONS, compareArgs, extractArgs, requireCompressor, runTarOnArchive, writeTarArchive, type Compressor } from './tar-stream.js';

export const PLUGIN_NAME = 'backup-volume';
export const TYPE = 'volume';

const optionsSchema = z.strictObject({
  /**
   * zstd (default: the host's zstd binary, multi-threaded, over ten times faster than gzip -1 at a
   * better ratio; the host needs it to back up and to restore), gzip (node's zlib: nothing to
   * install, readable anywhere), or none.
   */
  compressor: z.enum(['gzip', 'zstd', 'none']).default('zstd'),
  /** gzip 1-9, zstd 1-19; default 1, the fastest: a backup is taken while a release waits. */
  level: z.number().int().min(1).max(19).default(1),
}).refine((options) => options.compressor !== 'gzip' || options.level <= 9, { message: 'gzip levels are 1 to 9', path: ['level'] });

export type BackupVolumeOptions = z.input<typeof optionsSchema>;

/** Docker's own rule for volume names. */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]+$/;

/** A manifest entry's keys besides `type`: exactly one of `volume` or `path`. */
export const entrySchema = z.strictObject({
  volume: z.string().regex(VOLUME_NAME, 'expected a docker volume name as `docker volume ls` shows it, e.g. web_data (compose names volumes <project>_<name>)').optional(),
  path: z.string()
    .refine((path) => isAbsolute(path), 'expected an absolute host path such as /srv/web/files')
    .refine((path) => path === '/' || (posix.normalize(path) === path && !path.endsWith('/')), 'expected a normalised path: no trailing /, no . or .. parts, no //')
    .refine((path) => path !== '/', 'the root folder cannot be backed up or restored as a volume')
    .optional(),
  /** `stop`: the service's containers are stopped while the files are read; `live` (default): they keep running. */
  consistency: z.enum(['live', 'stop']).default('live'),
}).refine((entry) => (entry.volume === undefined) !== (entry.path === undefined), {
  message: 'give exactly one of volume (a docker volume name) or path (an absolute host folder), e.g. `- { type: volume, volume: web_data }`',
});

type Request = StrategyRequest<VolumeEntry>;

const fileName = (index: number, compressor: Compressor) => `${index}-${TYPE}.${EXTENSIONS[compressor]}`;

/** The archive an earlier backup wrote, whatever compressor was configured then. */
function existingArchive(request: BackupRequest, fallback: Compressor): { path: string; compressor: Compressor } {
  for (const compressor of ['gzip', 'zstd', 'none'] as Compressor[]) {
    const path = join(request.dir, fileName(request.index, compressor));
    if (existsSync(path)) return { path, compressor };
  }
  return { path: join(request.dir, fileName(request.index, fallback)), compressor: fallback };
}

function refuseNestedMounts(folder: string, what: string, doing: string): void {
  const inside = mountsInside(folder);
  if (inside.length > 0) {
    throw new ReleaseError('BACKUP_FAILED', `${what}: ${folder} has ${inside.length} filesystem(s) mounted inside it; ${doing}`, {
      lines: inside.slice(0, 10),
      hint: 'give each filesystem its own backup entry (path: the mount point), or unmount what does not belong there',
    });
  }
}

/** A folder that holds the backups themselves (e.g. a parent of the platform repo) is refused. */
function refuseHoldingBackups(request: BackupRequest, folder: string): void {
  const inside = relative(folder, request.dir);
  if (!inside.startsWith('..') && !isAbsolute(inside)) {
    throw new ReleaseError('BAD_INPUT', `${request.manifest}: backup[${request.index}].path: ${folder} holds the backup folder ${request.dir} itself`, {
      hint: 'back up a folder that does not contain the platform repo and its .asd/workspace',
    });
  }
}

async function backup(request: Request, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<BackupResult> {
  const entry = request.options;
  const what = describeEntry(request.service, entry);
  await requireCompressor(context, options.compressor, `backup of ${what}`);
  const source = await sourceFolder(context, request.service, entry);
  refuseHoldingBackups(request, source);
  refuseNestedMounts(source, what, 'the backup would mix them in and a restore would wipe them');
  const name = fileName(request.index, options.compressor);
  const write = (afterRead?: () => void) => writeTarArchive({
    context, source, expectedBytes: request.expectedBytes, dir: request.dir, name,
    compressor: options.compressor, level: options.level, what,
    // A folder that is a mount point holds a restore's staging folders while it runs: never data.
    exclude: stagingFor(source).inside ? [`./${stagingFor(source).prefix}*`] : [],
    afterRead: async () => afterRead?.(),
  });
  let written: Awaited<ReturnType<typeof writeTarArchive>>;
  if (entry.consistency === 'stop') {
    // The service is down only while its files are read; the archive is read back after it started again.
    let writing: ReturnType<typeof write> | undefined;
    const stopped = await withServiceStopped(context, request.service, `consistent backup of ${what}`, async () => {
      await new Promise<void>((resolve, reject) => {
        writing = write(resolve);
        writing.catch(reject);
      });
    });
    if (!stopped) {
      throw new ReleaseError('BACKUP_FAILED', `backup of ${what} asks for consistency: stop, but no runtime plugin stops ${request.service}`, {
        hint: 'give the service a runtime (a compose.yaml), or set consistency: live',
      });
    }
    written = await writing!;
  } else {
    written = await write();
  }
  for (const warning of written.warnings) context.out.warn(`${what}: ${warning}`);
  if (written.warnings.length > 0) {
    context.out.warn(`${what} changed while it was read; the files named above may be inconsistent in the backup (consistency: stop avoids this)`);
  }
  context.out.detail(written.entries === undefined
    ? `${written.path}: read back (sha256 ${written.sha256.slice(0, 12)}…, zstd -t)`
    : `${written.path}: ${written.entries} entries read back, ${formatBytes(written.tarBytes ?? 0)} of tar, sha256 ${written.sha256.slice(0, 12)}…`);
  // What a restore extracts: its staging copy's space is checked before any service stops.
  if (written.tarBytes !== undefined) writeFileAtomic(join(request.dir, `${name}${TAR_SIZE}`), `${written.tarBytes}\n`);
  return { files: [name, `${name}.sha256`, `${name}.size`, ...(written.tarBytes === undefined ? [] : [`${name}${TAR_SIZE}`])], bytes: written.bytes };
}

/** Beside the archive: the size of its tar stream, uncompressed. */
const TAR_SIZE = '.tar-size';

/**
 * A restore extracts the whole tree beside the data (staging) before it swaps it in: that much
 * room on the target's filesystem, as recorded at backup time (the archive's own size, at least,
 * for a backup from before it was recorded).
 */
async function restoreSpace(request: Request, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<SpaceNeed> {
  const entry = request.options;
  const archive = existingArchive(request, options.compressor);
  const recorded = Number(readFileIfThere(`${archive.path}${TAR_SIZE}`)?.trim());
  const bytes = Number.isFinite(recorded) && recorded > 0 ? recorded : statSync(archive.path, { throwIfNoEntry: false })?.size ?? 0;
  // Where the staging folder will be: beside the target (or inside it when it is a mount point).
  const target = entry.volume !== undefined ? (await inspectVolume(context, entry.volume))?.Mountpoint : entry.path;
  const parent = target === undefined ? context.workspaceDir : stagingFor(target).parent;
  return { path: parent, bytes, what: `staging copy of ${describeEntry(request.service, entry)}${Number.isFinite(recorded) && recorded > 0 ? '' : ' (at least: its unpacked size was not recorded)'}` };
}

function freeBytes(folder: string): number {
  const stats = statfsSync(folder);
  return stats.bavail * stats.bsize;
}

function readFileIfThere(path: string): string | undefined {
  try { return readFileSync(path, 'utf8'); } catch { return undefined; }
}

async function sizeBackup(request: Request, context: RunContext): Promise<number> {
  const entry = request.options;
  const source = await sourceFolder(context, request.service, entry);
  const du = await context.exec('du', ['-s', '-b', source], {});
  const bytes = Number(du.stdout.split(/\s/)[0]);
  if (du.exitCode !== 0 || !Number.isFinite(bytes)) {
    throw new ReleaseError('BACKUP_FAILED', `${describeEntry(request.service, entry)}: du -sb ${source} failed: ${du.stderr.split('\n').filter(Boolean).pop() ?? `exit ${du.exitCode}`}`);
  }
  return bytes;
}

async function checkBackup(request: Request, options: z.infer<typeof optionsSchema>): Promise<void> {
  await verifyArchive(existingArchive(request, options.compressor).path);
}

async function restore(request: Request, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<void> {
  const entry = request.options;
  const what = describeEntry(request.service, entry);
  const archive = existingArchive(request, options.compressor);
  // Its size now; its sha256 on the bytes extracted, before anything is swapped in (revert's
  // checkBackup read the whole archive already: a third pass would only slow the restore).
  const artifact = recordedArchive(archive.path);
  await requireCompressor(context, archive.compressor, `restore of ${what}`);
  const target = await targetFolder(context, request.service, entry);
  if (target.created && entry.path !== undefined) mkdirSync(target.path, { recursive: true, mode: 0o700 });
  refuseHoldingBackups(request, target.path);
  refuseNestedMounts(target.path, what, 'replacing its contents would wipe them; nothing was restored');
  const staging = stagingFor(target.path);
  // The contents an earlier restore replaced may still be going: their room is needed now.
  await settleDeletions();
  const stale = removeLeftovers(staging);
  if (stale.length > 0) context.out.detail(`removed ${stale.length} staging folder(s) an interrupted restore left in ${staging.parent}`);

  // 1. Extract everything beside the target; the target and the service are untouched until it all worked.
  const staged = makeStagingDir(staging, 'new');
  const progress = context.transfers.start(`restore ${what}`);
  const extracted = await runTarOnArchive(context, archive.path, archive.compressor, extractArgs(staged), { expectSha256: artifact.sha256, progress });
  if (!extracted.ok) {
    progress.finish('failed');
    rmSync(staged, { recursive: true, force: true });
    // GNU tar reports a full disk under extraction as a short write ("Wrote only N of M bytes").
    const full = /no space left|quota|wrote only \d+ of \d+ bytes/i.test(`${extracted.lines.join('\n')}\n${extracted.why}`);
    const why = full ? `no space left on device in ${staging.parent} (${formatBytes(freeBytes(staging.parent))} free once the partial copy was removed)` : extracted.why;
    throw new ReleaseError('BACKUP_FAILED', `restore of ${what} from ${archive.path} failed: ${why}; the partial copy was removed and ${target.path} was not touched`, {
      reason: full ? 'DISK_FULL' : undefined,
      lines: extracted.lines,
      hint: full
        ? `free space on the filesystem of ${target.path} (df -h ${staging.parent}): a restore needs room for a second copy, then run release-revert again`
        : 'see the lines above, then run release-revert again',
    });
  }
  progress.finish(`extracted into ${staged}`);

  // 2. Swap the contents in (revert stopped the service first; its redeploy starts it again).
  try {
    replaceContents(target.path, staged, staging);
  } catch (error) {
    if (!(error instanceof ReplaceError)) {
      throw new ReleaseError('BACKUP_FAILED', `restore of ${what}: the backup's files are in ${target.path}, but finishing failed: ${(error as Error).message}`, {
        hint: `compare the owner and mode of ${target.path} with the backup (tar -tvf), and remove leftover ${staging.prefix}* folders in ${staging.parent}`,
      });
    }
    const failure = error;
    if (failure.rolledBack) rmSync(staged, { recursive: true, force: true });
    throw new ReleaseError('BACKUP_FAILED', `restore of ${what} failed while replacing the contents of ${target.path}: ${failure.message}`, {
      hint: !failure.rolledBack
        ? `the old contents are in ${failure.keptIn} and the backup's in ${staged}: move them back by hand`
        : `${target.path} was put back as it was; fix the cause, then run release-revert again`,
    });
  }
  context.out.detail(`${target.path} now holds exactly the backup ${archive.path}`);
}

/** tar --compare's lines that name a difference, e.g. `./a: Contents differ`, `./l: Not linked to ./m`. */
const DIFFERENCE = /^(.*?): (.+ differs?|Not linked to .*|Cannot .*|Warning: .*|File type differs|Does not exist)$/;

/**
 * The restore test: the archive extracted into the scratch folder exactly as a restore extracts it
 * (the sha256 checked on the bytes read), then read a second time and compared member by member
 * with what landed (`tar --compare`: contents, size, mode, owner, times, link targets, hard links).
 * A damaged archive fails the extraction (zstd's and gzip's own checksums cover every byte; an
 * uncompressed tar has none for file contents, so only its headers are proven).
 */
async function testRestore(request: Request & { scratchDir: string }, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<RestoreTestResult> {
  const what = describeEntry(request.service, request.options);
  const archive = existingArchive(request, options.compressor);
  const artifact = recordedArchive(archive.path);
  await requireCompressor(context, archive.compressor, `restore test of ${what}`);
  const fail = (why: string, lines: string[] = []) => new ReleaseError('BACKUP_FAILED', `restore test of ${what} from ${archive.path}: ${why}`, {
    lines, hint: 'this backup would not restore as it was taken: take a new one (the next release of the service does), and check the disk (dmesg)',
  });
  const progress = context.transfers.start(`restore test ${what}`);
  const extracted = await runTarOnArchive(context, archive.path, archive.compressor, extractArgs(request.scratchDir), { expectSha256: artifact.sha256, progress });
  if (!extracted.ok) {
    progress.finish('failed');
    throw fail(`extracting it into a scratch folder failed: ${extracted.why}`, extracted.lines);
  }
  progress.finish('extracted');
  let members = 0;
  const differences: string[] = [];
  const compared = await runTarOnArchive(context, archive.path, archive.compressor, compareArgs(request.scratchDir), {
    expectSha256: artifact.sha256,
    onLine: (line) => {
      if (DIFFERENCE.test(line)) differences.push(line);
      else if (line.startsWith('./') || line === '.') members++;
    },
  });
  if (differences.length > 0) throw fail(`${differences.length} difference(s) between the archive and what it restored: ${differences.slice(0, 3).join('; ')}`, differences.slice(3, 10));
  if (!compared.ok) throw fail(`comparing what it restored with the archive failed: ${compared.why}`, compared.lines);
  return { words: `${members} files and folders restored into a scratch folder match the archive (tar --compare: contents, modes, owners, times, links)` };
}

/** The most entries a writes-since scan reads: past it the count is a lower bound. */
const SCAN_LIMIT = 200_000;

/**
 * The files and folders of the entry's data modified after `since` (by modification time: a
 * folder's changes when an entry in it is added or removed): what a restore would throw away.
 */
async function writesSince(request: Request, since: Date, context: RunContext): Promise<WritesSince> {
  const entry = request.options;
  const folder = entry.volume !== undefined ? (await inspectVolume(context, entry.volume))?.Mountpoint : entry.path;
  const what = describeEntry(request.service, entry);
  if (!folder || !existsSync(folder)) return { words: `${what} is not there now: nothing of it is replaced`, absent: true };
  let scanned = 0;
  let modified = 0;
  let newest: { path: string; time: number; folder: boolean } | undefined;
  const pending = [folder];
  while (pending.length > 0 && scanned < SCAN_LIMIT) {
    const dir = pending.pop()!;
    for (const item of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, item.name);
      const stats = lstatSync(path, { throwIfNoEntry: false });
      if (!stats) continue;
      scanned++;
      if (stats.mtimeMs > since.getTime()) {
        modified++;
        // A file names the write better than the folder it was added to (same time).
        const rank = (candidate: { time: number; folder: boolean }) => candidate.time - (candidate.folder ? 1 : 0);
        const found = { path: relative(folder, path), time: stats.mtimeMs, folder: stats.isDirectory() };
        if (!newest || rank(found) > rank(newest)) newest = found;
      }
      if (item.isDirectory()) pending.push(path);
    }
  }
  const bound = scanned >= SCAN_LIMIT ? `at least ` : '';
  if (modified === 0) return { words: `${what}: ${bound ? `none of the first ${scanned}` : `none of its ${scanned}`} files and folders modified since the backup` };
  return { words: `${what}: ${bound}${modified} of ${scanned} files and folders modified since the backup (newest: ${newest!.path}, ${new Date(newest!.time).toISOString().slice(0, 19).replace('T', ' ')} UTC)` };
}

export function backupVolumePlugin(rawOptions: BackupVolumeOptions = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  return defineBackupStrategy({
    type: TYPE,
    name: PLUGIN_NAME,
    entry: entrySchema,
    backup: (request, context) => backup(request, context, options),
    size: sizeBackup,
    check: (request) => checkBackup(request, options),
    restore: (request, context) => restore(request, context, options),
    restoreSpace: (request, context) => restoreSpace(request, context, options),
    writesSince,
    testRestore: (request, context) => testRestore(request, context, options),
  });
}
