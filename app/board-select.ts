/**
 * The one place where the firmware chooses between real and simulated hardware: from the board
 * entry's `backend`, or the sim board for any entry when asked (`--sim`), so a Pi's board file can be
 * exercised on a laptop. Everything after this sees only the BoardHal interface.
 */
import type { BoardConfig } from '../config/board-config.js';
import { HandcheckError } from '../config/errors.js';
import type { BoardHal } from '../hal/board.js';
import { SimBoard } from '../sim/board.js';

/**
 * `--sim-speed` asked of a board that runs on real hardware. Refused rather than scaled: the serial
 * peers there - a meter on a UART or USB adapter, a process at the far end of a pty - keep real time,
 * and so do the I2C adapter's timeout and the watchdog. Scaling the firmware's times to fit them
 * would leave a board clock that runs fast for nothing (every part on it is real) and a Modbus RTU
 * master whose response timeout, 3.5-character frame gap and poll interval, counted on the faster
 * clock, cut off a peer that answers on time. On the sim board every serial peer is a model on the
 * board clock (sim/serial.ts, sim/peers), so it speeds up with the clock and nothing is refused.
 */
export class SimSpeedRealTimeError extends HandcheckError {
  constructor(config: Readonly<BoardConfig>, speed: number) {
    const peers = config.components
      .filter((c) => c.kind === 'serial-peer')
      .map((c) => `${c.id} on ${config.serial?.find((p) => p.id === c.port)?.path ?? c.port}`);
    const realTime = peers.length > 0 ? `its serial peer${peers.length > 1 ? 's' : ''} ${peers.join(', ')} keep${peers.length > 1 ? '' : 's'} real time, as does every other part` : 'every part of it keeps real time';
    super(
      'ERR_SIM_SPEED_REAL_TIME',
      `--sim-speed ${speed} runs the sim board's clock at ${speed} times real time, but board ${config.id} runs on real hardware (backend "linux"): ${realTime}, so timeouts, frame gaps and poll intervals counted on a faster clock would be wrong; drop --sim-speed, or add --sim to simulate the whole board`,
    );
  }
}

/** Throws SimSpeedRealTimeError when a speed other than real time is asked of a board that is not simulated. */
export function checkSimSpeed(config: Readonly<BoardConfig>, options: Pick<OpenBoardOptions, 'forceSim' | 'simSpeed'>): void {
  const simulated = config.backend === 'sim' || options.forceSim === true;
  if (!simulated && options.simSpeed !== undefined && options.simSpeed !== 1) throw new SimSpeedRealTimeError(config, options.simSpeed);
}

export interface OpenedBoard {
  hal: BoardHal;
  /** Set when the board is simulated: the fault API and the virtual clock live here. */
  sim: SimBoard | undefined;
}

export interface OpenBoardOptions {
  /** Simulate the board even if its entry says `linux`. */
  forceSim?: boolean;
  /** Virtual seconds per real second on the sim board; default 1. Anything else on a real board is refused (SimSpeedRealTimeError). */
  simSpeed?: number;
  /**
   * `realtime` (default): the sim board's clock follows the wall clock, as a running appliance's.
   * `manual`: it stands still until driven (`clock.runUntil`), for one-shot commands.
   */
  simClock?: 'realtime' | 'manual';
}

export async function openBoard(config: Readonly<BoardConfig>, options: OpenBoardOptions = {}): Promise<OpenedBoard> {
  checkSimSpeed(config, options);
  if (config.backend === 'sim' || options.forceSim) {
    const sim = new SimBoard(config);
    if (options.simClock !== 'manual') sim.clock.startRealtime(options.simSpeed ?? 1);
    return { hal: sim, sim };
  }
  const { LinuxBoard } = await import('../hal/linux/board.js');
  return { hal: new LinuxBoard(config), sim: undefined };
}
