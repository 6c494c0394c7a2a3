/**
 * The state file is written atomically: a process killed (SIGKILL) between writing the new
 * content and the rename leaves the previous state file whole and unchanged, the new content only
 * in a temp file beside it, which the next run removes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseState, serializeState, StateFile, type ReleaseState } from './state.js';
import { removeStaleTempFiles } from './fs-private.js';

const before: ReleaseState = {
  ticket: '77', branch: 'main', baseSha: 'a'.repeat(40), mergeSha: '',
  services: ['web'], skippedMetadata: [], backups: {},
};
const after: ReleaseState = { ...before, mergeSha: 'b'.repeat(40), backups: { web: '20261127_040000' } };

const STATE_MODULE = fileURLToPath(new URL('./state.js', import.meta.url));

test('a kill between the temp write and the rename leaves the old state file whole; the new content only in a temp file, removed by the next run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rofl-state-'));
  try {
    const path = join(dir, 'releases', '77.env');
    new StateFile(path).write(before);
    // A writer that dies at the failpoint, as RELEASE_FAILPOINT=state-before-rename makes a release do.
    const writer = `
      const { StateFile } = await import(${JSON.stringify(STATE_MODULE)});
      new StateFile(${JSON.stringify(path)}).write(${JSON.stringify(after)}, () => process.kill(process.pid, 'SIGKILL'));
    `;
    const child = execa('node', ['--input-type=module', '-e', writer], { reject: false });
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');

    expect(readFileSync(path, 'utf8')).toBe(serializeState(before));
    expect(parseState(readFileSync(path, 'utf8'), path)).toEqual(before);
    const temps = readdirSync(join(dir, 'releases')).filter((name) => name.endsWith('.tmp'));
    expect(temps).toEqual([`.77.env.${child.pid}.tmp`]);
    expect(readFileSync(join(dir, 'releases', temps[0]!), 'utf8')).toBe(serializeState(after));

    expect(removeStaleTempFiles(join(dir, 'releases'))).toEqual(temps);
    expect(readdirSync(join(dir, 'releases'))).toEqual(['77.env']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
