/**
 * The Docker engine failing under a release, on a private engine of this test's own (the shared
 * one is never stopped): stopped while migrate's `compose up` waits, then started again; and hung
 * (it accepts connections and answers nothing), so `compose up` is stopped at its deadline.
 * Either way `--from=migrate` finishes the release once the engine is back. The rows are printed.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT, type CliResult } from './helpers/platform.js';
import { FaultRows } from './helpers/fault-rows.js';
import { PrivateDocker } from './helpers/private-docker.js';

/** This file's ports (19270-19279), published by the private engine on loopback. */
const STOPPED_PORT = 19270;
const HUNG_PORT = 19271;
const PROJECTS = ['roflstop', 'roflhang'];

const rows = new FaultRows();
let engine: PrivateDocker;
let startedInMs = 0;

beforeAll(async () => {
  const started = Date.now();
  engine = await PrivateDocker.create('rofl');
  await engine.loadImage('local/testsvc:1');
  await engine.loadImage('local/testsvc:2');
  startedInMs = Date.now() - started;
});
afterAll(async () => {
  await engine?.remove(PROJECTS);
  rows.print(`the Docker engine; a private engine, started with both test images in ${(startedInMs / 1000).toFixed(1)}s`);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A verb run as the operator runs it, on the engine's host: in its network namespace, pointed at it. */
async function run(platform: Platform, verb: string, args: string[]): Promise<CliResult> {
  const result = await engine.exec('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin', `${verb}.js`), ...args], {
    cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '', ...engine.env }, all: true,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr), all: String(result.all) };
}

/** What a published port of the engine answers, asked from its network namespace. */
async function answer(url: string): Promise<string> {
  return String((await engine.exec('curl', ['--silent', '--max-time', '5', url])).stdout);
}

const manifest = (name: string, port: number, tag: string) =>
  `name: ${name}\nimage: local/testsvc:${tag}\nhealth:\n  url: http://127.0.0.1:${port}\n  endpoint: /health\n  timeout: 30s\n`;

/**
 * `app` starts only once `db` is healthy, and `db` is healthy only while the gate file exists: with
 * the gate closed, `compose up` of a new `db` waits, as it would for a database that starts slowly.
 */
const compose = (port: number, gateDir: string, generation: string) => `services:
  db:
    image: local/testsvc:1
    environment:
      GENERATION: "${generation}"
    volumes:
      - ${gateDir}:/gate:ro
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/gate/open"]
      interval: 1s
      timeout: 1s
      retries: 1
      start_period: 600s
  app:
    image: \${IMAGE}
    depends_on:
      db:
        condition: service_healthy
    stop_grace_period: 1s
    ports:
      - "127.0.0.1:${port}:8080"
`;

const config = (composeDeadline: string) =>
  `export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ composeCommand: ['docker-compose'], deadlines: { compose: '${composeDeadline}' } }) });\n`;

/** A platform with service NAME deployed at image tag 1 on the private engine. */
async function deployed(name: string, port: number, composeDeadline: string) {
  const gateDir = join('/tmp', `${name}-gate-${process.pid}`);
  mkdirSync(gateDir, { recursive: true });
  writeFileSync(join(gateDir, 'open'), 'yes\n');
  const platform = await Platform.create([], { 'release.config.ts': config(composeDeadline) });
  // The first deploy: the release that adds the service.
  await platform.mergeFeature('600', {
    [`packages/${name}/manifest.yaml`]: manifest(name, port, '1'),
    [`packages/${name}/compose.yaml`]: compose(port, gateDir, '1'),
  });
  const initial = await run(platform, 'release-run', ['600']);
  expect(`${initial.exitCode}\n${initial.all}`).toMatch(/^0\n/);
  return { platform, gateDir };
}

async function containerOf(project: string, service: string): Promise<{ id: string; status: string } | undefined> {
  const out = (await engine.docker(['ps', '--all', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`, '--format', '{{.ID}}\t{{.Status}}'])).stdout;
  const [id, status] = out.split('\n').filter(Boolean)[0]?.split('\t') ?? [];
  return id ? { id, status: status! } : undefined;
}

describe('the Docker engine under migrate', () => {
  test('stopped while compose up waits, then started again: migrate fails with exit 1 naming compose; --from=migrate completes', async () => {
    const { platform, gateDir } = await deployed('roflstop', STOPPED_PORT, '5m');
    try {
      const oldDb = await containerOf('roflstop', 'db');
      await platform.mergeFeature('601', {
        'packages/roflstop/manifest.yaml': manifest('roflstop', STOPPED_PORT, '2'),
        'packages/roflstop/compose.yaml': compose(STOPPED_PORT, gateDir, '2'),
      });
      rmSync(join(gateDir, 'open'));

      const running = run(platform, 'release-run', ['601']);
      // compose up has recreated db and now waits for it to become healthy: stop the engine then.
      for (let waited = 0; ; waited += 100) {
        const db = await containerOf('roflstop', 'db');
        if (db && db.id !== oldDb?.id && /health: starting/.test(db.status)) break;
        if (waited > 60_000) throw new Error(`compose up never reached the wait for db; last: ${JSON.stringify(db)}`);
        await sleep(100);
      }
      await engine.stop();
      const failed = await running;

      await rows.record({ fault: 'Docker engine stopped during migrate (compose up waiting), then started', seen: `exit ${failed.exitCode}, migrate`, recovery: 'release-run 601 --from=migrate', result: 'released: new image answers, 0 actions' }, async () => {
        expect(failed.exitCode).toBe(1);
        expect(failed.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: redeploy roflstop failed: compose up of roflstop failed \(exit \d+\): the Docker engine does not answer \(.*(Cannot connect|Is the docker daemon running).*\)/);
        expect(failed.stderr).toContain('release-run failed in phase migrate. To roll back:');
        expect(failed.stderr).toContain('  release-run 601 --from=migrate');
        expect(failed.stderr).toContain('Recovery playbook release-docker-engine-down');
        expect(platform.logEvents('601')).toContain('ticket=601 phase=migrate event=failed rc=1 plugin=runtime-compose');

        await engine.start();
        writeFileSync(join(gateDir, 'open'), 'yes\n');
        const recovered = await run(platform, 'release-run', ['601', '--from=migrate']);
        expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
        expect(await answer(`http://127.0.0.1:${STOPPED_PORT}/version`)).toBe('2');
        expect((await run(platform, 'release', ['--service=roflstop'])).stdout).toMatch(/0 actions/);
      });
    } finally {
      if (!engine.running()) await engine.start();
      platform.remove();
      rmSync(gateDir, { recursive: true, force: true });
    }
  });

  test('hung (answers nothing): compose up is stopped at its deadline, exit 1 naming the command and how long it ran; --from=migrate completes once it answers', async () => {
    const { platform, gateDir } = await deployed('roflhang', HUNG_PORT, '6s');
    try {
      await platform.mergeFeature('602', { 'packages/roflhang/manifest.yaml': manifest('roflhang', HUNG_PORT, '2') });
      engine.freeze();
      let failed;
      try {
        failed = await run(platform, 'release-run', ['602']);
      } finally {
        engine.thaw();
      }

      await rows.record({ fault: 'Docker engine hung during migrate (compose up never returns)', seen: `exit ${failed.exitCode}, migrate`, recovery: 'release-run 602 --from=migrate', result: 'compose up stopped at its deadline; released once the engine answered' }, async () => {
        expect(failed.exitCode).toBe(1);
        expect(failed.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: redeploy roflhang failed: `docker-compose --project-name roflhang --file \S+\/packages\/roflhang\/compose\.yaml up -d --remove-orphans` ran past its deadline \(compose\) of 6s and was stopped after [67](\.\d)?s/);
        expect(failed.stderr).toContain('release-run failed in phase migrate. To roll back:');
        expect(failed.stderr).toMatch(/Recovery playbook release-deadline-passed[^]*next: release-run 602 --from=migrate/);

        const recovered = await run(platform, 'release-run', ['602', '--from=migrate']);
        expect(`${recovered.exitCode}\n${recovered.all}`).toMatch(/^0\n/);
        expect(await answer(`http://127.0.0.1:${HUNG_PORT}/version`)).toBe('2');
      });
    } finally {
      platform.remove();
      rmSync(gateDir, { recursive: true, force: true });
    }
  });
});
