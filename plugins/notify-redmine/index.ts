/**
 * notify-redmine: writes the outcome of every release and revert as a note on the Redmine issue
 * the ticket names (tickets that are issue numbers only), through Redmine's REST API:
 * `PUT /issues/N.json` with the API key in the X-Redmine-API-Key header, read from a file and
 * registered for redaction, so it never reaches argv, a log line or the state file.
 */
import { hostname } from 'node:os';
import { formatDuration, parseOptions, z, type PlanSummary, type Plugin, type RunContext } from '../../api/index.js';
import { commandLine } from '../../core/index.js';
import { absoluteFile, deliveryOptions, guarded, httpUrl, readSecretFile, requestWithRetry, tapOutcomes, type OutcomeEvent } from '../../shared/notify/notification.js';

export const PLUGIN_NAME = 'notify-redmine';
/** Tickets that are Redmine issue numbers; any other ticket id is no issue of this tracker. */
const ISSUE_NUMBER = /^[1-9][0-9]{0,9}$/;

export const redmineOptionsSchema = z.strictObject({
  /** Redmine's base URL, e.g. https://redmine.example.org (a sub-path install included). */
  url: httpUrl,
  /** The file holding the API key of the user who writes the notes (one line; mode 0600). */
  apiKeyFile: absoluteFile,
  ...deliveryOptions(3),
  /** Write the note as a private note (seen only by users allowed to see private notes). */
  privateNotes: z.boolean().default(false),
});

export type RedmineOptions = z.input<typeof redmineOptionsSchema>;

const HEADLINES: Record<OutcomeEvent['fields']['result'], string> = {
  complete: 'released',
  reverted: 'reverted',
  undone: 'revert undone',
  failed: 'FAILED',
  interrupted: 'INTERRUPTED',
  refused: 'refused',
  'dry-run': 'previewed',
  'dry-run-failed': 'preview failed',
};

/** What a printed command is for, in the words of the failure block. */
function purposeOf(command: string): string {
  if (/\brelease-revert\b/.test(command)) return 'roll back';
  if (/\s--from=/.test(command)) return 'resume once the cause is fixed';
  return 'run it again once the cause is fixed';
}

/** The note's text (Redmine's default Textile; it reads as plain text too). */
export function noteText(event: OutcomeEvent): string {
  const f = event.fields;
  const what = event.verb === 'release-revert' ? 'Revert' : 'Release';
  const headline = f.atomic === 'reverted'
    ? `${what} of #${event.ticket} FAILED in phase ${f.phase_failed} (exit ${f.exit_code}) on ${f.host}, and was reverted automatically (--atomic).`
    : f.atomic === 'revert-failed'
      ? `${what} of #${event.ticket} FAILED in phase ${f.phase_failed} on ${f.host}, and its automatic revert (--atomic) failed in phase ${f.revert_phase_failed ?? 'unknown'} (exit ${f.exit_code}).`
      : f.phase_failed
        ? `${what} of #${event.ticket} ${HEADLINES[f.result]} in phase ${f.phase_failed} (exit ${f.exit_code}) on ${f.host}.`
        : `${what} of #${event.ticket} ${HEADLINES[f.result]} on ${f.host} (exit ${f.exit_code}).`;
  const lines = [
    headline,
    '',
    `* Services: ${f.services.length ? f.services.join(', ') : 'none'}`,
    `* Duration: ${formatDuration(f.duration_s)}`,
  ];
  if (f.phase_failed) lines.push(`* Failed phase: ${f.phase_failed}`);
  if (typeof f.reason === 'string') lines.push(`* Reason: ${f.reason}`);
  if (f.message) lines.push(`* Error: ${f.message}`);
  if (f.base_sha && f.merge_sha) lines.push(`* Commits: ${f.base_sha.slice(0, 12)}..${f.merge_sha.slice(0, 12)}`);
  // After a release that went out, the one command an operator may want is the way back.
  const next = f.next.length === 0 && event.verb === 'release-run' && f.result === 'complete'
    ? [commandLine('release-revert', [event.ticket!])] : f.next;
  for (const command of next) lines.push('', `To ${purposeOf(command)}:`, '', `<pre>${command}</pre>`);
  return lines.join('\n');
}

/** The note of a saved plan, posted when it is written, so it is reviewed where the change is discussed. */
export function planNoteText(ticket: string, plan: PlanSummary, host: string): string {
  return [
    `Plan for #${ticket} written on ${host}: ${plan.baseSha.slice(0, 12)}..${plan.mergeSha.slice(0, 12)}, ${plan.actions.length} action(s).`,
    '',
    ...(plan.actions.length > 0 ? plan.actions.map((line) => `* ${line}`) : ['* no service is touched']),
    '',
    'To run it as reviewed (refused if anything moved since):',
    '',
    `<pre>${plan.command}</pre>`,
  ].join('\n');
}

export function notifyRedminePlugin(rawOptions: RedmineOptions): Plugin {
  const options = parseOptions(PLUGIN_NAME, redmineOptionsSchema, rawOptions);
  const base = options.url.replace(/\/+$/, '');
  /** One note on the ticket's issue, under the notifier's deadline and retries. */
  async function putNote(context: RunContext, notes: string, deadline: number): Promise<Record<string, string | number>> {
    const apiKey = readSecretFile(options.apiKeyFile, 'Redmine API key', (message) => context.out.warn(`${PLUGIN_NAME}: ${message}`));
    const issue = `${base}/issues/${context.ticket}.json`;
    const result = await requestWithRetry(issue, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'X-Redmine-API-Key': apiKey, 'User-Agent': 'release-orchestrator' },
      body: JSON.stringify({ issue: { notes, private_notes: options.privateNotes } }),
    }, { deadline, attempts: options.attempts, backoffMs: options.backoffMs });
    if (!result.ok) throw new Error(`PUT ${issue}: ${result.last}${explain(result.status, result.body)} after ${result.attempts} attempt${result.attempts === 1 ? '' : 's'}`);
    return { issue: context.ticket, status: result.status ?? 0, attempts: result.attempts };
  }
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.planWritten.tapPromise(PLUGIN_NAME, async (plan, context) => {
        if (!ISSUE_NUMBER.test(context.ticket)) return;
        await guarded(context, PLUGIN_NAME, options.timeoutMs, (deadline) => putNote(context, planNoteText(context.ticket, plan, hostname()), deadline));
      });
      tapOutcomes(hooks, {
        name: PLUGIN_NAME,
        timeoutMs: options.timeoutMs,
        target: (context) => `a note on ${base}/issues/${context.ticket}`,
        skip: (context) => (ISSUE_NUMBER.test(context.ticket) ? undefined : 'ticket-is-no-issue-number'),
        send: (context, event, deadline) => putNote(context, noteText(event), deadline),
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
