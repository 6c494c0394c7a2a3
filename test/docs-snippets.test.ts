/**
 * Every TypeScript snippet of docs/plugins.md is a whole file a platform team could paste: each
 * starts with `// file: PATH`, and together they type-check against the public plugin API and
 * load as a platform config.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { execa } from 'execa';

const guide = readFileSync(join(ORCHESTRATOR_ROOT, 'docs', 'plugins.md'), 'utf8');
const all = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
/** Whole files a platform team writes. */
const snippets = all.filter((snippet) => snippet.startsWith('// file: '));
/** Excerpts of a file of this repo, which tsc compiles and a test runs. */
const excerpts = all.filter((snippet) => snippet.startsWith('// from: '));

describe('the snippets of docs/plugins.md', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ro-docs-'));
    // A platform repo's config is an ES module, as the loader runs it.
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('each is a whole file named on its first line, or an excerpt still found verbatim in the file it names', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3);
    expect(excerpts.length).toBeGreaterThanOrEqual(2);
    expect(snippets.length + excerpts.length).toBe(all.length);
    for (const excerpt of excerpts) {
      const [first, ...body] = excerpt.split('\n');
      const source = readFileSync(join(ORCHESTRATOR_ROOT, first!.replace('// from: ', '')), 'utf8');
      expect(source).toContain(body.join('\n'));
    }
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
    // Loaded by the orchestrator itself, in a process of its own (module hooks cannot run inside jest).
    const loader = join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'config.js');
    const loaded = await execa('node', ['--input-type=module', '-e',
      `const { loadConfig } = await import(${JSON.stringify(loader)}); const { config } = await loadConfig(${JSON.stringify(dir)}); console.log(config.plugins.map((p) => p.name).join(' '));`]);
    expect(loaded.stdout.split(' ')).toEqual(expect.arrayContaining(['prepare', 'migrate', 'backup-file']));
  });
});

describe('the public plugin API', () => {
  const api = readFileSync(join(ORCHESTRATOR_ROOT, 'api', 'index.ts'), 'utf8');

  test('docs/plugins.md lists exactly the names api/index.ts exports', () => {
    const exported = [...api.matchAll(/export (?:type )?\{([^}]*)\}/g)]
      .flatMap((match) => match[1]!.split(','))
      .map((name) => name.replace(/\btype\b/, '').trim())
      .filter(Boolean);
    const section = guide.slice(guide.indexOf('## The public API'), guide.indexOf('## A backup strategy in one file'));
    const listed = [...section.matchAll(/^\| ([^|]+) \|/gm)].flatMap((row) => [...row[1]!.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((name) => name[1]!));
    expect([...listed].sort()).toEqual([...exported].sort());
    expect(new Set(exported).size).toBe(exported.length);
  });

  test('api/ sits below the application: none of its files imports cli/ or plugins/', () => {
    for (const file of readdirSync(join(ORCHESTRATOR_ROOT, 'api')).filter((name) => name.endsWith('.ts'))) {
      const source = readFileSync(join(ORCHESTRATOR_ROOT, 'api', file), 'utf8');
      expect({ file, imports: [...source.matchAll(/from '([^']+)'/g)].map((match) => match[1]).filter((path) => /\/(cli|plugins)\//.test(path!)) }).toEqual({ file, imports: [] });
    }
  });
});
