import { execa } from 'execa';
import { ReleaseError } from '../../core/index.js';
import { testContext } from '../../test/helpers/context.js';
import { httpGet, uniqueName } from '../../test/helpers/docker.js';
import { EdgeProxy, backendState, parseServersState, parseSessions, renderHaproxyConfig, type EdgeProxySpec } from './index.js';

const spec = (over: Partial<EdgeProxySpec> = {}): EdgeProxySpec => ({
  name: 'roro-edge', owner: 'web', network: 'web_default', backendHost: 'app', backendPort: 8080, checkPath: '/health',
  listen: { host: '127.0.0.1', port: 19301 }, ...over,
});

describe('the edge proxy configuration (pure)', () => {
  test('one static config: backends found through Docker DNS, checked, retried on another backend', () => {
    const config = renderHaproxyConfig(spec({ backendHost: 'tasks.app', backendPort: 3000, checkPath: '/ready' }), { slots: 4 });
    expect(config).toContain('  nameserver dns 127.0.0.11:53\n');
    expect(config).toContain('  server-template b 1-4 tasks.app:3000\n');
    expect(config).toContain('  option httpchk GET /ready\n');
    expect(config).toContain('  option redispatch 1\n');
    expect(config).toMatch(/^ {2}retry-on conn-failure /m);
    expect(config.endsWith('\n')).toBe(true);
  });

  test('the runtime API answers are parsed by their header names', () => {
    const state = parseServersState([
      '1',
      '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
      '3 backends 1 b1 172.19.0.2 2 8 1 1 17 15 3 3 6 0 0 0 app 8080 - 0 0 - - 0',
      '3 backends 2 b2 - 0 32 1 1 14 7 2 0 14 0 0 0 app 8080 - 0 0 - - 0',
    ].join('\n'));
    expect(state).toEqual([
      { slot: 'b1', address: '172.19.0.2', opState: 2, adminState: 8, checkResult: 3 },
      { slot: 'b2', address: '-', opState: 0, adminState: 32, checkResult: 2 },
    ]);
    // Just resolved through DNS, running but not checked yet: not up (HAProxy 2.6 counts it as running).
    expect(backendState({ slot: 'b3', address: '172.19.0.5', opState: 2, adminState: 0, checkResult: 0 })).toBe('down');
    expect(backendState({ slot: 'b3', address: '172.19.0.5', opState: 2, adminState: 0, checkResult: 3 })).toBe('up');
    expect(backendState(state[0]!)).toBe('draining');
    expect(backendState(state[1]!)).toBe('maintenance');
    const sessions = parseSessions('# pxname,svname,qcur,qmax,scur,smax\nedge,FRONTEND,,,4,9\nbackends,b1,0,0,3,5\nbackends,b2,0,0,0,1\n');
    expect([...sessions]).toEqual([['b1', 3], ['b2', 0]]);
  });
});

describe('the edge proxy on a real Docker engine', () => {
  const network = uniqueName('roro-ep');
  const started: string[] = [];
  const proxy = new EdgeProxy({ checkIntervalMs: 300 });
  const front = spec({ name: `${network}-edge`, owner: network, network });
  const url = `http://127.0.0.1:${front.listen.port}`;
  const { context } = testContext([]);

  const backend = async (suffix: string, tag: string, command: string[] = []) => {
    const name = `${network}-${suffix}`;
    await execa('docker', ['run', '--detach', '--name', name, '--network', network, '--network-alias', 'app', `local/testsvc:${tag}`, ...command]);
    started.push(name);
    return { name, address: await proxy.addressOf(context, front, name) };
  };
  const versions = async (count: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) seen.add((await httpGet(`${url}/version`)).body);
    return [...seen].sort();
  };

  beforeAll(async () => { await execa('docker', ['network', 'create', network]); });
  afterAll(async () => {
    await execa('docker', ['rm', '--force', front.name, ...started], { reject: false });
    await execa('docker', ['network', 'rm', network], { reject: false });
  });

  test('follows backends as they come and go: a healthy one joins, a broken one never does, a drained one gets no request', async () => {
    const first = await backend('a', '1');
    expect(await proxy.ensure(context, front)).toBe('created');
    expect(await proxy.ensure(context, front)).toBe('kept');
    expect(await proxy.status(context, front)).toBe('running');
    const never = async () => undefined;
    expect((await proxy.waitUp(context, front, first.address, 10_000, never)).up).toBe(true);
    expect(await versions(4)).toEqual(['1']);

    const second = await backend('b', '2');
    expect((await proxy.waitUp(context, front, second.address, 10_000, never)).up).toBe(true);
    expect(await versions(6)).toEqual(['1', '2']);

    // Listens on another port: its health check fails, requests it is given meanwhile go elsewhere.
    const broken = await backend('c', '2', ['httpd', '-f', '-p', '9999', '-h', '/www']);
    const outcome = await proxy.waitUp(context, front, broken.address, 2_000, never);
    expect(outcome.up).toBe(false);
    expect(outcome.last).toMatch(new RegExp(`health check of ${broken.address.replace(/\./g, '\\.')}:8080/health failing`));
    expect((await httpGet(`${url}/health`)).status).toBe(200);

    await proxy.drain(context, front, first.address, 5_000);
    expect((await proxy.backends(context, front)).find((b) => b.address === first.address)?.state).toBe('draining');
    expect(await versions(6)).toEqual(['2']);
    await execa('docker', ['rm', '--force', first.name, broken.name]);
    // A removed container leaves the proxy once DNS stops answering for it (hold obsolete: 1s).
    const addresses = async () => (await proxy.backends(context, front)).map((b) => b.address);
    for (const until = Date.now() + 5_000; Date.now() < until && (await addresses()).length > 1;) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await addresses()).toEqual([second.address]);
    expect(await versions(4)).toEqual(['2']);
  });

  test('a changed spec replaces the proxy; a missing image is bad input naming the build script', async () => {
    const changed = { ...front, checkPath: '/version' };
    expect(await proxy.status(context, changed)).toBe('stale');
    expect(await proxy.ensure(context, changed)).toBe('created');
    expect(await proxy.status(context, changed)).toBe('running');

    const missing = new EdgeProxy({ image: 'local/roro-no-such-proxy:0' });
    const error = await missing.ensure(context, { ...front, name: `${network}-other` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReleaseError);
    expect((error as ReleaseError).exitCode).toBe(1);
    expect((error as ReleaseError).message).toBe('edge proxy image local/roro-no-such-proxy:0 is not on this host; the service was not touched');
    // An absolute path: the operator pastes it in the platform repo, not in the orchestrator's clone.
    expect((error as ReleaseError).hint).toMatch(/bash \/\S+\/scripts\/build-edge-proxy-image\.sh /);
  });
});
