import { swarmRuntimePlugin } from './index.js';

describe("runtime-swarm's options", () => {
  test('a registry that is no HOST[:PORT] is refused (exit 2) naming the option and an example', () => {
    expect(() => swarmRuntimePlugin({ registry: 'https://registry.internal/v2' })).toThrow(
      'options of plugin runtime-swarm: registry: expected HOST[:PORT] of a registry, e.g. 127.0.0.1:5000',
    );
    expect(() => swarmRuntimePlugin({ publishMode: 'mesh' as 'host' })).toThrow(expect.objectContaining({
      code: 'BAD_INPUT', message: expect.stringContaining('options of plugin runtime-swarm: publishMode:'),
    }));
  });

  test('an unknown option is refused, listing the known ones', () => {
    expect(() => swarmRuntimePlugin({ registy: '127.0.0.1:5000' } as object)).toThrow('options of plugin runtime-swarm: unknown option "registy"');
  });
});
