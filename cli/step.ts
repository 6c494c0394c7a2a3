import { fileURLToPath } from 'node:url';

/**
 * `release-step`: carries out one action on one service inside a running release, for the
 * generated migrate.sh. Not an operator verb: release-run holds the lock while it runs.
 */
export const STEP_BIN = fileURLToPath(new URL('./bin/release-step.js', import.meta.url));
