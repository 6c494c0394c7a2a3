/**
 * The public plugin API: what a plugin imports, built-in or a platform repo's own (by the package
 * name, `release-orchestrator/plugin`). Nothing else of the orchestrator is a stable interface.
 */
export * from '../core/index.js';
/** The command migrate.sh runs for each of its actions. */
export { STEP_BIN } from '../cli/step.js';
export { defineBackupStrategy, type BackupStrategy, type StrategyRequest } from './backup-strategy.js';
export { createArchiveStream, hashingCounter, sealArchive, verifyArchive, recordedArchive, readArchive, removeArchive, sha256OfFile, type Artifact } from './archive.js';
export { withServiceStopped } from './service-stop.js';
