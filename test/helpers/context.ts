/**
 * A run context for tests of one plugin, built the way a run builds it: the plugins applied by
 * `applyPlugins` (errors tagged, HookMaps recorded) and the context made by `createContext`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { applyPlugins } from '../../core/runner.js';
import { createContext } from '../../core/context.js';
import { Output } from '../../core/output.js';
import type { Plugin, RunContext } from '../../core/index.js';

export interface TestContext {
  context: RunContext;
  /** Everything printed so far, stdout and stderr. */
  printed: () => string;
  repoDir: string;
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface TestContextOptions {
  verb?: 'release-run' | 'release-revert';
  /** The platform repo; a new empty temp folder by default. */
  repoDir?: string;
  ticket?: string;
}

/** A context over `plugins`, printing into a buffer; the repo is an empty temp folder unless given. */
export function testContext(plugins: Plugin[], options: TestContextOptions = {}): TestContext {
  const verb = options.verb ?? 'release-run';
  const repoDir = options.repoDir ?? mkdtempSync(join(tmpdir(), 'ro-test-repo-'));
  const hooks = applyPlugins({ plugins });
  const capture = new Capture();
  const stream = capture as unknown as NodeJS.WriteStream;
  const out = new Output(verb, stream, stream);
  const context = createContext({ verb, ticket: options.ticket ?? 't1', repoDir, dryRun: false, hooks, out, signal: new AbortController().signal });
  return { context, printed: () => capture.text, repoDir };
}
