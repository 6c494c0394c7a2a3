import picomatch from 'picomatch';
import { ReleaseError, parseOptions, z, type Action, type ChangedFile, type Classification, type DiffView, type Plugin } from '../../api/index.js';
import { composeReaders, composeRoles, foreignBuilders, parseComposeFile, type ComposeFile } from '../platform/compose-file.js';
import { composePath, manifestPath, serviceOfPath } from '../platform/manifest.js';
import { projectEnvPath } from '../platform/interpolate.js';

/**
 * Classifier rules. Each rule is its own plugin tapping `classify`; the first rule that claims a
 * path wins, so order in release.config.ts matters and a repo swaps a rule by name.
 */
const ACTION_KIND = /^[a-z][a-z0-9-]*$/;

const globRuleSchema = z.strictObject({
  name: z.string().min(1),
  patterns: z.array(z.string().min(1)).min(1),
  kind: z.string().min(1),
  /** An action for the service that owns the path (or `service`), e.g. `recreate`. */
  action: z.string().regex(ACTION_KIND, 'expected an action kind like build, redeploy or recreate').optional(),
  service: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a service name').optional(),
});

export type GlobRuleOptions = z.input<typeof globRuleSchema>;

/** The patterns each rule matches, for the list an unclassified file is reported with. */
const rulePatterns = new Map<string, string>();

/** `name (patterns)` of a rule, as the exit-5 report lists the rules in force. */
export function describeRule(name: string): string {
  const patterns = rulePatterns.get(name);
  return patterns ? `${name} (${patterns})` : name;
}

/**
 * A rule that gives every path matching `patterns` the classification `kind`; with `action`, that
 * action for the service owning the path (`packages/<svc>/...`) or for the one named by `service`.
 */
export function globRule(rawOptions: GlobRuleOptions): Plugin {
  const options = parseOptions('globRule', globRuleSchema, rawOptions);
  const matches = picomatch(options.patterns, { dot: true });
  rulePatterns.set(options.name, options.patterns.join(' '));
  return {
    name: options.name,
    apply({ hooks }) {
      hooks.classify.tap(options.name, (file): Classification | undefined => {
        if (!matches(file.path)) return undefined;
        const service = options.service ?? serviceOfPath(file.path);
        if (!options.action) return { kind: options.kind, rule: options.name, service, actions: [] };
        if (!service) {
          throw new ReleaseError('BAD_INPUT', `rule ${options.name}: ${file.path} belongs to no service, so its action ${options.action} has no target`, {
            hint: `give the rule a service: in release.config.ts, e.g. globRule({ ..., action: '${options.action}', service: 'proxy' })`,
          });
        }
        return { kind: options.kind, rule: options.name, service, actions: [{ service, kind: options.action, reason: `${file.path} changed (rule ${options.name})` }] };
      });
    },
  };
}

interface ServiceAtMerge {
  hasManifest: boolean;
  compose?: ComposeFile;
}

/** Per diff: each service folder's manifest and compose file at MERGE_SHA, read once. */
const servicesOfDiff = new WeakMap<DiffView, Map<string, ServiceAtMerge>>();

function serviceAtMerge(diff: DiffView, service: string): ServiceAtMerge {
  let services = servicesOfDiff.get(diff);
  if (!services) {
    services = new Map();
    servicesOfDiff.set(diff, services);
    // One read for every service folder the diff touches.
    const folders = new Set(diff.files.flatMap((file) => [file.path, file.from]).map((path) => (path ? serviceOfPath(path) : undefined)).filter(Boolean) as string[]);
    diff.prefetch([...folders].flatMap((name) => [manifestPath(name), composePath(name)]));
  }
  let found = services.get(service);
  if (!found) {
    const composeText = diff.read(composePath(service));
    found = {
      hasManifest: diff.read(manifestPath(service)) !== undefined,
      compose: composeText === undefined ? undefined : parseComposeFile(composeText, composePath(service)),
    };
    services.set(service, found);
  }
  return found;
}

/** The build actions a path asks for as part of other services' build contexts. */
function foreignBuilds(diff: DiffView, path: string, except?: string): Action[] {
  return [...foreignBuilders(diff, path, except)].flatMap(([service, targets]) => [
    { service, kind: 'build', reason: `${path} changed in the build context of ${targets.join(', ')}`, targets },
    { service, kind: 'redeploy', reason: `rebuilt ${targets.join(', ')}` },
  ]);
}

/** A service folder's manifest was deleted or renamed away in this diff: the service goes. */
const manifestLeaves = (diff: DiffView, service: string) =>
  diff.files.some((file) => (file.status === 'D' && file.path === manifestPath(service)) || file.from === manifestPath(service));

/**
 * Every file under `packages/<svc>/` belongs to `<svc>`; its role in the compose file at MERGE_SHA
 * picks the action: manifest or compose file -> redeploy; a build context's file -> build (then
 * redeploy); a mounted file (bind mount, env_file, configs) -> recreate; anything else -> none.
 */
export function serviceFilesRule(name = 'service-files'): Plugin {
  rulePatterns.set(name, 'packages/<svc>/**, roles from packages/<svc>/compose.yaml');
  return {
    name,
    apply({ hooks }) {
      hooks.classify.tap(name, (file, diff): Classification | undefined => {
        const service = serviceOfPath(file.path);
        // A file a compose file reads as part of itself (include:, extends:), wherever it lies.
        const readers: Action[] = composeReaders(diff, file.path).map((reader) => ({
          service: reader, kind: 'redeploy', reason: `${file.path} changed: ${composePath(reader)} reads it (include: or extends:)`,
        }));
        if (!service) {
          // Outside every service folder: a file of another service's build context or compose file, or not ours.
          const builds = foreignBuilds(diff, file.path);
          if (readers.length > 0) return { kind: 'compose-source', rule: name, service: readers[0]!.service, actions: [...readers, ...builds] };
          return builds.length > 0 ? { kind: 'build-context', rule: name, service: builds[0]!.service, actions: builds } : undefined;
        }
        const own = serviceClassification(file, diff, service);
        const builds = foreignBuilds(diff, file.path, service);
        if (builds.length === 0 && readers.length === 0) return own;
        const plain = own.kind === 'service-file' || own.kind === 'no-manifest';
        const kind = plain ? (readers.length > 0 ? 'compose-source' : 'build-context') : own.kind;
        return { ...own, kind, actions: [...own.actions, ...readers, ...builds] };
      });
    },
  };

  function serviceClassification(file: ChangedFile, diff: DiffView, service: string): Classification {
    const at = serviceAtMerge(diff, service);
    if (!at.hasManifest && !manifestLeaves(diff, service)) return { kind: 'no-manifest', rule: name, actions: [] };
    const classification = (kind: string, actions: Action[]): Classification => {
      // A renamed folder: the old service is removed too.
      const oldService = file.from ? serviceOfPath(file.from) : undefined;
      if (oldService && oldService !== service) actions.push({ service: oldService, kind: 'remove', reason: `renamed to ${service}` });
      return { kind, rule: name, service, actions };
    };
    const deleted = file.status === 'D';
    if (file.path === manifestPath(service)) {
      return classification('manifest', [deleted
        ? { service, kind: 'remove', reason: `${file.path} was deleted` }
        : { service, kind: 'redeploy', reason: `${file.path} changed` }]);
    }
    if (file.path === composePath(service)) {
      return classification('compose', [deleted && !at.hasManifest
        ? { service, kind: 'remove', reason: `${file.path} was deleted` }
        : { service, kind: 'redeploy', reason: `${file.path} ${deleted ? 'was deleted' : 'changed'}` }]);
    }
    if (!at.compose) return classification('service-file', []);
    const roles = composeRoles(at.compose, file.path);
    const actions: Action[] = [];
    if (file.path === projectEnvPath(composePath(service))) {
      // Compose substitutes its variables into the compose file (an image tag, a port): what runs changes.
      actions.push({ service, kind: 'redeploy', reason: `${file.path} ${deleted ? 'was deleted' : 'changed'}: compose substitutes its variables into ${composePath(service)}` });
      if (roles.mounts.length > 0) actions.push({ service, kind: 'recreate', reason: `${file.path} is mounted by ${roles.mounts.join(', ')}`, targets: roles.mounts });
      return classification('compose-env', actions);
    }
    if (roles.builds.length > 0) {
      actions.push({ service, kind: 'build', reason: `${file.path} changed in the build context of ${roles.builds.join(', ')}`, targets: roles.builds });
      actions.push({ service, kind: 'redeploy', reason: `rebuilt ${roles.builds.join(', ')}` });
    }
    if (roles.mounts.length > 0) {
      actions.push({ service, kind: 'recreate', reason: `${file.path} is mounted by ${roles.mounts.join(', ')}`, targets: roles.mounts });
    }
    const kind = roles.builds.length > 0 ? 'build-context' : roles.mounts.length > 0 ? 'mounted-config' : 'service-file';
    return classification(kind, actions);
  }
}

const IMAGES = '*.{png,jpg,jpeg,gif,svg,ico,webp}';

/**
 * The orchestrator's own source: only in the orchestrator's own repo (its package.json names it),
 * where a change to it hands the later phases to the pulled code.
 */
export function orchestratorSourceRule(name = 'orchestrator-source'): Plugin {
  const patterns = ['core/**', 'api/**', 'cli/**', 'shared/**', 'plugins/**', 'release.config.ts', 'package.json', 'package-lock.json', 'tsconfig.json', 'justfile'];
  const matches = picomatch(patterns, { dot: true });
  rulePatterns.set(name, `${patterns.join(' ')}, in the release-orchestrator repo only`);
  const ownRepo = new WeakMap<DiffView, boolean>();
  return {
    name,
    apply({ hooks }) {
      hooks.classify.tap(name, (file, diff) => {
        if (!matches(file.path)) return undefined;
        if (!ownRepo.has(diff)) ownRepo.set(diff, /"name"\s*:\s*"release-orchestrator"/.test(diff.read('package.json') ?? ''));
        return ownRepo.get(diff) ? { kind: 'orchestrator-source', rule: name, actions: [] } : undefined;
      });
    },
  };
}

/** The default rules, in order (docs/services.md lists them). */
export function defaultRules(): Plugin[] {
  return [
    serviceFilesRule(),
    globRule({ name: 'ticket-scripts', patterns: ['releases/**'], kind: 'ticket-script' }),
    globRule({ name: 'playbooks', patterns: ['recovery/**'], kind: 'playbook' }),
    orchestratorSourceRule(),
    globRule({ name: 'release-config', patterns: ['release.config.ts', 'release/**', 'justfile', '.justfile', 'Justfile'], kind: 'release-config' }),
    globRule({ name: 'docs', patterns: ['docs/**', '**/*.md'], kind: 'docs' }),
    globRule({
      name: 'repo-meta',
      patterns: [
        // git and the forges
        '.github/**', '.gitlab-ci.yml', '.gitlab/**', '.gitignore', '.gitattributes', '.gitmodules', '.mailmap', '.git-blame-ignore-revs',
        '.forgejo/**', '.gitea/**', '.woodpecker/**', '.woodpecker.{yml,yaml}', '.drone.{yml,yaml}', '.circleci/**', '.travis.yml',
        'Jenkinsfile', 'bitbucket-pipelines.yml', 'azure-pipelines.yml',
        // linters, formatters, secret scanners, dependency bots, editors
        '.editorconfig', '.dockerignore', '.pre-commit-config.{yaml,yml}', '.pre-commit-hooks.{yaml,yml}', '.yamllint', '.yamllint.{yaml,yml}',
        '.gitleaks.toml', '.gitleaksignore', '.trivyignore', '.hadolint.{yaml,yml}', '.shellcheckrc', '.markdownlint*', '.prettierrc*',
        '.prettierignore', '.codespellrc', '.typos.toml', '_typos.toml', 'renovate.json', 'renovate.json5', '.renovaterc', '.renovaterc.json',
        '.tool-versions', '.vscode/**', '.idea/**', '.devcontainer/**',
        'LICENSE*', 'LICENCE*', 'COPYING*', 'NOTICE*', 'AUTHORS*', 'CODEOWNERS', 'MAINTAINERS', 'CONTRIBUTING*', 'SECURITY*', 'CHANGELOG*', IMAGES,
      ],
      kind: 'repo-meta',
    }),
  ];
}
