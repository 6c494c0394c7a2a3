// The test command's runner: the whole suite on the tested default Docker (Engine 26 + Compose v2),
// and beside it the docker-facing suites again on the legacy pair (Engine 20.10 + docker-compose
// 1.29, in the network namespace test/infra/ensure-docker-legacy.sh made; its output is printed
// once it ends), and one totals line for both.
//
//   node test/run-suites.mjs [--flavour=current|legacy] [JEST ARGS...]
//
// Each pass prints its own totals and failed tests under its flavour's name; the last line is
// `N passed, M failed` over both, as CI reads it. Exit 0 only when both passes are green.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const jest = [join(root, 'node_modules/jest/bin/jest.js')];

/**
 * The suites whose behaviour depends on the engine or the compose flavour: the runtimes (compose
 * with its builds, rolling releases, secrets and rendering; Swarm, which renders through compose
 * config), the edge proxy, and running commands in a compose service's container (postgres in
 * compose). Suites that go through the same runtime code, or only have containers beside them
 * (waves, the first hour, volume backups, disk-full, the engine faults), run on the default only,
 * to keep the whole test command under 20 minutes.
 */
const DOCKER_FACING = [
  'dist/plugins/runtime-compose/',
  'dist/plugins/runtime-swarm/runtime-swarm.test.js',
  'dist/shared/edge-proxy/',
  'dist/test/postgres-container.test.js',
];

const FLAVOURS = {
  current: { label: 'Engine 26 + Compose v2', suites: [] },
  legacy: { label: 'Engine 20.10 + docker-compose 1.29', suites: DOCKER_FACING },
};

/** KEY=VALUE lines of the legacy engine's environment (made when missing, fast when it answers). */
function legacyEnvironment() {
  const out = execFileSync('bash', [join(root, 'test/infra/ensure-docker-legacy.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return Object.fromEntries(out.split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

/**
 * `quiet`: the pass runs beside another one; its output goes to a file, printed once it ends, so
 * the two passes' lines do not interleave.
 */
function runPass(name, extraArgs, { quiet = false, workers } = {}) {
  const flavour = FLAVOURS[name];
  const results = join(mkdtempSync(join(tmpdir(), 'ro-test-')), 'results.json');
  const env = { ...process.env, RO_TEST_FLAVOUR: name, RO_TEST_FLAVOUR_LABEL: flavour.label, RO_TEST_RESULTS_FILE: results };
  let command = process.execPath;
  let args = ['--experimental-vm-modules', ...jest, ...(workers ? [`--maxWorkers=${workers}`] : []), ...extraArgs, ...flavour.suites];
  if (name === 'legacy') {
    const legacy = legacyEnvironment();
    Object.assign(env, {
      DOCKER_HOST: legacy.DOCKER_HOST,
      PATH: `${legacy.LEGACY_BIN}:${process.env.PATH}`,
      // The compose v2 plugin is on this machine too: the runtime is told to use v1.
      RELEASE_COMPOSE_COMMAND: 'docker-compose',
    });
    // nsenter, not `ip netns exec`: that remounts /sys and hides the cgroups dockerd needs.
    args = [`--net=/run/netns/${legacy.LEGACY_NETNS}`, command, ...args];
    command = 'nsenter';
  }
  const title = `\n=== ${name}: ${flavour.label}${flavour.suites.length ? ` (the ${flavour.suites.length} docker-facing suites${quiet ? `, beside the other pass, ${workers ?? 'default'} worker(s)` : ''})` : ' (every suite)'} ===\n`;
  const logFile = join(dirname(results), 'output.log');
  if (!quiet) console.log(title);
  return new Promise((resolve) => {
    const output = quiet ? openSync(logFile, 'w') : undefined;
    const child = spawn(command, args, { cwd: root, env, stdio: quiet ? ['ignore', output, output] : 'inherit' });
    child.on('exit', (code, signal) => {
      if (quiet) {
        closeSync(output);
        console.log(title);
        process.stdout.write(readFileSync(logFile, 'utf8'));
      }
      let totals = { passed: 0, failed: 1, failures: [`${flavour.label}: jest ended ${signal ?? `with exit ${code}`} before reporting`] };
      try {
        totals = JSON.parse(readFileSync(results, 'utf8'));
      } catch {
        // no results: the pass never reported (counted as one failure above)
      }
      rmSync(dirname(results), { recursive: true, force: true });
      resolve({ name, label: flavour.label, code: code ?? 1, ...totals });
    });
  });
}

const flavourArg = process.argv.find((arg) => arg.startsWith('--flavour='));
const jestArgs = process.argv.slice(2).filter((arg) => arg !== flavourArg);
const names = flavourArg ? [flavourArg.slice('--flavour='.length)] : Object.keys(FLAVOURS);
for (const name of names) {
  if (!(name in FLAVOURS)) {
    console.error(`run-suites: unknown flavour ${name}; use one of: ${Object.keys(FLAVOURS).join(', ')}`);
    process.exit(2);
  }
}
// Both passes at once when both run: the legacy pass, one worker, beside the current one (its
// suites mostly wait on its own engine), so the whole command stays under 20 minutes.
const passes = names.length === 2
  ? await Promise.all([runPass('current', jestArgs), runPass('legacy', jestArgs, { quiet: true, workers: 1 })])
  : [await runPass(names[0], jestArgs)];

console.log('');
for (const pass of passes) {
  console.log(`${pass.label} (${pass.name}): ${pass.passed} passed, ${pass.failed} failed`);
  for (const failure of pass.failures) console.log(`  failed on ${pass.label}: ${failure}`);
}
const passed = passes.reduce((sum, pass) => sum + pass.passed, 0);
const failed = passes.reduce((sum, pass) => sum + pass.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(passes.every((pass) => pass.code === 0 && pass.failed === 0) ? 0 : 1);
