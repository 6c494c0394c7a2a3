/**
 * The README is a quick start and the reference lives in docs/ by topic: every relative link of
 * README.md and docs/*.md must reach a file of this repo and, with a `#anchor`, a heading of it
 * (GitHub's slugs), so a moved or renamed section cannot leave a dead link behind.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { slug } from './helpers/markdown.js';


function anchorsOf(markdown: string): Set<string> {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '');
  return new Set([...withoutCode.matchAll(/^#{1,6} (.+)$/gm)].map((match) => slug(match[1]!)));
}

const pages = ['README.md', ...readdirSync(join(ORCHESTRATOR_ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

describe('the links of README.md and docs/', () => {
  test('the README is a quick start of at most 20 KB that links every page of docs/', () => {
    const readme = readFileSync(join(ORCHESTRATOR_ROOT, 'README.md'), 'utf8');
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(20 * 1024);
    for (const page of pages.filter((page) => page !== 'README.md')) expect(readme).toContain(`(${page}`);
  });

  test.each(pages)('%s: every relative link reaches a file, and its #anchor a heading there', (page) => {
    const path = join(ORCHESTRATOR_ROOT, page);
    const text = readFileSync(path, 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [file, anchor] = target!.split('#') as [string, string | undefined];
      const resolved = file === '' ? path : join(dirname(path), file);
      if (!existsSync(resolved)) {
        broken.push(`${target}: no file ${relative(ORCHESTRATOR_ROOT, resolved)}`);
        continue;
      }
      if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(readFileSync(resolved, 'utf8')).has(anchor)) {
        broken.push(`${target}: no heading #${anchor} in ${relative(ORCHESTRATOR_ROOT, resolved)}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
