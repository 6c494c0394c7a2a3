import { Platform } from '../test/helpers/platform.js';

describe("a repo's release.config.ts", () => {
  let platform: Platform;
  beforeAll(async () => { platform = await Platform.create(); });
  afterAll(() => platform.remove());

  async function runWith(config: string) {
    platform.write(platform.prod, { 'release.config.ts': config });
    try {
      return await platform.run('release-run', ['9', '--dry-run']);
    } finally {
      platform.write(platform.prod, { 'release.config.ts': null });
    }
  }

  test.each([
    ['throws', 'throw new Error("boom");', /release.config.ts failed to load: boom/],
    ['a plugin with no name', 'export default ({ defaultPlugins }: any) => ({ plugins: [...defaultPlugins(), { apply() {} }] });', /release.config.ts: plugins\[\d+\]\.name: needs a name/],
    ['a duplicate name', 'export default ({ defaultPlugins }: any) => ({ plugins: [...defaultPlugins(), { name: "prepare", apply() {} }] });', /plugins\[\d+\]\.name: duplicate plugin name "prepare"/],
    ['an unknown key', 'export default { plugins: [], plugin: [] };', /release.config.ts: \(the default export\): Unrecognized key: "plugin"|release.config.ts: .*plugin/],
    ['no phase bodies', 'export default { plugins: [] };', /no plugin runs phase prepare/],
    ['a plugin whose apply throws', 'export default ({ defaultPlugins }: any) => ({ plugins: [...defaultPlugins(), { name: "x", apply() { throw new Error("bad option"); } }] });', /plugin x failed to apply: bad option/],
    ['bad TypeScript', 'export default {\n  plugins: [,\n};', /release.config.ts:3:1: syntax error: Unexpected token/],
    ['an unknown option of defaultPlugins()', 'export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ backupConcurency: 3 }) });', /release.config.ts: options of defaultPlugins\(\): unknown option "backupConcurency"/],
    ['an atomic that is not a boolean', 'export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins(), atomic: "yes" });', /release.config.ts: atomic: must be true or false/],
    ['a rule with a bad option', 'export default ({ defaultPlugins, builtins }: any) => ({ plugins: [...defaultPlugins(), builtins.globRule({ name: "dashboards", patterns: [] , kind: "x" })] });', /release.config.ts: options of plugin globRule named "dashboards": patterns: /],
  ])('that %s exits 2 naming the file and the key', async (_name, config, message) => {
    const result = await runWith(config);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(message);
  });

  test('the fix of an unknown defaultPlugins() option lists the known ones; backupConcurrency is one', async () => {
    const bad = await runWith('export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ backupConcurency: 3 }) });');
    expect(bad.stderr).toMatch(/fix: the options of defaultPlugins\(\) are remote, branch, composeCommand, backupConcurrency/);
    const good = await runWith('export default ({ defaultPlugins }: any) => ({ plugins: defaultPlugins({ backupConcurrency: 3 }) });');
    // it loads: the run goes on to prepare, which refuses the uncommitted config file
    expect(good.stderr).not.toMatch(/options of/);
    expect(good.stderr).toMatch(/the work tree has 1 uncommitted change/);
  });

  test('can add a plugin to the reference set', async () => {
    const result = await runWith(`export default ({ defaultPlugins }: any) => ({
      plugins: [...defaultPlugins(), { name: 'hello', apply({ hooks }: any) {
        hooks.phase.for('prepare').tap({ name: 'hello', stage: -10 }, (context: any) => context.out.info('hello from the repo config'));
      } }],
    });`);
    expect(result.stdout).toContain('[release-run] hello from the repo config');
  });
});
