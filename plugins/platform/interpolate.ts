/**
 * Compose's variable substitution, for what the orchestrator must know of a compose file without
 * running compose (the drift check's images, the classifier's roles): the project `.env` beside
 * the compose file, then the environment compose runs with, in compose's order. Pure.
 */
import { posix } from 'node:path';
import { parse as parseDotenv } from 'dotenv';

/** The project `.env` compose reads for `${VAR}`: in the project folder, the compose file's own. */
export const projectEnvPath = (composeFile: string) => posix.join(posix.dirname(composeFile), '.env');

/** The variables of a `.env` text (KEY=VALUE, quotes, comments, `export `), as compose reads them. */
export function dotenvVariables(text: string | undefined): Record<string, string> {
  return text === undefined ? {} : parseDotenv(text);
}

/**
 * The variables compose substitutes: the `.env` file's, overridden by the environment compose is
 * run with (the shell's, then what the runtime exports: the manifest's env and IMAGE).
 */
export function substitutionVariables(dotenv: Record<string, string>, ...environments: Record<string, string | undefined>[]): Record<string, string> {
  const variables: Record<string, string> = { ...dotenv };
  for (const environment of environments) {
    for (const [key, value] of Object.entries(environment)) if (value !== undefined) variables[key] = value;
  }
  return variables;
}

const PATTERN = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/**
 * `text` with `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
 * `${VAR:?error}`, `${VAR?error}` and `$$` substituted as compose does; undefined when a required
 * variable (`?`) is missing, i.e. compose itself would refuse the file.
 */
export function interpolate(text: string, variables: Record<string, string>): string | undefined {
  let missing = false;
  const result = text.replace(PATTERN, (_match, dollar: string | undefined, braced: string | undefined, operator: string | undefined, operand: string | undefined, bare: string | undefined) => {
    if (dollar) return '$';
    const name = (braced ?? bare)!;
    const value = variables[name];
    const set = value !== undefined;
    const nonEmpty = set && value !== '';
    const nested = () => interpolate(operand ?? '', variables) ?? ((missing = true), '');
    switch (operator) {
      case ':-': return nonEmpty ? value : nested();
      case '-': return set ? value : nested();
      case ':+': return nonEmpty ? nested() : '';
      case '+': return set ? nested() : '';
      case ':?': if (!nonEmpty) missing = true; return value ?? '';
      case '?': if (!set) missing = true; return value ?? '';
      default: return value ?? '';
    }
  });
  return missing ? undefined : result;
}
