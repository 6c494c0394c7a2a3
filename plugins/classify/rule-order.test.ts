/**
 * Classifier rules run in the config's order and the first that claims a path wins: a path two
 * rules match is classified by the one listed first, whichever it is.
 */
import { applyPlugins } from '../../core/runner.js';
import type { DiffView, RunContext } from '../../core/index.js';
import { defaultPlugins } from '../../release.config.js';
import { classifyAll } from './classify-all.js';
import { globRule } from './index.js';

function memoryDiff(paths: string[], tree: Record<string, string>): DiffView {
  const list = (folder: string) => [...new Set(Object.keys(tree).filter((path) => path.startsWith(`${folder}/`)).map((path) => path.slice(folder.length + 1).split('/')[0]!))];
  return { base: 'a'.repeat(40), merge: 'b'.repeat(40), files: paths.map((path) => ({ path, status: 'M' })), prefetch() {}, read: (path) => tree[path], list };
}

const tree = {
  'packages/web/manifest.yaml': 'name: web\nimage: local/web:1\n',
  'packages/web/compose.yaml': 'services:\n  app:\n    image: ${IMAGE}\n    volumes:\n      - ./conf/site.conf:/etc/site.conf:ro\n',
};

function classified(plugins: ReturnType<typeof defaultPlugins>, paths: string[]) {
  const context = { hooks: applyPlugins({ plugins }) } as unknown as RunContext;
  return Object.fromEntries(classifyAll(context, memoryDiff(paths, tree)).map(({ file, classification: c }) =>
    [file.path, `${c.kind} (${c.rule}): ${c.actions.map((a) => `${a.kind} ${a.service}`).join(', ') || '-'}`]));
}

describe('when two classifier rules match one path', () => {
  const broad = globRule({ name: 'infra-any', patterns: ['infra/**'], kind: 'infra' });
  const narrow = globRule({ name: 'proxy-routes', patterns: ['infra/proxy/**'], kind: 'proxy-config', action: 'recreate', service: 'proxy' });

  test('the one listed first wins, in either order', () => {
    const path = 'infra/proxy/routes.conf';
    expect(classified([broad, narrow, ...defaultPlugins()], [path])[path]).toBe('infra (infra-any): -');
    expect(classified([narrow, broad, ...defaultPlugins()], [path])[path]).toBe('proxy-config (proxy-routes): recreate proxy');
  });

  test('a platform rule listed before the default rules wins over them for a service file', () => {
    const mountedConf = globRule({ name: 'web-conf-no-action', patterns: ['packages/web/conf/**'], kind: 'reviewed-conf' });
    const paths = ['packages/web/conf/site.conf'];
    expect(classified([...defaultPlugins()], paths)['packages/web/conf/site.conf']).toBe('mounted-config (service-files): recreate web');
    expect(classified([mountedConf, ...defaultPlugins()], paths)['packages/web/conf/site.conf']).toBe('reviewed-conf (web-conf-no-action): -');
    expect(classified([...defaultPlugins(), mountedConf], paths)['packages/web/conf/site.conf']).toBe('mounted-config (service-files): recreate web');
  });
});
