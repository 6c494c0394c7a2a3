import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { registerSecret } from '../../api/index.js';
import { parseComposeFile, type ComposeFile } from './compose-file.js';
import { dotenvVariables } from './interpolate.js';
import { composePath, listServices, readProjectEnv } from './manifest.js';

/** A `.env` key whose value is a credential by its name. */
const SECRET_KEY = /PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|AUTH/i;

/**
 * Registers for redaction what a compose project holds secret, before anything it runs can echo
 * it: the contents of its `secrets:` files (each line, and the whole), and the `.env` values whose
 * keys name a credential. Read from the work tree, never printed.
 */
export function registerComposeSecrets(repoDir: string, compose: ComposeFile, dotenv: string | undefined): void {
  for (const file of new Set(compose.services.flatMap((s) => s.secrets))) {
    const path = join(repoDir, file);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, 'utf8');
    registerSecret(text.trim());
    for (const line of text.split('\n')) registerSecret(line.trim());
  }
  for (const [key, value] of Object.entries(dotenvVariables(dotenv))) if (SECRET_KEY.test(key)) registerSecret(value);
}

/**
 * The same for every service of the work tree: before a ticket script runs (it may `cat` a
 * secret file; its output passes through the redaction like every other line).
 */
export function registerAllComposeSecrets(repoDir: string): void {
  for (const service of listServices(repoDir)) {
    const file = join(repoDir, composePath(service));
    if (!existsSync(file)) continue;
    try {
      registerComposeSecrets(repoDir, parseComposeFile(readFileSync(file, 'utf8'), composePath(service)), readProjectEnv(repoDir, service));
    } catch {
      // a compose file that does not parse holds nothing compose could use either
    }
  }
}
