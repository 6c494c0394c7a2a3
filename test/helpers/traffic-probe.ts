/**
 * A client hitting a URL at a fixed rate while something happens (a release), recording what an
 * operator's users would have seen: failed requests and the longest time without a good answer.
 */
export interface ProbeReport {
  requests: number;
  /** Non-2xx answers, refused or reset connections, timeouts. */
  failed: number;
  /** The longest time between two good answers (or from the start / to the end), in ms. */
  longestGapMs: number;
  /** The distinct bodies of good answers, in the order first seen (e.g. the versions served). */
  bodies: string[];
  /** A few failures, for a test's message. */
  failures: string[];
}

export interface TrafficProbe {
  stop(): Promise<ProbeReport>;
}

/** Starts one GET every `1000 / hz` ms (each with its own timeout, never waiting for the previous one). */
export function startProbe(url: string, hz = 20, timeoutMs = 2000): TrafficProbe {
  const report: ProbeReport = { requests: 0, failed: 0, longestGapMs: 0, bodies: [], failures: [] };
  const started = Date.now();
  let lastGood = started;
  const inFlight = new Set<Promise<void>>();
  const once = async () => {
    report.requests++;
    const sentAt = Date.now();
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      const body = await response.text();
      if (response.status < 200 || response.status > 299) throw new Error(`HTTP ${response.status}`);
      const now = Date.now();
      report.longestGapMs = Math.max(report.longestGapMs, now - lastGood);
      lastGood = Math.max(lastGood, now);
      if (!report.bodies.includes(body)) report.bodies.push(body);
    } catch (error) {
      report.failed++;
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      if (report.failures.length < 5) report.failures.push(`+${sentAt - started}ms: ${cause ?? (error as Error).message}`);
    }
  };
  const timer = setInterval(() => {
    const request = once();
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request));
  }, 1000 / hz);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      report.longestGapMs = Math.max(report.longestGapMs, Date.now() - lastGood);
      return report;
    },
  };
}
