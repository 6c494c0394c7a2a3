import { Chalk, type ChalkInstance } from 'chalk';
import { redact } from './secrets.js';
import type { ReleaseError } from './errors.js';
import { commandLine, pasteable } from './commands.js';
import { EVENT_VERBS, EventStream, type EventVerb } from './events.js';

export const DETAIL_LIST_LIMIT = 100;

/**
 * Operator-facing output. Every line is prefixed with the verb (`[release-run] ...`), redacted,
 * and colored only on a terminal without NO_COLOR.
 */
export class Output {
  readonly color: ChalkInstance;
  readonly isTTY: boolean;
  /** The run's machine-readable events (`--json`); see core/events.ts. */
  readonly events: EventStream;

  constructor(
    readonly verb: string,
    readonly stream: NodeJS.WriteStream = process.stdout,
    private readonly errStream: NodeJS.WriteStream = process.stderr,
    events?: EventStream,
  ) {
    this.events = events ?? new EventStream((EVENT_VERBS as readonly string[]).includes(verb) ? verb as EventVerb : 'release');
    this.isTTY = Boolean(stream.isTTY);
    const colorWanted = this.isTTY && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '') && process.env.TERM !== 'dumb';
    this.color = new Chalk({ level: colorWanted ? 1 : 0 });
  }

  private write(target: NodeJS.WriteStream, text: string): void {
    target.write(`${redact(text)}\n`);
  }

  info(message: string): void {
    this.write(this.stream, `${this.color.bold(`[${this.verb}]`)} ${message}`);
  }

  phase(name: string, message: string): void {
    this.write(this.stream, `${this.color.bold(`[${this.verb}]`)} ${this.color.cyan(`${name}:`)} ${message}`);
  }

  /** A line of a subprocess's output, indented under the step that runs it. */
  detail(line: string): void {
    this.write(this.stream, `    ${this.color.dim(line)}`);
  }

  /**
   * A list under its step, cut at DETAIL_LIST_LIMIT lines so that a 20,000-file diff does not
   * bury the run: the rest is one line, `more(count)` saying how many and where the whole list is.
   */
  details(lines: readonly string[], more: (count: number) => string): void {
    for (const line of lines.slice(0, DETAIL_LIST_LIMIT)) this.detail(line);
    if (lines.length > DETAIL_LIST_LIMIT) this.detail(more(lines.length - DETAIL_LIST_LIMIT));
  }

  /** A line without prefix, for the failure block operators copy commands from. */
  plain(line: string): void {
    this.write(this.stream, line);
  }

  warn(message: string): void {
    this.write(this.errStream, `${this.color.yellow(`[${this.verb}] warning:`)} ${pasteable(message)}`);
  }

  error(message: string): void {
    this.write(this.errStream, `${this.color.red(`[${this.verb}] error:`)} ${pasteable(message)}`);
  }

  /**
   * A line of advice about a failure (the failure block, playbooks), without prefix. It goes to
   * stderr with the error it belongs to, so `2>file` or a log collector keeps them together.
   * Commands written as `just VERB ...` in it are put in the form this operator pastes.
   */
  advice(line: string): void {
    this.write(this.errStream, pasteable(line));
  }

  /** The command to paste for `verb args...`, as this operator invokes the verbs. */
  command(verb: string, args: readonly string[] = []): string {
    return commandLine(verb, args);
  }

  /** The one-line error, then its details and the fix, all on stderr, as every failure is shown. */
  reportError(error: ReleaseError): void {
    this.error(`${error.message}${error.plugin ? ` (plugin ${error.plugin}${error.hook ? `, hook ${error.hook}` : ''})` : ''}`);
    for (const line of error.lines) this.advice(`  ${line}`);
    if (error.hint) this.advice(`  fix: ${error.hint}`);
  }
}
