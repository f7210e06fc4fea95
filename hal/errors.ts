/**
 * The HAL's errors: one class per kind of device failure, each with a stable `ERR_HAL_*` code, and the
 * mapping from Linux errno names to them.
 */
import { HandcheckError, type HandcheckErrorOptions } from '../config/errors.js';

export interface HalErrorOptions extends HandcheckErrorOptions {
  /** The device or line the operation addressed, e.g. `i2c-1@0x48` or `gpio:pinctrl-bcm2711/GPIO17`. */
  target?: string;
  /** Linux errno name (`EREMOTEIO`, ...) when the error came from the kernel. */
  errno?: string;
  /**
   * True when the operation was abandoned because its device was closed or its signal aborted on
   * purpose (teardown), as opposed to the device failing. Diagnosis never counts a canceled operation
   * as a fault.
   */
  canceled?: boolean;
}

/** A HAL operation failed. Subclasses name the kind of failure; `code` is stable. */
export class HalError extends HandcheckError {
  readonly target: string | undefined;
  readonly errno: string | undefined;
  readonly canceled: boolean;

  constructor(code: string, message: string, options: HalErrorOptions = {}) {
    super(code, message, options);
    this.target = options.target;
    this.errno = options.errno;
    this.canceled = options.canceled ?? false;
  }
}

/** The addressed I2C device did not acknowledge (EREMOTEIO / ENXIO on Linux). */
export class HalNackError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_NACK', message, options);
  }
}

/** The operation did not complete within its timeout (ETIMEDOUT, or our own deadline). */
export class HalTimeoutError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_TIMEOUT', message, options);
  }
}

/**
 * The adapter found the bus busy or lost it (Documentation/i2c/fault-codes.rst: EBUSY "busy for
 * longer than allowed", EAGAIN lost arbitration to another master or to a chip holding SDA low).
 */
export class HalBusBusyError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_BUS_BUSY', message, options);
  }
}

/**
 * A kernel driver is bound to the I2C address, so i2c-dev refuses it (I2C_SLAVE answers EBUSY,
 * i2cdev_ioctl / i2cdev_check_addr in drivers/i2c/i2c-dev.c), or was bound after the firmware
 * selected it (seen in sysfs, hal/linux/i2c.ts). The bus is fine: the address is owned, not stuck,
 * and nothing we could do to the bus would free it.
 */
export class HalAddressInUseError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_ADDRESS_IN_USE', message, options);
  }
}

/**
 * The bus is still occupied by an earlier transfer whose caller gave up: the kernel has not ended
 * it yet (it does at the adapter's own timeout), so this transfer failed at once instead of queueing
 * behind it.
 */
export class HalBusHeldError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_BUS_HELD', message, options);
  }
}

/**
 * A GPIO line is already requested by another consumer (a process, a kernel driver, an overlay's
 * pin): the kernel grants a line to one requester at a time and answers EBUSY
 * (gpiod_request_commit in drivers/gpio/gpiolib.c, FLAG_REQUESTED).
 */
export class HalLineBusyError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_LINE_BUSY', message, options);
  }
}

/**
 * The serial port's driver has no RS-485 mode, so the kernel cannot switch the transceiver's driver
 * enable: TIOCSRS485 answers ENOTTY when the port's `rs485_supported` lacks SER_RS485_ENABLED
 * (uart_set_rs485_config in drivers/tty/serial/serial_core.c), or the driver did not keep
 * SER_RS485_ENABLED in what it applied.
 */
export class HalRs485UnsupportedError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_RS485_UNSUPPORTED', message, options);
  }
}

/**
 * The part answers but has no valid measurement yet: it was left in shutdown by an earlier program
 * and has just been woken, so its result register still holds the value frozen at shutdown until its
 * first conversion ends.
 */
export class HalNotReadyError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_NOT_READY', message, options);
  }
}

/**
 * A serial port's settings contradict its RS-485 direction control: hardware flow control (CRTSCTS)
 * on a half-duplex line, where RTS is the transceiver's driver enable and nothing drives CTS.
 */
export class HalRs485ConflictError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_RS485_CONFLICT', message, options);
  }
}

/**
 * On a half-duplex line whose transceiver echoes what we send, the echo was not our request: another
 * driver was on the bus while we sent (a second master, a slave answering late) or the wiring is wrong
 * (A/B swapped, no termination or bias).
 */
export class HalBusCollisionError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_BUS_COLLISION', message, options);
  }
}

/**
 * A half-duplex line whose transceiver should echo what we send stayed silent while we sent: the bus
 * was never driven (DE not switched, or wired to another pin), or the transceiver's receiver is off
 * while it drives (/RE tied to DE), so no echo is to be expected.
 */
export class HalNoEchoError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_NO_ECHO', message, options);
  }
}

/** The device, bus, line or file does not exist (ENOENT, ENODEV). */
export class HalNotFoundError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_NOT_FOUND', message, options);
  }
}

/** The process lacks the permission to open the device (EACCES, EPERM). */
export class HalPermissionError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_PERMISSION', message, options);
  }
}

/** The handle was closed, before or during the operation. `canceled` is true when the close was deliberate. */
export class HalClosedError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_CLOSED', message, options);
  }
}

/** A generic I/O failure of the device (EIO, EPROTO, a bad checksum, a garbled answer). */
export class HalIoError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_IO', message, options);
  }
}

/** The caller passed an argument the device kind cannot accept (EINVAL, an out-of-range address). */
export class HalInvalidArgumentError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_INVALID_ARG', message, options);
  }
}

/** The backend cannot do this (EOPNOTSUPP, a watchdog without GETTIMELEFT, sysfs GPIO absent). */
export class HalUnsupportedError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_UNSUPPORTED', message, options);
  }
}

/** A chip answered, but not as the expected part: wrong identity register, an SFP not the one the entry expects. */
export class HalIdentityError extends HalError {
  constructor(message: string, options: HalErrorOptions = {}) {
    super('ERR_HAL_IDENTITY', message, options);
  }
}

type HalErrorClass = new (message: string, options?: HalErrorOptions) => HalError;

const errnoClasses: Record<string, HalErrorClass> = {
  EREMOTEIO: HalNackError,
  ENXIO: HalNackError,
  ETIMEDOUT: HalTimeoutError,
  EBUSY: HalBusBusyError,
  EAGAIN: HalBusBusyError,
  ENOENT: HalNotFoundError,
  ENODEV: HalNotFoundError,
  EACCES: HalPermissionError,
  EPERM: HalPermissionError,
  EBADF: HalClosedError,
  EIO: HalIoError,
  EPROTO: HalIoError,
  EINVAL: HalInvalidArgumentError,
  EOPNOTSUPP: HalUnsupportedError,
  ENOTTY: HalUnsupportedError,
};

/** The errno name a Node.js system error carries in `code` (as `fs` and native addons set it). */
export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * Maps a Node.js system error (with `code` set to the errno name, as `fs` and native addons give it)
 * to the matching HalError. Errors that already are HalErrors pass through unchanged.
 */
export function halErrorFromErrno(err: unknown, operation: string, target: string): HalError {
  if (err instanceof HalError) return err;
  const errno = errnoOf(err);
  const Class = (errno && errnoClasses[errno]) || HalIoError;
  const detail = err instanceof Error ? err.message : String(err);
  return new Class(`${operation} on ${target} failed: ${detail}`, { target, cause: err, ...(errno ? { errno } : {}) });
}
