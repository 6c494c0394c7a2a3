/**
 * How the bench measures a row: ours and the raw tool side by side, in rounds (each round runs
 * ours, then the raw tool, so a load that comes and goes hits both), until the ratio of every row
 * of the group is steady (its spread, (max - min) / median of the last 3 rounds' ratios, within
 * 10%) or 5 rounds were run. The row keeps the medians of those last 3 rounds, the rounds, the
 * spread and the load average at its start and end: a row that never got steady says so.
 */
import { loadavg } from 'node:os';

export interface Row {
  what: string;
  ours: number;
  rawName: string;
  raw: number;
  /** Rounds measured (each ours and raw once). */
  runs?: number;
  /** (max - min) / median of the last 3 rounds' ours/raw ratios. */
  spread?: number;
  /** The 1-minute load average when the row started and when it ended. */
  load?: [number, number];
}

export const STEADY_SPREAD = 0.10;
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 5;

export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
const spreadOf = (values: readonly number[]) => (Math.max(...values) - Math.min(...values)) / medianOf(values);
/** The last `MIN_ROUNDS` rounds: a row is steady once they agree, whatever an earlier round saw. */
const lastRounds = (values: readonly number[]) => values.slice(-MIN_ROUNDS);

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Rows measured together: `round` returns one `{ ours, raw }` (ms) per row, in the order of
 * `rows`. Rounds run until every row is steady or `maxRounds` ran.
 */
export async function measureRows(rows: readonly { what: string; rawName: string }[], round: (index: number) => Promise<{ ours: number; raw: number }[]>,
  { minRounds = MIN_ROUNDS, maxRounds = MAX_ROUNDS } = {}): Promise<Row[]> {
  const started = loadavg()[0]!;
  const samples = rows.map(() => ({ ours: [] as number[], raw: [] as number[], ratios: [] as number[] }));
  let rounds = 0;
  while (rounds < maxRounds) {
    const results = await round(rounds);
    rounds++;
    results.forEach((result, i) => {
      samples[i]!.ours.push(result.ours);
      samples[i]!.raw.push(result.raw);
      samples[i]!.ratios.push(result.ours / result.raw);
    });
    if (rounds >= minRounds && samples.every((sample) => spreadOf(lastRounds(sample.ratios)) <= STEADY_SPREAD)) break;
  }
  const ended = loadavg()[0]!;
  return rows.map((row, i) => ({
    ...row, ours: medianOf(lastRounds(samples[i]!.ours)), raw: medianOf(lastRounds(samples[i]!.raw)), runs: rounds, spread: spreadOf(lastRounds(samples[i]!.ratios)), load: [started, ended],
  }));
}

/** One row measured in rounds (see measureRows). */
export async function measureRow(what: string, rawName: string, round: () => Promise<{ ours: number; raw: number }>, options?: { minRounds?: number; maxRounds?: number }): Promise<Row> {
  const [row] = await measureRows([{ what, rawName }], async () => [await round()], options);
  return row!;
}

/** The median of `count` runs of `once` (after one to warm the page cache), for a round of a fast command. */
export async function medianRun(count: number, once: () => Promise<unknown>): Promise<number> {
  await once();
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await timed(once));
  return medianOf(times);
}
