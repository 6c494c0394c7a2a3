import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process with this pid runs on this host (EPERM means it runs as another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

export interface RunningProcess {
  pid: number;
  pgid: number;
  /** Its command line, as /proc shows it. */
  command: string;
}

/**
 * The processes of this host that are in one of `groups`, or whose environment holds `marker`
 * (`NAME=value`, inherited by everything a command started, even what left its group with
 * setsid). From /proc; none where there is no /proc.
 */
export function findProcesses(match: { groups?: ReadonlySet<number>; marker?: string }): RunningProcess[] {
  let pids: string[] = [];
  try { pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid); } catch { return []; }
  const found: RunningProcess[] = [];
  for (const name of pids) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command (which may hold spaces and parentheses): state ppid pgrp ...
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      const inGroup = match.groups?.has(pgid) ?? false;
      if (!inGroup && !(match.marker && readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(match.marker))) continue;
      const command = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      found.push({ pid: Number(name), pgid, command });
    } catch { /* it ended meanwhile, or is another user's */ }
  }
  return found;
}
