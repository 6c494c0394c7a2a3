import { parse } from 'yaml';
import { FINGERPRINT_LABEL, MOUNTS_LABEL, imagePath, renderStack } from './render.js';

const rendered = (ports: string) => `services:
  app:
    image: local/app:2
    build: { context: ./app }
    ports:
${ports}
    healthcheck: { test: ["CMD", "true"] }
  worker:
    image: local/worker:1
    deploy:
      update_config: { monitor: 1s, order: stop-first }
version: '3.9'
`;

describe('the stack file rendered from a compose file', () => {
  test('a short-syntax port is published in host mode; that service updates stop-first, the others start-first with rollback', () => {
    const stack = renderStack(rendered('    - 127.0.0.1:8080:80/tcp'), { publishMode: 'host', fingerprint: 'f1', mounts: '', file: 'packages/app/compose.yaml' });
    const doc = parse(stack.text);

    expect(doc.services.app.ports).toEqual([{ target: 80, published: 8080, protocol: 'tcp', mode: 'host' }]);
    expect(doc.services.app.build).toBeUndefined();
    expect(doc.services.app.deploy.update_config).toEqual({ parallelism: 1, order: 'stop-first', failure_action: 'rollback' });
    expect(doc.services.app.deploy.labels).toEqual({ [FINGERPRINT_LABEL]: 'f1' });
    expect(doc.services.worker.deploy.update_config).toEqual({ parallelism: 1, order: 'stop-first', failure_action: 'rollback', monitor: '1s' });
    expect(stack.notes).toEqual([
      'app: updates stop-first (host-mode port 8080), gated on its healthcheck',
      'worker: updates stop-first, no healthcheck: updates are gated on the task starting only',
    ]);
  });

  test('ingress ports leave the update start-first; mounted files become a container label', () => {
    const stack = renderStack(rendered('    - "8080:80"'), { publishMode: 'ingress', fingerprint: 'f2', mounts: 'm1', file: 'c.yaml' });
    const doc = parse(stack.text);

    expect(doc.services.app.ports).toEqual([{ target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' }]);
    expect(doc.services.app.deploy.update_config.order).toBe('start-first');
    expect(doc.services.app.deploy.rollback_config).toEqual({ parallelism: 1, order: 'start-first' });
    expect(doc.services.app.labels).toEqual({ [MOUNTS_LABEL]: 'm1' });
  });

  test('compose v2 renders every port `mode: ingress`: the source file tells a short-syntax port (host) from a chosen mode', () => {
    // What `docker compose config` (2.26) prints for `ports: ["18123:8080", {target: 9090, published: 19090, mode: ingress}]`.
    const v2 = `name: app
services:
  app:
    image: local/app:2
    networks:
      default: null
    ports:
      - mode: ingress
        target: 8080
        published: "18123"
        protocol: tcp
      - mode: ingress
        target: 9090
        published: "19090"
        protocol: tcp
networks:
  default:
    name: app_default
`;
    const source = 'services:\n  app:\n    image: ${IMAGE}\n    ports:\n      - "18123:8080"\n      - { target: 9090, published: 19090, mode: ingress }\n';
    const stack = renderStack(v2, { publishMode: 'host', fingerprint: 'f', mounts: '', file: 'packages/app/compose.yaml', source });
    const doc = parse(stack.text);

    expect(doc.services.app.ports).toEqual([
      { target: 8080, published: 18123, protocol: 'tcp', mode: 'host' },
      { target: 9090, published: 19090, protocol: 'tcp', mode: 'ingress' },
    ]);
    expect(doc.name).toBeUndefined();
    expect(doc.version).toBe('3.9');
    // Without the source, a rendered `mode: ingress` cannot be told from compose's default.
    const blind = parse(renderStack(v2, { publishMode: 'host', fingerprint: 'f', mounts: '', file: 'c.yaml' }).text);
    expect(blind.services.app.ports.map((port: { mode: string }) => port.mode)).toEqual(['host', 'host']);
  });

  test('a port range is refused with the file and a fix', () => {
    expect(() => renderStack(rendered('    - "8000-8010:80"'), { publishMode: 'host', fingerprint: 'f', mounts: '', file: 'packages/app/compose.yaml' }))
      .toThrow('packages/app/compose.yaml: services.app.ports: port "8000-8010:80" is not HOST:CONTAINER[/PROTOCOL]');
  });

  test("an image's path and tag in another registry", () => {
    expect(imagePath('local/testsvc:2')).toEqual({ path: 'local/testsvc', tag: '2' });
    expect(imagePath('registry.example:5000/team/app:1.2')).toEqual({ path: 'team/app', tag: '1.2' });
    expect(imagePath('postgres')).toEqual({ path: 'postgres', tag: 'latest' });
    expect(imagePath('localhost/app@sha256:abc')).toEqual({ path: 'app', tag: 'latest' });
  });
});
