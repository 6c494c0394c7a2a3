import { z } from '../../api/index.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4 };

/** A size in bytes: a number, or a string such as `512MiB`, `2G`, `1.5GB` (K/M/G/T are 1024-based, KB/MB/GB/TB 1000-based). */
export const byteSize = z.union([
  z.number().int().min(0),
  z.string().transform((text, context) => {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
    const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
    if (!match || unit === undefined) {
      context.addIssue({ code: 'custom', message: `expected a size such as 512MiB, 2GiB or a number of bytes, got "${text}"` });
      return z.NEVER;
    }
    return Math.round(Number(match[1]) * unit);
  }),
], { error: (issue) => `expected a size such as 512MiB, 2GiB or a whole number of bytes, got ${JSON.stringify(issue.input)}` });

/**
 * How much room prepare's backups and revert's restores must find before they start: the
 * estimates grow by `marginPercent` (they are guesses) and `keepFree` must stay free afterwards
 * for everything else that writes to the same disk.
 */
export const diskSpaceSchema = z.strictObject({
  marginPercent: z.number().min(0).max(1000).default(10),
  keepFree: byteSize.default(256 * 1024 ** 2),
  /**
   * What a shortfall does: `refuse` (exit 6, nothing changed) or `warn` and go on, for a disk whose
   * free space the estimates overstate (a compressing filesystem, dumps much smaller than their database).
   */
  whenShort: z.enum(['refuse', 'warn']).default('refuse'),
});

/** Backup retention: `release prune` keeps the newest `keep` releases' backups; `autoPrune` makes prepare prune first. */
export const retentionSchema = z.strictObject({
  keep: z.number().int().min(0).max(10_000).default(3),
  autoPrune: z.boolean().default(false),
});

export type DiskSpaceOptions = z.infer<typeof diskSpaceSchema>;
export type RetentionOptions = z.infer<typeof retentionSchema>;
/** What a config writes (sizes as strings allowed, everything optional). */
export type DiskSpaceInput = z.input<typeof diskSpaceSchema>;
export type RetentionInput = z.input<typeof retentionSchema>;

const AGE = /^(\d+)(h|d)$/;
/** `12h`, `30d` -> milliseconds. */
export const parseAge = (text: string) => {
  const [, count, unit] = AGE.exec(text) ?? [];
  return Number(count) * (unit === 'h' ? 3_600_000 : 86_400_000);
};

/**
 * How old the last passed restore test (`release verify-backups`) of a service prepare backs up
 * may be: past `maxAge` (or never tested, once the service has a backup) prepare warns, or with
 * `whenOlder: 'refuse'` stops before anything changes (exit 6); `ignore` says nothing.
 */
export const restoreTestsSchema = z.strictObject({
  maxAge: z.string().regex(AGE, 'expected an age such as 30d or 12h').default('30d'),
  whenOlder: z.enum(['warn', 'refuse', 'ignore']).default('warn'),
});

export type RestoreTestsOptions = z.infer<typeof restoreTestsSchema>;
export type RestoreTestsInput = z.input<typeof restoreTestsSchema>;
