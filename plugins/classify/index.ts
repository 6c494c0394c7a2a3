import { parseOptions } from '../../core/index.js';
import picomatch from 'picomatch';
import { z } from 'zod';
import type { Action, ChangedFile, Classification, Plugin } from '../../core/index.js';
import { serviceOfPath } from '../platform/manifest.js';

/**
 * Classifier rules. Each rule is its own plugin tapping `classify`; the first rule that claims a
 * path wins, so order in release.config.ts matters and a repo swaps a rule by name.
 */
const globRuleSchema = z.strictObject({
  name: z.string().min(1),
  patterns: z.array(z.string().min(1)).min(1),
  kind: z.string().min(1),
});

/** A rule that gives every path matching `patterns` the classification `kind`, with no action. */
export function globRule(rawOptions: z.input<typeof globRuleSchema>): Plugin {
  const options = parseOptions('globRule', globRuleSchema, rawOptions);
  const matches = picomatch(options.patterns, { dot: true });
  return {
    name: options.name,
    apply({ hooks }) {
      hooks.classify.tap(options.name, (file) =>
        matches(file.path) ? { kind: options.kind, rule: options.name, actions: [] } : undefined);
    },
  };
}

/** What a change to one file of a service folder asks for. */
function serviceAction(file: ChangedFile, service: string): Action {
  if (file.status === 'D') return { service, kind: 'remove', reason: `${file.path} was deleted` };
  return { service, kind: 'redeploy', reason: `${file.path} changed` };
}

/** `packages/<svc>/manifest.yaml` and `compose.yaml` redeploy `<svc>`; a deleted manifest removes it. */
export function serviceFilesRule(name = 'service-files'): Plugin {
  const files: Record<string, string> = { 'manifest.yaml': 'manifest', 'compose.yaml': 'compose' };
  return {
    name,
    apply({ hooks }) {
      hooks.classify.tap(name, (file): Classification | undefined => {
        const service = serviceOfPath(file.path);
        const kind = files[file.path.split('/').slice(2).join('/')];
        if (!service || !kind) return undefined;
        const actions = [serviceAction(file, service)];
        // A renamed folder: the old service is removed too.
        const oldService = file.from ? serviceOfPath(file.from) : undefined;
        if (oldService && oldService !== service) actions.push({ service: oldService, kind: 'remove', reason: `renamed to ${service}` });
        return { kind, rule: name, service, actions };
      });
    },
  };
}

/** The default rules of DESIGN.md §3, in order. */
export function defaultRules(): Plugin[] {
  return [
    serviceFilesRule(),
    globRule({ name: 'ticket-scripts', patterns: ['releases/**'], kind: 'ticket-script' }),
    globRule({ name: 'playbooks', patterns: ['recovery/**'], kind: 'playbook' }),
    globRule({ name: 'docs', patterns: ['docs/**', '**/*.md'], kind: 'docs' }),
    globRule({
      name: 'orchestrator-source',
      patterns: ['core/**', 'plugins/**', 'release.config.ts', 'package.json', 'package-lock.json', 'justfile'],
      kind: 'orchestrator-source',
    }),
  ];
}
