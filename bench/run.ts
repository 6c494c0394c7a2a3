/**
 * `npm run bench`: the orchestrator's cost beside the raw tools it wraps, measured in one run on
 * this machine, in rounds until steady (bench/measure.ts); the table is printed as markdown.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { cpus } from 'node:os';
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

const bin = (verb: string) => join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'bin', `${verb}.js`);

import { measureRow, medianRun, STEADY_SPREAD, timed as timedRun, type Row } from './measure.js';

/** Each round of a fast row (start-up, dry run, config load): the median of this many runs. */
const PER_ROUND = Number(process.env.BENCH_RUNS ?? 5);

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
    rows.push(await measureRow(`classify a diff of ${count.toLocaleString('en')} paths (default rules, through the classify hook)`, 'picomatch alone, same globs', async () => ({
      ours: await medianRun(3, async () => classifyAll(context, inMemoryDiff(files))),
      raw: await medianRun(3, async () => rawMatch(files)),
    })));
  }
  const repo = await servicesRepo(root);
  rows.push(await measureRow('classify 100,000 paths over 200 services, roles read from their compose files with git', 'picomatch alone, same globs', async () => ({
    ours: await timedRun(async () => classifyAll(context, createDiffView(repo.dir, repo.base, repo.merge, repo.files))),
    raw: await medianRun(3, async () => rawMatch(repo.files)),
  })));
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
  return measureRow('load a platform release.config.ts that imports its own plugin file (fresh process)', 'the same with no platform config',
    async () => ({ ours: await medianRun(PER_ROUND, () => load(withConfig)), raw: await medianRun(PER_ROUND, () => load(platform.prod)) }));
}

/** Start-up and a dry run with nothing to release, beside node alone and git alone. */
async function cliRows(platform: Platform): Promise<Row[]> {
  const run = (file: string, args: string[]) => execa(file, args, { cwd: platform.prod, reject: false });
  return [
    await measureRow('CLI start-up (`release-run --help`)', '`node -e 0`', async () => ({
      ours: await medianRun(PER_ROUND, () => run('node', [bin('release-run'), '--help'])),
      raw: await medianRun(PER_ROUND, () => run('node', ['-e', '0'])),
    })),
    await measureRow('`release-run T --dry-run`, nothing to release', '`git fetch origin` + `git rev-parse HEAD`', async () => ({
      ours: await medianRun(PER_ROUND, () => run('node', [bin('release-run'), 'T', '--dry-run'])),
      raw: await medianRun(PER_ROUND, async () => { await run('git', ['fetch', 'origin']); await run('git', ['rev-parse', 'HEAD']); }),
    })),
  ];
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
  printTable(rows, await versions());
  printDowntime(await downtimeRows());
}

/** The engine, compose and node the rows ran on, for the table's header. */
async function versions(): Promise<string> {
  const engine = await execa('docker', ['version', '--format', '{{.Server.Version}}'], { reject: false });
  const compose = await execa('docker', ['compose', 'version', '--short'], { reject: false });
  const legacy = compose.exitCode === 0 ? undefined : await execa('docker-compose', ['version', '--short'], { reject: false });
  return `Docker Engine ${engine.exitCode === 0 ? engine.stdout.trim() : 'not running'}, Compose ${compose.exitCode === 0 ? `v2 ${compose.stdout.trim()}` : legacy?.exitCode === 0 ? `v1 ${legacy.stdout.trim()}` : 'not found'}, node ${process.version}`;
}

const ms = (value: number) => (value >= 10_000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(1)} ms`);

/** The markdown table: each row with its rounds, its ratio's spread and the load around it; rows that never got steady are named after it. */
function printTable(rows: readonly Row[], header: string): void {
  console.log(`\nrelease-orchestrator benchmarks, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores, ${header}`);
  console.log(`each row: rounds of ours then the raw tool until the ratio's spread is within ${STEADY_SPREAD * 100}% (at least 3, at most 5 rounds; fast commands: the median of ${PER_ROUND} runs a round); the medians\n`);
  console.log('| what | ours | raw tool | raw | ours / raw | rounds (spread) | load at start, end |');
  console.log('|---|---:|---|---:|---:|---:|---:|');
  for (const row of rows) {
    const rounds = row.runs === undefined ? '1 (not repeated)' : `${row.runs} (${((row.spread ?? 0) * 100).toFixed(0)}%)`;
    const load = row.load ? `${row.load[0].toFixed(1)}, ${row.load[1].toFixed(1)}` : '';
    console.log(`| ${row.what} | ${ms(row.ours)} | ${row.rawName} | ${ms(row.raw)} | ${(row.ours / row.raw).toFixed(2)}x | ${rounds} | ${load} |`);
  }
  const unsteady = rows.filter((row) => row.runs !== undefined && (row.spread ?? 0) > STEADY_SPREAD);
  const once = rows.filter((row) => row.runs === undefined);
  console.log(unsteady.length === 0
    ? '\nevery repeated row got steady'
    : `\nnot steady within ${unsteady[0]!.runs} rounds: ${unsteady.map((row) => `${row.what.split(':')[0]} (spread ${((row.spread ?? 0) * 100).toFixed(0)}%)`).join('; ')}`);
  if (once.length > 0) console.log(`run once (too long to repeat): ${once.map((row) => row.what.split(' (')[0]).join('; ')}`);
}

// `node dist/bench/run.js cli|classify|config|postgres|volume|waves` runs only those rows.
const only: Record<string, (platform: Platform) => Promise<Row[]>> = {
  cli: cliRows,
  classify: (platform) => classificationRows(platform.root),
  config: async (platform) => [await configLoadRow(platform)],
  waves: async () => waveRows(),
  volume: async () => [...(await volumeRows(Number(process.env.BENCH_VOLUME_GIB ?? 1))), ...(await parallelRows(Number(process.env.BENCH_PARALLEL_MIB ?? 200)))],
  postgres: async () => [...(await postgresRows(Number(process.env.BENCH_PG_SCALE ?? 20))), ...(await postgresContainerRows(Number(process.env.BENCH_PG_SCALE ?? 20)))],
};
if (process.argv[2] === 'downtime') {
  printDowntime(await downtimeRows());
} else if (process.argv[2] && only[process.argv[2]]) {
  const platform = await Platform.create();
  try {
    printTable(await only[process.argv[2]]!(platform), await versions());
  } finally {
    platform.remove();
  }
} else {
  await main();
}
