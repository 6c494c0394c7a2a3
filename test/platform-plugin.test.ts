/**
 * A platform team's own backup strategy, living in the platform repo under release/plugins/,
 * importing the orchestrator only by its package name, shipped together with its first use in
 * one merge: prepare (and the dry run) already back up with it, revert restores with it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Platform, snapshot } from './helpers/platform.js';

const FILE_BACKUP_PLUGIN = `import { createReadStream, writeFileSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createArchiveStream, defineBackupStrategy, hashingCounter, readArchive, sealArchive, verifyArchive, z } from 'release-orchestrator/plugin';
import type { BackupResult } from 'release-orchestrator/plugin';
import { join } from 'node:path';

/** Backs up one file, as is. */
export const fileBackup = () => defineBackupStrategy({
  type: 'file',
  entry: z.strictObject({ path: z.string().startsWith('/') }),
  async backup(request): Promise<BackupResult> {
    const { path, stream } = createArchiveStream(request.dir, \`\${request.index}-file\`);
    const counter = hashingCounter();
    await pipeline(createReadStream(request.options.path), counter.stream, stream);
    const sealed = await sealArchive(path, counter.totals());
    return { files: [\`\${request.index}-file\`], bytes: sealed.bytes };
  },
  async size(request) { return statSync(request.options.path).size; },
  async check(request) { await verifyArchive(join(request.dir, \`\${request.index}-file\`)); },
  async restore(request) {
    const chunks: Buffer[] = [];
    for await (const chunk of readArchive(join(request.dir, \`\${request.index}-file\`))) chunks.push(chunk as Buffer);
    writeFileSync(request.options.path, Buffer.concat(chunks));
  },
});
`;

const CONFIG = `import { fileBackup } from './release/plugins/file-backup.js';
import type { Plugin } from 'release-orchestrator/plugin';

export default ({ defaultPlugins }: { defaultPlugins: () => Plugin[] }) => ({ plugins: [...defaultPlugins(), fileBackup()] });
`;

describe("a platform's own plugin, shipped with its first use in one merge", () => {
  let platform: Platform;
  let data: string;
  let dataDir: string;
  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ro-file-data-'));
    data = join(dataDir, 'notes.txt');
    writeFileSync(data, 'before the release\n');
    platform = await Platform.create([{ name: 'notes' }]);
    await platform.mergeFeature('500', {
      'release.config.ts': CONFIG,
      'release/plugins/file-backup.ts': FILE_BACKUP_PLUGIN,
      'packages/notes/manifest.yaml': `name: notes\nruntime: none\nimage: local/notes:2\nbackup:\n  - type: file\n    path: ${data}\n`,
      'releases/500-rewrite.sh': `#!/bin/sh\necho "written by the release" > '${data}'\n`,
    });
  });
  afterEach(() => {
    platform.remove();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the dry run previews the backup with the new strategy and changes nothing', async () => {
    const before = await snapshot(platform.prod);
    const dry = await platform.run('release-run', ['500', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/would back up notes: file \(about 19 B before compression\)/);
    expect(await snapshot(platform.prod)).toBe(before);
  });

  test('prepare backs up with it; revert restores the data with it', async () => {
    const released = await platform.run('release-run', ['500']);
    expect(released.exitCode).toBe(0);
    expect(readFileSync(data, 'utf8')).toBe('written by the release\n');
    expect(platform.readState('500').BACKUPS).toMatch(/^notes=\d{8}_\d{6}$/);
    expect(platform.logEvents('500')).toEqual(expect.arrayContaining([expect.stringMatching(/^ticket=500 phase=prepare event=backup service=notes at=\d{8}_\d{6} bytes=19$/)]));

    const reverted = await platform.run('release-revert', ['500']);

    expect(reverted.exitCode).toBe(0);
    expect(readFileSync(data, 'utf8')).toBe('before the release\n');
  });

  test('a strategy that lacks a part is refused when the config loads, naming it, before anything changes', async () => {
    await platform.mergeFeature('501', {
      'release/plugins/file-backup.ts': FILE_BACKUP_PLUGIN.replace(/  async restore\(request\) \{[\s\S]*?\n  \},\n/, ''),
    });
    const head = await platform.head();
    const result = await platform.run('release-run', ['501']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/backup strategy backup-file lacks restore: a strategy needs entry, backup, size, check and restore/);
    expect(await platform.head()).toBe(head);
  });

  test('a config that does not load at HEAD does not block the release of its fix: the fetch runs with the reference config, the fix governs the release', async () => {
    expect((await platform.run('release-run', ['500'])).exitCode).toBe(0);
    // A broken config reached the clone (pulled by hand): every verb that reads it is refused.
    await platform.mergeFeature('520', { 'release.config.ts': 'export default { plugins: [ };\n' });
    await platform.git(['pull', '--ff-only', '--quiet']);
    const blocked = await platform.run('release', ['--service=notes']);
    expect(blocked.exitCode).toBe(2);
    expect(blocked.stderr.split('\n')[0]).toMatch(/release\.config\.ts:1:\d+: syntax error/);
    await platform.mergeFeature('521', {
      'release.config.ts': CONFIG,
      'packages/notes/manifest.yaml': `name: notes\nruntime: none\nimage: local/notes:3\nbackup:\n  - type: file\n    path: ${data}\n`,
      'releases/521-note.sh': `#!/bin/sh\necho "written by the fix" > '${data}'\n`,
    });

    const dry = await platform.run('release-run', ['521', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stderr).toMatch(/the config at HEAD does not load \(release\.config\.ts:1:\d+: syntax error: .*\); fetching with the reference config/);
    expect(dry.stdout).toMatch(/would back up notes: file/);

    const released = await platform.run('release-run', ['521']);
    expect(released.exitCode).toBe(0);
    expect(readFileSync(data, 'utf8')).toBe('written by the fix\n');
    expect(platform.readState('521').BACKUPS).toMatch(/^notes=\d{8}_\d{6}$/);
    expect((await platform.run('release', ['--service=notes'])).exitCode).toBe(0);
  });

  test('a resume is governed by the config at HEAD: one that does not load is refused, nothing changed', async () => {
    await platform.mergeFeature('530', { 'release.config.ts': 'export default { plugins: [ };\n' });
    await platform.git(['pull', '--ff-only', '--quiet']);
    const head = await platform.head();
    const resumed = await platform.run('release-run', ['530', '--from=verify']);
    expect(resumed.exitCode).toBe(2);
    expect(resumed.stderr.split('\n')[0]).toMatch(/release\.config\.ts:1:\d+: syntax error/);
    expect(await platform.head()).toBe(head);
  });

  test('a release continued after exit 5 restores the entries its backup was taken for, even once the manifest changed them', async () => {
    const other = join(dataDir, 'other.txt');
    writeFileSync(other, 'the other file\n');
    await platform.mergeFeature('510', { 'tools/rotate.py': 'print(1)\n' });
    const stopped = await platform.run('release-run', ['510']);
    expect(stopped.exitCode).toBe(5);
    expect(platform.readState('510').BACKUPS).toMatch(/^notes=\d{8}_\d{6}$/);

    // The fix merged: a rule for tools/**, and the manifest now lists another file first.
    await platform.mergeFeature('510b', {
      'release.config.ts': `import { fileBackup } from './release/plugins/file-backup.js';
import type { Plugin } from 'release-orchestrator/plugin';

export default ({ defaultPlugins, builtins }: { defaultPlugins: () => Plugin[]; builtins: { globRule: (options: object) => Plugin } }) => ({
  plugins: [...defaultPlugins(), fileBackup(), builtins.globRule({ name: 'tools', patterns: ['tools/**'], kind: 'tool' })],
});
`,
      'packages/notes/manifest.yaml': `name: notes\nruntime: none\nimage: local/notes:3\nbackup:\n  - type: file\n    path: ${other}\n  - type: file\n    path: ${data}\n`,
    });
    const continued = await platform.run('release-run', ['510', '--from=prepare']);
    expect(continued.exitCode).toBe(0);
    writeFileSync(data, 'changed after the release\n');

    const reverted = await platform.run('release-revert', ['510']);

    expect(reverted.exitCode).toBe(0);
    expect(readFileSync(data, 'utf8')).toBe('before the release\n');
    expect(readFileSync(other, 'utf8')).toBe('the other file\n');
  });
});
