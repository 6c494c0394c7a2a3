import { readFileSync } from 'node:fs';
import { applyPlugins } from '../../core/runner.js';
import { exec } from '../../core/exec.js';
import { ReleaseError } from '../../core/errors.js';
import type { RunContext } from '../../core/index.js';
import { defaultPlugins } from '../../release.config.js';
import { DEADLINE_DEFAULTS, deadline, deadlinesPlugin, withDeadline } from './index.js';

/** A run context whose exec is the real one, with the hooks of `plugins`. */
function contextOf(plugins: ReturnType<typeof defaultPlugins>): RunContext {
  const context = { hooks: applyPlugins({ plugins }) } as unknown as RunContext & { exec: RunContext['exec'] };
  context.exec = (file, args, options = {}) => exec(file, args, options);
  return context;
}

const gone = (pid: number) => {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

describe('deadlines of external commands', () => {
  test('the config sets a kind; the others keep their defaults', () => {
    const context = contextOf(defaultPlugins({ deadlines: { ticket: '8h', compose: '90s' } }));
    expect(deadline(context, 'ticket')).toEqual({ deadlineMs: 8 * 3600_000, deadlineName: 'ticket' });
    expect(deadline(context, 'compose').deadlineMs).toBe(90_000);
    expect(deadline(context, 'fetch').deadlineMs).toBe(DEADLINE_DEFAULTS.fetch);
    // A config without the plugin (a platform's own list) still bounds every kind.
    expect(deadline(contextOf([]), 'build').deadlineMs).toBe(DEADLINE_DEFAULTS.build);
  });

  test.each([
    [{ tickets: '1h' }, /options of plugin deadlines: unknown option "tickets"/],
    [{ ticket: '1 hour' }, /options of plugin deadlines: ticket: expected a duration like 90s, 10m or 4h/],
    [{ ticket: '0s' }, /ticket: must be longer than 0/],
  ])('a bad setting %j exits 2 naming it', (deadlines, message) => {
    const make = () => deadlinesPlugin(deadlines as never);
    expect(make).toThrow(ReleaseError);
    expect(make).toThrow(message);
  });

  test('past its deadline a command and what it started are stopped, and the error names the command and how long it ran', async () => {
    const context = withDeadline(contextOf(defaultPlugins({ deadlines: { backup: '500ms' } })), 'backup');
    let child = 0;
    const started = Date.now();
    const run = context.exec('sh', ['-c', 'sleep 30 & echo $!; wait'], { onLine: (line) => { child = Number(line); } });
    await expect(run).rejects.toThrow(/^`sh -c sleep 30 & echo \$!; wait` ran past its deadline \(backup\) of 0\.5s and was stopped after 0\.\ds$/);
    await expect(run).rejects.toMatchObject({ code: 'PHASE_FAILED', hint: expect.stringContaining('raise deadlines.backup') });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(child).toBeGreaterThan(0);
    expect(gone(child)).toBe(true);
  });

  test('a command that names its own deadline keeps it inside a scope', async () => {
    const context = withDeadline(contextOf(defaultPlugins({ deadlines: { backup: '200ms' } })), 'backup');
    const result = await context.exec('sh', ['-c', 'sleep 0.5; echo done'], { deadlineMs: 5000, deadlineName: 'docker' });
    expect(result.stdout).toBe('done');
  });
});
