import { z } from 'zod';

/** A remote or branch name from config; never starting with `-`, so git cannot read it as an option. */
const refName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\/-]*$/, 'must start with a letter or digit and hold only letters, digits, . _ / -');

export const gitOptionsSchema = z.strictObject({
  remote: refName.default('origin'),
  branch: refName.default('main'),
});

export type GitOptions = z.infer<typeof gitOptionsSchema>;
