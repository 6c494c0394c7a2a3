/**
 * Chaos beyond the compose path, part 1 (part 2: chaos-postgres-swarm.test.ts; two files so that
 * jest runs them side by side): a rolling service behind its edge proxy and a release of three
 * services in waves. Releases and reverts are killed -9 (with all they started) at random
 * moments, at least 20 times per path, and recovered as an operator would. After each release:
 * services as the release left them, no lock, temp file, process, leftover container or second
 * proxy. (No drift: the uncut run that ends each release checks it in verify or revert-verify.)
 */
import { execa } from 'execa';
import { Platform } from './helpers/platform.js';
import { dockerServiceFiles, freePort, httpGet, removeProjects, uniqueName } from './helpers/docker.js';
import { rollingServiceFiles } from './helpers/rolling.js';
import { CHAOS_KILLS as KILLS, chaosReporter, expectTidyProject, otherTag as other, type Outcome } from './helpers/chaos.js';

const chaos = chaosReporter();

describe('chaos: random kill -9 during releases and reverts', () => {
  test('a rolling release behind the edge proxy', async () => {
    const svc = uniqueName('chaos-roll');
    const port = await freePort();
    const files = (tag: string) => {
      const all = rollingServiceFiles(svc, port, { tag, timeout: '10s' });
      const manifest = `packages/${svc}/manifest.yaml`;
      return { ...all, [manifest]: all[manifest]!.replace('  drain: 5s', '  drain: 1s') };
    };
    const platform = await Platform.create([]);
    try {
      await platform.mergeFeature('R0', files('1'));
      expect((await platform.run('release-run', ['R0'])).exitCode).toBe(0);
      let live = '1';
      let pending = live;
      const report = await chaos('rolling (compose + edge proxy)', {
        platform,
        async merge(index) {
          pending = other(live);
          await platform.mergeFeature(`R${index}`, files(pending));
          return `R${index}`;
        },
        async check(outcome: Outcome) {
          if (outcome === 'released') live = pending;
          const version = await httpGet(`http://127.0.0.1:${port}/version`);
          if (version.body !== live) throw new Error(`the proxy serves version ${version.body}, not ${live}`);
          await expectTidyProject(svc, 1);
          const proxies = (await execa('docker', ['ps', '-a', '--filter', `name=^${svc}-edge-proxy$`, '--format', '{{.Names}} {{.State}}'])).stdout.trim();
          if (proxies !== `${svc}-edge-proxy running`) throw new Error(`edge proxy: ${proxies || 'none'}`);
        },
      });
      expect(report.kills).toBeGreaterThanOrEqual(KILLS);
    } finally {
      await removeProjects([svc]);
      await execa('docker', ['rm', '-f', `${svc}-edge-proxy`], { reject: false });
      platform.remove();
    }
  }, 900_000);

  test('three services released in waves (after:)', async () => {
    const names = [uniqueName('chaos-db'), uniqueName('chaos-api'), uniqueName('chaos-web')];
    const ports = await Promise.all(names.map(() => freePort()));
    const files = (tag: string) => Object.assign({}, ...names.map((name, i) => {
      const both = dockerServiceFiles(name, ports[i]!, { tag, timeout: '10s' });
      const manifest = `packages/${name}/manifest.yaml`;
      return { ...both, [manifest]: `${both[manifest]}${i > 0 ? `after: [${names[0]}]\n` : ''}` };
    })) as Record<string, string>;
    const platform = await Platform.create([], { 'release.config.ts': 'export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ concurrency: 2 }) });\n' });
    try {
      await platform.mergeFeature('W0', files('1'));
      expect((await platform.run('release-run', ['W0'])).exitCode).toBe(0);
      let live = '1';
      let pending = live;
      const report = await chaos('waves (3 services, 2 at once)', {
        platform,
        async merge(index) {
          pending = other(live);
          await platform.mergeFeature(`W${index}`, files(pending));
          return `W${index}`;
        },
        async check(outcome: Outcome) {
          if (outcome === 'released') live = pending;
          for (const [i, name] of names.entries()) {
            await expectTidyProject(name, 1);
            const version = await httpGet(`http://127.0.0.1:${ports[i]}/version`);
            if (version.body !== live) throw new Error(`${name} serves version ${version.body}, not ${live}`);
          }
        },
      });
      expect(report.kills).toBeGreaterThanOrEqual(KILLS);
    } finally {
      await removeProjects(names);
      platform.remove();
    }
  }, 900_000);
});
