/**
 * Chaos beyond the compose path, part 2 (see chaos-rolling-waves.test.ts): a service with
 * PostgreSQL inside its compose project, whose ticket script writes rows (data exact after each
 * release and revert), and a Swarm stack; at least 20 random kill -9 per path.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { Platform, ORCHESTRATOR_ROOT } from './helpers/platform.js';
import { freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';
import { ensureSwarm, removeStacks, runningTaskImages, specImage, swarmServiceFiles } from './helpers/swarm.js';
import { pgComposeFiles, sql, stateOf, waitForDb } from './helpers/pg-compose.js';
import { CHAOS_KILLS as KILLS, chaosReporter, expectTidyProject, otherTag as other, type Outcome } from './helpers/chaos.js';

const chaos = chaosReporter();

describe('chaos: random kill -9 during releases and reverts', () => {
  test('PostgreSQL inside the compose project: a ticket script writes, a revert restores the dump', async () => {
    const built = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test', 'infra', 'build-pg-image.sh')], { reject: false });
    if (built.exitCode !== 0) throw new Error(`build-pg-image.sh failed: ${built.stderr}`);
    const svc = uniqueName('chaos-pg');
    const port = await freePort();
    const base = pgComposeFiles(svc, port);
    const compose = `packages/${svc}/compose.yaml`;
    const withMark = (index: number) => ({ ...base, [compose]: base[compose]!.replace('    image: ${IMAGE}\n', `    image: \${IMAGE}\n    environment:\n      RELEASE_MARK: "${index}"\n`) });
    // Idempotent, as ticket scripts must be: a resumed release runs it again.
    const ticketScript = (index: number) => `#!/bin/sh
set -eu
db=$(docker ps -q --filter label=com.docker.compose.project=${svc} --filter label=com.docker.compose.service=db)
docker exec -i -u postgres "$db" psql -X -q -v ON_ERROR_STOP=1 -d shop <<'SQL'
SET ROLE shop;
INSERT INTO notes VALUES (${index}, 'release ${index}') ON CONFLICT DO NOTHING;
UPDATE counters SET releases = (SELECT count(*) FROM notes);
SQL
`;
    const platform = await Platform.create([]);
    try {
      await platform.mergeFeature('P0', withMark(0));
      expect((await platform.run('release-run', ['P0'])).exitCode).toBe(0);
      await waitForDb(svc);
      await sql(svc, "SET ROLE shop; CREATE TABLE notes (id int PRIMARY KEY, body text); CREATE TABLE counters (releases int); INSERT INTO counters VALUES (0); INSERT INTO notes SELECT g, 'seed ' || g FROM generate_series(-500, -1) g;");
      let live = await stateOf(svc);
      let pendingIndex = 0;
      const report = await chaos('postgres in compose (dump, restore)', {
        platform,
        async merge(index) {
          pendingIndex = index;
          await platform.mergeFeature(`P${index}`, { [compose]: withMark(index)[compose]!, [`releases/P${index}-note.sh`]: ticketScript(index) });
          return `P${index}`;
        },
        async check(outcome: Outcome) {
          await waitForDb(svc);
          const now = await stateOf(svc);
          if (outcome === 'reverted') {
            expect(now).toEqual(live);
          } else {
            const notes = live.rows['public.notes']!.split('\n');
            const expected = [...notes, `(${pendingIndex},"release ${pendingIndex}")`].sort().join('\n');
            expect(now.rows['public.notes']!.split('\n').sort().join('\n')).toBe(expected);
            expect(now.rows['public.counters']).toBe(`(${notes.length + 1})`);
            expect(now.schema).toBe(live.schema);
            live = now;
          }
          await expectTidyProject(svc, 3);
        },
      });
      expect(report.kills).toBeGreaterThanOrEqual(KILLS);
    } finally {
      await removeProjects([svc]);
      platform.remove();
    }
  }, 900_000);

  test('a Swarm stack', async () => {
    await ensureSwarm();
    const svc = uniqueName('chaos-sw');
    const port = await freePort();
    const platform = await Platform.create([]);
    try {
      await platform.mergeFeature('S0', swarmServiceFiles(svc, port));
      expect((await platform.run('release-run', ['S0'])).exitCode).toBe(0);
      let live = '1';
      let pending = live;
      const report = await chaos('swarm stack (one node)', {
        platform,
        async merge(index) {
          pending = other(live);
          await platform.mergeFeature(`S${index}`, { [`packages/${svc}/manifest.yaml`]: swarmServiceFiles(svc, port, { tag: pending })[`packages/${svc}/manifest.yaml`]! });
          return `S${index}`;
        },
        async check(outcome: Outcome) {
          if (outcome === 'released') live = pending;
          const image = `local/testsvc:${live}`;
          if (await specImage(svc) !== image) throw new Error(`the service's spec runs ${await specImage(svc)}, not ${image}`);
          expect(await runningTaskImages(svc)).toEqual([image]);
          expect((await httpGet(`http://127.0.0.1:${port}/version`)).body).toBe(live);
        },
      });
      expect(report.kills).toBeGreaterThanOrEqual(KILLS);
    } finally {
      await removeStacks([svc]);
      platform.remove();
    }
  }, 900_000);
});
