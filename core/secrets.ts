/**
 * Values that must never reach a log line, a state file or the terminal. Plugins register a
 * secret as soon as they read it; every line the core prints or records passes through redact().
 */
const secrets = new Set<string>();

export function registerSecret(value: string): void {
  // Very short values would redact ordinary words; a real password is longer than this.
  if (value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}
