/**
 * The child's side of the action server (action-server.ts): kept apart so that `release-step`
 * starts without loading what the server needs.
 */
import { createConnection } from 'node:net';
import type { Action } from './hooks.js';

/** The environment variable that tells a child where the socket is. */
export const ACTION_SOCKET_ENV = 'RELEASE_ACTION_SOCKET';

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
