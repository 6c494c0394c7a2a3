import { Platform } from '../../test/helpers/platform.js';

/** A repo config whose plugin prints `marker` in the verify phase. */
const configPrinting = (marker: string) => `export default ({ defaultPlugins }: any) => ({
  plugins: [...defaultPlugins(), { name: 'marker', apply({ hooks }: any) {
    hooks.phase.for('verify').tap({ name: 'marker', stage: -10 }, (context: any) => context.out.info('${marker}'));
  } }],
});
`;

describe("a change to the orchestrator's own source", () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }], { 'release.config.ts': configPrinting('config v1') }); });
  afterEach(() => platform.remove());

  test('is picked up after prepare: the later phases run the pulled config, and that is logged', async () => {
    await platform.mergeFeature('800', { 'release.config.ts': configPrinting('config v2') });

    const result = await platform.run('release-run', ['800']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('[release-run] config v2');
    expect(result.stdout).not.toContain('config v1');
    expect(result.stdout).toMatch(/orchestrator source or release config changed \(release.config.ts\): re-running the remaining phases in a new process with the pulled config \(--from=migrate\)/);
    expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 800 complete');
    const events = platform.logEvents('800');
    expect(events).toContain('ticket=800 phase=orchestrator event=handoff from=migrate reason="orchestrator source or release config changed (release.config.ts)"');
    expect(events.filter((e) => e.endsWith('event=done rc=0')).map((e) => e.split(' ')[1])).toEqual([
      'phase=prepare', 'phase=migrate', 'phase=ticket', 'phase=verify', 'phase=orchestrator',
    ]);
  });

  test('a failure after the re-run still exits with its code and the failure message', async () => {
    await platform.mergeFeature('801', {
      'release.config.ts': configPrinting('config v3'),
      'releases/801-fail.sh': '#!/bin/sh\nexit 1\n',
    });
    const result = await platform.run('release-run', ['801']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('release-run failed in phase ticket. To roll back:');
  });
});
