import {
  ReleaseError, invalidInput, z, type BackupRequest, type BackupResult, type Plugin, type RestoreTestRequest, type RestoreTestResult, type RunContext, type SpaceNeed, type WritesSince,
} from '../core/index.js';

/** A backup request with the manifest entry parsed by the strategy's own schema. */
export interface StrategyRequest<Entry> extends BackupRequest {
  /** The entry, validated (defaults filled in). */
  options: Entry;
}

/**
 * A backup strategy: the four parts a release needs from it. Every part is required, so a
 * strategy that could back up but not restore is refused when the config loads (exit 2).
 */
export interface BackupStrategy<Schema extends z.ZodType> {
  /** The manifest's `backup[].type` it handles, e.g. `mariadb`. */
  type: string;
  /** Its plugin name (the tap name errors are tagged with); default `backup-<type>`. */
  name?: string;
  /** The entry's keys besides `type`, e.g. `z.strictObject({ database: z.string() })`. */
  entry: Schema;
  /** Write the backup into `request.dir` (it exists, 0700) and prove it readable. */
  backup(request: StrategyRequest<z.infer<Schema>>, context: RunContext): Promise<BackupResult>;
  /** A dry run's estimate in bytes; reads only. */
  size(request: StrategyRequest<z.infer<Schema>>, context: RunContext): Promise<number>;
  /** Before any restore of the release starts: throw BACKUP_FAILED naming a missing or corrupt file. */
  check(request: StrategyRequest<z.infer<Schema>>, context: RunContext): Promise<void>;
  /** Put the data back as it was at backup time, all or nothing. */
  restore(request: StrategyRequest<z.infer<Schema>>, context: RunContext): Promise<void>;
  /**
   * Optional: the room the restore needs on this host while it runs (e.g. a copy extracted beside
   * the data), so a revert that would fill the disk refuses before it stops any service.
   */
  restoreSpace?(request: StrategyRequest<z.infer<Schema>>, context: RunContext): Promise<SpaceNeed | undefined>;
  /**
   * Optional: the writes made to the entry's data since `since` (the backup's time), in words an
   * operator reads before a revert replaces them ("3 files modified since"), with `absent: true`
   * when the data is not there at all; `undefined` when it cannot tell. Reads only.
   */
  writesSince?(request: StrategyRequest<z.infer<Schema>>, since: Date, context: RunContext): Promise<WritesSince | undefined>;
  /**
   * Optional, for `release verify-backups`: restore the backup into a throwaway target (files into
   * `request.scratchDir`, a database into a scratch database of the same server), check what came
   * back against what the backup says it holds, and remove the target again, on failure and on
   * interrupt too (`forCleanup(context)` runs commands past an interrupt). The service's own data
   * is never touched. Throw BACKUP_FAILED naming what is wrong; return what was proven.
   */
  testRestore?(request: StrategyRequest<z.infer<Schema>> & Pick<RestoreTestRequest, 'scratchDir'>, context: RunContext): Promise<RestoreTestResult>;
}

const PARTS = ['backup', 'size', 'check', 'restore'] as const;

/** Parses a request's entry with the strategy's schema; errors name the manifest and the key (exit 2). */
function parseEntry<Schema extends z.ZodType>(strategy: BackupStrategy<Schema>, request: BackupRequest): StrategyRequest<z.infer<Schema>> {
  const { type: _type, ...keys } = request.entry;
  const parsed = strategy.entry.safeParse(keys);
  if (!parsed.success) {
    throw invalidInput(request.manifest, parsed.error, `fix that key of the ${strategy.type} backup entry`, ['backup', request.index]);
  }
  return { ...request, options: parsed.data };
}

/**
 * Turns a strategy into a plugin tapping `backup`, `sizeBackup`, `checkBackup` and `restore` for
 * its type. A strategy that lacks a part, or whose entry is not a zod schema, is refused here, at
 * config load, naming it.
 */
export function defineBackupStrategy<Schema extends z.ZodType>(strategy: BackupStrategy<Schema>): Plugin {
  const name = strategy.name ?? `backup-${strategy?.type}`;
  if (!strategy || typeof strategy.type !== 'string' || !/^[a-z][a-z0-9-]*$/.test(strategy.type)) {
    throw new ReleaseError('BAD_INPUT', `backup strategy ${name}: type must be a lower-case word like mariadb`, { hint: 'fix the strategy in release.config.ts' });
  }
  const missing = PARTS.filter((part) => typeof strategy[part] !== 'function');
  // Any zod schema will do, the platform's own copy of zod included: it only needs safeParse.
  if (typeof (strategy.entry as { safeParse?: unknown } | undefined)?.safeParse !== 'function') missing.unshift('entry' as never);
  if (missing.length > 0) {
    throw new ReleaseError('BAD_INPUT', `backup strategy ${name} lacks ${missing.join(', ')}: a strategy needs entry, backup, size, check and restore`, {
      hint: `add ${missing.join(', ')} to the strategy in release.config.ts (see docs/plugins.md)`,
    });
  }
  return {
    name,
    apply({ hooks }) {
      hooks.backup.for(strategy.type).tapPromise(name, (request, context) => strategy.backup(parseEntry(strategy, request), context));
      hooks.sizeBackup.for(strategy.type).tapPromise(name, (request, context) => strategy.size(parseEntry(strategy, request), context));
      hooks.checkBackup.for(strategy.type).tapPromise(name, async (request, context) => {
        await strategy.check(parseEntry(strategy, request), context);
        return true;
      });
      hooks.restore.for(strategy.type).tapPromise(name, async (request, context) => {
        await strategy.restore(parseEntry(strategy, request), context);
        return true;
      });
      const restoreSpace = strategy.restoreSpace?.bind(strategy);
      if (restoreSpace) hooks.restoreSpace.for(strategy.type).tapPromise(name, (request, context) => restoreSpace(parseEntry(strategy, request), context));
      const testRestore = strategy.testRestore?.bind(strategy);
      if (testRestore) hooks.testRestore.for(strategy.type).tapPromise(name, (request, context) => testRestore({ ...parseEntry(strategy, request), scratchDir: request.scratchDir }, context));
      const writesSince = strategy.writesSince?.bind(strategy);
      if (writesSince) hooks.writesSince.for(strategy.type).tapPromise(name, (request, context) => writesSince(parseEntry(strategy, request), request.since, context));
    },
  };
}
