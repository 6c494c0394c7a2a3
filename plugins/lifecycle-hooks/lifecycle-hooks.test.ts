import { parseManifest } from '../platform/manifest.js';
import { lifecycleHooksPlugin } from './index.js';

const manifest = (hooks: string) => `name: web\nimage: nginx:1.27\nhooks:\n${hooks}\n`;

describe('hooks: as written', () => {
  test('an argv, or { run, in } for inside a part, per moment', () => {
    const parsed = parseManifest(manifest('  pre-deploy: [./check.sh, --quick]\n  post-deploy: { run: [php, artisan, cache:clear], in: app }'), 'packages/web/manifest.yaml', 'web');
    expect(parsed.hooks).toEqual({ 'pre-deploy': ['./check.sh', '--quick'], 'post-deploy': { run: ['php', 'artisan', 'cache:clear'], in: 'app' } });
  });

  test('a shell string, an unknown moment or an empty command is refused, naming the key', () => {
    expect(() => parseManifest(manifest('  pre-deploy: ./check.sh && echo ok'), 'packages/web/manifest.yaml', 'web'))
      .toThrow(/packages\/web\/manifest\.yaml: hooks\.pre-deploy: expected a command as a list \(\[program, arg, \.\.\.\]\) or \{ run: \[program, arg, \.\.\.\], in: PART \}/);
    expect(() => parseManifest(manifest('  before-deploy: [./check.sh]'), 'packages/web/manifest.yaml', 'web')).toThrow(/hooks.*before-deploy/);
    expect(() => parseManifest(manifest('  pre-deploy: []'), 'packages/web/manifest.yaml', 'web')).toThrow(/expected a command as a list/);
  });

  test("the repo's hooks (the config's) run on the host: `in:` there is refused", () => {
    expect(() => lifecycleHooksPlugin({ 'pre-deploy': { run: ['true'], in: 'app' } })).toThrow(/pre-deploy\.in: a repo hook runs on the host/);
    expect(() => lifecycleHooksPlugin({ 'post-revert': ['./ops/announce.sh', 'reverted'] })).not.toThrow();
  });
});
