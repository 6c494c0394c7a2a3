import type { z } from 'zod';
import { ReleaseError } from './errors.js';

/** Validates a plugin's options; a bad one is exit 2 naming the plugin and the key. */
export function parseOptions<T extends z.ZodType>(plugin: string, schema: T, options: unknown): z.infer<T> {
  const parsed = schema.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ReleaseError('BAD_INPUT', `options of plugin ${plugin}: ${issue.path.join('.') || '(options)'}: ${issue.message}`, {
      hint: `fix the options given to ${plugin} in release.config.ts`,
    });
  }
  return parsed.data;
}
