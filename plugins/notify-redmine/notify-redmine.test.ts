import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT, Platform } from '../../test/helpers/platform.js';

/**
 * Against a real Redmine (Debian's packages, sqlite, REST API on): test/infra/ensure-redmine.sh
 * installs and starts it (a no-op when it answers) and says where it is and where its admin key is.
 */
interface RedmineServer {
  url: string;
  keyFile: string;
  project: string;
}

async function ensureRedmine(): Promise<RedmineServer> {
  const result = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test/infra/ensure-redmine.sh')], { reject: false, timeout: 600_000 });
  if (result.exitCode !== 0) throw new Error(`test/infra/ensure-redmine.sh failed: ${String(result.stderr)}`);
  const vars = Object.fromEntries(String(result.stdout).split('\n').filter(Boolean).map((line) => line.split('=', 2) as [string, string]));
  return { url: vars.REDMINE_URL!, keyFile: vars.REDMINE_API_KEY_FILE!, project: vars.REDMINE_PROJECT! };
}

interface Journal {
  notes: string;
  private_notes: boolean;
  user: { name: string };
}

describe('notify-redmine: the outcome as a note on the ticket, in a real Redmine', () => {
  let redmine: RedmineServer;
  let apiKey: string;
  let platform: Platform | undefined;
  let scratch: string;

  beforeAll(async () => {
    redmine = await ensureRedmine();
    apiKey = readFileSync(redmine.keyFile, 'utf8').trim();
  }, 600_000);
  beforeEach(() => { scratch = mkdtempSync(join(tmpdir(), 'ront-redmine-')); });
  afterEach(() => {
    platform?.remove();
    platform = undefined;
    rmSync(scratch, { recursive: true, force: true });
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const response = await fetch(`${redmine.url}${path}`, {
      method,
      headers: { 'X-Redmine-API-Key': apiKey, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  /** A new issue of the test project: its number is the release's ticket. */
  async function newIssue(subject: string): Promise<string> {
    const created = await api('POST', '/issues.json', { issue: { project_id: redmine.project, subject } });
    expect(created.status).toBe(201);
    return String(created.json.issue.id);
  }

  async function notesOf(issue: string): Promise<Journal[]> {
    const read = await api('GET', `/issues/${issue}.json?include=journals`);
    expect(read.status).toBe(200);
    return (read.json.issue.journals as Journal[]).filter((journal) => journal.notes);
  }

  async function platformNotifying(keyFile: string): Promise<Platform> {
    return Platform.create([{ name: 'web' }, { name: 'api' }], {
      'release.config.ts': `export default ({ defaultPlugins, builtins }: any) => ({\n  plugins: [...defaultPlugins(), builtins.notifyRedminePlugin({ url: '${redmine.url}/', apiKeyFile: '${keyFile}', backoffMs: 100 })],\n});\n`,
    });
  }

  const bump = (service: string, tag: string) => ({ [`packages/${service}/manifest.yaml`]: `name: ${service}\nruntime: none\nimage: local/${service}:${tag}\n` });

  function expectKeyNowhere(p: Platform, ticket: string, ...outputs: string[]) {
    for (const text of [...outputs, p.readLog(ticket).join('\n'), readFileSync(p.stateFile(ticket), 'utf8')]) expect(text).not.toContain(apiKey);
  }

  test('a release that completes, then its revert: two notes with outcome, services, duration and the command to paste', async () => {
    platform = await platformNotifying(redmine.keyFile);
    const ticket = await newIssue('release with a note');
    await platform.mergeFeature(ticket, { ...bump('web', '2'), ...bump('api', '2') });

    const released = await platform.run('release-run', [ticket], { RELEASE_INVOKED_VIA: 'just' });

    expect(released.exitCode).toBe(0);
    const [note] = await notesOf(ticket);
    expect(note!.user.name).toBe('Redmine Admin');
    expect(note!.private_notes).toBe(false);
    expect(note!.notes).toMatch(new RegExp(`^Release of #${ticket} released on \\S+ \\(exit 0\\)\\.\\n`));
    expect(note!.notes).toContain('* Services: api, web');
    expect(note!.notes).toMatch(/\* Duration: \d+s\n/);
    expect(note!.notes).toContain(`To roll back:\n\n<pre>just release-revert ${ticket}</pre>`);
    expect(platform.logEvents(ticket)).toContain(`ticket=${ticket} phase=orchestrator event=notified plugin=notify-redmine issue=${ticket} status=204 attempts=1`);

    const reverted = await platform.run('release-revert', [ticket]);

    expect(reverted.exitCode).toBe(0);
    const notes = await notesOf(ticket);
    expect(notes).toHaveLength(2);
    expect(notes[1]!.notes).toMatch(new RegExp(`^Revert of #${ticket} reverted on \\S+ \\(exit 0\\)\\.`));
    expect(notes[1]!.notes).toContain('* Services: api, web');
    expectKeyNowhere(platform, ticket, released.all, reverted.all);
  });

  test('a saved plan is posted on the ticket when it is written, with its actions and the command that runs it', async () => {
    platform = await platformNotifying(redmine.keyFile);
    const ticket = await newIssue('release reviewed as a plan');
    await platform.mergeFeature(ticket, bump('web', '2'));
    const planFile = join(platform.root, 'reviewed.plan.json');

    const dry = await platform.run('release-run', [ticket, '--dry-run', '--plan-out', planFile], { RELEASE_INVOKED_VIA: 'just' });

    expect(dry.exitCode).toBe(0);
    const notes = await notesOf(ticket);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.notes).toMatch(new RegExp(`^Plan for #${ticket} written on \\S+: [0-9a-f]{12}\\.\\.[0-9a-f]{12}, 1 action\\(s\\)\\.\\n`));
    expect(notes[0]!.notes).toContain('* redeploy web: packages/web/manifest.yaml changed');
    expect(notes[0]!.notes).toContain(`<pre>just release-run ${ticket} --plan ${planFile}</pre>`);
  });

  test('a release that fails: the failing phase, the error and the exact commands to roll back or resume', async () => {
    platform = await platformNotifying(redmine.keyFile);
    const ticket = await newIssue('release that fails');
    await platform.mergeFeature(ticket, { ...bump('web', '3'), [`releases/${ticket}-data.sh`]: '#!/bin/sh\necho "moving data"\nexit 3\n' });

    const result = await platform.run('release-run', [ticket]);

    expect(result.exitCode).toBe(1);
    const [note] = await notesOf(ticket);
    expect(note!.notes).toMatch(new RegExp(`^Release of #${ticket} FAILED in phase ticket \\(exit 1\\) on \\S+\\.`));
    expect(note!.notes).toContain('* Services: web');
    expect(note!.notes).toContain('* Failed phase: ticket');
    expect(note!.notes).toMatch(/\* Error: .+/);
    expect(note!.notes).toContain(`To roll back:\n\n<pre>release-revert ${ticket}</pre>`);
    expect(note!.notes).toContain(`To resume once the cause is fixed:\n\n<pre>release-run ${ticket} --from=ticket</pre>`);
    // The commands in the note are the ones the terminal showed.
    expect(result.stderr).toContain(`  release-revert ${ticket}\n`);
    expect(result.stderr).toContain(`  release-run ${ticket} --from=ticket\n`);
    expectKeyNowhere(platform, ticket, result.all);
  });

  test('a refused key: the release still completes, a warning and an audit event say why, the key appears nowhere', async () => {
    const badKey = 'f'.repeat(40);
    const keyFile = join(scratch, 'redmine-api-key');
    writeFileSync(keyFile, `${badKey}\n`, { mode: 0o600 });
    platform = await platformNotifying(keyFile);
    const ticket = await newIssue('release with a wrong key');
    await platform.mergeFeature(ticket, bump('web', '4'));

    const result = await platform.run('release-run', [ticket]);

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(`notify-redmine: the notification was not delivered: PUT ${redmine.url}/issues/${ticket}.json: HTTP 401 (the API key was refused: check the key file and that the REST API is enabled) after 1 attempt.`);
    expect(platform.logEvents(ticket).find((line) => line.includes('event=notify-failed'))).toMatch(new RegExp(`^ticket=${ticket} phase=orchestrator event=notify-failed plugin=notify-redmine reason=".*HTTP 401`));
    expect(await notesOf(ticket)).toEqual([]);
    for (const text of [result.all, platform.readLog(ticket).join('\n')]) expect(text).not.toContain(badKey);
  });

  test('a ticket that is no issue number: nothing is sent, the audit log says why', async () => {
    platform = await platformNotifying(redmine.keyFile);
    await platform.mergeFeature('OPS-7', bump('web', '5'));

    const result = await platform.run('release-run', ['OPS-7']);

    expect(result.exitCode).toBe(0);
    expect(platform.logEvents('OPS-7')).toContain('ticket=OPS-7 phase=orchestrator event=notify-skipped plugin=notify-redmine reason=ticket-is-no-issue-number');
    expect(result.stderr).not.toContain('notify-redmine');
  });
});
