/** The core's public surface: plugins import from here and nowhere else in core/. */
export { ReleaseError, EXIT_CODES, toReleaseError, codeOfExit, type ErrorCode } from './errors.js';
export { REASONS, REASON_NAMES, DEFAULT_REASON, type Reason, type ReasonEntry } from './reasons.js';
export { parseOptions, invalidInput, keyPath } from './options.js';
/** The zod the core validates with, for plugins' option schemas. */
export { z } from 'zod';
export { carryOut, previewOf, requireActionPlugins, describeActionPlugins } from './actions.js';
export { tappedKeys } from './tapped.js';
export { serveActions, appliedKey, ACTION_SOCKET_ENV, type ActionServer } from './action-server.js';
export { commandLine, pasteable, shellQuote, INVOKED_VIA_ENV } from './commands.js';
export { formatBytes, describeProgress, formatDuration, type TransferProgress, type TransferOptions } from './progress.js';
export type { Hooks, ChangedFile, DiffView, Action, Classification, BackupRequest, BackupResult, RestoreRequest, WritesSinceRequest, WritesSince, InitResult, ExecInRequest, WatchSample, PlanSummary, RunningPart, SpaceNeed, PruneRequest, LifecycleMoment, LifecycleEvent,
  RestoreTestRequest, RestoreTestResult, RestoreTestOutcome, VerifiedBackup, VerifyBackupsRequest,
} from './hooks.js';
export type { RunContext } from './hooks.js';
export { LIFECYCLE_EVENTS } from './types.js';
export type { Plugin, Release, ReleaseConfig } from './plugin.js';
export type { ReleaseState } from './state.js';
/** Other tickets' records, for plugins that look across releases (retention). */
export { BACKUP_STAMP, StateFile } from './state.js';
export { listTickets, readTicketHistory, type TicketRecord } from './history.js';
export { AuditLog } from './audit-log.js';
export { workspacePaths, forCleanup } from './context.js';
export { RESTORE_TEST_FILE, readRestoreTest, type RestoreTestRecord } from './history.js';
export type { ExecResult, ExecOptions } from './exec.js';
export { EventStream, EVENT_SCHEMA_VERSION, EVENT_VERBS, type ReleaseEvent, type OutcomeFields, type EventFields, type EventFieldValue, type EventListener, type EventVerb } from './events.js';
export { ReleaseEventSchema, ReleaseEventBaseSchema, KNOWN_EVENT_FIELDS, parseEventLine } from './event-schema.js';
export { registerSecret, redact } from './secrets.js';
export { writeFileAtomic, ensurePrivateDir, fsyncPath, PRIVATE_FILE_MODE, PRIVATE_DIR_MODE } from './fs-private.js';

import type { ReleaseConfig } from './plugin.js';
/** Identity helper that gives a config file its types. */
export function defineConfig(config: ReleaseConfig): ReleaseConfig {
  return config;
}
