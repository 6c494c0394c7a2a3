import type { Hooks } from './hooks.js';

/** What a plugin's apply() receives: the hooks to tap, nothing else. */
export interface Release {
  readonly hooks: Hooks;
}

/** A plugin: a unique name (its tap name) and an apply() that only taps hooks. */
export interface Plugin {
  readonly name: string;
  apply(release: Release): void;
}

export interface ReleaseConfig {
  plugins: Plugin[];
  /** `release-run --atomic` by default: a failure after the pull reverts the release at once. */
  atomic?: boolean;
}
