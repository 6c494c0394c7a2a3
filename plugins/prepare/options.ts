import { z } from 'zod';
import { gitOptionsSchema } from '../git/options.js';

export const prepareOptionsSchema = gitOptionsSchema.extend({
  /** How many services are backed up at once. */
  backupConcurrency: z.number().int().min(1).max(32).default(2),
});

export type PrepareOptions = z.infer<typeof prepareOptionsSchema>;
