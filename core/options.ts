import type { z } from 'zod';
import { ReleaseError } from './errors.js';

/** Validates a plugin's options; a bad one is exit 2 naming the plugin and the key. */
export function parseOptions<T extends z.ZodType>(plugin: string, schema: T, options: unknown): z.infer<T> {
  const parsed = schema.safeParse(options ?? {});
  if (!parsed.success) {
    const named = typeof (options as { name?: unknown } | undefined)?.name === 'string' ? ` named "${(options as { name: string }).name}"` : '';
    const label = `${plugin.endsWith('()') ? plugin : `plugin ${plugin}`}${named}`;
    const issue = parsed.error.issues[0]!;
    const known = Object.keys((schema as unknown as { shape?: Record<string, unknown> }).shape ?? {});
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys;
      const at = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
      throw new ReleaseError('BAD_INPUT', `options of ${label}: unknown option${keys.length > 1 ? 's' : ''} ${keys.map((key) => `"${at}${key}"`).join(', ')}`, {
        hint: issue.path.length === 0 && known.length > 0 ? `the options of ${plugin} are ${known.join(', ')}; fix release.config.ts` : `fix the options given to ${plugin} in release.config.ts`,
      });
    }
    throw new ReleaseError('BAD_INPUT', `options of ${label}: ${issue.path.join('.') || '(options)'}: ${issue.message}`, {
      hint: `fix the options given to ${plugin} in release.config.ts`,
    });
  }
  return parsed.data;
}
