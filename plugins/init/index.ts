import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InitResult, Plugin, RunContext } from '../../api/index.js';
import { CONFIG, JUSTFILE, PLAYBOOKS_README, exampleCompose, exampleManifest } from './templates.js';

export const PLUGIN_NAME = 'init';

/** Writes `path` unless something is there already: init never overwrites. */
function writeNew(context: RunContext, result: InitResult, path: string, content: string): void {
  const full = join(context.repoDir, path);
  if (existsSync(full)) {
    result.kept.push(path);
    return;
  }
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content, { flag: 'wx' });
  result.written.push(path);
}

/** `.asd/` (the orchestrator's workspace) must never be committed: added to .gitignore if missing. */
function ignoreWorkspace(context: RunContext, result: InitResult): void {
  const file = join(context.repoDir, '.gitignore');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (text.split('\n').some((line) => /^\/?\.asd\/?$/.test(line.trim()))) {
    result.kept.push('.gitignore (it ignores .asd/ already)');
    return;
  }
  appendFileSync(file, `${text === '' || text.endsWith('\n') ? '' : '\n'}.asd/\n`);
  result.written.push('.gitignore (added .asd/)');
}

/** `release init [--example NAME]`: what a platform repo needs to be released. */
export function initPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.init.tapPromise(PLUGIN_NAME, async (result, context) => {
        const existing = ['justfile', 'Justfile', '.justfile'].find((name) => existsSync(join(context.repoDir, name)));
        if (existing) result.kept.push(existing);
        else writeNew(context, result, 'justfile', JUSTFILE);
        ignoreWorkspace(context, result);
        writeNew(context, result, 'recovery/playbooks/README.md', PLAYBOOKS_README);
        writeNew(context, result, 'release.config.ts', CONFIG);
        if (result.example) {
          writeNew(context, result, `packages/${result.example}/manifest.yaml`, exampleManifest(result.example));
          writeNew(context, result, `packages/${result.example}/compose.yaml`, exampleCompose());
        }
      });
    },
  };
}
