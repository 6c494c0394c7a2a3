/**
 * Saved plans: `release-run T --dry-run --plan-out FILE` writes what the run would do, and
 * `release-run T --plan FILE` runs exactly that, or refuses (exit 2, nothing changed) when
 * anything it was made from moved: HEAD, origin's branch, the files that decide the release
 * (manifests, compose files, project `.env`s, the ticket's scripts, release.config.ts), the
 * orchestrator itself, or the plan was applied already. Terraform's `plan -out` / `apply PLAN`.
 *
 * The plan names files by their git blob ids, never their contents: it holds no secret.
 */
import { readFileSync } from 'node:fs';
import { ReleaseError, writeFileAtomic, z, type Action, type Plugin, type RunContext } from '../../api/index.js';
import { diffFiles, git, gitTry } from '../../shared/git/git.js';
import { dockerCommands, runDocker } from '../../shared/docker/command.js';
import { commandLine } from '../../core/commands.js';
import { parseManifest, manifestPath, composePath } from '../platform/manifest.js';
import { projectEnvPath } from '../platform/interpolate.js';

export const PLUGIN_NAME = 'plan';
export const PLAN_FORMAT = 1;

const planSchema = z.strictObject({
  format: z.literal(PLAN_FORMAT),
  ticket: z.string(),
  created: z.string(),
  orchestrator: z.string(),
  base_sha: z.string().regex(/^[0-9a-f]{40}$/),
  merge_sha: z.string().regex(/^[0-9a-f]{40}$/),
  changed: z.array(z.strictObject({ status: z.string(), path: z.string() })),
  services: z.array(z.string()),
  /** Each file that decides the release, at MERGE_SHA, by its git blob id. */
  files: z.record(z.string(), z.string()),
  actions: z.array(z.looseObject({ service: z.string(), kind: z.string(), reason: z.string() })),
  backups: z.array(z.strictObject({ service: z.string(), type: z.string() })),
  /** The image each changed service runs at MERGE_SHA, with its engine id when this host has it. */
  images: z.record(z.string(), z.strictObject({ image: z.string(), id: z.string().nullable() })),
});

export type SavedPlan = z.infer<typeof planSchema>;

/** This orchestrator's version and commit, as the build recorded them: a plan runs on the build that made it. */
function orchestratorBuild(): string {
  try {
    const info = JSON.parse(readFileSync(new URL('../../build-info.json', import.meta.url), 'utf8')) as { version?: string; commit?: string };
    return `${info.version ?? 'unknown'} (commit ${info.commit ?? 'unknown'})`;
  } catch {
    return 'unknown';
  }
}

/** Reads and checks a plan file; a missing or malformed one is exit 2 naming it. */
export function readPlan(path: string): SavedPlan {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ReleaseError('BAD_INPUT', `--plan ${path}: cannot be read as a plan: ${(error as Error).message.split('\n')[0]}`, { hint: 'give the file release-run TICKET --dry-run --plan-out FILE wrote' });
  }
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ReleaseError('BAD_INPUT', `--plan ${path}: not a plan of this orchestrator (${parsed.error.issues[0]!.path.join('.') || 'the file'}: ${parsed.error.issues[0]!.message})`, { hint: 'write it again with release-run TICKET --dry-run --plan-out FILE' });
  }
  return parsed.data;
}

/** The files at `commit` that decide what a release of `services` does, by blob id. */
async function decidingFiles(context: RunContext, commit: string, services: readonly string[]): Promise<Record<string, string>> {
  const paths = [
    'release.config.ts',
    ...services.flatMap((service) => [manifestPath(service), composePath(service), projectEnvPath(composePath(service))]),
  ];
  const listed = await git(context, ['ls-tree', '-r', '--full-tree', commit, '--', 'releases', ...paths]);
  const files: Record<string, string> = {};
  for (const line of listed.split('\n').filter(Boolean)) {
    const [meta, path] = line.split('\t') as [string, string];
    if (path.startsWith('releases/') && !path.startsWith(`releases/${context.ticket}-`)) continue;
    files[path] = meta.split(' ')[2]!;
  }
  return files;
}

/** What differs between two sets of deciding files, as `PATH changed|added|removed`. */
function fileChanges(planned: Record<string, string>, now: Record<string, string>): string[] {
  const paths = [...new Set([...Object.keys(planned), ...Object.keys(now)])].sort();
  return paths.flatMap((path) => planned[path] === now[path] ? [] : [`${path} ${planned[path] === undefined ? 'added' : now[path] === undefined ? 'removed' : 'changed'}`]);
}

async function imagesOf(context: RunContext, commit: string, services: readonly string[]): Promise<SavedPlan['images']> {
  const images: SavedPlan['images'] = {};
  for (const service of services) {
    const text = await gitTry(context, ['show', `${commit}:${manifestPath(service)}`]);
    if (text.exitCode !== 0) continue;
    const image = parseManifest(text.stdout, manifestPath(service), service).image;
    if (!image) continue;
    // A host without an engine still gets its plan: the id is then unknown.
    const inspected = await runDocker(context, dockerCommands.imageId(image), { deadlineMs: 10_000, deadlineName: 'docker' }).catch(() => undefined);
    images[service] = { image, id: inspected?.exitCode === 0 ? inspected.stdout.trim() : null };
  }
  return images;
}

async function backupsOf(context: RunContext, commit: string, services: readonly string[]): Promise<SavedPlan['backups']> {
  const backups: SavedPlan['backups'] = [];
  for (const service of services) {
    const text = await gitTry(context, ['show', `${commit}:${manifestPath(service)}`]);
    if (text.exitCode !== 0) continue;
    for (const entry of parseManifest(text.stdout, manifestPath(service), service).backup) backups.push({ service, type: entry.type });
  }
  return backups;
}

/**
 * Before prepare changes anything: the plan is this ticket's, not applied yet, and HEAD is its
 * BASE_SHA. Exit 2 naming what moved.
 */
export function requirePlanBeforeFetch(context: RunContext, plan: SavedPlan, head: string): void {
  if (plan.ticket !== context.ticket) {
    throw new ReleaseError('BAD_INPUT', `the plan is for ticket ${plan.ticket}, not ${context.ticket}; nothing was changed`, { hint: `run it as release-run ${plan.ticket} --plan FILE` });
  }
  if (context.stateFile.exists()) {
    const state = context.stateFile.read();
    if (state.mergeSha === plan.merge_sha && context.log.events().some((event) => event.phase === 'verify' && event.event === 'done')) {
      throw new ReleaseError('BAD_INPUT', `the plan was already applied: release ${plan.ticket} of ${plan.merge_sha.slice(0, 12)} went through; nothing was changed`, {
        hint: `to check it again: release-run ${plan.ticket} --from=verify`, reason: 'PLAN_MOVED',
      });
    }
  }
  if (head !== plan.base_sha) {
    throw new ReleaseError('BAD_INPUT', `HEAD moved since the plan: the plan starts at ${plan.base_sha.slice(0, 12)}, HEAD is ${head.slice(0, 12)}; nothing was changed`, {
      hint: `review a new plan: release-run ${plan.ticket} --dry-run --plan-out FILE`, reason: 'PLAN_MOVED',
    });
  }
  const orchestrator = orchestratorBuild();
  if (orchestrator !== plan.orchestrator) {
    throw new ReleaseError('BAD_INPUT', `the orchestrator changed since the plan: it was made by ${plan.orchestrator}, this is ${orchestrator}; nothing was changed`, {
      hint: `review a new plan: release-run ${plan.ticket} --dry-run --plan-out FILE`, reason: 'PLAN_MOVED',
    });
  }
}

/** After the fetch, before the pull: origin's branch is still the plan's MERGE_SHA, and its deciding files are the plan's. */
export async function requirePlanAfterFetch(context: RunContext, plan: SavedPlan, fetched: string): Promise<void> {
  const services = [...new Set([...plan.services, ...(await diffFiles(context, plan.base_sha, fetched)).flatMap((file) => /^packages\/([^/]+)\//.exec(file.path)?.[1] ?? [])])];
  const changes = fileChanges(plan.files, await decidingFiles(context, fetched, services));
  if (fetched !== plan.merge_sha || changes.length > 0) {
    throw new ReleaseError('BAD_INPUT', `origin moved since the plan: the plan releases ${plan.merge_sha.slice(0, 12)}, origin is at ${fetched.slice(0, 12)}${changes.length > 0 ? `, and ${changes.length} file(s) that decide the release differ` : ''}; nothing was changed`, {
      lines: changes, hint: `review a new plan: release-run ${plan.ticket} --dry-run --plan-out FILE`, reason: 'PLAN_MOVED',
    });
  }
  const planned = Object.entries(plan.images).filter(([, entry]) => entry.id !== null);
  const now = await imagesOf(context, fetched, planned.map(([service]) => service));
  const rebuilt = planned.filter(([service, entry]) => now[service]?.id && now[service]!.id !== entry.id);
  if (rebuilt.length > 0) {
    throw new ReleaseError('BAD_INPUT', `an image changed since the plan: ${rebuilt.map(([service, entry]) => `${entry.image} of ${service} is ${now[service]!.id!.slice(0, 19)} on this host, the plan reviewed ${entry.id!.slice(0, 19)}`).join('; ')}; nothing was changed`, {
      hint: `the tag was rebuilt or pulled again since the review: review a new plan: release-run ${plan.ticket} --dry-run --plan-out FILE`, reason: 'PLAN_MOVED',
    });
  }
  context.out.phase('prepare', `the plan holds: origin is at its MERGE_SHA ${plan.merge_sha.slice(0, 12)}, and its ${Object.keys(plan.files).length} deciding files are as reviewed`);
  context.log.event('prepare', 'plan', { base: plan.base_sha, merge: plan.merge_sha, created: plan.created });
}

/** Writes the plan of the dry run that just ended: from its state (BASE_SHA, MERGE_SHA) and the actions it previewed. */
async function writePlan(context: RunContext, path: string, actions: Action[]): Promise<void> {
  const state = context.requireState();
  if (!state.mergeSha) throw new ReleaseError('BAD_INPUT', `--plan-out ${path}: the dry run found nothing to pull, so there is no plan to write`);
  const plan: SavedPlan = {
    format: PLAN_FORMAT,
    ticket: context.ticket,
    created: new Date().toISOString(),
    orchestrator: orchestratorBuild(),
    base_sha: state.baseSha,
    merge_sha: state.mergeSha,
    changed: (await diffFiles(context, state.baseSha, state.mergeSha)).map((file) => ({ status: file.status, path: file.path })),
    services: state.services,
    files: await decidingFiles(context, state.mergeSha, state.services),
    actions: actions.map((action) => ({ ...action })),
    backups: await backupsOf(context, state.mergeSha, state.services),
    images: await imagesOf(context, state.mergeSha, state.services),
  };
  writeFileAtomic(path, `${JSON.stringify(plan, null, 2)}\n`, { privateFolder: false });
  const command = commandLine('release-run', [context.ticket, '--plan', path]);
  context.out.plain(`[${context.verb}] plan written to ${path}: ${plan.base_sha.slice(0, 12)}..${plan.merge_sha.slice(0, 12)}, ${plan.actions.length} action(s) in ${plan.services.length} service(s); run it as reviewed with: ${command}`);
  try {
    await context.hooks.planWritten.promise({
      file: path, baseSha: plan.base_sha, mergeSha: plan.merge_sha, command,
      actions: plan.actions.map((action) => `${action.kind} ${action.service}: ${action.reason}`),
    }, context);
  } catch (error) {
    context.out.warn(`the plan's summary was not published: ${(error as Error).message}`);
  }
}

/** The plans a ticket's runs were held to, from its audit log (`phase=prepare event=plan`). */
export function appliedPlans(logFile: string): { base: string; merge: string; created: string }[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    const match = / phase=prepare event=plan base=(\S+) merge=(\S+) created=(\S+)/.exec(line);
    return match ? [{ base: match[1]!, merge: match[2]!, created: match[3]! }] : [];
  });
}

/**
 * The actions each dry run previewed. Kept per run, not per plugin instance: prepare swaps to the
 * config of the fetched commit, whose own plan plugin then writes the plan.
 */
const previewed = new WeakMap<RunContext, Action[]>();

export function planPlugin(): Plugin {
  return {
    name: PLUGIN_NAME,
    apply({ hooks }) {
      hooks.phase.for('prepare').tap({ name: PLUGIN_NAME, stage: -100 }, (context) => {
        if (!context.planOut || previewed.has(context)) return;
        const actions: Action[] = [];
        previewed.set(context, actions);
        context.out.events.on((event) => {
          if (event.phase === 'migrate' && event.event === 'action') actions.push(event.fields as unknown as Action);
        });
      });
      hooks.done.tapPromise(PLUGIN_NAME, async (context) => {
        if (context.planOut && context.dryRun) await writePlan(context, context.planOut, previewed.get(context) ?? []);
      });
    },
  };
}
