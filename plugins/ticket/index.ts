import { join } from 'node:path';
import { openSync, writeSync, closeSync } from 'node:fs';
import { ReleaseError, ensurePrivateDir, PRIVATE_FILE_MODE, redact, type Plugin, type RunContext } from '../../api/index.js';
import { git } from '../../shared/git/git.js';
import { deadline } from '../deadlines/index.js';

export const PLUGIN_NAME = 'ticket';
export const SCRIPTS_DIR = 'releases';

/** `releases/TICKET-*.sh` at MERGE_SHA, with their git file modes. */
async function ticketScripts(context: RunContext, mergeSha: string): Promise<{ path: string; executable: boolean }[]> {
  const listing = await git(context, ['ls-tree', '-z', '--end-of-options', mergeSha, `${SCRIPTS_DIR}/`]);
  return listing.split('\0').filter(Boolean).map((line) => {
    const [meta, path] = line.split('\t') as [string, string];
    return { path, executable: meta.startsWith('100755') };
  }).filter(({ path }) => {
    const name = path.slice(SCRIPTS_DIR.length + 1);
    return name.startsWith(`${context.ticket}-`) && name.endsWith('.sh') && !name.includes('/');
  });
}

export function ticketPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('ticket').tapPromise(PLUGIN_NAME, async (context) => {
        const state = context.requireState();
        const scripts = await ticketScripts(context, state.mergeSha);
        if (scripts.length === 0) {
          context.out.phase(PLUGIN_NAME, `no ${SCRIPTS_DIR}/${context.ticket}-*.sh: skipped`);
          context.log.event(PLUGIN_NAME, 'skipped-no-script');
          return;
        }
        if (scripts.length > 1) {
          throw new ReleaseError('BAD_INPUT', `${scripts.length} ticket scripts match ${SCRIPTS_DIR}/${context.ticket}-*.sh; expected one`, {
            lines: scripts.map((script) => script.path),
            hint: 'merge them into one script through a PR',
          });
        }
        const script = scripts[0]!;
        if (!script.executable) {
          throw new ReleaseError('BAD_INPUT', `${script.path} is not executable`, {
            hint: `git update-index --chmod=+x ${script.path} through a PR`,
          });
        }
        if (context.dryRun) {
          context.out.phase(PLUGIN_NAME, `would run ${script.path} --yes`);
          return;
        }
        context.out.phase(PLUGIN_NAME, `${script.path} --yes`);
        const outputDir = join(context.workspaceDir, 'releases');
        ensurePrivateDir(outputDir);
        // Kept beside the log for post-release review; the script may print a lot, so stream it to disk.
        const fd = openSync(join(outputDir, `${context.ticket}.ticket.out`), 'a', PRIVATE_FILE_MODE);
        try {
          const result = await context.exec(join(context.repoDir, script.path), ['--yes'], {
            env: {
              TICKET: context.ticket,
              BASE_SHA: state.baseSha,
              MERGE_SHA: state.mergeSha,
              RELEASE_ORCHESTRATOR: '1',
            },
            onLine: (line) => {
              context.out.detail(line);
              // The ticket's own record of its output is redacted as the terminal's is.
              writeSync(fd, `${redact(line)}\n`);
              context.failpoint('ticket-script');
            },
            ...deadline(context, 'ticket'),
          });
          context.log.event(PLUGIN_NAME, 'script', { script: script.path, rc: result.exitCode });
          if (result.exitCode !== 0) {
            throw new ReleaseError('PHASE_FAILED', `${script.path} exited ${result.exitCode}`, {
              lines: result.output.split('\n').slice(-5),
              hint: `its whole output is in .asd/workspace/releases/${context.ticket}.ticket.out`,
              reason: 'TICKET_SCRIPT_FAILED',
            });
          }
        } finally {
          closeSync(fd);
        }
      });
    },
  };
}
