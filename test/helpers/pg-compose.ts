/**
 * A platform service whose compose project holds web (${IMAGE}), db (a real PostgreSQL image,
 * local/testpg:15, on a named volume, no published port) and a cache sidecar, with the postgres
 * backup entry `{ type: postgres, service: db, database: shop }`; and psql inside its db container.
 */
import { execa } from 'execa';

export const PG_IMAGE = 'local/testpg:15';
export const WEB_IMAGE = 'local/testsvc:1';
/** The busybox test image under its other tag: a sidecar running an image of its own. */
export const CACHE_IMAGE = 'local/testsvc:2';

export function pgComposeFiles(name: string, port: number, health = { endpoint: '/health', timeout: '20s' }): Record<string, string> {
  return {
    [`packages/${name}/manifest.yaml`]: [
      `name: ${name}`,
      `image: ${WEB_IMAGE}`,
      'health:',
      `  url: http://127.0.0.1:${port}`,
      `  endpoint: ${health.endpoint}`,
      `  timeout: ${health.timeout}`,
      'backup:',
      '  - type: postgres',
      '    service: db',
      '    database: shop',
      '',
    ].join('\n'),
    [`packages/${name}/compose.yaml`]: [
      'services:',
      '  web:',
      '    image: ${IMAGE}',
      '    ports:',
      `      - "127.0.0.1:${port}:8080"`,
      '  db:',
      `    image: ${PG_IMAGE}`,
      '    environment:',
      '      POSTGRES_USER: shop',
      '      POSTGRES_DB: shop',
      '    stop_signal: SIGINT',
      '    volumes:',
      '      - pgdata:/var/lib/postgresql/data',
      '  cache:',
      `    image: ${CACHE_IMAGE}`,
      'volumes:',
      '  pgdata:',
      '',
    ].join('\n'),
  };
}

export async function containerOf(project: string, composeService: string): Promise<string> {
  const { stdout } = await execa('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`,
    '--filter', `label=com.docker.compose.service=${composeService}`]);
  const id = stdout.trim().split('\n')[0];
  if (!id) throw new Error(`no running container of ${project}/${composeService}`);
  return id;
}

/** psql in the db container, over its local socket as OS user postgres (peer). */
export async function sql(project: string, text: string): Promise<string> {
  const id = await containerOf(project, 'db');
  const result = await execa('docker', ['exec', '-i', '-u', 'postgres', id, 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', 'shop'],
    { input: text, reject: false });
  if (result.exitCode !== 0) throw new Error(`psql in ${project}/db failed: ${result.stderr}`);
  return result.stdout.trim();
}

export async function waitForDb(project: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    try {
      if ((await sql(project, 'SELECT 1;')) === '1') return;
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${project}/db never answered`);
}

/** The schema (as pg_dump prints it) and every table's rows, read inside the container. */
export async function stateOf(project: string): Promise<{ schema: string; rows: Record<string, string> }> {
  const id = await containerOf(project, 'db');
  const dump = await execa('docker', ['exec', '-u', 'postgres', id, 'pg_dump', '--schema-only', '-d', 'shop']);
  const schema = dump.stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
  const tables = (await sql(project, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;`)).split('\n').filter(Boolean);
  const rows: Record<string, string> = {};
  for (const table of tables) rows[table] = await sql(project, `SELECT t::text FROM ${table} t ORDER BY 1;`);
  rows.owner = await sql(project, `SELECT string_agg(tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public';`);
  return { schema, rows };
}

