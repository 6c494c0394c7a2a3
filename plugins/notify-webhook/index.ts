/**
 * notify-webhook: POSTs the outcome of every release and revert (the `done` and `failed` hooks) as
 * JSON to a URL, signed with HMAC-SHA256 of the exact body under a shared secret read from a file,
 * so the receiver can tell it came from this host. Retried with backoff within `timeoutMs`; a
 * webhook that never answers costs the release at most that long and never its exit code.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { parseOptions, z, type Plugin } from '../../api/index.js';
import { absoluteFile, deliveryOptions, httpUrl, readSecretFile, requestWithRetry, tapOutcomes } from '../../shared/notify/notification.js';

export const PLUGIN_NAME = 'notify-webhook';
export const SIGNATURE_HEADER = 'X-Release-Signature';
export const DELIVERY_HEADER = 'X-Release-Delivery';

export const webhookOptionsSchema = z.strictObject({
  /** Where the JSON is POSTed. */
  url: httpUrl,
  /** The file holding the shared secret the body is signed with (one line; mode 0600). */
  secretFile: absoluteFile,
  ...deliveryOptions(4),
});

export type WebhookOptions = z.input<typeof webhookOptionsSchema>;

/** The signature header's value for a body: `sha256=` and the hex HMAC-SHA256 under the secret. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

export function notifyWebhookPlugin(rawOptions: WebhookOptions): Plugin {
  const options = parseOptions(PLUGIN_NAME, webhookOptionsSchema, rawOptions);
  // A webhook URL's path or query is often its credential (chat services work that way): only
  // its origin is ever printed or logged.
  const target = new URL(options.url).origin;
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      tapOutcomes(hooks, {
        name: PLUGIN_NAME,
        timeoutMs: options.timeoutMs,
        target: () => `POST ${target}`,
        async send(context, event, deadline) {
          const secret = readSecretFile(options.secretFile, 'webhook secret', (message) => context.out.warn(`${PLUGIN_NAME}: ${message}`));
          const body = JSON.stringify(event);
          // One delivery id for every attempt: a receiver that saw the first one can drop the retry.
          const delivery = randomUUID();
          const result = await requestWithRetry(options.url, {
            method: 'POST',
            headers: {
              'Content-Type': 'application/json',
              'User-Agent': 'release-orchestrator',
              [SIGNATURE_HEADER]: signBody(body, secret),
              [DELIVERY_HEADER]: delivery,
            },
            body,
          }, { deadline, attempts: options.attempts, backoffMs: options.backoffMs });
          if (!result.ok) throw new Error(`POST to ${target}: ${result.last} after ${result.attempts} attempt${result.attempts === 1 ? '' : 's'}`);
          return { to: target, status: result.status ?? 0, attempts: result.attempts, delivery };
        },
      });
    },
  };
}
