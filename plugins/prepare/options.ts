import { z } from 'zod';
import { gitOptionsSchema } from '../../shared/git/options.js';
import { diskSpaceSchema, restoreTestsSchema, retentionSchema } from '../backups/options.js';

export const prepareOptionsSchema = gitOptionsSchema.extend({
  /** How many services are backed up at once. */
  backupConcurrency: z.number().int().min(1).max(32).default(2),
  /** The room the backups must find before the first is written (see plugins/backups/options.ts). */
  diskSpace: diskSpaceSchema.prefault({}),
  /** Which old releases' backups `autoPrune` removes before the backups. */
  retention: retentionSchema.prefault({}),
  /** How recent the last restore test of each service backed up must be (see plugins/backups/options.ts). */
  restoreTests: restoreTestsSchema.prefault({}),
});

export type PrepareOptions = z.infer<typeof prepareOptionsSchema>;
export type PrepareInput = z.input<typeof prepareOptionsSchema>;
