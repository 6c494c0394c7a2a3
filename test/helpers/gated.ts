/**
 * Tests that hold a release at a gate (a ticket script waiting for a file) while they look at it.
 * If such a test fails before it opens its gate, the release it started would block jest from
 * exiting: these helpers open the gate and stop every child still running, whatever happened.
 */
import { writeFileSync } from 'node:fs';
import { execa, type Options, type ResultPromise } from 'execa';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `ready()` holds, up to `timeoutMs`; past it, throws naming what it waited for. */
export async function waitFor(what: string, ready: () => boolean, timeoutMs = 60_000): Promise<void> {
  for (const started = Date.now(); !ready(); await sleep(50)) {
    if (Date.now() - started > timeoutMs) throw new Error(`gave up after ${timeoutMs / 1000}s waiting for ${what}`);
  }
}

export type Spawn = (file: string, args: readonly string[], options?: Options) => ResultPromise;

/**
 * Runs `body`, which starts its children with the `spawn` it is given. Afterwards, passed or
 * failed, the gate file is written and every child still running is stopped: SIGTERM (a release
 * stops its own steps and frees its lock), then SIGKILL after 10 s.
 */
export async function withGatedChildren<T>(gate: string, body: (spawn: Spawn) => Promise<T>): Promise<T> {
  const children: ResultPromise[] = [];
  const spawn: Spawn = (file, args, options = {}) => {
    const child = execa(file, args, { reject: false, ...options }) as ResultPromise;
    children.push(child);
    return child;
  };
  try {
    return await body(spawn);
  } finally {
    writeFileSync(gate, 'open\n');
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([child.then(() => true, () => true), sleep(10_000).then(() => false)]);
      if (!stopped) child.kill('SIGKILL');
      await child.catch(() => undefined);
    }));
  }
}
