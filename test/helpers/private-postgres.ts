/**
 * A private PostgreSQL cluster for a test that must stop and start its server: initdb into a temp
 * folder, its own port and socket folder, run as the postgres OS user. The shared test server
 * (test/infra/ensure-postgres.sh) is never touched.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const PG_BIN = '/usr/lib/postgresql/15/bin';

export class PrivatePostgres {
  readonly host = '127.0.0.1';
  readonly user = 'postgres';
  /** The password file (0600, this process's user) that the tools and the orchestrator read. */
  readonly passfile: string;
  private readonly data: string;
  private readonly sockets: string;

  private constructor(readonly root: string, readonly port: number) {
    this.passfile = join(root, 'pgpass');
    this.data = join(root, 'data');
    this.sockets = join(root, 'run');
  }

  /** initdb (scram-sha-256 over TCP, a random password) and start it on `port`. */
  static async create(prefix: string, port: number): Promise<PrivatePostgres> {
    const server = new PrivatePostgres(mkdtempSync(join(tmpdir(), `${prefix}-pg-`)), port);
    try {
      await server.initdb();
    } catch (error) {
      await server.remove();
      throw error;
    }
    return server;
  }

  private async initdb(): Promise<void> {
    const server = this;
    const port = this.port;
    const { uid, gid } = await postgresIds();
    chmodSync(server.root, 0o700);
    chownSync(server.root, uid, gid);
    mkdirSync(server.sockets, { mode: 0o700 });
    chownSync(server.sockets, uid, gid);
    const password = randomBytes(12).toString('hex');
    const pwfile = join(server.root, 'initdb-password');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    chownSync(pwfile, uid, gid);
    await asPostgres(join(PG_BIN, 'initdb'), ['-D', server.data, '-U', 'postgres', '--auth-local=peer', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`, '--no-sync']);
    rmSync(pwfile);
    writeFileSync(server.passfile, `${server.host}:${port}:*:postgres:${password}\n`, { mode: 0o600 });
    await server.start();
  }

  async start(): Promise<void> {
    await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', this.data, '-l', join(this.data, 'server.log'), '-w', '-t', '30',
      '-o', `-p ${this.port} -k ${this.sockets} -c listen_addresses=${this.host} -c fsync=off`, 'start']);
  }

  async stop(): Promise<void> {
    await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', this.data, '-w', '-m', 'fast', 'stop']);
  }

  async psql(database: string, sql: string): Promise<string> {
    const result = await execa(join(PG_BIN, 'psql'), ['-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.host, '-p', String(this.port), '-U', this.user, '-d', database], {
      input: sql, env: { PGPASSFILE: this.passfile }, reject: false,
    });
    if (result.exitCode !== 0) throw new Error(`psql on ${database} failed: ${result.stderr}`);
    return result.stdout.trim();
  }

  url(database: string): string {
    return `postgres://${this.user}@${this.host}:${this.port}/${database}`;
  }

  /** Stops the server if it runs, and removes its folder. */
  async remove(): Promise<void> {
    await execa('runuser', ['-u', 'postgres', '--', join(PG_BIN, 'pg_ctl'), '-D', this.data, '-w', '-m', 'immediate', 'stop'], { reject: false, cwd: '/' });
    rmSync(this.root, { recursive: true, force: true });
  }
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([execa('id', ['-u', 'postgres']), execa('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

async function asPostgres(file: string, args: string[]): Promise<void> {
  // pg_ctl start leaves the server running: it must not hold this process's pipes open.
  const result = await execa('runuser', ['-u', 'postgres', '--', file, ...args], { reject: false, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
}
