import type { z } from 'zod';
import { ReleaseError } from './errors.js';

/** `backup[0].path`, `plugins[2].name`: a zod issue's path as an operator reads it. */
export function keyPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

/**
 * The one way a failed zod parse becomes an error: exit 2, `WHERE: KEY: what is wrong`, e.g.
 * `packages/web/manifest.yaml: backup[0].path: must be absolute`. `prefix` is prepended to the key.
 */
export function invalidInput(where: string, error: z.ZodError, hint: string, prefix: readonly PropertyKey[] = []): ReleaseError {
  const issue = error.issues[0]!;
  const key = keyPath([...prefix, ...issue.path]);
  const what = issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.join(', ')}` : issue.message;
  return new ReleaseError('BAD_INPUT', `${where}: ${key ? `${key}: ` : ''}${what}`, { hint });
}

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
