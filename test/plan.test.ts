/**
 * Saved plans on real git: the dry run's plan is what runs, and a plan whose world moved is
 * refused with exit 2 and nothing changed (HEAD, branches, work tree, workspace).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, snapshot } from './helpers/platform.js';

/** The clone as `snapshot` sees it, but the audit log and its folders, which record every refusal. */
const cloneState = async (repo: string) => (await snapshot(repo)).split('\n').filter((line) => !line.includes('./.asd')).join('\n');

const manifest = (tag: string) => `name: web\nruntime: none\nimage: local/web:${tag}\nbackup: []\n`;

describe('saved plans', () => {
  let platform: Platform;
  let planFile: string;
  beforeEach(async () => {
    platform = await Platform.create([{ name: 'web' }]);
    planFile = join(platform.root, '1234.plan.json');
  });
  afterEach(() => platform.remove());

  async function reviewedPlan(): Promise<{ base: string; merge: string }> {
    const base = await platform.head();
    const merge = await platform.mergeFeature('1234', { 'packages/web/manifest.yaml': manifest('2'), 'releases/1234-data.sh': '#!/bin/sh\necho migrated\n' });
    const dry = await platform.run('release-run', ['1234', '--dry-run', '--plan-out', planFile]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain(`[release-run] plan written to ${planFile}: ${base.slice(0, 12)}..${merge.slice(0, 12)}, 1 action(s) in 1 service(s); run it as reviewed with: release-run 1234 --plan ${planFile}`);
    return { base, merge };
  }

  test('the plan names what the dry run found, holds no file contents, and runs as reviewed', async () => {
    const { base, merge } = await reviewedPlan();
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as Record<string, unknown>;
    expect(plan).toMatchObject({
      format: 1, ticket: '1234', base_sha: base, merge_sha: merge, services: ['web'],
      actions: [expect.objectContaining({ service: 'web', kind: 'redeploy' })],
      images: { web: { image: 'local/web:2' } },
    });
    expect(Object.keys(plan.files as object)).toEqual(expect.arrayContaining(['packages/web/manifest.yaml', 'releases/1234-data.sh']));
    expect(readFileSync(planFile, 'utf8')).not.toContain('echo migrated');

    const run = await platform.run('release-run', ['1234', '--plan', planFile]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`the plan holds: origin is at its MERGE_SHA ${merge.slice(0, 12)}`);
    expect(await platform.head()).toBe(merge);
    expect((await platform.run('release', ['show', '1234'])).stdout).toMatch(new RegExp(`^run as the reviewed plan of \\S+ \\(${base.slice(0, 12)}\\.\\.${merge.slice(0, 12)}\\)$`, 'm'));
    expect(platform.logEvents('1234')).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^ticket=1234 phase=prepare event=plan base=${base} merge=${merge} created=`))]));
  });

  test('refused after origin moved with a changed manifest: exit 2 naming the file that differs, nothing changed', async () => {
    await reviewedPlan();
    await platform.pushCommits([{ 'packages/web/manifest.yaml': manifest('3') }]);
    const before = await cloneState(platform.prod);

    const run = await platform.run('release-run', ['1234', '--plan', planFile]);

    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^\[release-run\] error: origin moved since the plan: the plan releases [0-9a-f]{12}, origin is at [0-9a-f]{12}, and 1 file\(s\) that decide the release differ; nothing was changed/);
    expect(run.stderr).toContain('packages/web/manifest.yaml changed');
    expect(await cloneState(platform.prod)).toBe(before);
  });

  test('refused after HEAD moved (someone pulled by hand): exit 2, nothing changed', async () => {
    await reviewedPlan();
    // Someone released by hand meanwhile: the clone moved, and the plan no longer starts at HEAD.
    await platform.git(['pull', '-q', '--ff-only', 'origin', 'main']);
    const before = await cloneState(platform.prod);

    const run = await platform.run('release-run', ['1234', '--plan', planFile]);

    expect(run.exitCode).toBe(2);
    expect(run.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: HEAD moved since the plan: the plan starts at [0-9a-f]{12}, HEAD is [0-9a-f]{12}; nothing was changed \(plugin prepare/);
    expect(await cloneState(platform.prod)).toBe(before);
  });

  test('refused when applied twice, and for another ticket', async () => {
    await reviewedPlan();
    expect((await platform.run('release-run', ['1234', '--plan', planFile])).exitCode).toBe(0);

    const again = await platform.run('release-run', ['1234', '--plan', planFile]);

    expect(again.exitCode).toBe(2);
    expect(again.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: the plan was already applied: release 1234 of [0-9a-f]{12} went through; nothing was changed \(plugin prepare/);
    const other = await platform.run('release-run', ['77', '--plan', planFile]);
    expect(other.exitCode).toBe(2);
    expect(other.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: the plan is for ticket 1234, not 77; nothing was changed/);
  });

  test('bad arguments: --plan-out without --dry-run, --plan with --from, a file that is no plan', async () => {
    expect((await platform.run('release-run', ['1234', '--plan-out', planFile])).stderr.split('\n')[0]).toBe('[release-run] error: --plan-out writes the plan of a dry run: add --dry-run');
    expect((await platform.run('release-run', ['1234', '--plan', planFile, '--from=verify'])).exitCode).toBe(2);
    const notPlan = join(platform.root, 'x.json');
    platform.write(platform.root, { 'x.json': '{"format": 7}' });
    await platform.mergeFeature('1234', { 'packages/web/manifest.yaml': manifest('2') });
    const bad = await platform.run('release-run', ['1234', '--plan', notPlan]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/^\[release-run\] error: --plan .*x\.json: not a plan of this orchestrator/);
  });
});
