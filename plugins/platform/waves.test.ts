import { ReleaseError } from '../../api/index.js';
import { dependencyWaves } from './waves.js';

const graph = (lists: Record<string, string[]>) => (service: string) => lists[service];

describe('waves from after:', () => {
  test('a service comes after what it names, also through a service the release does not touch', () => {
    const lists = { db: [], cache: [], api: ['db'], web: ['api', 'cache'], docs: [] };
    expect(dependencyWaves(['web', 'api', 'db', 'docs', 'cache'], graph(lists))).toEqual([['cache', 'db', 'docs'], ['api'], ['web']]);
    // api is not released: web still waits for db, two levels down.
    expect(dependencyWaves(['web', 'db'], graph(lists))).toEqual([['db'], ['web']]);
    // A service without a manifest (the release removes it) needs nothing.
    expect(dependencyWaves(['gone', 'db'], graph(lists))).toEqual([['db', 'gone']]);
  });

  test('a cycle is refused with exit 2, naming its services', () => {
    const lists = { a: ['b'], b: ['c'], c: ['a'], d: ['a'] };
    const refused = () => dependencyWaves(['d'], graph(lists));
    expect(refused).toThrow(ReleaseError);
    expect(refused).toThrow('after: forms a cycle: a -> b -> c -> a; nothing was changed');
    expect(() => dependencyWaves(['x'], graph({ x: ['x'] }))).toThrow('after: forms a cycle: x -> x');
    try { refused(); } catch (error) { expect((error as ReleaseError).exitCode).toBe(2); }
  });

  test('an unknown name is refused with exit 2, naming the manifest and the name', () => {
    expect(() => dependencyWaves(['web'], graph({ web: ['dbb'] }))).toThrow('packages/web/manifest.yaml: after: names "dbb", which is not a service (no packages/dbb/manifest.yaml); nothing was changed');
  });
});

describe('after: checked in prepare, on real git', () => {
  test('an unknown name stops the release with exit 2 before the pull, naming the manifest and the name', async () => {
    const { Platform } = await import('../../test/helpers/platform.js');
    const platform = await Platform.create([{ name: 'web' }, { name: 'db' }]);
    try {
      const head = await platform.head();
      await platform.mergeFeature('77', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\nafter: [dbb]\n' });
      const refused = await platform.run('release-run', ['77']);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toContain('packages/web/manifest.yaml: after: names "dbb", which is not a service (no packages/dbb/manifest.yaml); nothing was changed');
      expect(await platform.head()).toBe(head);
      const fixed = await platform.mergeFeature('78', { 'packages/web/manifest.yaml': 'name: web\nruntime: none\nimage: local/web:2\nafter: [db]\n' });
      const released = await platform.run('release-run', ['78']);
      expect(`${released.exitCode}\n${released.all}`).toMatch(/^0\n/);
      expect(await platform.head()).toBe(fixed);
    } finally {
      platform.remove();
    }
  });
});
