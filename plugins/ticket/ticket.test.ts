import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform } from '../../test/helpers/platform.js';

describe('ticket phase: releases/TICKET-*.sh', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create(); });
  afterEach(() => platform.remove());

  test('the script runs with --yes and TICKET, BASE_SHA, MERGE_SHA; its output is streamed and kept', async () => {
    const base = await platform.head();
    const merge = await platform.mergeFeature('700', {
      'releases/700-seed.sh': '#!/bin/sh\necho "args=$* ticket=$TICKET base=$BASE_SHA merge=$MERGE_SHA"\n',
    });
    const result = await platform.run('release-run', ['700']);
    expect(result.exitCode).toBe(0);
    const expected = `args=--yes ticket=700 base=${base} merge=${merge}`;
    expect(result.stdout).toContain(expected);
    expect(readFileSync(join(platform.prod, '.asd/workspace/releases/700.ticket.out'), 'utf8')).toContain(expected);
  });

  test('a failing script halts in phase ticket; --from=ticket after the fix runs only ticket and verify', async () => {
    const merge = await platform.mergeFeature('701', {
      'releases/701-migrate-data.sh': '#!/bin/sh\nif [ ! -f "$HOME_FLAG" ]; then echo "cannot reach the API" >&2; exit 1; fi\necho fixed run\n',
    });
    const flag = join(platform.root, 'api-is-up');

    const failed = await platform.run('release-run', ['701'], { HOME_FLAG: flag });

    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/releases\/701-migrate-data.sh exited 1/);
    expect(failed.stderr).toContain('release-run failed in phase ticket. To roll back:');
    expect(failed.stderr).toContain('  release-revert 701');
    expect(failed.stderr).toContain('  release-run 701 --from=ticket');
    expect(platform.logEvents('701')).toContain('ticket=701 phase=ticket event=failed rc=1 plugin=ticket');
    expect(await platform.head()).toBe(merge);

    platform.write(platform.root, { 'api-is-up': 'yes\n' });
    const logLength = platform.readLog('701').length;
    const resumed = await platform.run('release-run', ['701', '--from=ticket'], { HOME_FLAG: flag });

    expect(resumed.exitCode).toBe(0);
    expect(resumed.stdout).toContain('fixed run');
    expect(resumed.stdout).not.toMatch(/\] (prepare|migrate): /);
    const newEvents = platform.logEvents('701').slice(logLength).filter((line) => / event=done /.test(line));
    expect(newEvents).toEqual([
      'ticket=701 phase=ticket event=done rc=0',
      'ticket=701 phase=verify event=done rc=0',
      'ticket=701 phase=orchestrator event=done rc=0',
    ]);
  });

  test('two scripts for one ticket is an error naming both', async () => {
    await platform.mergeFeature('702', {
      'releases/702-a.sh': '#!/bin/sh\ntrue\n',
      'releases/702-b.sh': '#!/bin/sh\ntrue\n',
    });
    const result = await platform.run('release-run', ['702']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/2 ticket scripts match releases\/702-\*\.sh/);
    expect(result.stderr).toContain('releases/702-a.sh');
    expect(result.stderr).toContain('releases/702-b.sh');
  });

  test('a script that is not executable is refused', async () => {
    await platform.mergeFeature('703', { 'releases/703-x.txt': 'x\n' });
    platform.write(platform.dev, { 'releases/703-plain.sh': '#!/bin/sh\ntrue\n' });
    await platform.git(['update-index', '--add', '--chmod=-x', 'releases/703-plain.sh'], platform.dev);
    await platform.git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-q', '-m', 'plain'], platform.dev);
    await platform.git(['push', '-q', 'origin', 'main'], platform.dev);
    const result = await platform.run('release-run', ['703']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/releases\/703-plain.sh is not executable/);
  });

  test('--from=migrate without a state file is refused', async () => {
    const result = await platform.run('release-run', ['704', '--from=migrate']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/state file .*704.env is missing/);
  });
});
