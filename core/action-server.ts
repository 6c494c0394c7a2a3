/**
 * Actions carried out in the running release's own process, on request of its children: migrate.sh
 * calls `release-step`, which hands the action over a private unix socket instead of loading the
 * config again in a process of its own. One JSON line each way: the action, then `{ exitCode }`.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { carryOut } from './actions.js';
import { toReleaseError, type ReleaseError } from './errors.js';
import type { Action, RunContext } from './hooks.js';

/** The environment variable that tells a child where the socket is. */
export const ACTION_SOCKET_ENV = 'RELEASE_ACTION_SOCKET';

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
      const action = JSON.parse(buffered.slice(0, end)) as Action;
      carryOut(context, action).then(
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

/** Sends one action to the release that serves `socket`; resolves to the exit code it answers. */
export function requestAction(socket: string, action: Action): Promise<number> {
  return new Promise((resolve, reject) => {
    const connection = createConnection(socket);
    let answer = '';
    connection.setEncoding('utf8');
    connection.on('connect', () => connection.write(`${JSON.stringify(action)}\n`));
    connection.on('data', (chunk: string) => { answer += chunk; });
    connection.on('error', reject);
    connection.on('end', () => {
      try {
        resolve((JSON.parse(answer) as { exitCode: number }).exitCode);
      } catch {
        reject(new Error(`the release serving ${socket} closed without an answer`));
      }
    });
  });
}
