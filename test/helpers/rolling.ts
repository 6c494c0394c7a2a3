/** Services released with `deploy: { strategy: rolling }` for tests and the bench. */
import { testManifest } from './docker.js';

export interface RollingServiceOptions {
  tag?: string;
  /** The container's command, e.g. to make its health check fail. */
  command?: string;
  timeout?: string;
}

/** A service behind an edge proxy on 127.0.0.1:`port`: the test image, no published port of its own. */
export function rollingServiceFiles(name: string, port: number, options: RollingServiceOptions = {}): Record<string, string> {
  return {
    [`packages/${name}/manifest.yaml`]: testManifest(name, port, { tag: options.tag, timeout: options.timeout, extra: ['deploy:', '  strategy: rolling', '  port: 8080', '  drain: 5s'] }),
    [`packages/${name}/compose.yaml`]: [
      'services:',
      '  app:',
      '    image: ${IMAGE}',
      ...(options.command ? [`    command: ${options.command}`] : []),
      '    volumes:',
      '      - data:/data',
      'volumes:',
      '  data:',
      '',
    ].join('\n'),
  };
}
