/**
 * Runs the PostgreSQL client tools (pg_dump, pg_restore, psql) for one backup entry: always with
 * `-w` (never prompt), the connection as separate arguments, the password only in the passfile.
 */
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PRIVATE_FILE_MODE, ReleaseError, execInService, forCleanup, type ExecOptions, type ExecResult, type RunContext } from '../../api/index.js';
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

/** A scratch folder for files the tools read (a staged dump, a restore list). */
export interface Scratch {
  put(name: string, from: string | NodeJS.ReadableStream): Promise<string>;
  remove(): Promise<void>;
}

export class PgTools {
  constructor(readonly context: RunContext, readonly target: PgTarget, readonly options: ToolOptions) {}

  bin(tool: string): string {
    return this.options.binDir ? join(this.options.binDir, tool) : tool;
  }

  run(tool: string, args: readonly string[], extra: ExecOptions & { stdinMayStopEarly?: boolean } = {}): Promise<ExecResult> {
    const inside = this.target.container;
    if (!inside) return this.context.exec(this.bin(tool), args, { ...extra, env: { ...pgEnv(this.target, this.options.connectTimeoutSec), ...extra.env } });
    return this.inContainer([tool, ...args], extra);
  }

  /** Container mode: runs argv in the service's container through the runtime (hooks.execIn). */
  async inContainer(argv: string[], extra: ExecOptions & { stdinMayStopEarly?: boolean } = {}): Promise<ExecResult> {
    const inside = this.target.container!;
    return execInService(this.context, {
      service: inside.service, target: inside.target, argv, user: inside.osUser,
      env: { PGAPPNAME: 'release-orchestrator', PGCONNECT_TIMEOUT: String(this.options.connectTimeoutSec), ...extra.env } as Record<string, string>,
      input: extra.input, stdinFrom: extra.stdinFrom, stdoutTo: extra.stdoutTo, stdinMayStopEarly: extra.stdinMayStopEarly,
    }, {
      by: 'a postgres entry with service:',
      hint: `give ${inside.service} a runtime that runs containers (runtime: compose), or use url: for a server reachable from this host`,
    });
  }

  /** Container mode: waits until the server in the container accepts connections (it may just have been started). */
  async waitReady(timeoutSec: number): Promise<void> {
    if (!this.target.container) return;
    const deadline = Date.now() + timeoutSec * 1000;
    for (;;) {
      const ready = await this.inContainer(['pg_isready', '-q', `--dbname=${this.target.database}`, `--username=${this.target.user}`]);
      if (ready.exitCode === 0 || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /**
   * A scratch folder the tools can read: on this host (mkdtemp), or in container mode under the
   * container's /tmp (one fixed name per database, so a crashed run's leftovers are replaced).
   * `put` writes a file into it (from a stream or a string) and returns the path the tools use.
   */
  async scratch(): Promise<Scratch> {
    if (!this.target.container) {
      const dir = mkdtempSync(join(tmpdir(), 'pg-restore-'));
      return {
        put: async (name, from) => {
          const path = join(dir, name);
          if (typeof from === 'string') writeFileSync(path, from, { mode: PRIVATE_FILE_MODE });
          else await pipeline(from, createWriteStream(path, { mode: PRIVATE_FILE_MODE }));
          return path;
        },
        remove: async () => rmSync(dir, { recursive: true, force: true }),
      };
    }
    const dir = `/tmp/release-orchestrator-${this.target.database}`;
    const must = async (argv: string[], extra: ExecOptions = {}) => {
      const result = await this.inContainer(argv, extra);
      if (result.exitCode !== 0) throw new ToolError(this.failure(argv[0]!, result));
    };
    await must(['rm', '-rf', '--', dir]);
    await must(['mkdir', '-m', '700', '--', dir]);
    return {
      put: async (name, from) => {
        const path = `${dir}/${name}`;
        // A fixed script; the path is its argument, never part of the script.
        await must(['sh', '-c', 'umask 077 && exec cat > "$1"', 'sh', path], typeof from === 'string' ? { input: from } : { stdinFrom: from });
        return path;
      },
      remove: async () => {
        // Also after an interrupt: the copy of a dump must not stay in the container.
        const cleanup = new PgTools(forCleanup(this.context), this.target, this.options);
        try {
          const removed = await cleanup.inContainer(['rm', '-rf', '--', dir]);
          if (removed.exitCode !== 0) throw new ToolError(this.failure('rm', removed));
        } catch (error) {
          this.context.out.warn(`could not remove ${dir} in compose service ${this.target.container!.target}: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
    };
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
    const where = t.container ? `in compose service ${t.container.target} of ${t.container.service}` : `at ${t.host}:${t.port}`;
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
    } else if (t.container && /Peer authentication failed|no pg_hba.conf entry|role ".*" does not exist/.test(text)) {
      hint = `the container's local auth does not let OS user ${t.container.osUser} log in as ${t.user}: set the entry's osUser/user to a pair it admits (e.g. postgres/postgres with peer auth)`;
    } else if (/Connection refused|could not connect|timeout expired|could not translate host name|No such file or directory/.test(text)) {
      hint = t.container ? `is the PostgreSQL server ${where} running?` : `is the PostgreSQL server at ${t.host}:${t.port} running and reachable from this host?`;
    } else if (new RegExp(`database "${database.replace(/[.$]/g, '\\$&')}" does not exist`).test(text)) {
      hint = `database ${database} does not exist ${where}: check the ${t.container ? 'database' : 'url'} in the manifest`;
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
