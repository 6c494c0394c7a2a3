/**
 * Each character a ticket id must not hold is refused on its own (exit 2, before anything is read
 * or written), not only in company: `a;b`, `a b`, `a$b`, `a/b`, a newline, a leading `-`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { validateTicket } from './cli.js';
import { ReleaseError } from '../core/errors.js';
import { Platform } from '../test/helpers/platform.js';

const FORBIDDEN_ALONE = [['a;b'], ['a b'], ['a$b'], ['a/b'], ['a\nb'], ['-ab'], ['a`b'], ['a.b'], ['a\\b'], ['a\'b'], ['a*b'], ['_ab']];

describe('a ticket id with one forbidden character', () => {
  test.each(FORBIDDEN_ALONE)('%j is refused with exit 2 naming it', (ticket) => {
    const check = () => validateTicket(ticket);
    expect(check).toThrow(ReleaseError);
    expect(check).toThrow(`invalid ticket id ${JSON.stringify(ticket)}`);
    try { check(); } catch (error) { expect((error as ReleaseError).exitCode).toBe(2); }
  });

  test.each([['a-b'], ['a_b'], ['A1'], ['1234']])('%j is accepted', (ticket) => {
    expect(validateTicket(ticket)).toBe(ticket);
  });

  test('the verbs refuse each on its own, writing nothing', async () => {
    const platform = await Platform.create();
    try {
      for (const [ticket] of FORBIDDEN_ALONE.slice(0, 6)) {
        // After `--` even a leading `-` reaches the ticket check as the ticket id.
        const result = await platform.run('release-run', ['--dry-run', '--', ticket!]);
        expect(`${result.exitCode} ${result.stderr.split('\n')[0]}`).toBe(`2 [release-run] error: invalid ticket id ${JSON.stringify(ticket)}`);
      }
      expect(existsSync(join(platform.prod, '.asd'))).toBe(false);
    } finally {
      platform.remove();
    }
  });
});
