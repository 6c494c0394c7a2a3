import { z } from 'zod';
import { ReleaseError, type Plugin, type RunContext, type WatchSample, parseOptions } from '../../api/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { manifestPath, parseDuration, readManifest } from '../platform/manifest.js';

export const PLUGIN_NAME = 'health-http';

const optionsSchema = z.strictObject({
  /** Pause between two attempts. */
  intervalMs: z.number().int().positive().default(500),
  /** How many 2xx answers in a row count as healthy: one lucky answer during a restart is not. */
  successesInARow: z.number().int().positive().default(2),
  /** One request's own limit. */
  requestTimeoutMs: z.number().int().positive().default(5000),
  /** While waiting, the last answer is printed this often. */
  reportEveryMs: z.number().int().positive().default(5000),
  /**
   * 404, 401 and 403 do not go away by waiting: answered for longer than this without a break,
   * the probe fails early, naming the answer, instead of using the whole timeout.
   */
  clientErrorGraceMs: z.number().int().nonnegative().default(10_000),
});

/** Answers that mean a wrong endpoint or missing credentials, not a service still starting. */
const LASTING_CLIENT_ERRORS = new Set([401, 403, 404]);

export interface ProbeOutcome {
  healthy: boolean;
  /** Set when the probe gave up early on a lasting 404/401/403. */
  gaveUpEarly?: boolean;
  /** The last HTTP status, or what went wrong when there was none. */
  last: string;
  waitedMs: number;
}

/**
 * GETs `url` until it answers 2xx `successesInARow` times in a row or `deadlineMs` passes.
 * Refused connections and 5xx while a container starts are waited out, not failures.
 */
export async function probeUntilHealthy(
  url: string, deadlineMs: number, options: z.infer<typeof optionsSchema>, signal?: AbortSignal,
  onWaiting?: (last: string, waitedMs: number) => void,
): Promise<ProbeOutcome> {
  const started = Date.now();
  let inARow = 0;
  let last = 'no answer yet';
  let clientErrorSince: number | undefined;
  let reportedAt = started;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(options.requestTimeoutMs), redirect: 'manual' });
      await response.arrayBuffer();
      last = `HTTP ${response.status}`;
      inARow = response.status >= 200 && response.status < 300 ? inARow + 1 : 0;
      clientErrorSince = LASTING_CLIENT_ERRORS.has(response.status) ? clientErrorSince ?? Date.now() : undefined;
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      last = cause?.code ?? (error as Error).name;
      inARow = 0;
      clientErrorSince = undefined;
    }
    const now = Date.now();
    const waitedMs = now - started;
    if (inARow >= options.successesInARow) return { healthy: true, last, waitedMs };
    if (clientErrorSince !== undefined && now - clientErrorSince >= options.clientErrorGraceMs) return { healthy: false, gaveUpEarly: true, last, waitedMs };
    if (waitedMs + options.intervalMs > deadlineMs || signal?.aborted) return { healthy: false, last, waitedMs };
    if (onWaiting && now - reportedAt >= options.reportEveryMs) {
      reportedAt = now;
      onWaiting(last, waitedMs);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  }
}

async function probeService(service: string, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<void> {
  // A service the release removed has nothing to probe; a manifest that does not parse is an error.
  if (!existsSync(join(context.repoDir, manifestPath(service)))) return;
  const manifest = readManifest(context.repoDir, service);
  if (!manifest.health) return;
  const url = new URL(manifest.health.endpoint, manifest.health.url).href;
  const deadlineMs = parseDuration(manifest.health.timeout);
  const phase = context.verb === 'release-revert' ? 'revert-verify' : 'verify';
  const outcome = await probeUntilHealthy(url, deadlineMs, options, context.signal, (last, waitedMs) => {
    context.out.phase(phase, `waiting for ${service}: GET ${url} answered ${last} (${(waitedMs / 1000).toFixed(0)}s of ${manifest.health!.timeout})`);
  });
  const seconds = (outcome.waitedMs / 1000).toFixed(1);
  context.log.event('probe', outcome.healthy ? 'healthy' : 'unhealthy', { service, url, last: outcome.last.replace(/ /g, '_'), waited_s: seconds });
  if (outcome.gaveUpEarly) {
    throw new ReleaseError('HEALTH_FAILED', `health probe of ${service} failed: GET ${url} kept answering ${outcome.last} for ${(options.clientErrorGraceMs / 1000).toFixed(0)}s (gave up after ${seconds}s of the ${manifest.health.timeout} timeout: waiting does not fix a ${outcome.last})`, {
      hint: `check health.endpoint and health.url in packages/${service}/manifest.yaml, and that the service serves that path without credentials`,
      service,
    });
  }
  if (!outcome.healthy) {
    throw new ReleaseError('HEALTH_FAILED', `health probe of ${service} failed: GET ${url} last answered ${outcome.last} after ${seconds}s of trying (timeout ${manifest.health.timeout})`, {
      hint: `check the service's logs; if it only needs longer to start, raise health.timeout in packages/${service}/manifest.yaml`,
      service,
    });
  }
  context.out.phase(phase, `${service} healthy: GET ${url} answered ${outcome.last} (${seconds}s)`);
}

/** One GET for the watch window: 2xx passes; a timeout is inconclusive; any other answer, or none, fails. */
async function watchSample(service: string, context: RunContext, options: z.infer<typeof optionsSchema>): Promise<WatchSample | undefined> {
  if (!existsSync(join(context.repoDir, manifestPath(service)))) return undefined;
  const manifest = readManifest(context.repoDir, service);
  if (!manifest.health) return undefined;
  const url = new URL(manifest.health.endpoint, manifest.health.url).href;
  const check = `GET ${url}`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(options.requestTimeoutMs), redirect: 'manual' });
    await response.arrayBuffer();
    return { check, result: response.status >= 200 && response.status < 300 ? 'pass' : 'fail', detail: `HTTP ${response.status}` };
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') return { check, result: 'inconclusive', detail: `no answer within ${options.requestTimeoutMs / 1000}s` };
    return { check, result: 'fail', detail: (error as { cause?: { code?: string } }).cause?.code ?? name };
  }
}

export function healthHttpPlugin(rawOptions: Partial<z.input<typeof optionsSchema>> = {}): Plugin {
  const options = parseOptions(PLUGIN_NAME, optionsSchema, rawOptions);
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.probe.tapPromise(PLUGIN_NAME, (service, context) => probeService(service, context, options));
      hooks.watchCheck.tapPromise(PLUGIN_NAME, async (service, context, samples) => {
        const sample = await watchSample(service, context, options);
        if (sample) samples.push(sample);
      });
    },
  };
}
