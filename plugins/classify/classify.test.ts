import { applyPlugins } from '../../core/runner.js';
import type { ChangedFile, DiffView, RunContext } from '../../core/index.js';
import { defaultPlugins } from '../../release.config.js';
import { planActions } from '../migrate/index.js';
import { classifyAll } from './classify-all.js';
import { globRule } from './index.js';

/** A diff held in memory: the classifier's logic alone (the git-backed view is tested end to end). */
function memoryDiff(paths: (string | ChangedFile)[], tree: Record<string, string>): DiffView {
  const files = paths.map((p) => (typeof p === 'string' ? { path: p, status: 'M' } : p));
  const list = (folder: string) => [...new Set(Object.keys(tree).filter((path) => path.startsWith(`${folder}/`)).map((path) => path.slice(folder.length + 1).split('/')[0]!))];
  return { base: 'a'.repeat(40), merge: 'b'.repeat(40), files, prefetch() {}, read: (path) => tree[path], list };
}

const manifest = (name: string) => `name: ${name}\nimage: local/${name}:1\n`;
const WEB_COMPOSE = `services:
  app:
    image: \${IMAGE}
    build:
      context: ./app
      dockerfile: ../docker/app.Dockerfile
    env_file: [app.env]
    volumes:
      - ./conf/nginx.conf:/etc/nginx/nginx.conf:ro
      - type: bind
        source: ./static
        target: /srv/static
      - data:/data
      - /var/run/docker.sock:/var/run/docker.sock
    configs: [site]
  worker:
    build: ./worker
    env_file:
      - path: worker.env
  db:
    image: postgres:15
    volumes:
      - ./initdb:/docker-entrypoint-initdb.d
volumes:
  data:
configs:
  site:
    file: ./conf/site.json
`;
const tree = {
  'packages/web/manifest.yaml': manifest('web'),
  'packages/web/compose.yaml': WEB_COMPOSE,
  'packages/api/manifest.yaml': manifest('api'),
  'packages/api/compose.yaml': 'services:\n  api:\n    image: ${IMAGE}\n    build: .\n',
  'packages/lib/manifest.yaml': manifest('lib'),
};

function classify(paths: (string | ChangedFile)[], plugins = defaultPlugins(), files: Record<string, string> = tree) {
  const context = { hooks: applyPlugins({ plugins }) } as unknown as RunContext;
  return classifyAll(context, memoryDiff(paths, files));
}

const summary = (paths: (string | ChangedFile)[], plugins?: ReturnType<typeof defaultPlugins>, files?: Record<string, string>) =>
  Object.fromEntries(classify(paths, plugins, files).map(({ file, classification: c }) =>
    [file.path, `${c.kind} (${c.rule})${c.service ? ` ${c.service}` : ''}: ${c.actions.map((a) => `${a.kind}${a.targets ? `[${a.targets}]` : ''}`).join(' ') || '-'}`]));

describe('the default classifier rules', () => {
  test('each role of a service file comes from its compose file', () => {
    expect(summary([
      'packages/web/manifest.yaml',
      'packages/web/compose.yaml',
      'packages/web/app/src/server.js',
      'packages/web/app/package-lock.json',
      'packages/web/app/.dockerignore',
      'packages/web/docker/app.Dockerfile',
      'packages/web/worker/main.py',
      'packages/web/conf/nginx.conf',
      'packages/web/static/favicon.ico',
      'packages/web/app.env',
      'packages/web/worker.env',
      'packages/web/conf/site.json',
      'packages/web/initdb/001.sql',
      'packages/web/README.md',
      'packages/web/tests/test_app.py',
    ])).toEqual({
      'packages/web/manifest.yaml': 'manifest (service-files) web: redeploy',
      'packages/web/compose.yaml': 'compose (service-files) web: redeploy',
      'packages/web/app/src/server.js': 'build-context (service-files) web: build[app] redeploy',
      'packages/web/app/package-lock.json': 'build-context (service-files) web: build[app] redeploy',
      'packages/web/app/.dockerignore': 'build-context (service-files) web: build[app] redeploy',
      'packages/web/docker/app.Dockerfile': 'build-context (service-files) web: build[app] redeploy',
      'packages/web/worker/main.py': 'build-context (service-files) web: build[worker] redeploy',
      'packages/web/conf/nginx.conf': 'mounted-config (service-files) web: recreate[app]',
      'packages/web/static/favicon.ico': 'mounted-config (service-files) web: recreate[app]',
      'packages/web/app.env': 'mounted-config (service-files) web: recreate[app]',
      'packages/web/worker.env': 'mounted-config (service-files) web: recreate[worker]',
      'packages/web/conf/site.json': 'mounted-config (service-files) web: recreate[app]',
      'packages/web/initdb/001.sql': 'mounted-config (service-files) web: recreate[db]',
      'packages/web/README.md': 'service-file (service-files) web: -',
      'packages/web/tests/test_app.py': 'service-file (service-files) web: -',
    });
  });

  test("the project .env compose reads for ${VAR} redeploys its service; also mounted as env_file, it recreates those too", () => {
    const withEnv = { ...tree, 'packages/api/compose.yaml': 'services:\n  api:\n    image: local/api:${TAG}\n    env_file: .env\n', 'packages/api/.env': 'TAG=2\n' };
    expect(summary(['packages/web/.env', 'packages/api/.env', { path: 'packages/lib/.env', status: 'D' }], undefined, withEnv)).toEqual({
      'packages/web/.env': 'compose-env (service-files) web: redeploy',
      'packages/api/.env': 'compose-env (service-files) api: redeploy recreate[api]',
      // lib has no compose file: nothing reads it
      'packages/lib/.env': 'service-file (service-files) lib: -',
    });
    const [redeploy] = planActions(classify(['packages/api/.env'], undefined, withEnv));
    expect(redeploy).toMatchObject({ service: 'api', kind: 'redeploy', recreate: ['api'] });
  });

  test('secrets: files recreate the services given them; include: and extends: files redeploy the services whose compose file reads them', () => {
    const files = {
      ...tree,
      'packages/api/compose.yaml': [
        'include:',
        '  - ../../shared/compose/logging.yaml',
        '  - path: ./extra.yaml',
        '    env_file: ./extra.env',
        'services:',
        '  api:',
        '    extends: { file: ./base.yaml, service: base }',
        '    secrets: [db_password, { source: api_key }]',
        '  cron:',
        '    image: local/cron:1',
        'secrets:',
        '  db_password:',
        '    file: ./secrets/db_password.txt',
        '  api_key:',
        '    environment: API_KEY',
        '',
      ].join('\n'),
    };
    expect(summary(['packages/api/secrets/db_password.txt', 'packages/api/base.yaml', 'packages/api/extra.yaml', 'packages/api/extra.env',
      'shared/compose/logging.yaml'], undefined, files)).toEqual({
      'packages/api/secrets/db_password.txt': 'mounted-config (service-files) api: recreate[api]',
      'packages/api/base.yaml': 'compose-source (service-files) api: redeploy',
      'packages/api/extra.yaml': 'compose-source (service-files) api: redeploy',
      'packages/api/extra.env': 'compose-source (service-files) api: redeploy',
      'shared/compose/logging.yaml': 'compose-source (service-files) api: redeploy',
    });
  });

  test('a build context of "." takes every file but the manifest and compose file; no compose file means no roles', () => {
    expect(summary(['packages/api/Dockerfile', 'packages/api/src/main.go', 'packages/api/manifest.yaml', 'packages/lib/src/a.ts', 'packages/lib/manifest.yaml'])).toEqual({
      'packages/api/Dockerfile': 'build-context (service-files) api: build[api] redeploy',
      'packages/api/src/main.go': 'build-context (service-files) api: build[api] redeploy',
      'packages/api/manifest.yaml': 'manifest (service-files) api: redeploy',
      'packages/lib/src/a.ts': 'service-file (service-files) lib: -',
      'packages/lib/manifest.yaml': 'manifest (service-files) lib: redeploy',
    });
  });

  test('a build context outside the service folder: its files build the services that use it', () => {
    const shared = {
      ...tree,
      'packages/api/compose.yaml': 'services:\n  api:\n    image: ${IMAGE}\n    build:\n      context: ../../shared/base\n      dockerfile: ../../packages/api/Dockerfile\n',
      'packages/lib/compose.yaml': 'services:\n  job:\n    image: ${IMAGE}\n    build: ../web/app\n',
    };
    expect(summary(['shared/base/requirements.txt', 'packages/api/Dockerfile', 'packages/web/app/index.js'], undefined, shared)).toEqual({
      'shared/base/requirements.txt': 'build-context (service-files) api: build[api] redeploy',
      'packages/api/Dockerfile': 'build-context (service-files) api: build[api] redeploy',
      'packages/web/app/index.js': 'build-context (service-files) web: build[app] redeploy build[job] redeploy',
    });
  });

  test('a deleted service is removed; a renamed folder removes the old one; a folder with no manifest has no service', () => {
    expect(summary([
      { path: 'packages/old/manifest.yaml', status: 'D' },
      { path: 'packages/old/compose.yaml', status: 'D' },
      { path: 'packages/old/app/x.js', status: 'D' },
      { path: 'packages/api/manifest.yaml', status: 'R', from: 'packages/api-v1/manifest.yaml' },
      'packages/notes/todo.txt',
    ])).toEqual({
      'packages/old/manifest.yaml': 'manifest (service-files) old: remove',
      'packages/old/compose.yaml': 'compose (service-files) old: remove',
      'packages/old/app/x.js': 'service-file (service-files) old: -',
      'packages/api/manifest.yaml': 'manifest (service-files) api: redeploy remove',
      'packages/notes/todo.txt': 'no-manifest (service-files): -',
    });
  });

  test('repo metadata, docs, tickets, playbooks and the platform config need no action', () => {
    expect(summary(['.github/workflows/ci.yml', '.gitlab-ci.yml', '.gitignore', '.gitattributes', '.editorconfig', '.dockerignore',
      'LICENSE', 'LICENSE.txt', 'CODEOWNERS', 'MAINTAINERS', 'CONTRIBUTING.md', 'logo.png', 'README.md', 'docs/arch/overview.svg',
      'releases/12-x.sh', 'recovery/playbooks/release-x.yaml', 'release.config.ts', 'justfile'])).toEqual({
      '.github/workflows/ci.yml': 'repo-meta (repo-meta): -',
      '.gitlab-ci.yml': 'repo-meta (repo-meta): -',
      '.gitignore': 'repo-meta (repo-meta): -',
      '.gitattributes': 'repo-meta (repo-meta): -',
      '.editorconfig': 'repo-meta (repo-meta): -',
      '.dockerignore': 'repo-meta (repo-meta): -',
      LICENSE: 'repo-meta (repo-meta): -',
      'LICENSE.txt': 'repo-meta (repo-meta): -',
      CODEOWNERS: 'repo-meta (repo-meta): -',
      MAINTAINERS: 'repo-meta (repo-meta): -',
      'CONTRIBUTING.md': 'docs (docs): -',
      'logo.png': 'repo-meta (repo-meta): -',
      'README.md': 'docs (docs): -',
      'docs/arch/overview.svg': 'docs (docs): -',
      'releases/12-x.sh': 'ticket-script (ticket-scripts): -',
      'recovery/playbooks/release-x.yaml': 'playbook (playbooks): -',
      'release.config.ts': 'release-config (release-config): -',
      justfile: 'release-config (release-config): -',
    });
  });

  test("the metadata real platform repos carry at the root needs no action; inside a service folder it is still the service's", () => {
    const meta = ['.gitleaks.toml', '.gitleaksignore', '.pre-commit-config.yaml', '.yamllint.yaml', '.editorconfig', 'renovate.json',
      '.github/dependabot.yml', '.gitlab-ci.yml', '.woodpecker/deploy.yml', '.woodpecker.yml', '.drone.yml', '.gitmodules', '.mailmap',
      '.markdownlint.yaml', '.prettierrc.json', '.hadolint.yaml', '.trivyignore', '.tool-versions', '.vscode/settings.json', 'CHANGELOG'];
    const classified = summary([...meta, 'packages/web/.pre-commit-config.yaml']);
    for (const file of meta) expect([file, classified[file]]).toEqual([file, 'repo-meta (repo-meta): -']);
    expect(classified['packages/web/.pre-commit-config.yaml']).toBe('service-file (service-files) web: -');
  });

  test("the orchestrator's own files are orchestrator-source only in the orchestrator's repo", () => {
    const own = { 'package.json': '{ "name": "release-orchestrator", "version": "1.0.0" }' };
    expect(summary(['core/runner.ts', 'release.config.ts'], undefined, own)).toEqual({
      'core/runner.ts': 'orchestrator-source (orchestrator-source): -',
      'release.config.ts': 'orchestrator-source (orchestrator-source): -',
    });
    expect(() => classify(['core/runner.ts'])).toThrow(/match no classifier rule/);
  });

  test('anything else at the root exits 5, listing every file and the rules in force with their patterns', () => {
    let error: { exitCode: number; message: string; lines: string[] } | undefined;
    try {
      classify(['tools/helper.py', 'Makefile', 'packages/web/manifest.yaml', 'docker-compose.yml']);
    } catch (thrown) {
      error = thrown as typeof error;
    }
    expect(error?.exitCode).toBe(5);
    expect(error?.message).toBe('3 changed file(s) match no classifier rule; no service was touched');
    expect(error?.lines.slice(0, 4)).toEqual(['tools/helper.py', 'Makefile', 'docker-compose.yml', 'rules in force, in order:']);
    expect(error?.lines).toContainEqual(expect.stringMatching(/^  repo-meta \(\.github\/\*\* \.gitlab-ci\.yml .* \.gitleaks\.toml .* renovate\.json .*\*\.\{png,jpg,jpeg,gif,svg,ico,webp\}\)$/));
    expect(error?.lines).toContain('  service-files (packages/<svc>/**, roles from packages/<svc>/compose.yaml)');
  });

  test('a compose file that does not parse names the file', () => {
    expect(() => classify(['packages/web/app/x.js'], undefined, { ...tree, 'packages/web/compose.yaml': 'services: [\n' }))
      .toThrow(/packages\/web\/compose.yaml: not valid YAML/);
    expect(() => classify(['packages/web/app/x.js'], undefined, { ...tree, 'packages/web/compose.yaml': 'services:\n  app:\n    ports: [80]\n' }))
      .toThrow('packages/web/compose.yaml: services.app: needs an image: or a build:');
  });
});

describe('rules that carry actions', () => {
  test('a glob rule gives its action to the service owning the path, or to the one it names', () => {
    const plugins = [
      globRule({ name: 'proxy-config', patterns: ['infra/proxy/**'], kind: 'proxy-config', action: 'recreate', service: 'proxy' }),
      globRule({ name: 'assets', patterns: ['packages/*/assets/**'], kind: 'asset', action: 'redeploy' }),
      ...defaultPlugins(),
    ];
    expect(summary(['infra/proxy/haproxy.cfg', 'packages/web/assets/logo.svg'], plugins)).toEqual({
      'infra/proxy/haproxy.cfg': 'proxy-config (proxy-config) proxy: recreate',
      'packages/web/assets/logo.svg': 'asset (assets) web: redeploy',
    });
  });

  test('an action for a path no service owns is refused naming the rule', () => {
    const plugins = [globRule({ name: 'infra', patterns: ['infra/**'], kind: 'infra', action: 'recreate' }), ...defaultPlugins()];
    expect(() => classify(['infra/x.cfg'], plugins)).toThrow('rule infra: infra/x.cfg belongs to no service, so its action recreate has no target');
  });

  test('a bad action name is refused when the config loads', () => {
    expect(() => globRule({ name: 'x', patterns: ['x/**'], kind: 'x', action: 'Re Deploy' })).toThrow(/action/);
  });
});

describe('planActions', () => {
  const described = (actions: ReturnType<typeof planActions>) => actions.map((a) => `${a.kind} ${a.service}${a.targets ? `[${a.targets}]` : ''}${a.recreate ? ` recreating ${a.recreate}` : ''}`);

  test('one action per service and kind with merged targets, build before redeploy; a recreate folds into the redeploy; remove wins', () => {
    const classified = classify([
      'packages/web/conf/nginx.conf', 'packages/web/worker/main.py', 'packages/web/app/a.js', 'packages/web/manifest.yaml', 'packages/web/initdb/1.sql',
      { path: 'packages/old/manifest.yaml', status: 'D' }, { path: 'packages/old/compose.yaml', status: 'D' },
    ]);
    expect(described(planActions(classified))).toEqual([
      'build web[app,worker]', 'redeploy web recreating app,db', 'remove old',
    ]);
    // Alone, a mounted file is a recreate of what mounts it.
    expect(described(planActions(classify(['packages/web/conf/nginx.conf'])))).toEqual(['recreate web[app]']);
  });

  test('a recreate of every part beside a redeploy is that one recreate', () => {
    const plugins = [globRule({ name: 'shared', patterns: ['shared/**'], kind: 'shared', action: 'recreate', service: 'web' }), ...defaultPlugins()];
    const [only, ...rest] = planActions(classify(['shared/banner.txt', 'packages/web/compose.yaml'], plugins));
    expect(rest).toEqual([]);
    expect(only).toMatchObject({ service: 'web', kind: 'recreate', reason: 'packages/web/compose.yaml changed; shared/banner.txt changed (rule shared)' });
  });
});
