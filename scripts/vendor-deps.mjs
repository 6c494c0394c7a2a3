// Start-up speed: each runtime dependency is bundled into one file under dist/vendor/, and the
// compiled code imports those files instead of the packages.
//
// Why: every verb is a fresh node process, and resolving and evaluating the ~300 files of
// execa, zod, yaml and the rest cost about 0.1-0.2 s of CPU per process (issue 24: about 15 % of
// a release-run, 25 % of a revert). One file per package keeps the module graph of our own code as
// it is (so `release-orchestrator/plugin`, the reference config and the CLI still share one copy
// of every class); only the packages' insides are flattened. Types still come from node_modules.
//
// Run after tsc, on dist/ (or the folder given as the first argument); rewriting is idempotent.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, process.argv[2] ?? 'dist');
const vendorDir = join(dist, 'vendor');

/**
 * The packages the orchestrator imports at run time. Not here: typescript, cosmiconfig and
 * sucrase, loaded only when a repo has a release.config.ts (and sucrase inside the loader thread,
 * by require); jest and the test-only imports of the test files stay packages too.
 */
const VENDORED = ['execa', 'zod', 'yaml', 'tapable', 'picomatch', 'cli-progress', 'chalk', 'dotenv', 'p-map'];

// CommonJS packages bundled into an ES module still call require() for node's own modules.
const requireShim = "import { createRequire as __vendorRequire } from 'node:module'; const require = __vendorRequire(import.meta.url);";

mkdirSync(vendorDir, { recursive: true });
await Promise.all(VENDORED.map(async (name) => {
  const exported = Object.keys(await import(name));
  const named = exported.filter((key) => key !== 'default' && /^[A-Za-z_$][\w$]*$/.test(key));
  const entry = `export { ${named.join(', ')} } from '${name}';\n${exported.includes('default') ? `export { default } from '${name}';\n` : ''}`;
  await build({
    stdin: { contents: entry, resolveDir: root, loader: 'js', sourcefile: `vendor-${name}.js` },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
    outfile: join(vendorDir, `${name}.js`), banner: { js: requireShim },
  });
}));

const specifier = new RegExp(`(from |import\\()'(${VENDORED.join('|')})'`, 'g');
const compiled = (dir) => readdirSync(dir).flatMap((name) => {
  const path = join(dir, name);
  if (path === vendorDir) return [];
  return statSync(path).isDirectory() ? compiled(path) : path.endsWith('.js') ? [path] : [];
});
let rewritten = 0;
for (const file of compiled(dist)) {
  const text = readFileSync(file, 'utf8');
  const next = text.replace(specifier, (_, keyword, name) => {
    const path = relative(dirname(file), join(vendorDir, `${name}.js`));
    return `${keyword}'${path.startsWith('.') ? path : `./${path}`}'`;
  });
  if (next !== text) {
    writeFileSync(file, next);
    rewritten += 1;
  }
}
console.log(`vendor-deps: ${VENDORED.length} packages bundled into ${relative(root, vendorDir)}/, ${rewritten} compiled files now import them`);
