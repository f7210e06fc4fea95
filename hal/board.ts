/**
 * Everything the firmware needs from one board, behind HAL interfaces. A real board and the sim board
 * both provide a BoardHal; the firmware picks one at start-up from the board entry and never looks
 * behind it.
 */
import type { BoardConfig } from '../config/board-config.js';
import type { BootIdentity } from './boot.js';
import type { Clock } from './clock.js';
import type { GpioController } from './gpio.js';
import type { HealthSource } from './health.js';
import type { I2cBus } from './i2c.js';
import type { NetController } from './net.js';
import type { SerialController } from './serial.js';
import type { Watchdog } from './watchdog.js';

export interface BoardHal {
  readonly config: Readonly<BoardConfig>;
  readonly clock: Clock;
  readonly gpio: GpioController;
  readonly serial: SerialController;
  readonly net: NetController;
  /** The board's own health: power, SoC temperature, storage, clock, memory. */
  readonly health: HealthSource;
  /** The bus with this id from the board entry; rejects with ERR_HAL_NOT_FOUND for unknown ids. */
  i2c(busId: string): Promise<I2cBus>;
  /** The board's watchdog; rejects with ERR_HAL_NOT_FOUND when the entry has none. */
  watchdog(): Promise<Watchdog>;
  /** Which boot of the board this is: its id changes at a reboot, never at a firmware restart. */
  boot(): Promise<BootIdentity>;
  /** Closes every handle it opened, in reverse order. Idempotent. */
  close(): Promise<void>;
}
