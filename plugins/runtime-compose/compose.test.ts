import type { RunContext } from '../../api/index.js';
import { COMPOSE_COMMAND_VARIABLE, ComposeCli } from './compose.js';

/** A run context whose every command answers as `answers` says (by its argv), recording the calls. */
function contextAnswering(answers: Record<string, number>) {
  const calls: string[] = [];
  const context = {
    exec: async (file: string, args: string[]) => {
      const argv = [file, ...args].join(' ');
      calls.push(argv);
      return { exitCode: answers[argv] ?? 127, stdout: '', stderr: '', output: '' };
    },
  } as unknown as RunContext;
  return { context, calls };
}

describe('which compose command the runtime runs', () => {
  const saved = process.env[COMPOSE_COMMAND_VARIABLE];
  afterEach(() => {
    if (saved === undefined) delete process.env[COMPOSE_COMMAND_VARIABLE];
    else process.env[COMPOSE_COMMAND_VARIABLE] = saved;
  });

  test('the first that answers, v2 first', async () => {
    delete process.env[COMPOSE_COMMAND_VARIABLE];
    const both = contextAnswering({ 'docker compose version': 0, 'docker-compose version': 0 });
    expect(await new ComposeCli().command(both.context)).toEqual(['docker', 'compose']);
    const v1Only = contextAnswering({ 'docker-compose version': 0 });
    expect(await new ComposeCli().command(v1Only.context)).toEqual(['docker-compose']);
    expect(v1Only.calls).toEqual(['docker compose version', 'docker-compose version']);
  });

  test("the host's RELEASE_COMPOSE_COMMAND pins it without asking; the config's option wins over it", async () => {
    process.env[COMPOSE_COMMAND_VARIABLE] = ' docker-compose ';
    const pinned = contextAnswering({ 'docker compose version': 0 });
    expect(await new ComposeCli().command(pinned.context)).toEqual(['docker-compose']);
    expect(pinned.calls).toEqual([]);
    process.env[COMPOSE_COMMAND_VARIABLE] = 'docker compose';
    expect(await new ComposeCli().command(pinned.context)).toEqual(['docker', 'compose']);
    expect(await new ComposeCli(['/opt/compose/bin/docker-compose']).command(pinned.context)).toEqual(['/opt/compose/bin/docker-compose']);
  });

  test('none answers: a one-line error naming both and the fix', async () => {
    delete process.env[COMPOSE_COMMAND_VARIABLE];
    await expect(new ComposeCli().command(contextAnswering({}).context)).rejects.toMatchObject({
      code: 'BAD_INPUT', message: 'neither `docker compose` nor `docker-compose` answers',
    });
  });
});
