/**
 * notify-redmine: writes the outcome of every release and revert as a note on the Redmine issue
 * the ticket names (tickets that are issue numbers only), through Redmine's REST API:
 * `PUT /issues/N.json` with the API key in the X-Redmine-API-Key header, read from a file and
 * registered for redaction, so it never reaches argv, a log line or the state file.
 */
import { formatDuration, parseOptions, z, type Plugin } from '../../api/index.js';
import { absoluteFile, deadlineOption, guarded, httpUrl, readSecretFile, requestWithRetry, tapOutcomes, type ReleaseOutcome } from '../notify/notification.js';

export const PLUGIN_NAME = 'notify-redmine';
/** Tickets that are Redmine issue numbers; any other ticket id is no issue of this tracker. */
const ISSUE_NUMBER = /^[1-9][0-9]{0,9}$/;

export const redmineOptionsSchema = z.strictObject({
  /** Redmine's base URL, e.g. https://redmine.example.org (a sub-path install included). */
  url: httpUrl,
  /** The file holding the API key of the user who writes the notes (one line; mode 0600). */
  apiKeyFile: absoluteFile,
  /** The whole budget of every attempt and every pause, in ms. */
  timeoutMs: deadlineOption,
  attempts: z.number().int().min(1).max(20).default(3),
  backoffMs: z.number().int().min(0).max(60_000).default(500),
  /** Write the note as a private note (seen only by users allowed to see private notes). */
  privateNotes: z.boolean().default(false),
});

export type RedmineOptions = z.input<typeof redmineOptionsSchema>;

const HEADLINES: Record<ReleaseOutcome['outcome'], string> = {
  complete: 'released',
  reverted: 'reverted',
  failed: 'FAILED',
  interrupted: 'INTERRUPTED',
};

/** The note's text (Redmine's default Textile; it reads as plain text too). */
export function noteText(outcome: ReleaseOutcome): string {
  const what = outcome.verb === 'release-run' ? 'Release' : 'Revert';
  const lines = [
    outcome.phase
      ? `${what} of #${outcome.ticket} ${HEADLINES[outcome.outcome]} in phase ${outcome.phase} (exit ${outcome.exitCode}) on ${outcome.host}.`
      : `${what} of #${outcome.ticket} ${HEADLINES[outcome.outcome]} on ${outcome.host} (exit 0).`,
    '',
    `* Services: ${outcome.services.length ? outcome.services.join(', ') : 'none'}`,
  ];
  if (outcome.durationSeconds !== undefined) lines.push(`* Duration: ${formatDuration(outcome.durationSeconds)}`);
  if (outcome.phase) lines.push(`* Failed phase: ${outcome.phase}`);
  if (outcome.error) lines.push(`* Error: ${outcome.error}`);
  if (outcome.baseSha && outcome.mergeSha) lines.push(`* Commits: ${outcome.baseSha.slice(0, 12)}..${outcome.mergeSha.slice(0, 12)}`);
  for (const next of outcome.next) lines.push('', `To ${next.purpose}:`, '', `<pre>${next.command}</pre>`);
  return lines.join('\n');
}

export function notifyRedminePlugin(rawOptions: RedmineOptions): Plugin {
  const options = parseOptions(PLUGIN_NAME, redmineOptionsSchema, rawOptions);
  const base = options.url.replace(/\/+$/, '');
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      tapOutcomes(hooks, PLUGIN_NAME, async (context, outcome) => {
        if (!ISSUE_NUMBER.test(context.ticket)) {
          context.log.event('orchestrator', 'notify-skipped', { plugin: PLUGIN_NAME, reason: 'ticket-is-no-issue-number' });
          return;
        }
        await guarded(context, PLUGIN_NAME, options.timeoutMs, async (deadline) => {
          const apiKey = readSecretFile(options.apiKeyFile, 'Redmine API key', (message) => context.out.warn(`${PLUGIN_NAME}: ${message}`));
          const issue = `${base}/issues/${context.ticket}.json`;
          const result = await requestWithRetry(issue, {
            method: 'PUT',
            headers: { 'Content-Type': 'application/json', 'X-Redmine-API-Key': apiKey, 'User-Agent': 'release-orchestrator' },
            body: JSON.stringify({ issue: { notes: noteText(outcome), private_notes: options.privateNotes } }),
          }, { deadline, attempts: options.attempts, backoffMs: options.backoffMs });
          if (!result.ok) throw new Error(`PUT ${issue}: ${result.last}${explain(result.status, result.body)} after ${result.attempts} attempt${result.attempts === 1 ? '' : 's'}`);
          return { issue: context.ticket, status: result.status ?? 0, attempts: result.attempts };
        });
      });
    },
  };
}

/** What Redmine's refusal means for the operator. */
function explain(status: number | undefined, body: string): string {
  if (status === 401) return ' (the API key was refused: check the key file and that the REST API is enabled)';
  if (status === 403) return ' (the API key\'s user may not add notes to this issue)';
  if (status === 404) return ' (no such issue, or the key\'s user cannot see it)';
  if (status === 422) {
    try {
      const errors = (JSON.parse(body) as { errors?: string[] }).errors;
      if (errors?.length) return ` (${errors.join('; ')})`;
    } catch {
      // not Redmine's JSON: the status says enough
    }
  }
  return '';
}
