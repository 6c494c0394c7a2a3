/**
 * Every TypeScript snippet of docs/plugins.md is a whole file a platform team could paste: each
 * starts with `// file: PATH`, and together they type-check against the public plugin API and
 * load as a platform config.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { loadConfig } from '../core/config.js';

const guide = readFileSync(join(ORCHESTRATOR_ROOT, 'docs', 'plugins.md'), 'utf8');
const snippets = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);

describe('the snippets of docs/plugins.md', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ro-docs-'));
    // A platform repo's config is an ES module, as the loader runs it.
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('each is a whole file, named on its first line', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3);
    for (const snippet of snippets) expect(snippet).toMatch(/^\/\/ file: \S+\n/);
  });

  test('they type-check against release-orchestrator/plugin and load as a platform config', async () => {
    const files: string[] = [];
    for (const snippet of snippets) {
      const name = /^\/\/ file: (\S+)/.exec(snippet)![1]!;
      const path = join(dir, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, snippet);
      files.push(path);
    }
    const program = ts.createProgram(files, {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true, noEmit: true, skipLibCheck: true, allowImportingTsExtensions: true, types: ['node'],
      typeRoots: [join(ORCHESTRATOR_ROOT, 'node_modules', '@types')],
      baseUrl: ORCHESTRATOR_ROOT,
      paths: { 'release-orchestrator/plugin': ['api/index.ts'], 'release-orchestrator/config': ['release.config.ts'], '*': ['node_modules/*'] },
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${d.file.fileName.replace(`${dir}/`, '')}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
    expect(problems).toEqual([]);
    const { config } = await loadConfig(dir);
    expect(config.plugins.length).toBeGreaterThan(0);
  });
});
