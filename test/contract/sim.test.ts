import { readFileSync } from 'node:fs';
import { describe } from 'vitest';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import { halContract } from './suites.js';

const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');

// Every entry, Pi ones included, must satisfy the HAL contract on the sim board: the board file a user
// flashes is the board file they can run on a laptop.
for (const entry of boards.boards) {
  const config = selectBoard(boards, entry.id);
  describe(`HAL contract on the sim board: ${entry.id}`, () => {
    halContract(async () => {
      const board = new SimBoard(config, { clock: new VirtualClock(0) });
      // A real board's time passes by itself, and an I2C transfer takes its wire time on the board
      // clock: the sim board follows real time here so the contract runs as it does on hardware.
      board.clock.startRealtime(1);
      const close = board.close.bind(board);
      return Object.assign(board, {
        close: async () => {
          board.clock.stopRealtime();
          await close();
        },
      });
    }, config);
  });
}
