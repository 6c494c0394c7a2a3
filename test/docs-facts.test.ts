/**
 * One home for each fact, and the home kept true: every hook of core/hooks.ts has its row in
 * docs/plugins.md, every exit code of core/errors.ts its row in docs/files-and-exit-codes.md (and
 * the verbs' --help names no other), every deadline kind its default in docs/configuration.md.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHooks } from '../core/hooks.js';
import { EXIT_CODES } from '../core/errors.js';
import { DEADLINE_DEFAULTS } from '../plugins/deadlines/index.js';
import { ORCHESTRATOR_ROOT, runCli } from './helpers/platform.js';

const doc = (path: string) => readFileSync(join(ORCHESTRATOR_ROOT, path), 'utf8');
/** The first cells of the body rows of the markdown tables in the section under `heading` (headers left out). */
function firstCells(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no section ${heading}`);
  const lines = markdown.slice(start + heading.length + 2).split('\n');
  const end = lines.findIndex((line) => /^#{1,3} /.test(line));
  const section = end < 0 ? lines : lines.slice(0, end);
  return section
    .filter((line, index) => line.startsWith('| ') && !/^\|[-|: ]+\|$/.test(line) && !/^\|[-|: ]+\|$/.test(section[index + 1] ?? ''))
    .map((line) => line.slice(2, line.indexOf(' |', 1)).trim());
}

describe('each fact has one home, and it is complete', () => {
  test('docs/plugins.md has a row for every hook of core/hooks.ts', () => {
    const rows = firstCells(doc('docs/plugins.md'), '## The hooks').map((cell) => /^`([a-zA-Z]+)/.exec(cell)?.[1]);
    expect(Object.keys(createHooks()).filter((hook) => !rows.includes(hook))).toEqual([]);
  });

  test('docs/files-and-exit-codes.md has a row for every exit code, named as core/errors.ts names it', () => {
    const section = doc('docs/files-and-exit-codes.md');
    const rows = new Map(firstCells(section, '## Exit codes').map((code) => [code, section.split('\n').find((line) => line.startsWith(`| ${code} |`))!]));
    for (const [name, code] of Object.entries(EXIT_CODES)) expect({ code, row: rows.get(String(code)) }).toEqual({ code, row: expect.stringContaining(`\`${name}\``) });
    expect([...rows.keys()].sort()).toEqual(['0', ...Object.values(EXIT_CODES).map(String)].sort());
  });

  test.each(['release-run', 'release-revert', 'release'])('%s --help names only documented exit codes', async (verb) => {
    const help = (await runCli(verb, ['--help'], ORCHESTRATOR_ROOT)).stdout;
    const codes = [...help.slice(help.indexOf('Exit codes:')).matchAll(/(?:^|[ ,:])(\d{1,3}) [a-z]/g)].map((match) => Number(match[1]));
    expect(codes.length).toBeGreaterThan(3);
    expect(codes.filter((code) => code !== 0 && !Object.values(EXIT_CODES).includes(code as never))).toEqual([]);
  });

  test('docs/configuration.md gives every deadline kind with its default, and operations.md repeats none', () => {
    const rows = doc('docs/configuration.md').split('\n').filter((line) => /^\| `[a-z]+` \|/.test(line));
    const shown = (ms: number) => (ms % 3_600_000 === 0 && ms >= 3_600_000 * 2 ? `${ms / 3_600_000}h` : `${ms / 60_000}m`);
    for (const [kind, ms] of Object.entries(DEADLINE_DEFAULTS)) {
      expect({ kind, row: rows.find((row) => row.startsWith(`| \`${kind}\` |`)) }).toEqual({ kind, row: expect.stringMatching(new RegExp(`\\| ${shown(ms)} \\|$`)) });
    }
    expect(doc('docs/operations.md')).not.toMatch(/\d+ (minutes|hours) by default/);
  });
});
