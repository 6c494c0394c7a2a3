/**
 * Many services on the real Docker engine (the busybox test image): migrate applies them in waves
 * ordered by `after:`, several at once; a cycle is refused in prepare; a failure in the middle of
 * a wave halts the release with the applied services recorded, `--from=migrate` applies only the
 * rest, and release-revert gives every service back; verify names every service that fails;
 * SIGTERM stops what runs and starts nothing new.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { ORCHESTRATOR_ROOT, Platform } from '../../test/helpers/platform.js';
import { containersOf, dockerServiceFiles, removeProjects, uniqueName } from '../../test/helpers/docker.js';

const RELEASE_RUN = join(ORCHESTRATOR_ROOT, 'dist', 'cli', 'bin', 'release-run.js');
// This helper's port range (19100-19199): the services' loopback ports.
const PORT_BASE = 19100 + (process.pid % 20) * 4;

describe('migrate in waves on compose', () => {
  let platform: Platform;
  const db = uniqueName('rowv-db');
  const api = uniqueName('rowv-api');
  const web = uniqueName('rowv-web');
  const services = [db, api, web];
  const port = { [db]: PORT_BASE, [api]: PORT_BASE + 1, [web]: PORT_BASE + 2 };

  /** A service's manifest and compose file at `tag`, after what it names. */
  function files(service: string, tag: string, after: string[] = [], endpoint = '/health'): Record<string, string> {
    const both = dockerServiceFiles(service, port[service]!, { tag, endpoint, timeout: '3s' });
    const manifest = `packages/${service}/manifest.yaml`;
    return { ...both, [manifest]: `${both[manifest]}${after.length > 0 ? `after: [${after.join(', ')}]\n` : ''}` };
  }
  const release = (tag: string, endpoint?: string) => ({ ...files(db, tag), ...files(api, tag, [db], endpoint), ...files(web, tag, [db], endpoint) });
  const imageOf = async (service: string) => (await containersOf(service)).map((c) => c.image);
  const idsOf = async (service: string) => (await containersOf(service)).map((c) => c.id);
  const startedAt = async (service: string) => Date.parse((await execa('docker', ['inspect', '-f', '{{.State.StartedAt}}', (await idsOf(service))[0]!])).stdout);
  const migrateLines = (output: string) => output.split('\n').filter((line) => /^\s+\[rowv-/.test(line) || line.includes('migrate.sh:'));

  beforeAll(async () => {
    platform = await Platform.create([], {
      // Two at once, whatever this host's cores: the option the README documents.
      'release.config.ts': 'export default ({ defaultPlugins }) => ({ plugins: defaultPlugins({ concurrency: 2 }) });\n',
    });
  });
  afterAll(async () => {
    await removeProjects(services);
    platform?.remove();
  });

  test('a service named in after: is applied in an earlier wave; the others of a wave run side by side', async () => {
    await platform.mergeFeature('100', release('1'));
    const result = await platform.run('release-run', ['100']);
    expect(`${result.exitCode}\n${result.all}`).toMatch(/^0\n/);
    const script = readFileSync(join(platform.prod, '.asd/workspace/release/migrate.sh'), 'utf8');
    expect(script).toContain(`#   wave 1: ${db}\n#   wave 2: ${api} ${web}\n`);
    expect(result.stdout).toContain(`migrate: wave 1 of 2: ${db}`);
    expect(result.stdout).toContain(`migrate: wave 2 of 2: ${api} ${web} (up to 2 at once)`);
    // Every line of db's apply comes before any line of api's or web's; each line names its service.
    const lines = migrateLines(result.stdout);
    const lastOfDb = lines.map((line) => line.includes(`[${db}]`) || line.includes(`migrate.sh: ${db} done`)).lastIndexOf(true);
    const firstOfOthers = lines.findIndex((line) => line.includes(`[${api}]`) || line.includes(`[${web}]`));
    expect(lastOfDb).toBeGreaterThanOrEqual(0);
    expect(lastOfDb).toBeLessThan(firstOfOthers);
    expect(await startedAt(db)).toBeLessThan(Math.min(await startedAt(api), await startedAt(web)));
    // Once migrate has done everything, the record of what it applied is dropped: the runbook's keys.
    expect(platform.readState('100').APPLIED).toBeUndefined();
  });

  test('a cycle in after: is refused in prepare with exit 2, naming it; nothing changes', async () => {
    const head = await platform.head();
    const before = await Promise.all(services.map(idsOf));
    await platform.mergeFeature('200', { ...release('2'), ...files(db, '2', [web]) });
    const refused = await platform.run('release-run', ['200']);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(`after: forms a cycle: ${db} -> ${web} -> ${db}; nothing was changed`);
    expect(await platform.head()).toBe(head);
    expect(await Promise.all(services.map(idsOf))).toEqual(before);
  });

  test('a failure in the middle of a wave: the release halts naming it, --from=migrate applies only the rest, revert gives all back', async () => {
    // The fix of the cycle, in a new merge: the release now takes 200 and 201 together. It moves
    // api to a new port, which something else holds: api's `up` fails while web's runs beside it.
    port[api] = PORT_BASE + 3;
    await platform.mergeFeature('201', release('2'));
    const squatter: Server = createServer();
    await new Promise<void>((resolve, reject) => squatter.once('error', reject).listen(port[api], '127.0.0.1', resolve));
    let failed;
    try {
      failed = await platform.run('release-run', ['201']);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain(`[release-run] error: redeploy ${api} failed: compose up of ${api} failed`);
    expect(failed.stderr).toContain(`failed: ${api}; applied: ${db} ${web}; not applied: ${api}`);
    expect(failed.stderr).toContain('release-run 201 --from=migrate');
    expect(platform.readState('201').APPLIED!.split(' ').sort()).toEqual([`${db}:redeploy`, `${web}:redeploy`].sort());
    expect(await imageOf(web)).toEqual(['local/testsvc:2']);
    const applied = { db: await idsOf(db), web: await idsOf(web) };

    // The preview of the resume says what the resume will skip.
    const preview = await platform.run('release-run', ['201', '--from=migrate', '--dry-run']);
    expect(`${preview.exitCode}\n${preview.all}`).toMatch(/^0\n/);
    expect(preview.stdout).toContain(`would skip redeploy ${db}: done before (APPLIED in the state file)`);
    expect(preview.stdout).toContain(`would redeploy ${api}:`);
    expect(preview.stdout).not.toContain(`would redeploy ${web}:`);

    const resumed = await platform.run('release-run', ['201', '--from=migrate']);
    expect(`${resumed.exitCode}\n${resumed.all}`).toMatch(/^0\n/);
    expect(resumed.stdout).toContain(`resuming: redeploy ${db}, redeploy ${web} done before (APPLIED in the state file), not repeated`);
    // db and web were not touched again; api now runs the new image.
    expect({ db: await idsOf(db), web: await idsOf(web) }).toEqual(applied);
    expect(await imageOf(api)).toEqual(['local/testsvc:2']);

    const reverted = await platform.run('release-revert', ['201']);
    expect(`${reverted.exitCode}\n${reverted.all}`).toMatch(/^0\n/);
    for (const service of services) expect(await imageOf(service)).toEqual(['local/testsvc:1']);
  });

  test('verify probes the services side by side and names every one that fails', async () => {
    // The revert of 201 is published, as an operator does, before the next release.
    await platform.git(['push', '-q', 'origin', 'HEAD:main']);
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main'], platform.dev);
    await platform.mergeFeature('300', release('2', '/nonexistent'));
    const result = await platform.run('release-run', ['300']);
    expect(result.exitCode).toBe(7);
    expect(result.stderr).toContain(`[release-run] error: 2 services failed their checks: ${api} ${web}`);
    expect(result.stderr).toContain(`health probe of ${api} failed`);
    expect(result.stderr).toContain(`health probe of ${web} failed`);
    expect(platform.logEvents('300').filter((line) => line.includes('phase=probe event=unhealthy'))).toHaveLength(2);
    // Two 3 s probes one after the other would take 6 s on their own; side by side, about 3.
    const at = (event: string) => Date.parse(platform.readLog('300').find((line) => line.includes(event))!.split(' ')[0]!);
    expect((at('phase=verify event=failed') - at('phase=ticket event=')) / 1000).toBeLessThan(6);
  });

  test('SIGTERM in the middle of a wave stops the running action, starts nothing new (exit 130); --from=migrate finishes', async () => {
    await platform.mergeFeature('400', release('1'));
    const child = execa('node', [RELEASE_RUN, '400'], { cwd: platform.prod, all: true, reject: false, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' } });
    let output = '';
    let sent = false;
    for await (const line of child.all!) {
      output += `${String(line)}\n`;
      // db's `up` has begun (its first line of output): api and web (wave 2) have not started.
      if (!sent && String(line).includes(`[${db}] `)) { sent = true; child.kill('SIGTERM'); }
    }
    const stopped = await child;
    expect(sent).toBe(true);
    expect(stopped.exitCode).toBe(130);
    expect(output).not.toContain(`[${api}]`);
    expect(output).not.toContain(`[${web}]`);
    for (const service of [api, web]) expect(await imageOf(service)).toEqual(['local/testsvc:2']);

    const resumed = await platform.run('release-run', ['400', '--from=migrate']);
    expect(`${resumed.exitCode}\n${resumed.all}`).toMatch(/^0\n/);
    for (const service of services) expect(await imageOf(service)).toEqual(['local/testsvc:1']);
  });
});
