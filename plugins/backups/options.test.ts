import { parseOptions, ReleaseError } from '../../api/index.js';
import { prepareOptionsSchema } from '../prepare/options.js';
import { defaultPlugins } from '../../release.config.js';

describe('diskSpace and retention options', () => {
  test('sizes are bytes or a number with a unit; the defaults are a 10% margin, 256 MiB kept free, 3 releases kept, no autoPrune', () => {
    const parsed = (diskSpace: object) => parseOptions('prepare', prepareOptionsSchema, { diskSpace }).diskSpace.keepFree;
    expect(parsed({})).toBe(256 * 1024 ** 2);
    expect(parsed({ keepFree: 0 })).toBe(0);
    expect(parsed({ keepFree: '2GiB' })).toBe(2 * 1024 ** 3);
    expect(parsed({ keepFree: '1.5G' })).toBe(1.5 * 1024 ** 3);
    expect(parsed({ keepFree: '500MB' })).toBe(500_000_000);
    expect(parsed({ keepFree: '512 KiB' })).toBe(512 * 1024);
    const defaults = parseOptions('prepare', prepareOptionsSchema, {});
    expect(defaults.diskSpace.marginPercent).toBe(10);
    expect(defaults.retention).toEqual({ keep: 3, autoPrune: false });
  });

  test('a bad value is exit 2 naming the plugin and the key', () => {
    const refused = (options: Parameters<typeof defaultPlugins>[0]) => {
      try {
        defaultPlugins(options);
      } catch (error) {
        expect(error).toBeInstanceOf(ReleaseError);
        return `${(error as ReleaseError).exitCode} ${(error as ReleaseError).message}`;
      }
      return 'accepted';
    };
    expect(refused({ diskSpace: { keepFree: 'lots' } })).toBe('2 options of plugin prepare: diskSpace.keepFree: expected a size such as 512MiB, 2GiB or a whole number of bytes, got "lots"');
    expect(refused({ diskSpace: { marginPercent: -5 } })).toMatch(/^2 options of plugin prepare: diskSpace\.marginPercent: /);
    expect(refused({ retention: { keep: 1.5 } })).toMatch(/^2 options of plugin prepare: retention\.keep: /);
    expect(refused({ retention: { keep: 2, prune: true } as never })).toBe('2 options of plugin prepare: unknown option "retention.prune"');
    expect(refused({ diskSpace: { marginPercent: 20, keepFree: '1GiB' }, retention: { keep: 5, autoPrune: true } })).toBe('accepted');
  });
});
