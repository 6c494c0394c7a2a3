/**
 * Rows of the printed fault matrix for faults from outside the orchestrator (a remote, a database,
 * the Docker engine, a command that hangs): the cause, what the operator sees, the recovery, and
 * how it ended. Each test file prints its rows at its end, in one table format.
 */
export interface FaultRow {
  fault: string;
  /** The exit code and the phase that failed, as the operator saw them. */
  seen: string;
  recovery: string;
  result: string;
}

export class FaultRows {
  private readonly rows: FaultRow[] = [];

  /** Records `row` as passed if `check` passes, as FAILED otherwise (and rethrows). */
  async record(row: Omit<FaultRow, 'result'> & { result: string }, check: () => Promise<void>): Promise<void> {
    try {
      await check();
      this.rows.push(row);
    } catch (error) {
      this.rows.push({ ...row, result: 'FAILED' });
      throw error;
    }
  }

  print(title: string): void {
    const lines = ['| fault | exit, phase | recovery | result |', '|---|---|---|---|',
      ...this.rows.map((row) => `| ${row.fault} | ${row.seen} | \`${row.recovery}\` | ${row.result} |`)];
    process.stdout.write(`\nFault matrix (${title}):\n${lines.join('\n')}\n\n`);
  }
}
