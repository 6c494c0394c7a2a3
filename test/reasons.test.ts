/**
 * The failure reasons' catalogue (core/reasons.ts) is complete where operators meet it: every
 * reason has its docs entry and its row in docs/files-and-exit-codes.md, and a playbook decision
 * (the shipped playbooks it names match on it, or it deliberately has none); every shipped
 * playbook matches on reasons, never on a message's wording.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_CODES, REASONS, ReleaseError, type Reason } from '../core/index.js';
import { loadPlaybooks, SHIPPED_PLAYBOOKS } from '../plugins/playbooks/index.js';
import { ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { slug } from './helpers/markdown.js';

const doc = (path: string) => readFileSync(join(ORCHESTRATOR_ROOT, path), 'utf8');
const entries = Object.entries(REASONS) as [Reason, (typeof REASONS)[Reason]][];
const playbooks = loadPlaybooks([SHIPPED_PLAYBOOKS]).playbooks;
const reasonsOf = (id: string) => [playbooks.find((playbook) => playbook.id === id)?.matches.reason ?? []].flat();

describe('failure reasons', () => {
  test.each(entries)('%s has a docs entry that exists', (_name, entry) => {
    const [file, anchor] = entry.docs.split('#');
    const headings = new Set([...doc(file!).matchAll(/^#{1,6} (.+)$/gm)].map((match) => slug(match[1]!)));
    expect(headings.has(anchor!)).toBe(true);
  });

  test.each(entries)('%s has a playbook decision: the shipped playbooks it names match on it', (name, entry) => {
    for (const id of [entry.playbook ?? []].flat()) expect({ id, reasons: reasonsOf(id) }).toEqual({ id, reasons: expect.arrayContaining([name]) });
  });

  test('every shipped playbook matches on reasons its catalogue entries name, and on no message text', () => {
    for (const playbook of playbooks) {
      expect({ id: playbook.id, output: playbook.matches.output }).toEqual({ id: playbook.id, output: undefined });
      const reasons = [playbook.matches.reason ?? []].flat();
      expect({ id: playbook.id, count: reasons.length > 0 }).toEqual({ id: playbook.id, count: true });
      for (const reason of reasons) expect({ id: playbook.id, reason, listed: ([REASONS[reason].playbook ?? []].flat() as string[]).includes(playbook.id) }).toEqual({ id: playbook.id, reason, listed: true });
    }
  });

  test('docs/files-and-exit-codes.md has one row per reason, with its exit code', () => {
    const rows = doc('docs/files-and-exit-codes.md').split('\n').filter((line) => /^\| `[A-Z_]+` \| \d+ \|/.test(line));
    expect(rows.map((row) => /^\| `([A-Z_]+)`/.exec(row)![1]).sort()).toEqual(entries.map(([name]) => name).sort());
    for (const [name, entry] of entries) expect(rows.find((row) => row.startsWith(`| \`${name}\` |`))).toMatch(new RegExp(`^\\| \`${name}\` \\| ${EXIT_CODES[entry.code]} \\|`));
  });

  test('an error names its reason, keeps it through a wrapper, and falls back to its code\'s default', () => {
    const full = new ReleaseError('BACKUP_FAILED', 'no space left on device', { reason: 'DISK_FULL' });
    expect(full.reason).toBe('DISK_FULL');
    expect(new ReleaseError('BACKUP_FAILED', `wrapped: ${full.message}`, { cause: full }).reason).toBe('DISK_FULL');
    // A deadline stays a deadline inside a failed backup (exit 6).
    expect(new ReleaseError('BACKUP_FAILED', 'pg_dump failed', { cause: new ReleaseError('PHASE_FAILED', 'ran past its deadline', { reason: 'DEADLINE_PASSED' }) }).reason).toBe('DEADLINE_PASSED');
    expect(new ReleaseError('INTERRUPTED', 'interrupted', { cause: new ReleaseError('PHASE_FAILED', 'x', { reason: 'TICKET_SCRIPT_FAILED' }) }).reason).toBe('INTERRUPTED');
    expect(new ReleaseError('PHASE_FAILED', 'something').reason).toBe('UNCLASSIFIED');
    expect(new ReleaseError('LOCKED', 'held').reason).toBe('LOCK_HELD');
  });
});
