import { existsSync } from 'node:fs';
import { commandLine, docsLinks, DOCS_DIR, pasteable, shellQuote } from './commands.js';

describe('printed commands are written the way the operator runs the verbs', () => {
  test('the bin name when no justfile recipe said otherwise', () => {
    expect(commandLine('release-run', ['12', '--from=verify'], {})).toBe('release-run 12 --from=verify');
    expect(commandLine('release-revert', ['12'], { RELEASE_INVOKED_VIA: '' })).toBe('release-revert 12');
  });

  test('through just when a recipe set RELEASE_INVOKED_VIA', () => {
    expect(commandLine('release-run', ['12'], { RELEASE_INVOKED_VIA: 'just' })).toBe('just release-run 12');
    expect(commandLine('release-revert', ['12'], { RELEASE_INVOKED_VIA: "just -f '/opt/ro/justfile'" })).toBe("just -f '/opt/ro/justfile' release-revert 12");
  });

  test('commands written as `just VERB` in advice are rewritten; prose is not', () => {
    const text = 'To undo instead: just release-revert 9; run the release again; see just release --service=web';
    expect(pasteable(text, {})).toBe('To undo instead: release-revert 9; run the release again; see release --service=web');
    expect(pasteable(text, { RELEASE_INVOKED_VIA: 'just' })).toBe(text);
  });

  test('arguments a shell would split or expand are quoted', () => {
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('--from=verify')).toBe('--from=verify');
  });

  test("docs links name the orchestrator's own file, which opens from the platform repo", () => {
    const text = pasteable('never pull here. See docs/operations.md; rules: docs/plugins.md', {});
    expect(text).toBe(`never pull here. See ${DOCS_DIR}operations.md; rules: ${DOCS_DIR}plugins.md`);
    expect(existsSync(`${DOCS_DIR}operations.md`)).toBe(true);
    expect(docsLinks('packages/web/docs/x.md and docs/missing.md')).toBe('packages/web/docs/x.md and docs/missing.md');
  });
});
