/**
 * I2C buses. Addresses are 7-bit (0x03-0x77). Every transfer takes a timeout and an optional abort
 * signal, and settles asynchronously.
 *
 * Rules:
 * - Transfers on one bus never overlap: an implementation queues them in call order, and the
 *   timeout of a queued transfer counts from the call, so a stuck bus fails everything behind it
 *   on time instead of hanging (hal/i2c-queue.ts).
 * - A timeout frees the caller, not the bus: the transfer stays on the bus until the adapter driver
 *   gives up, and meanwhile new transfers reject at once with ERR_HAL_BUS_HELD.
 * - Word transfers state their byte order. SMBus words are little-endian (`le`); many sensors
 *   (TMP102, INA219, SFP DDM values) send the most significant byte first (`be`).
 * - Errors are the adapter driver's: a device that does not acknowledge rejects with ERR_HAL_NACK;
 *   a transfer that does not finish, ERR_HAL_TIMEOUT (or ERR_HAL_IO for the bcm2835's clock-stretch
 *   timeout); a bus the adapter finds busy or loses, ERR_HAL_BUS_BUSY; an address a kernel driver
 *   owns, ERR_HAL_ADDRESS_IN_USE.
 * - After `close`, transfers reject with ERR_HAL_CLOSED (`canceled: true`), queued ones included.
 */

export type ByteOrder = 'be' | 'le';

export interface I2cTransferOptions {
  /** Default: the bus's `defaultTimeoutMs`. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface I2cBus {
  /** The bus name from the board entry (`i2c-1`). */
  readonly id: string;
  readonly defaultTimeoutMs: number;
  /** SMBus read byte data: command byte, then one data byte. */
  readByte(addr: number, cmd: number, opts?: I2cTransferOptions): Promise<number>;
  writeByte(addr: number, cmd: number, value: number, opts?: I2cTransferOptions): Promise<void>;
  /** Read word data, assembled in `order`; an unsigned 16-bit value. */
  readWord(addr: number, cmd: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<number>;
  writeWord(addr: number, cmd: number, value: number, order: ByteOrder, opts?: I2cTransferOptions): Promise<void>;
  /** I2C block read: command byte, then `length` bytes (1-32) from consecutive registers. */
  readBlock(addr: number, cmd: number, length: number, opts?: I2cTransferOptions): Promise<Buffer>;
  writeBlock(addr: number, cmd: number, data: Buffer, opts?: I2cTransferOptions): Promise<void>;
  /** Raw read of `length` bytes with no command byte. */
  read(addr: number, length: number, opts?: I2cTransferOptions): Promise<Buffer>;
  /** Raw write of `data` with no command byte. */
  write(addr: number, data: Buffer, opts?: I2cTransferOptions): Promise<void>;
  close(): Promise<void>;
}

export function i2cTarget(busId: string, addr: number): string {
  return `${busId}@0x${addr.toString(16).padStart(2, '0')}`;
}
