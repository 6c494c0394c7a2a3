/**
 * Where an entry's files are on this host: a docker volume's Mountpoint (asked of the engine) or a
 * host folder; and the mounts that make a folder unsafe to archive or replace.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { ReleaseError, type RunContext } from '../../api/index.js';
import { dockerCommands, runDocker } from '../../shared/docker/command.js';

export interface VolumeEntry {
  volume?: string;
  path?: string;
  consistency: 'live' | 'stop';
}

/** "web volume web_data" or "web path /srv/web/files", for messages and progress lines. */
export function describeEntry(service: string, entry: VolumeEntry): string {
  return entry.volume !== undefined ? `${service} volume ${entry.volume}` : `${service} path ${entry.path}`;
}

interface VolumeInfo {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Options: Record<string, string> | null;
  Labels: Record<string, string> | null;
}

export async function inspectVolume(context: RunContext, name: string): Promise<VolumeInfo | undefined> {
  const result = await runDocker(context, dockerCommands.volumeInspect(name));
  if (result.exitCode !== 0) {
    // Engine 20.10 says "no such volume", Engine 26 "volume NAME not found".
    if (/no such volume|volume \S+ not found/i.test(result.stderr)) return undefined;
    throw new ReleaseError('BACKUP_FAILED', `docker volume inspect ${name} failed: ${result.stderr.split('\n').filter(Boolean).pop() ?? `exit ${result.exitCode}`}`, {
      hint: 'is the Docker engine running? (docker info)',
    });
  }
  return JSON.parse(result.stdout) as VolumeInfo;
}

/** Compose names a project's volume `<project>_<name>`: the likely full names for a short one. */
async function likelyNames(context: RunContext, service: string, name: string): Promise<string[]> {
  const result = await runDocker(context, dockerCommands.volumeNames());
  if (result.exitCode !== 0) return [];
  const names = result.stdout.split('\n').filter(Boolean);
  return names.filter((candidate) => candidate === `${service}_${name}` || candidate.endsWith(`_${name}`)).slice(0, 5);
}

/** A volume whose files live in its Mountpoint: the local driver without mount options. */
function requirePlainLocal(info: VolumeInfo, what: string): void {
  const options = Object.keys(info.Options ?? {});
  if (info.Driver !== 'local' || options.length > 0) {
    throw new ReleaseError('BACKUP_FAILED', `${what}: driver ${info.Driver}${options.length ? ` with options ${options.join(',')}` : ''} keeps its files elsewhere than its Mountpoint`, {
      hint: 'back up where its data really is, e.g. `type: volume, path: /the/nfs/or/bind/source`',
    });
  }
}

/** The folder an entry archives; BACKUP_FAILED naming it when it is missing. */
export async function sourceFolder(context: RunContext, service: string, entry: VolumeEntry): Promise<string> {
  const what = describeEntry(service, entry);
  if (entry.volume !== undefined) {
    const info = await inspectVolume(context, entry.volume);
    if (!info) {
      const guesses = await likelyNames(context, service, entry.volume);
      throw new ReleaseError('BACKUP_FAILED', `${what}: docker volume ${entry.volume} does not exist`, {
        hint: guesses.length > 0
          ? `compose prefixes volume names with the project: did you mean ${guesses.join(' or ')}? Give the full name as docker volume ls shows it`
          : 'give the full name as `docker volume ls` shows it (compose names it <project>_<volume>), and check the service was deployed',
      });
    }
    requirePlainLocal(info, what);
    if (!existsSync(info.Mountpoint)) {
      throw new ReleaseError('BACKUP_FAILED', `${what}: its Mountpoint ${info.Mountpoint} does not exist on this host`, {
        hint: 'the orchestrator must run on the Docker host itself, as root',
      });
    }
    return info.Mountpoint;
  }
  const path = entry.path!;
  if (!existsSync(path)) {
    throw new ReleaseError('BACKUP_FAILED', `${what}: ${path} does not exist`, { hint: 'fix backup[].path in the manifest, or create the folder' });
  }
  const real = realpathSync(path);
  if (!statSync(real).isDirectory()) {
    throw new ReleaseError('BACKUP_FAILED', `${what}: ${path} is not a folder`, { hint: 'backup[].path names a folder whose contents are backed up' });
  }
  return real;
}

/**
 * The folder a restore fills; a docker volume that no longer exists is created again (labelled as
 * compose's own when its name is `<service>_<name>`, so compose adopts it), a missing host folder too.
 */
export async function targetFolder(context: RunContext, service: string, entry: VolumeEntry): Promise<{ path: string; created: boolean }> {
  const what = describeEntry(service, entry);
  if (entry.volume !== undefined) {
    let info = await inspectVolume(context, entry.volume);
    let created = false;
    if (!info) {
      const result = await runDocker(context, dockerCommands.createProjectVolume(service, entry.volume));
      if (result.exitCode !== 0) {
        throw new ReleaseError('BACKUP_FAILED', `${what} is gone and could not be created again: ${result.stderr.trim()}`, { hint: 'is the Docker engine running? (docker info)' });
      }
      info = await inspectVolume(context, entry.volume);
      if (!info) throw new ReleaseError('BACKUP_FAILED', `${what}: docker volume create said yes but the volume is not there`);
      created = true;
    }
    requirePlainLocal(info, what);
    return { path: info.Mountpoint, created };
  }
  const path = entry.path!;
  if (!existsSync(path)) return { path, created: true };
  const real = realpathSync(path);
  if (!statSync(real).isDirectory()) {
    throw new ReleaseError('BACKUP_FAILED', `${what}: ${path} is not a folder; nothing was restored`, { hint: 'move what is there away, then run the revert again' });
  }
  return { path: real, created: false };
}

/** The host's mount points (this process's mount namespace), from /proc/self/mountinfo. */
export function mountPoints(): string[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((line) => line.split(' ')[4] ?? '')
    .map((field) => field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/** Filesystems mounted inside `folder` (not at it): tar would mix them in, a restore would wipe them. */
export function mountsInside(folder: string): string[] {
  const prefix = folder.endsWith('/') ? folder : `${folder}/`;
  return mountPoints().filter((mount) => mount.startsWith(prefix));
}

export function isMountPoint(folder: string): boolean {
  return mountPoints().includes(folder);
}
