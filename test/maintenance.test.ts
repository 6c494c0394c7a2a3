/**
 * Maintenance mode behind the edge proxy, on a real engine and a real HAProxy: an operator's
 * `release maintenance on|off` (503, Retry-After and the message, by Accept; the health checks
 * still pass, so a release goes through), and a backup that stops the service, during which a
 * client counts what it gets: 503 with the message, never a refused connection.
 */
import { execa } from 'execa';
import { Platform } from './helpers/platform.js';
import { freePort, removeProjects, uniqueName } from './helpers/docker.js';
import { rollingServiceFiles } from './helpers/rolling.js';
import { proxyName } from '../shared/edge-proxy/index.js';

const MESSAGE = 'Upgrading the database; back at 14:00 <UTC>';

/** One GET as a browser (Accept: text/html) or a script sends it. */
async function get(url: string, html = false): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const response = await fetch(url, { headers: html ? { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } : {}, signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text(), retryAfter: response.headers.get('retry-after') };
}

/** A client at 20 Hz, counting each kind of answer it gets. */
function countAnswers(url: string, message: string) {
  const counts = { ok: 0, maintenance: 0, otherError: 0, refused: 0, others: [] as string[] };
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const request = get(url).then(({ status, body, retryAfter }) => {
      if (status === 200) counts.ok++;
      else if (status === 503 && body === message && retryAfter === '30') counts.maintenance++;
      else { counts.otherError++; if (counts.others.length < 5) counts.others.push(`${status} ${body.slice(0, 80)}`); }
    }, (error: { cause?: { code?: string } }) => {
      counts.refused++;
      if (counts.others.length < 5) counts.others.push(error.cause?.code ?? String(error));
    });
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request));
  }, 50);
  return { async stop() { clearInterval(timer); await Promise.all(inFlight); return counts; } };
}

describe('maintenance mode behind the edge proxy', () => {
  let platform: Platform;
  let service: string;
  let port: number;
  let url: string;
  /** The rolling service at `tag`, its volume backed up with the service stopped, and its maintenance message. */
  const files = (tag: string) => {
    const all = rollingServiceFiles(service, port, { tag });
    all[`packages/${service}/manifest.yaml`] += ['backup:', '  - type: volume', `    volume: ${service}_data`, '    consistency: stop', 'maintenance:', `  message: "${MESSAGE}"`, ''].join('\n');
    return all;
  };

  beforeEach(async () => {
    service = uniqueName('maint');
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    platform = await Platform.create([]);
    await platform.mergeFeature('100', files('1'));
    const first = await platform.run('release-run', ['100']);
    if (first.exitCode !== 0) throw new Error(first.all);
  });
  afterEach(async () => {
    await execa('docker', ['rm', '--force', proxyName(service)], { reject: false });
    await removeProjects([service]);
    platform.remove();
  });

  test("an operator's maintenance: 503 with Retry-After and the message, HTML or text by Accept; health checks pass, so a release goes through; off serves again", async () => {
    const on = await platform.run('release', ['maintenance', 'on', service, '--message', 'Moving to the new disk; back by noon']);
    expect(on.exitCode).toBe(0);
    expect(on.stdout).toContain(`${service}: in maintenance: ${proxyName(service)} answers every request but its health checks with 503 (Retry-After: 30) and: Moving to the new disk; back by noon`);
    expect(on.stdout).toContain(`lift it with: release maintenance off ${service}`);

    const text = await get(`${url}/version`);
    expect(text).toEqual({ status: 503, body: 'Moving to the new disk; back by noon', retryAfter: '30' });
    const page = await get(`${url}/`, true);
    expect(page.status).toBe(503);
    expect(page.body).toContain('<h1>Down for maintenance</h1><p>Moving to the new disk; back by noon</p>');
    expect((await get(`${url}/health`)).status).toBe(200);
    const status = await platform.run('release', ['status', `--service=${service}`]);
    expect(status.stdout).toMatch(new RegExp(`  maintenance: on since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\(set by an operator\\), clients get 503: Moving to the new disk; back by noon`));

    // A release in maintenance: the new container passes the proxy's check and verify's probe; clients still get 503.
    await platform.mergeFeature('200', files('2'));
    const release = await platform.run('release-run', ['200']);
    expect(release.exitCode).toBe(0);
    expect(release.stdout).toContain(`${service} is in maintenance while it is stopped (${proxyName(service)} answers 503, as its operator set it)`);
    expect((await get(`${url}/version`)).status).toBe(503);

    const off = await platform.run('release', ['maintenance', 'off', service]);
    expect(off.exitCode).toBe(0);
    expect(off.stdout).toMatch(new RegExp(`^${service}: out of maintenance \\(it was in maintenance since \\S+, set by an operator\\)`));
    expect(await get(`${url}/version`)).toMatchObject({ status: 200, body: '2' });
  });

  test('a backup that stops the service: clients get 503 with the message meanwhile, never a refused connection; then it serves the new version', async () => {
    await platform.mergeFeature('300', files('2'));
    const client = countAnswers(`${url}/version`, MESSAGE);

    const release = await platform.run('release-run', ['300']);
    const counts = await client.stop();

    expect(release.exitCode).toBe(0);
    expect(counts.refused).toBe(0);
    expect(counts.others).toEqual([]);
    expect(counts.maintenance).toBeGreaterThan(0);
    expect(counts.ok).toBeGreaterThan(0);
    expect(release.stdout).toContain(`${service} is in maintenance while it is stopped (${proxyName(service)} answers 503)`);
    expect(release.stdout).toContain(`${service} is out of maintenance: ${proxyName(service)} sends requests to it again`);
    expect(await get(`${url}/version`)).toMatchObject({ status: 200, body: '2' });
    const status = await platform.run('release', ['status', `--service=${service}`]);
    expect(status.stdout).not.toContain('maintenance:');
  });

  test('a run killed while the backup has the service stopped: clients keep getting 503 with the message, status says so, and --from=prepare serves again and lifts it', async () => {
    await platform.mergeFeature('500', files('2'));

    const killed = await platform.run('release-run', ['500'], { RELEASE_FAILPOINT: `stopped-${service}` });

    expect(killed.exitCode).not.toBe(0);
    expect(await get(`${url}/version`)).toEqual({ status: 503, body: MESSAGE, retryAfter: '30' });
    const status = await platform.run('release', ['status', `--service=${service}`]);
    expect(status.stdout).toContain(`  maintenance: on since`);
    expect(status.stdout).toContain(`(set by the stop of 500), clients get 503: ${MESSAGE}`);
    expect(status.stdout).toContain(`  lift it with: release maintenance off ${service}`);

    const resumed = await platform.run('release-run', ['500', '--from=prepare']);

    expect(resumed.exitCode).toBe(0);
    expect(await get(`${url}/version`)).toMatchObject({ status: 200, body: '2' });
    expect((await platform.run('release', ['status', `--service=${service}`])).stdout).not.toContain('maintenance:');
  });

  test('refused with exit 2 for an unknown service, or without on|off', async () => {
    const unknown = await platform.run('release', ['maintenance', 'on', 'nosuch']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('unknown service nosuch');
    const bad = await platform.run('release', ['maintenance', 'up', service]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe('[release] error: usage: release maintenance on|off SERVICE [--message TEXT] [--repo DIR]');
  });
});
