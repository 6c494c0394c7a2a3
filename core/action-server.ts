/**
 * Actions carried out in the running release's own process, on request of its children: migrate.sh
 * calls `release-step`, which hands the action over a private unix socket instead of loading the
 * config again in a process of its own. One JSON line each way: the action, then `{ exitCode }`.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { carryOut } from './actions.js';
import { z } from 'zod';
import { EXIT_CODES, toReleaseError, type ReleaseError } from './errors.js';
import type { RunContext } from './hooks.js';

/** What a child may ask for: one action, named the way migrate.sh names it. */
const actionSchema = z.strictObject({
  service: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
  kind: z.string().regex(/^[a-z][a-z0-9-]*$/),
  reason: z.string(),
  targets: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)).optional(),
});

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

export { ACTION_SOCKET_ENV } from './action-client.js';

export interface ActionServer {
  socket: string;
  /** The last action that failed: the caller reports it, with its own code, plugin and hook. */
  failure?: ReleaseError;
  close(): Promise<void>;
}

/** Serves `context`'s actions on a socket in a private temp folder until `close()`. */
export async function serveActions(context: RunContext): Promise<ActionServer> {
  // A socket path must stay short (108 bytes): a private folder under the temp dir, not the repo.
  const dir = mkdtempSync(join(tmpdir(), 'ro-actions-'));
  const socket = join(dir, 'actions.sock');
  const served: ActionServer = { socket, close: async () => undefined };
  const server: Server = createServer((connection) => {
    let buffered = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end < 0) return;
      const action = actionSchema.safeParse(parseJson(buffered.slice(0, end)));
      if (!action.success) {
        connection.end(`${JSON.stringify({ exitCode: EXIT_CODES.BAD_INPUT })}\n`);
        return;
      }
      carryOut(context, action.data).then(
        () => connection.end(`${JSON.stringify({ exitCode: 0 })}\n`),
        (thrown: unknown) => {
          served.failure = toReleaseError(thrown);
          connection.end(`${JSON.stringify({ exitCode: served.failure.exitCode })}\n`);
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
  chmodSync(socket, 0o600);
  served.close = () => new Promise<void>((resolve) => server.close(() => { rmSync(dir, { recursive: true, force: true }); resolve(); }));
  return served;
}
