import { AsyncSeriesBailHook, AsyncSeriesHook, HookMap, SyncBailHook, SyncHook } from 'tapable';
import type { ReleaseError } from './errors.js';
import type { ExecResult } from './exec.js';
import type {
  Action, BackupRequest, BackupResult, ChangedFile, Classification, DiffView, ExecInRequest, InitResult, PruneRequest, RestoreRequest,
  RestoreTestRequest, RestoreTestResult, RunContext, LifecycleMoment, SpaceNeed, VerifyBackupsRequest, WatchSample, PlanSummary, RunningPart, WritesSince, WritesSinceRequest,
} from './types.js';

/** The domain types live in types.ts; importing them from here keeps working. */
export type * from './types.js';

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
    classify: new SyncBailHook<[ChangedFile, DiffView, RunContext], Classification | undefined>(['file', 'diff', 'context']),
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
    /** The room a restore needs on disk while it runs (a staging copy), keyed by backup type; checked before any service stops. */
    restoreSpace: new HookMap<AsyncSeriesBailHook<[RestoreRequest, RunContext], SpaceNeed | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /**
     * Optional, keyed by backup type: the writes made to an entry's data since its backup, in words
     * ("3 files modified since"), or `undefined` when the strategy cannot tell.
     */
    writesSince: new HookMap<AsyncSeriesBailHook<[WritesSinceRequest, RunContext], WritesSince | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /**
     * Optional, keyed by backup type: restores an entry's backup into a throwaway target
     * (`scratchDir`, a scratch database) and checks it; throws BACKUP_FAILED naming what is wrong.
     */
    testRestore: new HookMap<AsyncSeriesBailHook<[RestoreTestRequest, RunContext], RestoreTestResult | undefined>>(
      () => new AsyncSeriesBailHook(['request', 'context']),
    ),
    /** `release verify-backups`: pick the backups and run their restore tests (the backups plugin). */
    verifyBackups: new AsyncSeriesHook<[VerifyBackupsRequest, RunContext]>(['request', 'context']),
    /** `release prune`: remove the backups of old releases (the retention plugin). */
    prune: new AsyncSeriesHook<[PruneRequest, RunContext]>(['request', 'context']),
    /**
     * The runtimes plugins provide, keyed by a manifest's `runtime:` value: a runtime plugin taps
     * its name (the tap does nothing), and a service whose runtime nobody provides is refused early.
     */
    runtime: new HookMap<SyncHook<[]>>(() => new SyncHook([])),
    /** The drift check: taps push the actions that would converge the service. */
    plan: new AsyncSeriesHook<[string, RunContext, Action[]]>(['service', 'context', 'actions']),
    /**
     * Carries out one action, keyed by its kind; the plugin that owns the action's service returns
     * true. A kind nobody taps fails the release before any service is touched.
     */
    act: new HookMap<AsyncSeriesBailHook<[Action, RunContext], true | undefined>>(
      () => new AsyncSeriesBailHook(['action', 'context']),
    ),
    /**
     * What `act` would run for one action, keyed by its kind, for a dry run to print: the owning
     * runtime returns the command lines (to paste; a line starting with `#` says what it cannot
     * know before it runs), others `undefined`. Read-only queries (ps, inspect) may run to say it.
     */
    preview: new HookMap<AsyncSeriesBailHook<[Action, RunContext], string[] | undefined>>(
      () => new AsyncSeriesBailHook(['action', 'context']),
    ),
    /**
     * Runs a command inside a part of a service (`ExecInRequest`); the runtime that runs the
     * service returns the result (a non-zero exit is a result, not an error), others `undefined`.
     */
    execIn: new AsyncSeriesBailHook<[ExecInRequest, RunContext], ExecResult | undefined>(['request', 'context']),
    /**
     * How long an external command of a kind (e.g. `ticket`) may run, in ms, as the config sets
     * it; the first tap that knows the kind answers. Plugins give the answer to exec as deadlineMs.
     */
    deadline: new SyncBailHook<[string, RunContext], number | undefined>(['kind', 'context']),
    /** Health probes of one service; a tap throws when it is unhealthy. */
    probe: new AsyncSeriesHook<[string, RunContext]>(['service', 'context']),
    /** `release status`: the runtime that runs the service pushes what runs of it now (containers, tasks). */
    describe: new AsyncSeriesHook<[string, RunContext, RunningPart[]]>(['service', 'context', 'parts']),
    /**
     * One sample of the watch window after verify, for one service: each tap pushes what its check
     * found now (`pass`, `fail`, or `inconclusive` when it could not tell), and must return quickly.
     */
    watchCheck: new AsyncSeriesHook<[string, RunContext, WatchSample[]]>(['service', 'context', 'samples']),
    /**
     * A lifecycle moment of a service or of the repo (before and after its deploy, backup and
     * revert): the built-in plugins call it where the step happens, under the lock; the lifecycle
     * plugin runs the hooks the manifest and the config name for it. A throwing tap fails the phase.
     */
    lifecycle: new AsyncSeriesHook<[LifecycleMoment, RunContext]>(['moment', 'context']),
    /** `release init`: set up a platform repo. */
    init: new AsyncSeriesHook<[InitResult, RunContext]>(['result', 'context']),
    /**
     * A dry run wrote a saved plan (`--plan-out FILE`): taps may publish its summary where the
     * change is reviewed (the Redmine notifier posts it on the ticket). A failing tap only warns.
     */
    planWritten: new AsyncSeriesHook<[PlanSummary, RunContext]>(['plan', 'context']),
    done: new AsyncSeriesHook<[RunContext]>(['context']),
    failed: new AsyncSeriesHook<[RunContext, ReleaseError]>(['context', 'error']),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
