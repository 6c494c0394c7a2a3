import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT, Platform } from '../../test/helpers/platform.js';
import { type ReleaseEvent } from '../../api/index.js';
import { ReleaseEventSchema } from '../../core/index.js';

/** Ports of this test (19450-19499 belong to the notifier tests). */
const RECEIVER_PORT = 19451;
const SILENT_PORT = 19452;
const SECRET = 'whsec-4b1d0c0ffee5ec7e7-test';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  signatureValid: boolean;
}

/**
 * A webhook receiver as a chat bot or CI would run it: it checks the HMAC-SHA256 signature of the
 * raw body with the shared secret, and answers the first `failFirst` requests with 500.
 */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private server!: Server;
  constructor(private failFirst: number, private readonly secret = SECRET) {}

  async listen(port: number): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        const expected = Buffer.from(`sha256=${createHmac('sha256', this.secret).update(raw).digest('hex')}`);
        const given = Buffer.from(String(request.headers['x-release-signature'] ?? ''));
        const signatureValid = given.length === expected.length && timingSafeEqual(given, expected);
        this.deliveries.push({ headers: request.headers, body: raw.toString('utf8'), signatureValid });
        if (!signatureValid) {
          response.writeHead(401).end('bad signature');
        } else if (this.failFirst > 0) {
          this.failFirst--;
          response.writeHead(500).end('try again');
        } else {
          response.writeHead(204).end();
        }
      });
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
  }

  /** The events of the deliveries that were accepted, each checked against the `--json` schema. */
  events(): ReleaseEvent[] {
    return this.deliveries.filter((d) => d.signatureValid).map((d) => ReleaseEventSchema.parse(JSON.parse(d.body)));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const bump = (tag: string) => ({ 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:${tag}\n` });

describe('notify-webhook: a signed POST of the outcome, on a real platform', () => {
  let platform: Platform;
  let secrets: string;
  let receiver: Receiver | undefined;

  function configWith(options: string): Record<string, string> {
    return {
      'release.config.ts': `export default ({ defaultPlugins, builtins }: any) => ({\n  plugins: [...defaultPlugins(), builtins.notifyWebhookPlugin(${options})],\n});\n`,
    };
  }

  async function platformNotifying(port: number, extra = ''): Promise<Platform> {
    const secretFile = join(secrets, 'webhook-secret');
    return Platform.create([{ name: 'web' }], configWith(`{ url: 'http://127.0.0.1:${port}/hooks/release?token=abc', secretFile: '${secretFile}', backoffMs: 100${extra} }`));
  }

  beforeEach(() => {
    secrets = mkdtempSync(join(tmpdir(), 'ront-secrets-'));
    writeFileSync(join(secrets, 'webhook-secret'), `${SECRET}\n`, { mode: 0o600 });
  });
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
    platform?.remove();
    rmSync(secrets, { recursive: true, force: true });
  });

  function expectSecretNowhere(...texts: string[]) {
    for (const text of texts) expect(text).not.toContain(SECRET);
  }

  test('a release that completes: signed, retried after a 500, one delivery id, the --json outcome event', async () => {
    receiver = new Receiver(1);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    await platform.mergeFeature('2001', bump('2'));

    const result = await platform.run('release-run', ['2001']);

    expect(result.exitCode).toBe(0);
    expect(receiver.deliveries).toHaveLength(2);
    expect(receiver.deliveries.every((d) => d.signatureValid)).toBe(true);
    expect(receiver.deliveries[0]!.headers['x-release-delivery']).toBe(receiver.deliveries[1]!.headers['x-release-delivery']);
    expect(receiver.deliveries[1]!.headers['content-type']).toBe('application/json');
    const event = ReleaseEventSchema.parse(JSON.parse(receiver.deliveries[1]!.body));
    expect(event).toMatchObject({ schema: 1, ticket: '2001', verb: 'release-run', phase: 'orchestrator', event: 'outcome', dry_run: false });
    expect(event.fields).toMatchObject({
      result: 'complete', exit_code: 0, services: ['web'], phase_failed: null, message: null, next: [],
      merge_sha: await platform.head(),
    });
    expect(event.fields.duration_s).toEqual(expect.any(Number));
    // The URL's query may be its credential: the log names only the origin.
    expect(platform.logEvents('2001')).toContain(
      `ticket=2001 phase=orchestrator event=notified plugin=notify-webhook to=http://127.0.0.1:${RECEIVER_PORT} status=204 attempts=2 delivery=${String(receiver.deliveries[0]!.headers['x-release-delivery'])}`);
    expect(result.all).not.toContain('token=abc');
    expectSecretNowhere(result.all, platform.readLog('2001').join('\n'), readFileSync(platform.stateFile('2001'), 'utf8'));
  });

  test('a release that fails, then its revert: failed phase, exit code and the commands to paste; exit codes unchanged', async () => {
    receiver = new Receiver(0);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    await platform.mergeFeature('2002', { ...bump('2'), 'releases/2002-fix.sh': '#!/bin/sh\necho "fixing data"\nexit 3\n' });

    const failed = await platform.run('release-run', ['2002'], { RELEASE_INVOKED_VIA: 'just' });
    expect(failed.exitCode).toBe(1);
    expect(receiver.events()).toHaveLength(1);
    expect(receiver.events()[0]).toMatchObject({ ticket: '2002', verb: 'release-run', event: 'outcome' });
    expect(receiver.events()[0]!.fields).toMatchObject({
      result: 'failed', exit_code: 1, phase_failed: 'ticket', services: ['web'],
      next: ['just release-revert 2002', 'just release-run 2002 --from=ticket'],
    });

    const reverted = await platform.run('release-revert', ['2002']);
    expect(reverted.exitCode).toBe(0);
    expect(receiver.events()[1]).toMatchObject({ ticket: '2002', verb: 'release-revert', event: 'outcome' });
    expect(receiver.events()[1]!.fields).toMatchObject({ result: 'reverted', exit_code: 0, services: ['web'], phase_failed: null, next: [] });
    expect(platform.logEvents('2002').filter((line) => line.includes('event=notified plugin=notify-webhook'))).toHaveLength(2);
  });

  test('a receiver that never answers costs the release its timeout, not its exit code: a warning and an audit event', async () => {
    const silent = createServer(() => { /* never answers */ });
    await new Promise<void>((resolve) => silent.listen(SILENT_PORT, '127.0.0.1', resolve));
    try {
      platform = await platformNotifying(SILENT_PORT, ', timeoutMs: 1500');
      await platform.mergeFeature('2003', bump('2'));
      const started = Date.now();
      const result = await platform.run('release-run', ['2003']);
      const took = Date.now() - started;

      expect(result.exitCode).toBe(0);
      expect(result.stdout.trim().split('\n').pop()).toBe('[release-run] release 2003 complete');
      expect(result.stderr).toMatch(/notify-webhook: the notification was not delivered: POST to http:\/\/127\.0\.0\.1:19452: timed out.*The release's result is unchanged\./);
      expect(platform.logEvents('2003').find((line) => line.includes('event=notify-failed'))).toMatch(/^ticket=2003 phase=orchestrator event=notify-failed plugin=notify-webhook reason=".*timed out/);
      // The notifier's share of the run: from the run's end to its give-up, within the 1.5 s timeout
      // (whole-second timestamps), while a hung socket could have held it for minutes.
      const at = (pattern: RegExp) => Date.parse(platform.readLog('2003').find((line) => pattern.test(line))!.split(' ')[0]!);
      expect(at(/ phase=orchestrator event=notify-failed /) - at(/ phase=orchestrator event=done /)).toBeLessThanOrEqual(3000);
      expect(took).toBeLessThan(60_000);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('a missing secret file: the release completes, the warning names the file', async () => {
    receiver = new Receiver(0);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    rmSync(join(secrets, 'webhook-secret'));
    await platform.mergeFeature('2004', bump('2'));

    const result = await platform.run('release-run', ['2004']);

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(`notify-webhook: the notification was not delivered: cannot read the webhook secret file ${join(secrets, 'webhook-secret')} (ENOENT)`);
    expect(receiver.deliveries).toHaveLength(0);
  });

  test('an interrupted release (SIGINT during the ticket script) is reported as interrupted, exit 130', async () => {
    receiver = new Receiver(0);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    const started = join(secrets, 'ticket-started');
    await platform.mergeFeature('2009', { ...bump('2'), 'releases/2009-slow.sh': `#!/bin/sh\ntouch '${started}'\nexec sleep 30\n` });

    const run = execa('node', [join(ORCHESTRATOR_ROOT, 'dist/cli/bin/release-run.js'), '2009'], {
      cwd: platform.prod, env: { NO_COLOR: '1', RELEASE_INVOKED_VIA: '' }, reject: false, all: true,
    });
    for (let i = 0; i < 200 && !existsSync(started); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(existsSync(started)).toBe(true);
    run.kill('SIGINT');
    const result = await run;

    expect(result.exitCode).toBe(130);
    expect(receiver.events()).toHaveLength(1);
    expect(receiver.events()[0]!.fields).toMatchObject({
      result: 'interrupted', exit_code: 130, phase_failed: 'ticket', services: ['web'],
      next: ['release-revert 2009', 'release-run 2009 --from=ticket'],
    });
  });

  test('a dry run sends nothing and says what a real run would send', async () => {
    receiver = new Receiver(0);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    await platform.mergeFeature('2006', bump('2'));

    const result = await platform.run('release-run', ['2006', '--dry-run']);

    expect(result.exitCode).toBe(0);
    expect(result.all).toContain(`dry run: notify-webhook would send the outcome: POST http://127.0.0.1:${RECEIVER_PORT}`);
    expect(receiver.deliveries).toHaveLength(0);
  });

  test('a secret file others can read: delivered, with a warning that says how to fix it', async () => {
    receiver = new Receiver(0);
    await receiver.listen(RECEIVER_PORT);
    platform = await platformNotifying(RECEIVER_PORT);
    chmodSync(join(secrets, 'webhook-secret'), 0o644);
    await platform.mergeFeature('2007', bump('2'));

    const result = await platform.run('release-run', ['2007']);

    expect(result.exitCode).toBe(0);
    expect(receiver.events()).toHaveLength(1);
    expect(result.stderr).toContain(`notify-webhook: the webhook secret file ${join(secrets, 'webhook-secret')} has mode 0644; make it 0600 (chmod 600 ${join(secrets, 'webhook-secret')})`);
  });

  test('bad options are exit 2 naming the option, before anything changes', async () => {
    platform = await Platform.create([{ name: 'web' }], configWith(`{ url: 'ftp://127.0.0.1/x', secretFile: 'relative/secret' }`));
    await platform.mergeFeature('2005', bump('2'));
    const head = await platform.head();

    const result = await platform.run('release-run', ['2005']);

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('options of plugin notify-webhook: url: must be an http:// or https:// URL');
    expect(await platform.head()).toBe(head);
  });

  test('a URL with a password in it is refused: it would be printed in warnings', async () => {
    platform = await Platform.create([{ name: 'web' }], configWith(`{ url: 'https://bot:hunter2pass@hooks.example.org/x', secretFile: '/etc/hook-secret' }`));
    await platform.mergeFeature('2008', bump('2'));

    const result = await platform.run('release-run', ['2008']);

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('options of plugin notify-webhook: url: must not hold a user or password: credentials go in the secret file');
  });
});
