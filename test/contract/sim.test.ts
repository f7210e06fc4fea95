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
    halContract(async () => new SimBoard(config, { clock: new VirtualClock(0) }), config);
  });
}
