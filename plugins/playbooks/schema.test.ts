import { readdirSync } from 'node:fs';
import { loadPlaybooks, SHIPPED_PLAYBOOKS } from './index.js';
import { fillIn, playbookMatches, playbookSchema } from './schema.js';

describe('recovery playbooks', () => {
  test('every shipped playbook is valid and its id is its file name', () => {
    const files = readdirSync(SHIPPED_PLAYBOOKS).filter((name) => name.endsWith('.yaml'));
    const { playbooks, problems } = loadPlaybooks([SHIPPED_PLAYBOOKS]);
    expect(problems).toEqual([]);
    expect(playbooks.map((p) => `${p.id}.yaml`).sort()).toEqual(files.sort());
    expect(playbooks.map((p) => p.id)).toEqual(expect.arrayContaining([
      'release-verify-race', 'release-run-exit-5-with-drift', 'release-orchestrator-source-drift',
    ]));
  });

  test('matching needs every given condition', () => {
    const playbook = playbookSchema.parse({
      id: 'release-x', title: 't', matches: { phase: 'verify', exit: [5, 7], reason: ['HEALTH_FAILED', 'DRIFT'], output: 'probe of \\w+ failed' },
      cause: 'c', steps: ['s'], next: 'just release-run {ticket} --from={phase}',
    });
    const failure = { verb: 'release-run', phase: 'verify', exitCode: 7, reason: 'HEALTH_FAILED' as const, output: 'health probe of web failed' };
    expect(playbookMatches(playbook, failure)).toBe(true);
    expect(playbookMatches(playbook, { ...failure, phase: 'migrate' })).toBe(false);
    expect(playbookMatches(playbook, { ...failure, exitCode: 1 })).toBe(false);
    expect(playbookMatches(playbook, { ...failure, output: 'other' })).toBe(false);
    expect(playbookMatches(playbook, { ...failure, reason: 'DEADLINE_PASSED' })).toBe(false);
    expect(fillIn(playbook.next, { ticket: '12', phase: 'verify' })).toBe('just release-run 12 --from=verify');
  });

  test('every placeholder is filled; an unknown value becomes a word that says what goes there', () => {
    const template = 'docker ps --filter label=com.docker.compose.project={service}; git log {merge_sha}..HEAD; {verb} {ticket} --from={phase} (base {base_sha})';
    expect(fillIn(template, { verb: 'release-run', ticket: '7', phase: 'verify', service: 'web', base_sha: 'a1', merge_sha: 'b2' }))
      .toBe('docker ps --filter label=com.docker.compose.project=web; git log b2..HEAD; release-run 7 --from=verify (base a1)');
    expect(fillIn('{service} {merge_sha}', { ticket: '7', phase: 'verify' })).toBe('SERVICE MERGE_SHA');
  });

  test('no shipped playbook prints a placeholder word or an internal reference', () => {
    const { playbooks } = loadPlaybooks([SHIPPED_PLAYBOOKS]);
    for (const playbook of playbooks) {
      const text = [playbook.title, playbook.cause, ...playbook.steps, playbook.next].join('\n');
      expect(text).not.toMatch(/\b(SERVICE|CONTAINER|LATER_TICKET|TICKET\.log)\b|#\d{3,}/);
      expect(playbook.next).toMatch(/^just (release-run|release-revert|release|\{verb\}) /);
    }
  });

  test('a shipped playbook names the verb it tells to run next: a revert is never told to resume a release-run phase', () => {
    const { playbooks } = loadPlaybooks([SHIPPED_PLAYBOOKS]);
    const failures = [
      { verb: 'release-run', phase: 'migrate', exitCode: 1, reason: 'DEADLINE_PASSED' as const, output: '`docker-compose up -d` ran past its deadline (compose) of 30m' },
      { verb: 'release-revert', phase: 'restore', exitCode: 1, reason: 'DEADLINE_PASSED' as const, output: '`docker volume inspect x` ran past its deadline (docker) of 5m' },
    ];
    for (const failure of failures) {
      const matched = playbooks.filter((playbook) => playbookMatches(playbook, failure));
      expect(matched.length).toBeGreaterThan(0);
      for (const playbook of matched) {
        const next = fillIn(playbook.next, { verb: failure.verb, ticket: '7', phase: failure.phase });
        if (failure.verb === 'release-revert') expect(next).not.toMatch(/release-run 7 --from=/);
      }
    }
  });

  test.each([
    [{ id: 'bad id' }, /id: expected release-<words>/],
    [{ matches: { output: '(' } }, /matches.output: not a valid regular expression/],
    [{ steps: [] }, /steps/],
    [{ extra: 1 }, /Unrecognized key/],
  ])('an invalid playbook names the key: %j', (change, message) => {
    const valid = { id: 'release-x', title: 't', matches: {}, cause: 'c', steps: ['s'], next: 'n' };
    const parsed = playbookSchema.safeParse({ ...valid, ...change });
    expect(parsed.success).toBe(false);
    const issue = parsed.error!.issues[0]!;
    expect(`${issue.path.join('.')}: ${issue.message}`).toMatch(message);
  });
});
