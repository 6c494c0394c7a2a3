/**
 * A realistic platform repo's history, replayed one commit at a time through `release-run --dry-run`:
 * services that build from source, mount config, read env files, plus docs, CI files and ticket
 * scripts. Every release must classify with the default rules, and every change to a build
 * context must be built.
 */
import { Platform, sh } from './helpers/platform.js';

const compose = {
  web: `services:
  app:
    image: \${IMAGE}
    build: ./app
    env_file: .env.web
    depends_on: [nginx]
  nginx:
    image: nginx:1.25
    volumes:
      - ./nginx/nginx.conf:/etc/nginx/nginx.conf:ro
      - ./nginx/html:/usr/share/nginx/html:ro
`,
  api: `services:
  api:
    image: \${IMAGE}
    build:
      context: .
      dockerfile: docker/Dockerfile
    configs:
      - source: settings
        target: /etc/api/config.json
configs:
  settings:
    file: ./config.json
`,
  db: `services:
  db:
    image: postgres:15
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./initdb:/docker-entrypoint-initdb.d:ro
volumes:
  pgdata:
`,
  proxy: `services:
  proxy:
    image: \${IMAGE}
    ports: ["127.0.0.1:8443:443"]
    volumes:
      - type: bind
        source: ./conf.d
        target: /etc/haproxy/conf.d
`,
};

const manifest = (name: string, image = `registry.example/platform/${name}:1.0.0`) => `name: ${name}\nimage: ${image}\n`;

const initial: Record<string, string> = {
  '.gitignore': '.asd/\nnode_modules/\n',
  'README.md': '# platform\n',
  LICENSE: 'MIT\n',
  '.github/workflows/ci.yml': 'on: push\n',
  'docs/architecture.md': '# architecture\n',
  ...Object.fromEntries(Object.entries(compose).flatMap(([name, text]) => [[`packages/${name}/compose.yaml`, text], [`packages/${name}/manifest.yaml`, manifest(name)]])),
  'packages/web/app/Dockerfile': 'FROM node:20\nCOPY . /app\n',
  'packages/web/app/package.json': '{ "name": "web" }\n',
  'packages/web/app/package-lock.json': '{}\n',
  'packages/web/app/src/index.js': 'console.log(1)\n',
  'packages/web/.env.web': 'LOG_LEVEL=info\n',
  'packages/web/nginx/nginx.conf': 'events {}\n',
  'packages/web/nginx/html/index.html': '<h1>hi</h1>\n',
  'packages/web/README.md': '# web\n',
  'packages/api/docker/Dockerfile': 'FROM python:3.12\n',
  'packages/api/requirements.txt': 'flask\n',
  'packages/api/app/main.py': 'print(1)\n',
  'packages/api/config.json': '{}\n',
  'packages/api/tests/test_main.py': 'def test(): pass\n',
  'packages/db/initdb/001-schema.sql': 'create table t (id int);\n',
  'packages/proxy/conf.d/site.cfg': 'frontend x\n',
  'packages/proxy/docs/ops.txt': 'ops\n',
  // A service built from a folder shared outside the service folders.
  'packages/report/manifest.yaml': manifest('report'),
  'packages/report/compose.yaml': 'services:\n  report:\n    image: ${IMAGE}\n    build:\n      context: ../../shared/py\n      dockerfile: ../../packages/report/Dockerfile\n',
  'packages/report/Dockerfile': 'FROM python:3.12\n',
  'shared/py/requirements.txt': 'pandas\n',
  'shared/py/report/main.py': 'print(1)\n',
};

/** One commit each: the files it changes, and the services it must build. */
const history: { files: Record<string, string | null>; builds: string[] }[] = [
  { files: { 'packages/web/app/src/index.js': 'console.log(2)\n' }, builds: ['web'] },
  { files: { 'packages/web/app/package.json': '{ "name": "web", "version": "2" }\n', 'packages/web/app/package-lock.json': '{ "v": 2 }\n' }, builds: ['web'] },
  { files: { 'packages/web/app/.dockerignore': 'node_modules\n' }, builds: ['web'] },
  { files: { 'packages/web/app/Dockerfile': 'FROM node:22\nCOPY . /app\n' }, builds: ['web'] },
  { files: { 'packages/web/nginx/nginx.conf': 'events { worker_connections 512; }\n' }, builds: [] },
  { files: { 'packages/web/nginx/html/favicon.ico': 'ICO' }, builds: [] },
  { files: { 'packages/web/.env.web': 'LOG_LEVEL=debug\n' }, builds: [] },
  { files: { 'packages/web/README.md': '# web service\n' }, builds: [] },
  { files: { 'packages/api/requirements.txt': 'flask\nrequests\n' }, builds: ['api'] },
  { files: { 'packages/api/app/main.py': 'print(2)\n', 'packages/api/app/util.py': 'x = 1\n' }, builds: ['api'] },
  { files: { 'packages/api/docker/Dockerfile': 'FROM python:3.13\n' }, builds: ['api'] },
  { files: { 'packages/api/config.json': '{ "debug": true }\n' }, builds: ['api'] },
  { files: { 'packages/api/tests/test_util.py': 'def test(): pass\n' }, builds: ['api'] },
  { files: { 'packages/api/manifest.yaml': manifest('api', 'registry.example/platform/api:1.1.0') }, builds: [] },
  { files: { 'packages/db/initdb/002-index.sql': 'create index on t (id);\n' }, builds: [] },
  { files: { 'packages/db/compose.yaml': compose.db.replace('postgres:15', 'postgres:15.6') }, builds: [] },
  { files: { 'packages/proxy/conf.d/site.cfg': 'frontend y\n' }, builds: [] },
  { files: { 'packages/proxy/docs/ops.txt': 'more ops\n' }, builds: [] },
  { files: { 'packages/proxy/manifest.yaml': manifest('proxy', 'registry.example:5000/infra/haproxy:2.9') }, builds: [] },
  { files: { '.github/workflows/ci.yml': 'on: [push, pull_request]\n', '.github/dependabot.yml': 'version: 2\n' }, builds: [] },
  { files: { '.gitignore': '.asd/\nnode_modules/\n*.log\n', '.editorconfig': 'root = true\n' }, builds: [] },
  { files: { 'docs/runbook.md': '# runbook\n', 'docs/diagram.png': 'PNG' }, builds: [] },
  { files: { 'README.md': '# platform\n\nservices\n', 'CODEOWNERS': '* @ops\n', 'logo.svg': '<svg/>\n' }, builds: [] },
  { files: { 'releases/2001-migrate-users.sh': '#!/bin/sh\necho migrate\n' }, builds: [] },
  { files: { 'recovery/playbooks/release-db-lock.yaml': 'id: release-db-lock\n' }, builds: [] },
  { files: { 'packages/worker/manifest.yaml': manifest('worker'), 'packages/worker/compose.yaml': 'services:\n  worker:\n    image: ${IMAGE}\n    build: .\n', 'packages/worker/main.go': 'package main\n', 'packages/worker/go.mod': 'module worker\n' }, builds: ['worker'] },
  { files: { 'packages/worker/main.go': 'package main\n// v2\n', 'packages/worker/go.sum': 'x\n' }, builds: ['worker'] },
  { files: { 'packages/web/app/src/index.js': 'console.log(3)\n', 'packages/api/app/main.py': 'print(3)\n', 'docs/changes.md': '# 3\n' }, builds: ['web', 'api'] },
  { files: { 'packages/shared-notes/todo.txt': 'a folder without a manifest\n' }, builds: [] },
  { files: { 'packages/web/app/src/old.js': 'x\n' }, builds: ['web'] },
  { files: { 'shared/py/requirements.txt': 'pandas\npyarrow\n' }, builds: ['report'] },
  { files: { 'shared/py/report/main.py': 'print(2)\n', 'packages/report/Dockerfile': 'FROM python:3.13\n' }, builds: ['report'] },
  { files: { 'packages/web/app/src/old.js': null }, builds: ['web'] },
  { files: { 'packages/proxy/manifest.yaml': null, 'packages/proxy/compose.yaml': null, 'packages/proxy/conf.d/site.cfg': null, 'packages/proxy/docs/ops.txt': null }, builds: [] },
];

describe('replaying a realistic platform history through --dry-run', () => {
  let platform: Platform;
  beforeAll(async () => { platform = await Platform.create([], initial); });
  afterAll(() => platform.remove());

  test(`all ${history.length} releases classify with the default rules; every build-context change is built`, async () => {
    const shas = [await platform.head(platform.dev)];
    for (const { files } of history) shas.push(await platform.pushCommits([files]));
    const outcomes: string[] = [];
    for (const index of history.keys()) {
      await sh(platform.dev, 'git', ['push', '-q', '--force', 'origin', `${shas[index + 1]}:refs/heads/main`]);
      await platform.git(['reset', '-q', '--hard', shas[index]!]);
      const result = await platform.run('release-run', [`C${index}`, '--dry-run']);
      const built = [...result.stdout.matchAll(/migrate: would build (\S+) /g)].map((match) => match[1]).sort();
      outcomes.push(`${index}: exit ${result.exitCode}, builds ${built.join(' ') || '-'}${result.exitCode === 0 ? '' : `\n${result.all}`}`);
      // A build is always followed by a redeploy of the same service.
      for (const service of built) expect(result.stdout).toMatch(new RegExp(`migrate: would redeploy ${service}(, recreating [a-z0-9_, -]+)?: `));
    }
    expect(outcomes).toEqual(history.map(({ builds }, index) => `${index}: exit 0, builds ${[...builds].sort().join(' ') || '-'}`));
  });
});
