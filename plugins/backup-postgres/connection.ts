/**
 * Where a postgres backup entry points, and how to reach it without a password ever leaving the
 * password file: the manifest's URL holds user, host, port and database only; libpq reads the
 * password from the passfile (PGPASSFILE, a path, is the only thing the tools get in their env).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ReleaseError, registerSecret } from '../../api/index.js';

/**
 * Database and role names we accept: ASCII letters, digits, `_`, `.`, `$`, `-`, at most 63 bytes
 * (PostgreSQL's limit). Anything with `=` or a URI prefix would be read by libpq as a connection
 * string, so such names are refused rather than quoted.
 */
export const PG_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$/;

export interface PgTarget {
  user: string;
  /** A host name, an IP address, or a unix socket folder (starts with `/`). */
  host: string;
  port: number;
  database: string;
  /** The password file libpq is told to read (it may not exist, e.g. with peer or trust auth). */
  passfile: string;
  /** `user@host:port/database`: how messages name the database. Never holds a password. */
  label: string;
  /**
   * Container mode: the tools run inside the running container of compose service `target` of
   * platform service `service` (hooks.execIn), as OS user `osUser`, over the container's local
   * socket; `host`, `port` and `passfile` are then unused.
   */
  container?: { service: string; target: string; osUser: string };
}

/** `where` is `packages/<svc>/manifest.yaml: backup[0].url`, the key errors name. */
function bad(where: string, why: string, hint = 'write it as postgres://USER@HOST:PORT/DATABASE'): ReleaseError {
  return new ReleaseError('BAD_INPUT', `${where}: ${why}`, { hint });
}

export const PASSWORD_HINT = 'never put a password in a manifest: remove it, keep it in a .pgpass file (the entry\'s passfile, the plugin\'s passfile option, PGPASSFILE or ~/.pgpass), and change it, since git history still holds it';

/** Parses `postgres://USER@HOST[:PORT]/DATABASE`; a password anywhere in it is refused. */
export function parsePostgresUrl(url: string, where: string): Omit<PgTarget, 'passfile' | 'label'> {
  const scheme = /^(postgres|postgresql):\/\//.exec(url);
  if (!scheme) throw bad(where, 'must start with postgres:// or postgresql://');
  const rest = url.slice(scheme[0].length);
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : '';
  const colon = userinfo.indexOf(':');
  if (colon >= 0) {
    // Redact it everywhere from now on, in case anything echoes the manifest.
    const password = userinfo.slice(colon + 1);
    registerSecret(password);
    try { registerSecret(decodeURIComponent(password)); } catch { /* not percent-encoded */ }
    throw bad(where, 'holds a password (USER:PASSWORD@); passwords never go in a manifest', PASSWORD_HINT);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad(where, 'is not a valid URL');
  }
  for (const [key, value] of parsed.searchParams) {
    if (/pass/i.test(key)) {
      registerSecret(value);
      throw bad(where, `holds a password (?${key}=); passwords never go in a manifest`, PASSWORD_HINT);
    }
  }
  if (parsed.search || parsed.hash) throw bad(where, 'query parameters and fragments are not supported');
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw bad(where, `"${text}" is not valid percent-encoding`);
    }
  };
  const user = decode(parsed.username);
  if (!user) throw bad(where, 'names no user (USER@HOST)');
  if (!PG_NAME.test(user)) throw bad(where, `user "${user}" must be 1-63 of A-Z a-z 0-9 _ . $ - and not start with . $ or -`);
  let host = decode(parsed.hostname);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (!host) throw bad(where, 'names no host');
  if (!/^[A-Za-z0-9_.:%/-]+$/.test(host) || host.startsWith('-')) throw bad(where, `host "${host}" is not a host name, an IP address or a socket folder`);
  const port = parsed.port ? Number(parsed.port) : 5432;
  const database = decode(parsed.pathname.replace(/^\//, ''));
  if (!database) throw bad(where, 'names no database (.../DATABASE)');
  if (!PG_NAME.test(database)) throw bad(where, `database "${database}" must be 1-63 of A-Z a-z 0-9 _ . $ - and not start with . $ or -`);
  return { user, host, port, database };
}

/** `~/x` and paths relative to the platform repo become absolute. */
export function expandPath(path: string, repoDir: string): string {
  if (path === '~' || path.startsWith('~/')) return join(homedir(), path.slice(1));
  return isAbsolute(path) ? path : resolve(repoDir, path);
}

export interface PassfileChoice {
  path: string;
  /** The key that chose it, when it was configured (errors name it); undefined for the defaults. */
  key?: string;
}

/**
 * The passfile must be private (libpq silently ignores a group- or world-readable one, and then
 * the login fails with a misleading message); a configured one must exist.
 */
export function checkPassfile(choice: PassfileChoice): void {
  if (!existsSync(choice.path)) {
    if (choice.key) {
      throw new ReleaseError('BAD_INPUT', `${choice.key}: password file ${choice.path} does not exist`, {
        hint: 'create it (host:port:database:user:password, mode 0600) or fix the path',
      });
    }
    return;
  }
  const mode = statSync(choice.path).mode & 0o777;
  if (mode & 0o077) {
    throw new ReleaseError('BAD_INPUT', `password file ${choice.path} has mode ${mode.toString(8).padStart(4, '0')}; libpq ignores a password file others can read`, {
      hint: `chmod 600 ${choice.path}`,
    });
  }
}

/** Splits a .pgpass line on unescaped `:`, undoing `\:` and `\\`. */
function pgpassFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) current += line[++i];
    else if (char === ':' && fields.length < 4) { fields.push(current); current = ''; }
    else current += char;
  }
  fields.push(current);
  return fields;
}

/**
 * Registers the passwords the passfile holds for this user as secrets, so that no line we print or
 * record can show one even if a tool echoes it. The file is read, never copied or passed on.
 */
export function registerPassfileSecrets(target: PgTarget): void {
  let text: string;
  try {
    text = readFileSync(target.passfile, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const fields = pgpassFields(line);
    if (fields.length !== 5) continue;
    const [, , , user, password] = fields as [string, string, string, string, string];
    if (user === '*' || user === target.user) registerSecret(password);
  }
}

/**
 * The environment of every postgres tool we start: libpq variables that could carry a password
 * or point elsewhere are removed (an operator's PGPASSWORD would beat the passfile), and the
 * passfile is given as a path.
 */
export function pgEnv(target: PgTarget, connectTimeoutSec: number): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ['PGPASSWORD', 'PGSERVICE', 'PGSERVICEFILE', 'PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGREQUIRESSL']) {
    env[name] = undefined;
  }
  env.PGPASSFILE = target.passfile;
  env.PGCONNECT_TIMEOUT = String(connectTimeoutSec);
  env.PGAPPNAME = 'release-orchestrator';
  return env;
}

/** Connection arguments: each part its own `--key=value` argument; never a password. */
export function connectionArgs(target: PgTarget, database = target.database): string[] {
  if (target.container) return [`--username=${target.user}`, `--dbname=${database}`];
  return [`--host=${target.host}`, `--port=${target.port}`, `--username=${target.user}`, `--dbname=${database}`];
}

/** `"name"` for SQL. Names are restricted to PG_NAME, so this is belt and braces. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** `name` + `suffix`, cut so the whole stays within PostgreSQL's 63 bytes (names are ASCII). */
export function derivedName(name: string, suffix: string): string {
  return `${name.slice(0, 63 - suffix.length)}${suffix}`;
}
