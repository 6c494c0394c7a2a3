import { execa } from 'execa';
import { pipeline } from 'node:stream/promises';
import { constants } from 'node:os';
import { redact } from './secrets.js';
import { ReleaseError } from './errors.js';
import { findProcesses } from './pid.js';

export interface ExecOptions {
  cwd?: string;
  /** Added to the inherited environment. Never put a secret here: use a file the tool reads. */
  env?: Record<string, string | undefined>;
  input?: string;
  /** Called with each output line (stdout and stderr, redacted) as it arrives. */
  onLine?: (line: string) => void;
  /** Stops the command (SIGTERM, then SIGKILL) when aborted. */
  signal?: AbortSignal;
  /** Also send stdout to this file path (for large binary outputs such as dumps). */
  stdoutFile?: string;
  /** Let the child write to our own stdout and stderr (a re-run of ourselves); nothing is captured. */
  inheritOutput?: boolean;
  /** Feed the child's stdin from this stream (e.g. a backup being restored). */
  stdinFrom?: NodeJS.ReadableStream;
  /** Send the child's stdout, unbuffered, through this stream (e.g. a dump being written). */
  stdoutTo?: NodeJS.WritableStream;
  /** The child may exit before it has read all of stdinFrom: a closed stdin (EPIPE) is then no failure. */
  stdinMayStopEarly?: boolean;
  /**
   * How long the command may run: past it its process group is stopped (SIGTERM, then SIGKILL)
   * and exec throws a ReleaseError naming the command and how long it ran. None when absent or 0.
   */
  deadlineMs?: number;
  /** The deadline's name in that error, e.g. `ticket`: the key an operator raises in the config. */
  deadlineName?: string;
}

/**
 * How long what a command left running (a script's `daemon &`) may outlive it before it is
 * stopped: a step's processes end with the step, as a CI runner ends a job's.
 */
export const LEFTOVER_GRACE_MS = 5000;

/**
 * Set in every command's environment to a value of its own, as Jenkins marks a build's
 * processes: what the command started and left behind is found by it, even outside its group.
 */
const STEP_MARKER = 'RELEASE_ORCHESTRATOR_STEP';
let commandsStarted = 0;

export interface ExecResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved, redacted. */
  output: string;
  /**
   * What the command left running past its exit and the grace, which was then stopped: the rest
   * of its process group, and what left the group but carries its marker (`pid N: command`).
   */
  leftovers: string[];
}

/**
 * The process groups of the children running now: each child leads its own group (`detached`), so
 * a group outlives its leader for as long as anything it started runs. The release lock records
 * them (core/lock.ts): a lock whose orchestrator was killed is not stale while one of them runs.
 */
const childGroups = new Set<number>();
const childGroupListeners = new Set<(groups: readonly number[]) => void>();

/** Calls `listener` with every running child group whenever that set changes; returns the unsubscribe. */
export function watchChildGroups(listener: (groups: readonly number[]) => void): () => void {
  childGroupListeners.add(listener);
  return () => { childGroupListeners.delete(listener); };
}

function setChildGroup(pgid: number, running: boolean): void {
  if (running) childGroups.add(pgid);
  else childGroups.delete(pgid);
  for (const listener of childGroupListeners) listener([...childGroups]);
}

/** Whether any process of process group `pgid` still runs (EPERM: one runs as another user). */
export function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * The one way the orchestrator starts a process: a file and an argument array (never a shell
 * string), output captured and optionally streamed, every captured line redacted.
 * A non-zero exit does not throw: callers decide what a failure means for their phase.
 */
export async function exec(file: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const onLine = options.onLine;
  const lineTap = function* (line: unknown) {
    const text = redact(String(line));
    onLine?.(text);
    yield text;
  };
  const piped = Boolean(options.stdoutTo);
  const marker = `${process.pid}-${++commandsStarted}`;
  const subprocess = execa(file, [...args], {
    cwd: options.cwd,
    env: { ...options.env, [STEP_MARKER]: marker },
    extendEnv: true,
    input: options.input,
    stdin: options.input === undefined && !options.stdinFrom ? 'ignore' : 'pipe',
    stdout: options.inheritOutput ? 'inherit' : piped ? 'pipe' : options.stdoutFile ? { file: options.stdoutFile } : [lineTap],
    stderr: options.inheritOutput ? 'inherit' : [lineTap],
    all: !options.stdoutFile && !options.inheritOutput && !piped,
    buffer: piped ? { stdout: false, stderr: true } : true,
    reject: false,
    // Its own process group, so an interrupt stops what it started too (a script's `sleep`),
    // not only the process itself, and the pipes close.
    detached: true,
    stripFinalNewline: true,
  });
  const pgid = subprocess.pid;
  if (pgid !== undefined) setChildGroup(pgid, true);
  const killGroup = (signal: NodeJS.Signals) => {
    try { process.kill(-subprocess.pid!, signal); } catch { /* already gone */ }
  };
  const onAbort = () => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), 3000).unref();
  };
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const started = Date.now();
  let deadlinePassed = false;
  // setTimeout takes at most 2^31-1 ms (about 24 days); a larger deadline is none.
  const deadlineTimer = options.deadlineMs && options.deadlineMs > 0 && options.deadlineMs < 2 ** 31
    ? setTimeout(() => { deadlinePassed = true; onAbort(); }, options.deadlineMs)
    : undefined;
  // A stream that fails (a full disk, a corrupt archive) stops the process, and the failure is reported as its result.
  let streamError: Error | undefined;
  const streams: Promise<void>[] = [];
  if (options.stdinFrom) {
    const feeding = pipeline(options.stdinFrom, subprocess.stdin!);
    streams.push(options.stdinMayStopEarly
      ? feeding.catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_PREMATURE_CLOSE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
      })
      : feeding);
  }
  if (options.stdoutTo) streams.push(pipeline(subprocess.stdout!, options.stdoutTo));
  const streamsDone = Promise.all(streams).catch((error: Error) => {
    streamError = error;
    killGroup('SIGTERM');
  });
  const { result, leftovers } = await settleWithLeftovers(subprocess, `${STEP_MARKER}=${marker}`, LEFTOVER_GRACE_MS, () => deadlinePassed || Boolean(options.signal?.aborted));
  clearTimeout(deadlineTimer);
  // What the child left running in its group even so keeps the group recorded.
  if (pgid !== undefined && !isGroupAlive(pgid)) setChildGroup(pgid, false);
  options.signal?.removeEventListener('abort', onAbort);
  await streamsDone;
  if (deadlinePassed) throw deadlineError(file, args, options, Date.now() - started);
  if (streamError) {
    return {
      command: redact([file, ...args].join(' ')),
      exitCode: result.exitCode && result.exitCode !== 0 ? result.exitCode : 1,
      stdout: '',
      stderr: redact(`${streamError.message}${typeof result.stderr === 'string' && result.stderr ? `\n${result.stderr}` : ''}`),
      output: redact(streamError.message),
      leftovers,
    };
  }
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const failedToStart = result.exitCode === undefined && !result.signal;
  return {
    command: redact([file, ...args].join(' ')),
    // Killed by a signal: the shell's convention, 128 + its number (SIGKILL 137, SIGTERM 143).
    exitCode: result.exitCode ?? (failedToStart ? 127 : 128 + (constants.signals[result.signal as NodeJS.Signals] ?? 15)),
    stdout,
    stderr: failedToStart ? redact(result.message ?? "") : stderr,
    output: typeof result.all === 'string' ? result.all : `${stdout}\n${stderr}`.trim(),
    leftovers,
  };
}

type Subprocess = ReturnType<typeof execa>;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for the command, and for no longer than `graceMs` after its exit for what it started:
 * a background process holding our output pipes would otherwise keep the release waiting for as
 * long as it runs. Past the grace, its group is stopped (SIGTERM, SIGKILL 3 s later), our ends of
 * the pipes are closed, and the processes found are returned, described.
 */
async function settleWithLeftovers(subprocess: Subprocess, marker: string, graceMs: number, stopping: () => boolean): Promise<{ result: Awaited<Subprocess>; leftovers: string[] }> {
  const pgid = subprocess.pid;
  let graceTimer: NodeJS.Timeout | undefined;
  const exitedAt = new Promise<number>((resolve) => subprocess.once('exit', () => resolve(Date.now())));
  const graceOver = exitedAt.then(() => new Promise<'grace'>((resolve) => { graceTimer = setTimeout(() => resolve('grace'), graceMs); }));
  const settled = subprocess.then(() => 'settled' as const);
  const first = await Promise.race([settled, graceOver]);
  clearTimeout(graceTimer);
  if (first === 'settled') {
    // Stopped at its deadline or by an interrupt, its group is being stopped already: no grace.
    if (pgid === undefined || stopping() || !isGroupAlive(pgid)) return { result: await subprocess, leftovers: [] };
    // Its output is closed but its group lives on (`daemon >/dev/null &`): the rest of the grace to end.
    const exited = await exitedAt;
    while (isGroupAlive(pgid) && Date.now() - exited < graceMs) await sleep(100);
    if (!isGroupAlive(pgid)) return { result: await subprocess, leftovers: [] };
  }
  const found = findProcesses({ groups: pgid === undefined ? new Set() : new Set([pgid]), marker });
  const leftovers = found.map((left) => `pid ${left.pid}: ${redact(left.command).slice(0, 200)}`);
  // The group, and whatever left it with setsid (found by the marker).
  const targets = [...(pgid === undefined ? [] : [-pgid]), ...found.filter((left) => left.pgid !== pgid).map((left) => left.pid)];
  const signal = (name: NodeJS.Signals) => { for (const target of targets) { try { process.kill(target, name); } catch { /* gone */ } } };
  signal('SIGTERM');
  setTimeout(() => signal('SIGKILL'), 3000).unref();
  subprocess.stdout?.destroy();
  subprocess.stderr?.destroy();
  return { result: await subprocess, leftovers };
}

/** A command stopped at its deadline: what it was, how long it ran, and which setting bounds it. */
function deadlineError(file: string, args: readonly string[], options: ExecOptions, ranMs: number): ReleaseError {
  const full = redact([file, ...args].join(' '));
  const command = full.length > 300 ? `${full.slice(0, 297)}...` : full;
  const name = options.deadlineName ? ` (${options.deadlineName})` : '';
  return new ReleaseError('PHASE_FAILED', `\`${command}\` ran past its deadline${name} of ${describeMs(options.deadlineMs!)} and was stopped after ${describeMs(ranMs)}`, {
    hint: options.deadlineName
      ? `find out why it hung; if it needs longer, raise deadlines.${options.deadlineName} (defaultPlugins({ deadlines }) in release.config.ts)`
      : 'find out why it hung, then run again',
    reason: 'DEADLINE_PASSED',
  });
}

/** `2.1s`, `10m`, `4h30m`: a duration as an operator reads it (and as the config writes it). */
export function describeMs(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  const seconds = Math.round(ms / 1000);
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}
