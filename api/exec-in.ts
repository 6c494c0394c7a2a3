import { ReleaseError, type ExecInRequest, type ExecResult, type RunContext } from '../core/index.js';

/**
 * Runs a command inside one part of a service, wherever its runtime runs it (a compose service's
 * container, a Swarm task on this node): `hooks.execIn`, with one clear error when no runtime of
 * the config runs that service's parts (`needed` says what needs it, and how to do without). A
 * non-zero exit is a result, not an error.
 */
export async function execInService(context: RunContext, request: ExecInRequest, needed?: { by: string; hint: string }): Promise<ExecResult> {
  const result = await context.hooks.execIn.promise(request, context);
  if (!result) {
    throw new ReleaseError('BAD_INPUT', `no runtime runs commands in service ${request.service} (compose service ${request.target})${needed ? `: ${needed.by} needs one` : ''}`, {
      hint: needed?.hint ?? `give ${request.service} a runtime that runs containers (runtime: compose or swarm)`,
    });
  }
  return result;
}
