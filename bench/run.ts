/**
 * `npm run bench`: the orchestrator's cost beside the raw tools it wraps, measured in one run on
 * this machine. Each row is the median of several runs; the table is printed as markdown.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { Platform, ORCHESTRATOR_ROOT } from '../test/platform.js';
import { applyPlugins } from '../core/runner.js';
import { defaultPlugins } from '../release.config.js';
import { classifyAll } from '../plugins/migrate/index.js';
import type { ChangedFile, RunContext } from '../core/index.js';
import { parallelRows, postgresRows, volumeRows } from './backups.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const bin = (verb: string) => join(ORCHESTRATOR_ROOT, 'dist', 'core', 'bin', `${verb}.js`);

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
    (i: number) => `plugins/p${i % 20}/file${i}.ts`,
  ];
  return Array.from({ length: count }, (_, i) => ({ path: kinds[i % kinds.length]!(i), status: 'M' }));
}

/** Classification through the hooks and the default rules, beside bare picomatch over the same globs. */
async function classificationRows(): Promise<Row[]> {
  const hooks = applyPlugins({ plugins: defaultPlugins() });
  const context = { hooks } as unknown as RunContext;
  const globs = [['releases/**'], ['recovery/**'], ['docs/**', '**/*.md'], ['core/**', 'plugins/**', 'release.config.ts', 'package.json', 'package-lock.json', 'justfile']]
    .map((patterns) => picomatch(patterns, { dot: true }));
  const rows: Row[] = [];
  for (const count of [10_000, 100_000]) {
    const files = syntheticDiff(count);
    rows.push({
      what: `classify a diff of ${count.toLocaleString('en')} paths (default rules, through the classify hook)`,
      ours: await median(5, async () => classifyAll(context, files)),
      rawName: 'picomatch alone, same globs',
      raw: await median(5, async () => files.map((f) => /^packages\/[^/]+\/(manifest|compose)\.yaml$/.test(f.path) || globs.some((m) => m(f.path)))),
    });
  }
  return rows;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const platform = await Platform.create();
  try {
    const run = (file: string, args: string[]) => execa(file, args, { cwd: platform.prod, reject: false });
    rows.push({
      what: 'CLI start-up (`release-run --help`)',
      ours: await median(RUNS, () => run('node', [bin('release-run'), '--help'])),
      rawName: '`node -e 0`',
      raw: await median(RUNS, () => run('node', ['-e', '0'])),
    });
    rows.push({
      what: '`release-run T --dry-run`, nothing to release',
      ours: await median(RUNS, () => run('node', [bin('release-run'), 'T', '--dry-run'])),
      rawName: '`git fetch origin` + `git rev-parse HEAD`',
      raw: await median(RUNS, async () => { await run('git', ['fetch', 'origin']); await run('git', ['rev-parse', 'HEAD']); }),
    });
  } finally {
    platform.remove();
  }
  rows.push(...(await classificationRows()));
  rows.push(...(await postgresRows(Number(process.env.BENCH_PG_SCALE ?? 20))));
  rows.push(...(await volumeRows(Number(process.env.BENCH_VOLUME_GIB ?? 1))));
  rows.push(...(await parallelRows(Number(process.env.BENCH_PARALLEL_MIB ?? 200))));
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  console.log(`\nrelease-orchestrator benchmarks, ${new Date().toISOString().slice(0, 10)}: start-up and dry run the median of ${RUNS} runs, classification of 5, backups and restores one run each\n`);
  console.log('| what | ours | raw tool | raw | ours / raw |');
  console.log('|---|---:|---|---:|---:|');
  for (const row of rows) console.log(`| ${row.what} | ${fmt(row.ours)} | ${row.rawName} | ${fmt(row.raw)} | ${(row.ours / row.raw).toFixed(2)}x |`);
}

await main();
