/**
 * The public plugin API: what a platform's own plugin imports (by the package name,
 * `release-orchestrator/plugin`), and the only part of the orchestrator that is a stable
 * interface. A short list on purpose, as Rollup's and webpack's are: the types a plugin meets,
 * failing with an exit code, validating options, writing and checking backups, running in a
 * service, keeping secrets out of output. docs/plugins.md lists exactly these names (a test holds
 * them equal). The built-in plugins use the same names from here; what only they need (the
 * action server, state and audit files, other tickets' records) they import from core/.
 */
export type {
  Plugin, Release, ReleaseConfig, RunContext, Hooks, Action, Classification, ChangedFile, DiffView, InitResult,
  BackupRequest, BackupResult, RestoreRequest, RestoreTestRequest, RestoreTestResult, WritesSince, WritesSinceRequest, SpaceNeed,
  ExecInRequest, ExecResult, ExecOptions, WatchSample, PlanSummary, RunningPart, LifecycleMoment, ReleaseState, ReleaseEvent, OutcomeFields, ErrorCode, TransferProgress,
} from '../core/index.js';
export { ReleaseError, EXIT_CODES, toReleaseError, z, parseOptions, invalidInput, registerSecret, redact, formatBytes, formatDuration, forCleanup } from '../core/index.js';
export { writeFileAtomic, ensurePrivateDir, fsyncPath, PRIVATE_FILE_MODE, PRIVATE_DIR_MODE } from '../core/index.js';
export { defineBackupStrategy, type BackupStrategy, type StrategyRequest } from './backup-strategy.js';
export { createArchiveStream, hashingCounter, sealArchive, verifyArchive, recordedArchive, readArchive, removeArchive, sha256OfFile, type Artifact } from './archive.js';
export { withServiceStopped } from './service-stop.js';
export { execInService } from './exec-in.js';
