import { PassThrough } from 'node:stream';
import { describeProgress, formatDuration, Transfers } from './progress.js';
import { Output } from './output.js';

describe('transfer progress', () => {
  test('with an expected total: bytes, total, percent, rate and ETA', () => {
    expect(describeProgress(40 * 1024 * 1024, 2, 100 * 1024 * 1024)).toBe('40.0 MiB of ~100.0 MiB (40%), 20.0 MiB/s, ETA 3s');
    expect(describeProgress(0, 0, 1024)).toMatch(/^0 B of ~1\.0 KiB \(0%\), /);
    // an estimate can be short: never more than 99% before the end
    expect(describeProgress(2048, 1, 1024)).toBe('2.0 KiB of ~1.0 KiB (99%), 2.0 KiB/s, ETA soon');
  });

  test('without one: bytes and rate', () => {
    expect(describeProgress(3 * 1024, 1.5)).toBe('3.0 KiB, 2.0 KiB/s');
  });

  test('ETAs read at a glance', () => {
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(65)).toBe('1m05s');
  });

  test('off a terminal, a long transfer says where it is every so often, then its final line', async () => {
    const stream = new PassThrough() as unknown as NodeJS.WriteStream;
    let text = '';
    (stream as unknown as PassThrough).on('data', (chunk) => { text += String(chunk); });
    const transfers = new Transfers(new Output('release-run', stream, stream), 50);
    const progress = transfers.start('backup web volume data', { total: 1000 });
    progress.add(100);
    await new Promise((resolve) => setTimeout(resolve, 80));
    progress.add(300);
    progress.finish();
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^\[release-run\] backup web volume data: 400 B of ~1000 B \(40%\), .*\/s, ETA \d+s$/);
    expect(lines[1]).toMatch(/^\[release-run\] backup web volume data: done, 400 B in /);
    expect(lines).toHaveLength(2);
  });
});
