import { createServer, type Server } from 'node:http';
import { execa } from 'execa';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, type CliResult } from './helpers/platform.js';
import { ReleaseEventSchema, type ReleaseEvent } from '../core/event-schema.js';

/** Every line of stdout must be one event the schema accepts; nothing else is on stdout. */
function events(result: CliResult): ReleaseEvent[] {
  const lines = result.stdout.split('\n').filter((line) => line !== '');
  return lines.map((line, index) => {
    const parsed = ReleaseEventSchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new Error(`stdout line ${index + 1} is not a valid event: ${line}\n${parsed.error.message}`);
    return parsed.data as ReleaseEvent;
  });
}

const find = (list: ReleaseEvent[], phase: string, event: string) => list.filter((e) => e.phase === phase && e.event === event);

/** The audit log's events appear in the stream, in the same order. */
function expectLogInStream(logLines: string[], stream: ReleaseEvent[]): void {
  let at = 0;
  for (const line of logLines) {
    const [, phase, event] = / phase=(\S+) event=(\S+)/.exec(line)!;
    const found = stream.findIndex((e, index) => index >= at && e.phase === phase && e.event === event);
    if (found < 0) throw new Error(`audit log event ${phase}/${event} is not in the --json stream after position ${at}`);
    at = found + 1;
  }
}

const sqlite = (db: string, sql: string) => execa('sqlite3', ['-bail', db, sql]);
const PORT = 19401;
const manifest = (db: string, tag: string) =>
  `name: web\nruntime: none\nimage: local/web:${tag}\nhealth:\n  url: http://127.0.0.1:${PORT}\n  endpoint: /health\n  timeout: 10s\nbackup:\n  - type: sqlite\n    path: ${db}\n    compress: false\n`;

describe('--json: one event per line on stdout', () => {
  let platform: Platform;
  let server: Server;
  let db: string;
  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(200, { connection: 'close' }).end('ok'));
    await new Promise<void>((resolve) => server.listen(PORT, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(async () => {
    platform = await Platform.create([{ name: 'web' }], {}, 'roev-platform-');
    db = join(platform.root, 'web.sqlite');
    await sqlite(db, 'CREATE TABLE t(v TEXT); INSERT INTO t VALUES (\'before\');');
    await platform.mergeFeature('300', { 'packages/web/manifest.yaml': manifest(db, '1') });
    expect((await platform.run('release-run', ['300'])).exitCode).toBe(0);
  });
  afterEach(() => platform.remove());

  test('a release and its revert: the log\'s events, the action, the backup with its size, the probe, the outcome', async () => {
    await platform.mergeFeature('301', { 'packages/web/manifest.yaml': manifest(db, '2'), 'releases/301-note.sh': '#!/bin/bash\n[ "$1" = --yes ] || exit 9\necho noted\n' });

    const result = await platform.run('release-run', ['301', '--json']);

    expect(result.exitCode).toBe(0);
    const stream = events(result);
    expect(stream.every((e) => e.ticket === '301' && e.verb === 'release-run' && e.dry_run === false)).toBe(true);
    expectLogInStream(platform.readLog('301'), stream);
    expect(find(stream, 'migrate', 'action')[0]!.fields).toMatchObject({ service: 'web', kind: 'redeploy' });
    const backup = find(stream, 'prepare', 'backup')[0]!;
    expect(backup.fields.bytes).toBeGreaterThan(0);
    expect(find(stream, 'probe', 'healthy')[0]!.fields).toMatchObject({ service: 'web', url: `http://127.0.0.1:${PORT}/health` });
    expect(find(stream, 'ticket', 'script')[0]!.fields).toMatchObject({ script: 'releases/301-note.sh', rc: 0 });
    const outcome = stream.at(-1)!;
    expect(outcome).toMatchObject({ phase: 'orchestrator', event: 'outcome' });
    expect(outcome.fields).toMatchObject({ result: 'complete', exit_code: 0, services: ['web'], merge_sha: await platform.head(), phase_failed: null });
    // The human output is on stderr, none of it on stdout.
    expect(result.stderr).toContain('[release-run] release 301 complete');

    const revert = await platform.run('release-revert', ['301', '--json']);

    expect(revert.exitCode).toBe(0);
    const reverted = events(revert);
    const log = platform.readLog('301');
    expectLogInStream(log.slice(log.map((line) => line.includes('event=start verb=release-revert')).lastIndexOf(true)), reverted);
    expect(find(reverted, 'restore', 'restored')[0]!.fields).toMatchObject({ service: 'web', type: 'sqlite' });
    expect(reverted.at(-1)!.fields).toMatchObject({ result: 'reverted', exit_code: 0 });
  });

  test('a dry run: every event marked dry_run, the backup estimate and the actions, no log written', async () => {
    await platform.mergeFeature('302', { 'packages/web/manifest.yaml': manifest(db, '3') });

    const result = await platform.run('release-run', ['302', '--dry-run', '--json']);

    expect(result.exitCode).toBe(0);
    const stream = events(result);
    expect(stream.every((e) => e.dry_run)).toBe(true);
    expect(find(stream, 'prepare', 'backup-estimate')[0]!.fields).toMatchObject({ service: 'web', type: 'sqlite' });
    expect(find(stream, 'migrate', 'action')).toHaveLength(1);
    expect(stream.at(-1)!.fields).toMatchObject({ result: 'dry-run', exit_code: 0 });
    expect(existsSync(platform.stateFile('302'))).toBe(false);
    expect(platform.readLog('302')).toEqual([]);
  });

  test('a failure: the error with its exit code, the commands to paste, the playbook, the outcome', async () => {
    await platform.mergeFeature('303', { 'packages/web/manifest.yaml': manifest(join(platform.root, 'missing.sqlite'), '4') });

    const result = await platform.run('release-run', ['303', '--json']);

    expect(result.exitCode).toBe(6);
    const stream = events(result);
    expectLogInStream(platform.readLog('303'), stream);
    const error = find(stream, 'prepare', 'error')[0]!;
    expect(error.fields).toMatchObject({ code: 'BACKUP_FAILED', exit_code: 6 });
    expect(String(error.fields.message)).toContain('missing.sqlite');
    expect(find(stream, 'orchestrator', 'next')[0]!.fields.commands).toEqual(['release-run 303']);
    expect(find(stream, 'orchestrator', 'playbook').map((e) => e.fields.id)).toContain('release-backup-failed');
    expect(stream.at(-1)!.fields).toMatchObject({ result: 'failed', exit_code: 6, phase_failed: 'prepare', next: ['release-run 303'] });
  });

  test('a failed dry run and refused input end with an outcome too; stdout holds only events', async () => {
    await platform.mergeFeature('304', { 'packages/web/manifest.yaml': manifest(db, '5'), 'stray.bin': 'x' });

    const dry = await platform.run('release-run', ['304', '--dry-run', '--json']);

    expect(dry.exitCode).toBe(5);
    const stream = events(dry);
    expect(stream.at(-1)!.fields).toMatchObject({ result: 'dry-run-failed', exit_code: 5, phase_failed: 'migrate' });
    expect(find(stream, 'orchestrator', 'next')[0]!.fields.commands).toEqual(['release-run 304 --dry-run']);

    const bad = await platform.run('release-run', ['no/such', '--json']);

    expect(bad.exitCode).toBe(2);
    const refused = events(bad);
    expect(refused.map((e) => e.event)).toEqual(['error', 'outcome']);
    expect(refused[1]!.fields).toMatchObject({ result: 'refused', exit_code: 2 });
    expect(bad.stderr).toContain('invalid ticket id');
  });
});

describe('--json on the release sub-verbs', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }], {}, 'roev-platform-'); });
  afterEach(() => platform.remove());

  test('the drift check and init: valid events only on stdout, the human lines on stderr', async () => {
    const drift = await platform.run('release', ['--service=web', '--json']);

    expect(drift.exitCode).toBe(0);
    const checked = events(drift);
    expect(checked.at(-1)).toMatchObject({ ticket: null, verb: 'release', phase: 'drift-check', event: 'drift-check', fields: { service: 'web', actions: [] } });
    expect(drift.stderr).toContain('0 actions');

    const init = await platform.run('release', ['init', '--json']);

    expect(init.exitCode).toBe(0);
    const written = events(init).filter((e) => e.event === 'written').map((e) => e.fields.path);
    expect(written).toContain('justfile');
    expect(init.stderr).toContain('wrote justfile');
  });
});

describe('release history and release show', () => {
  let platform: Platform;
  beforeEach(async () => { platform = await Platform.create([{ name: 'web' }, { name: 'api' }], {}, 'roev-platform-'); });
  afterEach(() => platform.remove());

  test('every run newest first, with result, exit code, BASE->MERGE, services and backups; a damaged file is a row, not a failure', async () => {
    const db = join(platform.root, 'web.sqlite');
    await sqlite(db, 'CREATE TABLE t(v TEXT);');
    const base = await platform.head();
    const merge1 = await platform.mergeFeature('401', { 'packages/web/manifest.yaml': `name: web\nruntime: none\nimage: local/web:2\nbackup:\n  - type: sqlite\n    path: ${db}\n    compress: false\n` });
    expect((await platform.run('release-run', ['401'])).exitCode).toBe(0);
    // The log records whole seconds: a second apart, the order of the runs is the log's, not a tie.
    const nextSecond = () => new Promise((resolve) => setTimeout(resolve, 1100));
    await nextSecond();
    await platform.mergeFeature('402', {
      'packages/api/manifest.yaml': 'name: api\nruntime: none\nimage: local/api:2\n', 'packages/web/config.txt': 'later\n', 'releases/402-fail.sh': '#!/bin/bash\nexit 3\n',
    });
    expect((await platform.run('release-run', ['402'])).exitCode).toBe(1);
    await nextSecond();
    expect((await platform.run('release-revert', ['401'])).exitCode).toBe(2); // 402 came after and touched web too
    writeFileSync(platform.stateFile('499'), 'TICKET=499\nBASE_SHA=zzz\n');

    const result = await platform.run('release', ['history', '--json']);

    expect(result.exitCode).toBe(0);
    const rows = events(result).filter((e) => e.event === 'run');
    expect(rows.map((row) => [row.ticket, row.fields.verb, row.fields.result, row.fields.exit_code])).toEqual([
      ['401', 'release-revert', 'failed', 2],
      ['402', 'release-run', 'failed', 1],
      ['401', 'release-run', 'complete', 0],
      ['499', 'release-run', 'unfinished', null],
    ]);
    const first = rows.find((row) => row.ticket === '401' && row.fields.verb === 'release-run')!.fields;
    expect(first).toMatchObject({ base_sha: base, merge_sha: merge1, services: ['web'] });
    expect((first.backups as { service: string; present: boolean; bytes: number }[])[0]).toMatchObject({ service: 'web', present: true });
    expect(typeof first.duration_s).toBe('number');
    expect(rows.find((row) => row.ticket === '499')!.fields.problems).toEqual([expect.stringContaining('499.env is damaged')]);
    expect(rows.find((row) => row.ticket === '402')!.fields).toMatchObject({ phase_failed: 'ticket' });

    const byService = await platform.run('release', ['history', '--service=api']);
    expect(byService.exitCode).toBe(0);
    expect(byService.stdout).toContain('402  release-run  failed (exit 1 in ticket, TICKET_SCRIPT_FAILED)');
    expect(byService.stdout).not.toMatch(/  401  /);
    expect(byService.stdout).toContain('499  release-run  unfinished'); // damaged: its services are unknown, so it is shown

    const show = await platform.run('release', ['show', '401']);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/      prepare +done  ended \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    expect(show.stdout).toMatch(/    0-sqlite\.db  [\d.]+ (B|KiB)  sha256 [0-9a-f]{64}/);
    expect(show.stdout).toMatch(/revert possible: no \(later release\(s\) 402 touched web: revert them first, newest first, or revert the code only with --code-only\)/);
    const show402 = await platform.run('release', ['show', '402', '--json']);
    expect(show402.exitCode).toBe(0);
    const shown = events(show402).find((e) => e.event === 'show')!.fields;
    expect(shown).toMatchObject({ revert_possible: true, revert_command: 'release-revert 402' });
    expect((shown.runs as { playbooks: string[] }[])[0]!.playbooks).toEqual([]);

    const missing = await platform.run('release', ['show', '999']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no release of ticket 999 on this clone');
  });
});
