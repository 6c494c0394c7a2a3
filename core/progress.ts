import cliProgress from 'cli-progress';
import type { Output } from './output.js';

const MiB = 1024 * 1024;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < MiB) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024 / MiB).toFixed(2)} GiB`;
}

/** `1m05s`, `42s`: an ETA an operator reads at a glance. */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  return whole < 60 ? `${whole}s` : `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
}

export interface TransferOptions {
  /** The expected number of bytes (an estimate); with it the progress shows total, percent and ETA. */
  total?: number;
}

/** `1.2 GiB of ~3.0 GiB (40%), 52.1 MiB/s, ETA 36s`, or `1.2 GiB, 52.1 MiB/s` without a total. */
export function describeProgress(bytes: number, seconds: number, total?: number): string {
  const rate = bytes / Math.max(seconds, 0.001);
  const rateText = `${formatBytes(rate)}/s`;
  if (!total || total <= 0) return `${formatBytes(bytes)}, ${rateText}`;
  const percent = Math.min(99, Math.floor((bytes / total) * 100));
  const eta = rate > 0 && bytes < total ? `ETA ${formatDuration((total - bytes) / rate)}` : 'ETA soon';
  return `${formatBytes(bytes)} of ~${formatBytes(total)} (${percent}%), ${rateText}, ${eta}`;
}

export interface TransferProgress {
  /** Count bytes as they pass. */
  add(bytes: number): void;
  /** Ends the line and prints the total and the mean rate, on a terminal or not. */
  finish(outcome?: string): { bytes: number; seconds: number };
}

/**
 * Progress of byte streams (backups, restores), several at once. On a terminal each transfer has
 * a live line (cli-progress's multi-bar): bytes and rate, and with an expected total its percent
 * and ETA. Elsewhere (a pipe, a log collector) the same line is printed every `everyMs`, so a long
 * wait says what it waits for; the final line prints everywhere.
 */
export class Transfers {
  private bars?: cliProgress.MultiBar;
  private active = 0;

  constructor(private readonly out: Output, private readonly everyMs = 10_000) {}

  start(label: string, options: TransferOptions = {}): TransferProgress {
    const started = Date.now();
    let bytes = 0;
    let bar: cliProgress.SingleBar | undefined;
    let reportedAt = started;
    const seconds = () => (Date.now() - started) / 1000;
    if (this.out.isTTY) {
      this.bars ??= new cliProgress.MultiBar({
        format: '  {label} {progress}', hideCursor: false, clearOnComplete: true, stopOnComplete: false,
        stream: this.out.stream, fps: 5, noTTYOutput: false,
      });
      this.active++;
      bar = this.bars.create(1, 0, { label, progress: describeProgress(0, 0, options.total) });
    }
    const rate = () => `${formatBytes(bytes / Math.max(seconds(), 0.001))}/s`;
    return {
      add: (count) => {
        bytes += count;
        if (bar) {
          bar.update(0, { progress: describeProgress(bytes, seconds(), options.total) });
        } else if (Date.now() - reportedAt >= this.everyMs) {
          reportedAt = Date.now();
          this.out.info(`${label}: ${describeProgress(bytes, seconds(), options.total)}`);
        }
      },
      finish: (outcome = 'done') => {
        const seconds = (Date.now() - started) / 1000;
        if (bar) {
          this.bars!.remove(bar);
          if (--this.active === 0) { this.bars!.stop(); this.bars = undefined; }
        }
        this.out.info(`${label}: ${outcome}, ${formatBytes(bytes)} in ${seconds.toFixed(1)}s (${rate()})`);
        return { bytes, seconds };
      },
    };
  }
}
