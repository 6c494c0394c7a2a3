/**
 * `npm run bench`: the orchestrator's cost beside the raw tools it wraps, measured in one run on
 * this machine. Each row is the median of several runs; the table is printed as markdown.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import picomatch from 'picomatch';
import { Platform, ORCHESTRATOR_ROOT } from '../test/helpers/platform.js';
import { applyPlugins } from '../core/runner.js';
import { defaultPlugins } from '../release.config.js';
import { classifyAll } from '../plugins/classify/classify-all.js';
import { createDiffView } from '../shared/git/diff-view.js';
import type { ChangedFile, DiffView, RunContext } from '../core/index.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parallelRows, postgresContainerRows, postgresRows, volumeRows } from './backups.js';
import { waveRows } from './waves.js';
import { downtimeRows, printDowntime } from './downtime.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
/** The machine, for the table's header: cores and load when the bench started (other work disturbs it). */
const BENCH_MACHINE = `${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start`;
const bin = (verb: string) => join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'bin', `${verb}.js`);

async function median(runs: number, once: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  await once(); // warm the page cache
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await once();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

import type { Row } from './backups.js';

/** A diff of `count` paths of the kinds a platform repo has, all classified by the default rules. */
function syntheticDiff(count: number): ChangedFile[] {
  const kinds = [
    (i: number) => `packages/svc${i % 500}/manifest.yaml`,
    (i: number) => `packages/svc${i % 500}/compose.yaml`,
    (i: number) => `docs/area${i % 50}/page${i}.md`,
    (i: number) => `releases/${i}-change.sh`,
    (i: number) => `.github/workflows/w${i}.yml`,
  ];
  return Array.from({ length: count }, (_, i) => ({ path: kinds[i % kinds.length]!(i), status: 'M' }));
}

/** A diff whose every service has a manifest and no compose file, held in memory. */
function inMemoryDiff(files: ChangedFile[]): DiffView {
  return { base: 'a'.repeat(40), merge: 'b'.repeat(40), files, prefetch() {}, list: () => [], read: (path) => (path.endsWith('/manifest.yaml') ? 'name: x\n' : undefined) };
}

/**
 * A real repo of 200 services, each with a compose file that builds `app/` and mounts `conf/`,
 * and a diff adding 500 files to each (100,000 paths): the roles come from the compose files,
 * read with git as a release reads them.
 */
async function servicesRepo(root: string): Promise<{ dir: string; base: string; merge: string; files: ChangedFile[] }> {
  const dir = join(root, 'services-repo');
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]) => execa('git', args, { cwd: dir, env: { GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@b', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@b' } });
  await git('init', '-q', '-b', 'main');
  await git('commit', '-q', '--allow-empty', '-m', 'base');
  const base = (await git('rev-parse', 'HEAD')).stdout;
  const files: ChangedFile[] = [];
  for (let s = 0; s < 200; s++) {
    const svc = join(dir, 'packages', `svc${s}`);
    mkdirSync(join(svc, 'app', 'src'), { recursive: true });
    mkdirSync(join(svc, 'conf'), { recursive: true });
    writeFileSync(join(svc, 'manifest.yaml'), `name: svc${s}\nimage: local/svc${s}:1\n`);
    writeFileSync(join(svc, 'compose.yaml'), 'services:\n  app:\n    image: ${IMAGE}\n    build: ./app\n    volumes:\n      - ./conf:/etc/app:ro\n    env_file: app.env\n');
    files.push({ path: `packages/svc${s}/manifest.yaml`, status: 'A' }, { path: `packages/svc${s}/compose.yaml`, status: 'A' });
    for (let i = 0; i < 498; i++) {
      const path = i % 3 === 0 ? `conf/c${i}.conf` : i % 3 === 1 ? `app/src/f${i}.js` : `docs/n${i}.txt`;
      mkdirSync(join(svc, path, '..'), { recursive: true });
      writeFileSync(join(svc, path), `${i}\n`);
      files.push({ path: `packages/svc${s}/${path}`, status: 'A' });
    }
  }
  await git('add', '-A');
  await git('commit', '-q', '-m', 'services');
  return { dir, base, merge: (await git('rev-parse', 'HEAD')).stdout, files };
}

/** Classification through the hooks and the default rules, beside bare picomatch over the same globs. */
async function classificationRows(root: string): Promise<Row[]> {
  const hooks = applyPlugins({ plugins: defaultPlugins() });
  const context = { hooks } as unknown as RunContext;
  const globs = [['releases/**'], ['recovery/**'], ['release.config.ts', 'justfile'], ['docs/**', '**/*.md'], ['.github/**', '.gitignore', 'LICENSE*', 'CODEOWNERS']]
    .map((patterns) => picomatch(patterns, { dot: true }));
  const rawMatch = (files: ChangedFile[]) => files.map((f) => /^packages\/[^/]+\/(manifest|compose)\.yaml$/.test(f.path) || globs.some((m) => m(f.path)));
  const rows: Row[] = [];
  for (const count of [10_000, 100_000]) {
    const files = syntheticDiff(count);
    rows.push({
      what: `classify a diff of ${count.toLocaleString('en')} paths (default rules, through the classify hook)`,
      ours: await median(5, async () => classifyAll(context, inMemoryDiff(files))),
      rawName: 'picomatch alone, same globs',
      raw: await median(5, async () => rawMatch(files)),
    });
  }
  const repo = await servicesRepo(root);
  rows.push({
    what: 'classify 100,000 paths over 200 services, roles read from their compose files with git',
    ours: await median(5, async () => classifyAll(context, createDiffView(repo.dir, repo.base, repo.merge, repo.files))),
    rawName: 'picomatch alone, same globs',
    raw: await median(5, async () => rawMatch(repo.files)),
  });
  return rows;
}

/**
 * Loading a platform's release.config.ts that imports a plugin file of its own (TypeScript, in
 * place), beside loading the reference config alone, each in a fresh process.
 */
async function configLoadRow(platform: Platform): Promise<Row> {
  const withConfig = join(platform.root, 'with-config');
  mkdirSync(join(withConfig, 'release', 'plugins'), { recursive: true });
  writeFileSync(join(withConfig, 'release.config.ts'), "import { noteRule } from './release/plugins/note-rule.ts';\nimport type { Plugin } from 'release-orchestrator/plugin';\n\nexport default ({ defaultPlugins }: { defaultPlugins: () => Plugin[] }) => ({ plugins: [...defaultPlugins(), noteRule()] });\n");
  writeFileSync(join(withConfig, 'release', 'plugins', 'note-rule.ts'), "import { z, type Plugin } from 'release-orchestrator/plugin';\n\nconst options = z.strictObject({ pattern: z.string() });\nexport function noteRule(): Plugin {\n  const { pattern } = options.parse({ pattern: 'notes/' });\n  return { name: 'notes', apply({ hooks }) { hooks.classify.tap('notes', (file) => (file.path.startsWith(pattern) ? { kind: 'note', rule: 'notes', actions: [] } : undefined)); } };\n}\n");
  const loader = join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'config.js');
  const load = (dir: string) => execa('node', ['--input-type=module', '-e', `const { loadConfig } = await import(${JSON.stringify(loader)}); await loadConfig(${JSON.stringify(dir)});`]);
  return {
    what: 'load a platform release.config.ts that imports its own plugin file (fresh process)',
    ours: await median(RUNS, () => load(withConfig)),
    rawName: 'the same with no platform config',
    raw: await median(RUNS, () => load(platform.prod)),
  };
}

/** Start-up and a dry run with nothing to release, beside node alone and git alone. */
async function cliRows(platform: Platform): Promise<Row[]> {
  const run = (file: string, args: string[]) => execa(file, args, { cwd: platform.prod, reject: false });
  return [{
    what: 'CLI start-up (`release-run --help`)',
    ours: await median(RUNS, () => run('node', [bin('release-run'), '--help'])),
    rawName: '`node -e 0`',
    raw: await median(RUNS, () => run('node', ['-e', '0'])),
  }, {
    what: '`release-run T --dry-run`, nothing to release',
    ours: await median(RUNS, () => run('node', [bin('release-run'), 'T', '--dry-run'])),
    rawName: '`git fetch origin` + `git rev-parse HEAD`',
    raw: await median(RUNS, async () => { await run('git', ['fetch', 'origin']); await run('git', ['rev-parse', 'HEAD']); }),
  }];
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const platform = await Platform.create();
  try {
    rows.push(...(await cliRows(platform)));
    rows.push(...(await classificationRows(platform.root)));
    rows.push(await configLoadRow(platform));
  } finally {
    platform.remove();
  }
  rows.push(...(await postgresRows(Number(process.env.BENCH_PG_SCALE ?? 20))));
  rows.push(...(await postgresContainerRows(Number(process.env.BENCH_PG_SCALE ?? 20))));
  rows.push(...(await volumeRows(Number(process.env.BENCH_VOLUME_GIB ?? 1))));
  rows.push(...(await parallelRows(Number(process.env.BENCH_PARALLEL_MIB ?? 200))));
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  console.log(`\nrelease-orchestrator benchmarks, ${new Date().toISOString().slice(0, 10)}, ${BENCH_MACHINE}: start-up and dry run the median of ${RUNS} runs, classification of 5, postgres backups and restores one run each, volume rows the median of ${process.env.BENCH_VOLUME_RUNS ?? 3}\n`);
  console.log('| what | ours | raw tool | raw | ours / raw |');
  console.log('|---|---:|---|---:|---:|');
  for (const row of rows) console.log(`| ${row.what} | ${fmt(row.ours)} | ${row.rawName} | ${fmt(row.raw)} | ${(row.ours / row.raw).toFixed(2)}x |`);
  printDowntime(await downtimeRows());
}

// `node dist/bench/run.js cli|classify|config|postgres|volume|waves` runs only those rows.
const only: Record<string, (platform: Platform) => Promise<Row[]>> = {
  cli: cliRows,
  classify: (platform) => classificationRows(platform.root),
  config: async (platform) => [await configLoadRow(platform)],
  waves: async () => waveRows(),
  postgres: async () => [...(await postgresRows(Number(process.env.BENCH_PG_SCALE ?? 20))), ...(await postgresContainerRows(Number(process.env.BENCH_PG_SCALE ?? 20)))],
};
if (process.argv[2] === 'downtime') {
  printDowntime(await downtimeRows());
} else if (process.argv[2] === 'volume') {
  console.log(`volume rows, ${new Date().toISOString()}, ${BENCH_MACHINE}`);
  for (const row of await volumeRows(Number(process.env.BENCH_VOLUME_GIB ?? 1))) console.log(`| ${row.what} | ${(row.ours / 1000).toFixed(2)} s | ${row.rawName} | ${(row.raw / 1000).toFixed(2)} s | ${(row.ours / row.raw).toFixed(2)}x |`);
} else if (process.argv[2] && only[process.argv[2]]) {
  const platform = await Platform.create();
  try {
    for (const row of await only[process.argv[2]]!(platform)) console.log(`| ${row.what} | ${row.ours.toFixed(1)} ms | ${row.rawName} | ${row.raw.toFixed(1)} ms | ${(row.ours / row.raw).toFixed(2)}x |`);
  } finally {
    platform.remove();
  }
} else {
  await main();
}
