/**
 * `handcheck check --board ID`: the start-up self-check of a real board (hal/linux/self-check.ts) on
 * its own, as a table; `handcheck run` prints the same table before it starts the firmware on a
 * Linux board.
 */
import { parseArgs } from 'node:util';
import type { BoardConfig } from '../hal/board-config.js';
import { loadBoards, selectBoard } from '../hal/boards.js';
import { HandcheckError } from '../hal/errors.js';
import type { SelfCheckReport } from '../hal/linux/self-check.js';

export class SelfCheckSimBoardError extends HandcheckError {
  constructor(board: string) {
    super('ERR_SELF_CHECK_SIM', `board ${board} is simulated (backend "sim"); the self-check reads Linux sysfs and devices, so it runs only on a "linux" entry`);
  }
}

/** Runs the self-check of a `linux` entry and writes the table to `write`. */
export async function printSelfCheck(config: Readonly<BoardConfig>, write: (text: string) => void): Promise<SelfCheckReport> {
  if (config.backend !== 'linux') throw new SelfCheckSimBoardError(config.id);
  const [{ LinuxBoard }, { selfCheck, formatSelfCheck }] = await Promise.all([import('../hal/linux/board.js'), import('../hal/linux/self-check.js')]);
  const board = new LinuxBoard(config);
  try {
    const report = await selfCheck({ board });
    write(formatSelfCheck(report));
    return report;
  } finally {
    await board.close();
  }
}

/** Exit status 0 when nothing failed (warnings allowed), 1 otherwise. */
export async function checkCommand(argv: string[], defaults: { boardsFile: string; board: string }): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      board: { type: 'string', default: defaults.board },
      boards: { type: 'string', default: defaults.boardsFile },
    },
  });
  const config = selectBoard(await loadBoards(values.boards), values.board);
  const report = await printSelfCheck(config, (text) => process.stdout.write(text));
  return report.failed > 0 ? 1 : 0;
}
