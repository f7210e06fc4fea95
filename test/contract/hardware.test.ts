import { readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { LinuxBoard } from '../../hal/linux/board.js';
import { halContract } from './suites.js';

/**
 * The same contract against real hardware: on a Pi, `HANDCHECK_HW_BOARD=rpi4 npx vitest run
 * test/contract` runs every interface against the board's real devices. This machine has none, so
 * the suite is skipped here, and says so.
 */
const boardId = process.env.HANDCHECK_HW_BOARD;

if (boardId) {
  const boards = parseBoards(readFileSync(process.env.HANDCHECK_BOARDS ?? new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');
  const config = selectBoard(boards, boardId);
  describe(`HAL contract on real hardware: ${boardId}`, () => {
    halContract(async () => new LinuxBoard(config), config);
  });
} else {
  describe('HAL contract on real hardware', () => {
    it.skip('skipped: set HANDCHECK_HW_BOARD to a board entry id (rpi4, rpi5, rpi-zero-2w) on that board to run it', () => undefined);
  });
}
