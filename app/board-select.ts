/**
 * The one place where the firmware chooses between real and simulated hardware: from the board
 * entry's `backend`, or the sim board for any entry when asked (`--sim`), so a Pi's board file can be
 * exercised on a laptop. Everything after this sees only the BoardHal interface.
 */
import type { BoardConfig } from '../config/board-config.js';
import type { BoardHal } from '../hal/board.js';
import { SimBoard } from '../sim/board.js';

export interface OpenedBoard {
  hal: BoardHal;
  /** Set when the board is simulated: the fault API and the virtual clock live here. */
  sim: SimBoard | undefined;
}

export interface OpenBoardOptions {
  /** Simulate the board even if its entry says `linux`. */
  forceSim?: boolean;
  /** Virtual seconds per real second on the sim board; default 1. */
  simSpeed?: number;
  /**
   * `realtime` (default): the sim board's clock follows the wall clock, as a running appliance's.
   * `manual`: it stands still until driven (`clock.runUntil`), for one-shot commands.
   */
  simClock?: 'realtime' | 'manual';
}

export async function openBoard(config: Readonly<BoardConfig>, options: OpenBoardOptions = {}): Promise<OpenedBoard> {
  if (config.backend === 'sim' || options.forceSim) {
    const sim = new SimBoard(config);
    if (options.simClock !== 'manual') sim.clock.startRealtime(options.simSpeed ?? 1);
    return { hal: sim, sim };
  }
  const { LinuxBoard } = await import('../hal/linux/board.js');
  return { hal: new LinuxBoard(config), sim: undefined };
}
