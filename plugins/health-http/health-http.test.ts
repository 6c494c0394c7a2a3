import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { probeUntilHealthy } from './index.js';

/** A real HTTP server on loopback that answers a scripted list of statuses, then the last forever. */
async function serve(statuses: number[]): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    const status = statuses[Math.min(hits, statuses.length - 1)]!;
    hits++;
    res.writeHead(status, { connection: 'close' }).end('x');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, hits: () => hits };
}

const options = { intervalMs: 20, successesInARow: 2, requestTimeoutMs: 1000, reportEveryMs: 5000, clientErrorGraceMs: 10_000 };

describe('the health probe', () => {
  test('waits out 5xx while the service starts, then needs two 2xx in a row', async () => {
    const { server, url, hits } = await serve([503, 503, 200, 502, 200, 200]);
    try {
      const outcome = await probeUntilHealthy(url, 5000, options);
      expect(outcome).toMatchObject({ healthy: true, last: 'HTTP 200' });
      expect(hits()).toBe(6);
    } finally {
      server.close();
    }
  });

  test('a 404 until the deadline fails, naming the last status', async () => {
    const { server, url } = await serve([404]);
    try {
      const outcome = await probeUntilHealthy(url, 300, options);
      expect(outcome.healthy).toBe(false);
      expect(outcome.last).toBe('HTTP 404');
      expect(outcome.waitedMs).toBeLessThanOrEqual(400);
    } finally {
      server.close();
    }
  });

  test('a refused connection is waited out until the server comes up', async () => {
    const { server, url } = await serve([200]);
    server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const port = Number(new URL(url).port);
    const late = createServer((_q, r) => r.writeHead(204, { connection: 'close' }).end());
    const later = setTimeout(() => late.listen(port, '127.0.0.1'), 300);
    const outcome = await probeUntilHealthy(url, 5000, options);
    clearTimeout(later);
    late.closeAllConnections();
    late.close();
    expect(outcome).toMatchObject({ healthy: true, last: 'HTTP 204' });
    expect(outcome.waitedMs).toBeGreaterThanOrEqual(250);
  });

  test('nothing listening until the deadline fails with ECONNREFUSED', async () => {
    const { server, url } = await serve([200]);
    server.close();
    const outcome = await probeUntilHealthy(url, 200, options);
    expect(outcome).toMatchObject({ healthy: false, last: 'ECONNREFUSED' });
  });

  test.each([404, 401, 403])('an answer %i that lasts longer than the grace period fails early, not at the deadline', async (status) => {
    const { server, url } = await serve([503, status]);
    try {
      const outcome = await probeUntilHealthy(url, 20_000, { ...options, clientErrorGraceMs: 300 });
      expect(outcome).toMatchObject({ healthy: false, gaveUpEarly: true, last: `HTTP ${status}` });
      expect(outcome.waitedMs).toBeLessThan(2000);
    } finally {
      server.close();
    }
  });

  test('a 404 that goes away within the grace period is waited out (a router still warming up)', async () => {
    const { server, url } = await serve([404, 404, 404, 200, 200]);
    try {
      const outcome = await probeUntilHealthy(url, 5000, { ...options, clientErrorGraceMs: 2000 });
      expect(outcome).toMatchObject({ healthy: true, last: 'HTTP 200' });
    } finally {
      server.close();
    }
  });

  test('while it waits, the last answer is reported every reportEveryMs', async () => {
    const { server, url } = await serve([503]);
    const seen: string[] = [];
    try {
      const outcome = await probeUntilHealthy(url, 700, { ...options, reportEveryMs: 200 }, undefined, (last, waitedMs) => seen.push(`${last} ${waitedMs >= 150}`));
      expect(outcome.healthy).toBe(false);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.length).toBeLessThanOrEqual(4);
      expect(new Set(seen)).toEqual(new Set(['HTTP 503 true']));
    } finally {
      server.close();
    }
  });
});
