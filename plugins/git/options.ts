import { z } from 'zod';
import { ReleaseError } from '../../core/index.js';

/** A remote or branch name from config; never starting with `-`, so git cannot read it as an option. */
const refName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\/-]*$/, 'must start with a letter or digit and hold only letters, digits, . _ / -');

export const gitOptionsSchema = z.strictObject({
  remote: refName.default('origin'),
  branch: refName.default('main'),
});

export type GitOptions = z.infer<typeof gitOptionsSchema>;

/** Validates a plugin's options, naming the plugin and the key on error. */
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
