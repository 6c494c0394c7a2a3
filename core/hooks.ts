import { AsyncSeriesBailHook, AsyncSeriesHook, HookMap, SyncBailHook } from 'tapable';
import type { RunContext } from './context.js';
import type { ReleaseError } from './errors.js';

/** A path of the BASE..MERGE diff. */
export interface ChangedFile {
  path: string;
  /** git's status letter: A, M, D, R (renamed from `from`), ... */
  status: string;
  from?: string;
}

/** A step that converges a service; the migrate plan and the drift check are lists of these. */
export interface Action {
  service: string;
  /** e.g. `redeploy`, `stop`, `start`. */
  kind: string;
  /** Why, in words an operator reads: "image local/web:1 -> local/web:2". */
  reason: string;
}

/** What a classifier rule says of one changed path. */
export interface Classification {
  /** e.g. manifest, compose, docs, ticket-script, orchestrator-source. */
  kind: string;
  /** The rule (plugin) that said it. */
  rule: string;
  service?: string;
  actions: Action[];
}

export interface BackupRequest {
  service: string;
  /** The manifest's `backup:` entry, as written; the strategy's plugin validates it. */
  entry: Record<string, unknown> & { type: string };
  /** This backup's folder: `.asd/workspace/backups/<svc>/<YYYYMMDD_HHMMSS>/`. */
  dir: string;
  /** The entry's position in the manifest, so two entries of one type get distinct files. */
  index: number;
  /** The strategy's own size estimate (hooks.sizeBackup), when it has one: progress shows percent and ETA. */
  expectedBytes?: number;
}

export interface BackupResult {
  /** Files written, relative to the backup folder. */
  files: string[];
  bytes: number;
}

export interface RestoreRequest extends BackupRequest {}

/** `release init`: taps write what a platform repo needs (never overwriting) and say what. */
export interface InitResult {
  /** `--example NAME`: a first service to write. */
  example?: string;
  /** Paths written, relative to the repo. */
  written: string[];
  /** Paths that existed and were left as they were. */
  kept: string[];
}

/**
 * Every hook of the orchestrator, declared once. Plugins only tap these; the core only calls them.
 */
export function createHooks() {
  return Object.freeze({
    /** The body of each phase, keyed by phase name (see phases.ts). */
    phase: new HookMap<AsyncSeriesHook<[RunContext]>>(() => new AsyncSeriesHook(['context'])),
    /** Called before a run that starts after its first phase: the state must be resumable. */
    resume: new AsyncSeriesHook<[RunContext]>(['context']),
    /** Classifier rules, tapped in order; the first that returns a classification wins. */
    classify: new SyncBailHook<[ChangedFile, RunContext], Classification | undefined>(['file', 'context']),
    /** Backup strategies, keyed by the manifest's `backup[].type`. */
    backup: new HookMap<AsyncSeriesBailHook<[BackupRequest, RunContext], BackupResult | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /** A dry run's estimate of a backup's size in bytes, keyed by backup type. */
    sizeBackup: new HookMap<AsyncSeriesBailHook<[BackupRequest, RunContext], number | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /** Checks a backup is whole (checksums) before any restore starts; throws naming the bad file. */
    checkBackup: new HookMap<AsyncSeriesBailHook<[RestoreRequest, RunContext], true | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    restore: new HookMap<AsyncSeriesBailHook<[RestoreRequest, RunContext], true | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /** The drift check: taps push the actions that would converge the service. */
    plan: new AsyncSeriesHook<[string, RunContext, Action[]]>(['service', 'context', 'actions']),
    /** Carries out one action; the runtime that knows the action's kind returns true. */
    apply: new AsyncSeriesBailHook<[Action, RunContext], true | undefined>(['action', 'context']),
    /** Health probes of one service; a tap throws when it is unhealthy. */
    probe: new AsyncSeriesHook<[string, RunContext]>(['service', 'context']),
    /** `release init`: set up a platform repo. */
    init: new AsyncSeriesHook<[InitResult, RunContext]>(['result', 'context']),
    done: new AsyncSeriesHook<[RunContext]>(['context']),
    failed: new AsyncSeriesHook<[RunContext, ReleaseError]>(['context', 'error']),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
