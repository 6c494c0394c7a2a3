/**
 * A registered secret never reaches what an operator or a log collector sees: the output of a
 * command run through exec (its lines as they stream, and the captured stdout, stderr and command
 * line), the operator's output, and the audit log.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exec } from './exec.js';
import { Output } from './output.js';
import { AuditLog } from './audit-log.js';
import { ReleaseError } from './errors.js';
import { registerSecret } from './secrets.js';

const SECRET = 'rofl-pa55-word-xyz';

/** A stream that keeps what is written to it, as a terminal would show it. */
function capture(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk, _encoding, done) { text += String(chunk); done(); } }) as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

beforeAll(() => registerSecret(SECRET));

describe('a registered secret', () => {
  test('is redacted in what exec streams and captures, and in the command line it reports', async () => {
    const streamed: string[] = [];
    const result = await exec('sh', ['-c', 'echo "out $1"; echo "err $1" >&2; exit 3', 'sh', SECRET], { onLine: (line) => streamed.push(line) });
    expect(result.exitCode).toBe(3);
    for (const text of [...streamed, result.stdout, result.stderr, result.output, result.command]) expect(text).not.toContain(SECRET);
    expect(streamed.sort()).toEqual(['err ***', 'out ***']);
    expect(result.command).toContain('***');
  });

  test('is redacted in every kind of output line, the error block included', () => {
    const out = capture();
    const err = capture();
    const output = new Output('release-run', out.stream, err.stream);
    output.info(`connecting with ${SECRET}`);
    output.phase('prepare', `using ${SECRET}`);
    output.detail(`a tool printed ${SECRET}`);
    output.warn(`careful: ${SECRET}`);
    output.reportError(new ReleaseError('BACKUP_FAILED', `login failed for ${SECRET}`, { lines: [`detail ${SECRET}`], hint: `check ${SECRET}` }));
    const all = `${out.text()}${err.text()}`;
    expect(all).not.toContain(SECRET);
    expect(all.match(/\*\*\*/g)).toHaveLength(7);
  });

  test('is redacted in the audit log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rofl-redact-'));
    try {
      const log = new AuditLog(join(dir, '1.log'), '1');
      log.event('prepare', 'backup-failed', { why: `password ${SECRET} rejected`, url: `postgres://u:${SECRET}@h/db` });
      const text = readFileSync(join(dir, '1.log'), 'utf8');
      expect(text).not.toContain(SECRET);
      expect(text).toContain('url="postgres://u:***@h/db"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
