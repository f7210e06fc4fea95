/**
 * `handcheck check --board ID`: the start-up self-check of a real board (app/self-check.ts) on
 * its own, as a table; `handcheck run` prints the same table before it starts the firmware on a
 * Linux board.
 */
import { type CommandSpec, parseCommand } from '../config/command-line.js';
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

export const checkSpec = (defaults: { boardsFile: string; board: string }) =>
  ({
    command: 'check',
    summary: 'the start-up self-check of a linux board entry as a table; exit 1 if any failed',
    description:
      'The start-up self-check of a linux board entry as a table (sysfs GPIO, groups, I2C identities,\nwatchdog timeout, serial ports, network interfaces); exit 1 if any failed.',
    options: {
      board: { type: 'string', default: defaults.board, value: 'ID', help: 'the board entry' },
      boards: { type: 'string', default: defaults.boardsFile, env: 'HANDCHECK_BOARDS', value: 'FILE', help: 'the boards file' },
    },
  }) as const satisfies CommandSpec;

/** Exit status 0 when nothing failed (warnings allowed), 1 otherwise. */
export async function checkCommand(argv: string[], defaults: { boardsFile: string; board: string }): Promise<number> {
  const parsed = parseCommand(checkSpec(defaults), argv);
  if (!parsed) return 0;
  const { values } = parsed;
  const config = selectBoard(await loadBoards(values.boards), values.board);
  const report = await printSelfCheck(config, (text) => process.stdout.write(text));
  return report.failed > 0 ? 1 : 0;
}
