/**
 * The real MariaDB test server (test/infra/ensure-mariadb.sh) and what an operator would compare
 * before and after a restore: each table's definition and rows, and every view, trigger, routine
 * and event.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ORCHESTRATOR_ROOT } from './platform.js';

export interface MariadbServer {
  optionsFile: string;
  host: string;
  port: number;
  user: string;
  /** Read from the option file, only to prove it never shows up anywhere. */
  password: string;
}

export async function ensureMariadb(): Promise<MariadbServer> {
  const result = await execa('bash', [join(ORCHESTRATOR_ROOT, 'test', 'infra', 'ensure-mariadb.sh')], { reject: false });
  if (result.exitCode !== 0) throw new Error(`ensure-mariadb.sh failed: ${result.stderr}`);
  const values = Object.fromEntries(result.stdout.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  const optionsFile = values.MARIADB_OPTIONS_FILE!;
  const password = /^password = (\S+)$/m.exec(readFileSync(optionsFile, 'utf8'))?.[1];
  if (!password) throw new Error(`no password in ${optionsFile}`);
  return { optionsFile, host: values.MARIADB_HOST!, port: Number(values.MARIADB_PORT), user: values.MARIADB_USER!, password };
}

/** A database name no other test (or parallel worker) uses. */
export const uniqueDatabase = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;

/** Runs SQL (on stdin) as the test user; returns the rows, tab-separated. */
export async function sql(server: MariadbServer, database: string | undefined, statements: string): Promise<string> {
  const result = await execa('mariadb', [
    `--defaults-extra-file=${server.optionsFile}`, '--protocol=TCP', `--host=${server.host}`, `--port=${server.port}`,
    '--batch', '--skip-column-names', '--default-character-set=utf8mb4', ...(database ? [`--database=${database}`] : []),
  ], { input: statements, reject: false });
  if (result.exitCode !== 0) throw new Error(`mariadb on ${database ?? '(none)'} failed: ${result.stderr}`);
  return result.stdout;
}

export async function databasesLike(server: MariadbServer, prefix: string): Promise<string[]> {
  return (await sql(server, undefined, 'SHOW DATABASES;')).split('\n').filter((name) => name.startsWith(prefix)).sort();
}

export async function dropDatabases(server: MariadbServer, prefix: string): Promise<void> {
  for (const name of await databasesLike(server, prefix)) await sql(server, undefined, `DROP DATABASE \`${name}\`;`);
}

/** A shop: two tables with a foreign key, utf8, NULLs, decimals, dates, blobs; a view, a trigger, a procedure, a function and an event. */
export const SHOP_SEED = `
CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  balance DECIMAL(10,2) NOT NULL DEFAULT 0,
  note TEXT NULL,
  photo BLOB NULL,
  created DATETIME(3) NOT NULL,
  KEY by_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  customer_id INT NOT NULL,
  total DECIMAL(10,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(200) NOT NULL) ENGINE=InnoDB;
INSERT INTO customers (name, balance, note, photo, created) VALUES
  ('Zoë Ångström', 12.50, 'héllo ✓ tab\\there', x'00ff10', '2026-05-18 15:30:12.345'),
  ('O''Brien', 0, NULL, NULL, '2026-05-18 15:30:13.000'),
  ('back\\\\slash', -3.25, 'line\\nbreak', x'', '2026-05-19 00:00:00.000');
INSERT INTO orders (customer_id, total, status) VALUES (1, 9.99, 'paid'), (1, 20.00, 'new'), (2, 5.00, 'shipped');
CREATE VIEW big_orders AS SELECT id, customer_id, total FROM orders WHERE total > 6;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE FUNCTION order_count(c INT) RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = c);
CREATE PROCEDURE pay(IN o BIGINT) MODIFIES SQL DATA UPDATE orders SET status = 'paid' WHERE id = o;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit;
`;

/** Every table's definition and every row (ordered by the primary key, blobs in hex), and the other objects' definitions. */
export async function databaseState(server: MariadbServer, database: string): Promise<{ tables: Record<string, { create: string; rows: string[] }>; objects: string[] }> {
  const tables: Record<string, { create: string; rows: string[] }> = {};
  const names = (await sql(server, undefined, `SELECT table_name FROM information_schema.TABLES WHERE table_schema = '${database}' AND table_type = 'BASE TABLE' ORDER BY table_name;`)).split('\n').filter(Boolean);
  for (const name of names) {
    const create = (await sql(server, database, `SHOW CREATE TABLE \`${name}\`;`)).split('\t').slice(1).join('\t').replace(/ AUTO_INCREMENT=\d+/, '');
    const columns = (await sql(server, undefined, `SELECT column_name, data_type FROM information_schema.COLUMNS WHERE table_schema = '${database}' AND table_name = '${name}' ORDER BY ordinal_position;`))
      .split('\n').filter(Boolean).map((line) => line.split('\t'));
    const select = columns.map(([column, type]) => (/blob|binary/.test(type!) ? `HEX(\`${column}\`)` : `\`${column}\``)).join(', ');
    const rows = (await sql(server, database, `SELECT ${select} FROM \`${name}\` ORDER BY 1;`)).split('\n').filter((line) => line !== '');
    tables[name] = { create, rows };
  }
  const objects: string[] = [];
  const listed = (await sql(server, undefined, [
    `SELECT 'VIEW', table_name FROM information_schema.VIEWS WHERE table_schema = '${database}'`,
    `UNION ALL SELECT 'TRIGGER', trigger_name FROM information_schema.TRIGGERS WHERE trigger_schema = '${database}'`,
    `UNION ALL SELECT routine_type, routine_name FROM information_schema.ROUTINES WHERE routine_schema = '${database}'`,
    `UNION ALL SELECT 'EVENT', event_name FROM information_schema.EVENTS WHERE event_schema = '${database}' ORDER BY 1, 2;`,
  ].join('\n'))).split('\n').filter(Boolean);
  for (const line of listed) {
    const [kind, name] = line.split('\t');
    const row = (await sql(server, database, `SHOW CREATE ${kind} \`${name}\`;`)).split('\t');
    // The definition without the columns that describe the session (character sets, collations).
    objects.push(`${kind} ${name}: ${kind === 'VIEW' ? row[1] : kind === 'EVENT' ? row[3] : row[2]}`);
  }
  return { tables, objects };
}

/** Processes' command lines and environments that contain `secret`, read from /proc. */
export function processesShowing(secret: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    for (const file of ['cmdline', 'environ']) {
      try {
        const text = readFileSync(`/proc/${pid}/${file}`, 'latin1');
        if (text.includes(secret)) found.push(`${pid} ${file}: ${text.replace(/\0/g, ' ').slice(0, 200)}`);
      } catch {
        /* gone */
      }
    }
  }
  return found;
}

/** Samples every process's command line while `body` runs; returns those that ran `tool`. */
export async function watchProcesses<T>(tool: RegExp, secret: string, body: () => Promise<T>): Promise<{ result: T; seen: string[]; leaks: string[] }> {
  const seen = new Set<string>();
  const leaks: string[] = [];
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
          if (tool.test(cmdline)) {
            seen.add(cmdline);
            if (readFileSync(`/proc/${pid}/environ`, 'latin1').includes(secret)) leaks.push(`${pid} environ`);
          }
          if (cmdline.includes(secret)) leaks.push(`${pid} cmdline: ${cmdline}`);
        } catch {
          /* gone */
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    const result = await body();
    return { result, seen: [...seen], leaks };
  } finally {
    running = false;
    await sampler;
  }
}
