/**
 * `node dist/bench/run.js downtime`: what users see during an image bump. A probe GETs the
 * service 20 times a second through each release; a row counts its failed requests and the
 * longest time without a good answer. Each strategy is a row of `DOWNTIME_SCENARIOS`.
 */
import { execa } from 'execa';
import { Platform } from '../test/helpers/platform.js';
import { dockerServiceFiles, removeProjects, uniqueName } from '../test/helpers/docker.js';
import { rollingServiceFiles } from '../test/helpers/rolling.js';
import { startProbe } from '../test/helpers/traffic-probe.js';
import { ensureSwarm, removeStacks, swarmRollingServiceFiles, swarmServiceFiles } from '../test/helpers/swarm.js';

export interface DowntimeScenario {
  what: string;
  /** The service's files at image tag `tag`, answering on 127.0.0.1:`port`. */
  files: (name: string, port: number, tag: string) => Record<string, string>;
  port: number;
  /** Removes what the scenario's service left (containers, proxy, stack). */
  cleanup: (name: string) => Promise<void>;
}

export interface DowntimeRow { what: string; releases: number; requests: number; failed: number; longestGapMs: number; releaseMs: number }

export const DOWNTIME_SCENARIOS: DowntimeScenario[] = [
  {
    what: 'image bump, default compose', port: 19340,
    files: (name, port, tag) => dockerServiceFiles(name, port, { tag }),
    cleanup: (name) => removeProjects([name]),
  },
  {
    what: 'image bump, rolling', port: 19341,
    files: (name, port, tag) => rollingServiceFiles(name, port, { tag }),
    cleanup: async (name) => {
      await execa('docker', ['rm', '--force', `${name}-edge-proxy`], { reject: false });
      await removeProjects([name]);
    },
  },
  {
    // A host-mode port is bound by one task per node: the update is stop-first (docs/scale-out.md).
    what: 'image bump, swarm (host-mode port, stop-first)', port: 19367,
    files: (name, port, tag) => swarmServiceFiles(name, port, { tag }),
    cleanup: (name) => removeStacks([name]),
  },
  {
    what: 'image bump, swarm rolling (edge proxy, start-first)', port: 19368,
    files: (name, port, tag) => swarmRollingServiceFiles(name, port, { tag }),
    cleanup: (name) => removeStacks([name]),
  },
];

/** Deploys the scenario's service at tag 1, then bumps it `bumps` times (2, 1, 2, ...) under the probe. */
export async function downtimeRow(scenario: DowntimeScenario, bumps = Number(process.env.BENCH_DOWNTIME_BUMPS ?? 3)): Promise<DowntimeRow> {
  const name = uniqueName('roro-bench');
  if (scenario.what.includes('swarm')) await ensureSwarm();
  const platform = await Platform.create([]);
  const row: DowntimeRow = { what: scenario.what, releases: bumps, requests: 0, failed: 0, longestGapMs: 0, releaseMs: 0 };
  try {
    await platform.mergeFeature('1', scenario.files(name, scenario.port, '1'));
    const first = await platform.run('release-run', ['1']);
    if (first.exitCode !== 0) throw new Error(`${scenario.what}: the first release failed:\n${first.all}`);
    for (let i = 0; i < bumps; i++) {
      const ticket = String(i + 2);
      await platform.mergeFeature(ticket, scenario.files(name, scenario.port, i % 2 === 0 ? '2' : '1'));
      const probe = startProbe(`http://127.0.0.1:${scenario.port}/version`);
      const started = Date.now();
      const result = await platform.run('release-run', [ticket]);
      row.releaseMs += Date.now() - started;
      const report = await probe.stop();
      if (result.exitCode !== 0) throw new Error(`${scenario.what}: release ${ticket} failed:\n${result.all}`);
      row.requests += report.requests;
      row.failed += report.failed;
      row.longestGapMs = Math.max(row.longestGapMs, report.longestGapMs);
    }
    row.releaseMs /= bumps;
    return row;
  } finally {
    await scenario.cleanup(name);
    platform.remove();
  }
}

export async function downtimeRows(): Promise<DowntimeRow[]> {
  const rows: DowntimeRow[] = [];
  for (const scenario of DOWNTIME_SCENARIOS) rows.push(await downtimeRow(scenario));
  return rows;
}

export function printDowntime(rows: DowntimeRow[]): void {
  console.log('\nDowntime during a release: a probe GETs the service every 50 ms through each release (summed over the releases; the longest gap is the worst one)\n');
  console.log('| release | releases | requests | failed requests | longest gap | release-run time (mean) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    console.log(`| ${row.what} | ${row.releases} | ${row.requests} | ${row.failed} | ${row.longestGapMs} ms | ${(row.releaseMs / 1000).toFixed(1)} s |`);
  }
}
