/**
 * `handcheck check --board ID`: the start-up self-check of a real board (app/self-check.ts) on
 * its own, as a table; `handcheck run` prints the same table before it starts the firmware on a
 * Linux board.
 */
import { parseArgs } from 'node:util';
import type { BoardConfig } from '../config/board-config.js';
import { loadBoards, selectBoard } from '../config/boards.js';
import { HandcheckError } from '../config/errors.js';
import { openBoard } from './board-select.js';
import type { SelfCheckReport } from './self-check.js';

export class SelfCheckSimBoardError extends HandcheckError {
  constructor(board: string) {
    super('ERR_SELF_CHECK_SIM', `board ${board} is simulated (backend "sim"); the self-check reads Linux sysfs and devices, so it runs only on a "linux" entry`);
  }
}

/** Runs the self-check of a `linux` entry and writes the table to `write`. */
export async function printSelfCheck(config: Readonly<BoardConfig>, write: (text: string) => void): Promise<SelfCheckReport> {
  if (config.backend !== 'linux') throw new SelfCheckSimBoardError(config.id);
  const [opened, { selfCheck, formatSelfCheck }] = await Promise.all([openBoard(config), import('./self-check.js')]);
  try {
    const report = await selfCheck({ board: opened.hal });
    write(formatSelfCheck(report));
    return report;
  } finally {
    await opened.hal.close();
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
