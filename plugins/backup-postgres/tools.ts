/**
 * Runs the PostgreSQL client tools (pg_dump, pg_restore, psql) for one backup entry: always with
 * `-w` (never prompt), the connection as separate arguments, the password only in the passfile.
 */
import { join } from 'node:path';
import type { ExecOptions, ExecResult, RunContext } from '../../api/index.js';
import { connectionArgs, pgEnv, type PgTarget } from './connection.js';

export interface ToolOptions {
  /** Folder of pg_dump, pg_restore and psql; undefined: found on PATH. */
  binDir?: string;
  connectTimeoutSec: number;
}

/** A tool that failed: the one line that says why, and a hint that fits it. */
export interface Failure {
  why: string;
  hint: string;
  lines: string[];
}

export class PgTools {
  constructor(readonly context: RunContext, readonly target: PgTarget, readonly options: ToolOptions) {}

  bin(tool: string): string {
    return this.options.binDir ? join(this.options.binDir, tool) : tool;
  }

  run(tool: string, args: readonly string[], extra: ExecOptions = {}): Promise<ExecResult> {
    return this.context.exec(this.bin(tool), args, { ...extra, env: pgEnv(this.target, this.options.connectTimeoutSec) });
  }

  /** Runs SQL (given on stdin, never on the command line) in `database`; stdout, unaligned, tuples only. */
  async psql(database: string, sql: string): Promise<string> {
    const result = await this.run('psql', ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...connectionArgs(this.target, database)], { input: sql });
    if (result.exitCode !== 0) throw new ToolError(this.failure('psql', result, database));
    return result.stdout.trim();
  }

  /** What went wrong, in one line, with a hint for the usual causes. */
  failure(tool: string, result: ExecResult, database = this.target.database): Failure {
    const t = this.target;
    const lines = result.stderr.split('\n').map((line) => line.trim()).filter(Boolean);
    if (result.exitCode === 127) {
      return {
        why: `${tool} was not found (${this.options.binDir ? `in binDir ${this.options.binDir}` : 'on PATH'})`,
        hint: 'install the PostgreSQL client tools (apt-get install postgresql-client), or set the binDir option of plugin backup-postgres',
        lines,
      };
    }
    const first = lines.find((line) => /error:|FATAL|ERROR/.test(line)) ?? lines[lines.length - 1] ?? `exit code ${result.exitCode}`;
    const why = `${tool} exited ${result.exitCode}: ${first.replace(/^(pg_dump|pg_restore|psql): (error: )?/, '')}`;
    const text = lines.join('\n');
    let hint = 'see the lines above';
    if (/password authentication failed|no password supplied|fe_sendauth/.test(text)) {
      hint = `check the password of ${t.user} for ${t.host}:${t.port} in the password file ${t.passfile} (the tools run with -w and never prompt)`;
    } else if (/Connection refused|could not connect|timeout expired|could not translate host name|No such file or directory/.test(text)) {
      hint = `is the PostgreSQL server at ${t.host}:${t.port} running and reachable from this host?`;
    } else if (new RegExp(`database "${database.replace(/[.$]/g, '\\$&')}" does not exist`).test(text)) {
      hint = `database ${database} does not exist on ${t.host}:${t.port}: check the url in the manifest`;
    } else if (/permission denied to create database/.test(text)) {
      hint = `${t.user} needs the CREATEDB privilege: restore builds a new database and swaps it in (ALTER ROLE ${t.user} CREATEDB)`;
    } else if (/must be a member of the role whose process is being terminated/.test(text)) {
      hint = `${t.user} may not end other roles' sessions: GRANT pg_signal_backend TO ${t.user}, or stop those clients first`;
    } else if (/No space left on device|could not write|could not extend/.test(text)) {
      hint = 'free disk space and run again';
    }
    return { why, hint, lines: lines.slice(0, 8) };
  }
}

export class ToolError extends Error {
  constructor(readonly failure: Failure) {
    super(failure.why);
  }
}
