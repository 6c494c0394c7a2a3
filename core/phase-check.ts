import { ReleaseError } from './errors.js';
import type { Hooks } from './hooks.js';
import { PHASES_OF, type Verb } from './phases.js';

/** Every phase of the verb must have a plugin, or a run would skip it silently (exit 2). */
export function requirePhasePlugins(hooks: Hooks, verb: Verb, source = 'release.config.ts'): void {
  for (const phase of PHASES_OF[verb]) {
    if (!hooks.phase.get(phase.name)?.isUsed()) {
      throw new ReleaseError('BAD_INPUT', `no plugin runs phase ${phase.name} of ${verb}`, { hint: `register one in ${source}` });
    }
  }
}
