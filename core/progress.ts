import cliProgress from 'cli-progress';
import type { Output } from './output.js';

const MiB = 1024 * 1024;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < MiB) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024 / MiB).toFixed(2)} GiB`;
}

export interface TransferProgress {
  /** Count bytes as they pass. */
  add(bytes: number): void;
  /** Ends the line and prints the total and the mean rate, on a terminal or not. */
  finish(outcome?: string): { bytes: number; seconds: number };
}

/**
 * Progress of byte streams (backups, restores), several at once. On a terminal each transfer has
 * a live line of bytes and rate (cli-progress's multi-bar); elsewhere only the final line prints.
 */
export class Transfers {
  private bars?: cliProgress.MultiBar;
  private active = 0;

  constructor(private readonly out: Output) {}

  start(label: string): TransferProgress {
    const started = Date.now();
    let bytes = 0;
    let bar: cliProgress.SingleBar | undefined;
    if (this.out.isTTY) {
      this.bars ??= new cliProgress.MultiBar({
        format: '  {label} {size} {rate}', hideCursor: false, clearOnComplete: true, stopOnComplete: false,
        stream: this.out.stream, fps: 5, noTTYOutput: false,
      });
      this.active++;
      bar = this.bars.create(1, 0, { label, size: formatBytes(0), rate: '' });
    }
    const rate = () => `${formatBytes(bytes / Math.max((Date.now() - started) / 1000, 0.001))}/s`;
    return {
      add: (count) => {
        bytes += count;
        bar?.update(0, { size: formatBytes(bytes), rate: rate() });
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
