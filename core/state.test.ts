import { mkdtempSync, readFileSync, statSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseState, serializeState, StateFile, type ReleaseState } from './state.js';
import { formatLogLine } from './audit-log.js';
import { ReleaseError } from './errors.js';

const state: ReleaseState = {
  ticket: '1234', branch: 'main', baseSha: 'a'.repeat(40), mergeSha: 'b'.repeat(40),
  services: ['redmine', 'web'], skippedMetadata: [], backups: { redmine: '20260518_153012' },
};

describe('the state file', () => {
  test('serializes in the runbook format and parses back', () => {
    const text = serializeState(state);
    expect(text).toBe(`TICKET=1234\nBRANCH=main\nBASE_SHA=${'a'.repeat(40)}\nMERGE_SHA=${'b'.repeat(40)}\nSERVICES="redmine web"\nSKIPPED_METADATA=""\nBACKUPS="redmine=20260518_153012"\n`);
    expect(parseState(text, 'x.env')).toEqual(state);
  });

  test.each([
    ['a truncated file', (t: string) => t.slice(0, t.length - 10), /the last line is cut off|expected 7 lines/],
    ['a file cut at a line end', (t: string) => t.split('\n').slice(0, 4).join('\n') + '\n', /expected 7 lines, found 4/],
    ['garbage', () => 'hello world\n', /expected 7 lines/],
    ['a shell expansion', (t: string) => t.replace('SERVICES="redmine web"', 'SERVICES="$(rm -rf /)"'), /line 5 should be SERVICES/],
    ['keys out of order', (t: string) => t.replace('TICKET=1234\nBRANCH=main', 'BRANCH=main\nTICKET=1234'), /line 1 should be TICKET/],
    ['a bad sha', (t: string) => t.replace(`BASE_SHA=${'a'.repeat(40)}`, 'BASE_SHA=HEAD'), /BASE_SHA is not a commit id/],
    ['a bad backup entry', (t: string) => t.replace('redmine=20260518_153012', 'redmine=yesterday'), /BACKUPS entry "redmine=yesterday"/],
  ])('rejects %s with exit 2 naming the file', (_name, damage, why) => {
    const parse = () => parseState(damage(serializeState(state)), '/w/releases/1234.env');
    expect(parse).toThrow(ReleaseError);
    expect(parse).toThrow(why);
    expect(parse).toThrow(/state file \/w\/releases\/1234.env is damaged/);
  });

  test('is written atomically with mode 0600 in a 0700 folder, even under umask 000', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ro-state-'));
    const previous = process.umask(0);
    try {
      const file = new StateFile(join(dir, 'releases', '1234.env'));
      file.write(state);
      expect(statSync(file.path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'releases')).mode & 0o777).toBe(0o700);
      expect(readdirSync(join(dir, 'releases'))).toEqual(['1234.env']);
      expect(file.read()).toEqual(state);
      expect(readFileSync(file.path, 'utf8').endsWith('\n')).toBe(true);
    } finally {
      process.umask(previous);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the audit log line', () => {
  test('matches the runbook format', () => {
    expect(formatLogLine('1234', 'prepare', 'done', { rc: 0 }, new Date('2026-05-18T15:30:12.345Z')))
      .toBe('2026-05-18T15:30:12+00:00 ticket=1234 phase=prepare event=done rc=0');
  });
  test('quotes a value with spaces so a line stays one event', () => {
    expect(formatLogLine('1', 'ticket', 'script', { note: 'two words\nand a newline' }, new Date(0)))
      .toBe('1970-01-01T00:00:00+00:00 ticket=1 phase=ticket event=script note="two words\\nand a newline"');
  });
});

describe('APPLIED, the actions migrate has done', () => {
  test('is absent until migrate applies one, then a last line that parses back', () => {
    expect(serializeState(state)).not.toContain('APPLIED');
    const applied = { ...state, applied: ['db:redeploy', 'web:build', 'web:redeploy'] };
    const text = serializeState(applied);
    expect(text.endsWith('BACKUPS="redmine=20260518_153012"\nAPPLIED="db:redeploy web:build web:redeploy"\n')).toBe(true);
    expect(parseState(text, 'x.env')).toEqual(applied);
  });

  test('a damaged APPLIED line is refused, naming it', () => {
    const text = serializeState({ ...state, applied: ['db:redeploy'] }).replace('APPLIED="db:redeploy"', 'APPLIED="$(reboot)"');
    expect(() => parseState(text, '/w/releases/1234.env')).toThrow('state file /w/releases/1234.env is damaged: line 8 should be APPLIED="service:kind ..."');
  });
});

describe('PRE_REVERT_HEAD and PRE_REVERT_BACKUPS, what a revert replaced', () => {
  const reverted: ReleaseState = { ...state, preRevertHead: 'c'.repeat(40), preRevertBackups: { redmine: '20260519_101500-2' } };

  test('follow the fixed keys (after APPLIED when both are there) and parse back', () => {
    const text = serializeState({ ...reverted, applied: ['db:redeploy'] });
    expect(text.endsWith(`APPLIED="db:redeploy"\nPRE_REVERT_HEAD=${'c'.repeat(40)}\nPRE_REVERT_BACKUPS="redmine=20260519_101500-2"\n`)).toBe(true);
    expect(parseState(text, '/w/releases/1234.env')).toEqual({ ...reverted, applied: ['db:redeploy'] });
    expect(parseState(serializeState(reverted), '/w/releases/1234.env')).toEqual(reverted);
  });

  test('out of order or damaged, they are refused naming the line', () => {
    const text = serializeState(reverted);
    const swapped = text.replace(/(PRE_REVERT_HEAD=.*\n)(PRE_REVERT_BACKUPS=.*\n)/, '$2$1');
    expect(() => parseState(swapped, '/w/1234.env')).toThrow('line 9 should be one of nothing (the file should end here), found "PRE_REVERT_HEAD=');
    expect(() => parseState(text.replace('c'.repeat(40), 'HEAD'), '/w/1234.env')).toThrow('PRE_REVERT_HEAD is not a commit id');
    expect(() => parseState(text.replace('redmine=20260519_101500-2', 'redmine=yesterday'), '/w/1234.env')).toThrow('PRE_REVERT_BACKUPS entry "redmine=yesterday" is not service=YYYYMMDD_HHMMSS');
  });
});
