/**
 * Direction control of a half-duplex RS-485 line. The transceiver (MAX485, SN65HVD72 and the like)
 * drives the bus only while its DE input is high and hears the bus while /RE is low (the function
 * tables of both datasheets); the host must raise DE before a frame's first start bit and drop it after
 * the last stop bit, or the slave never hears the request (DE low) or cannot answer (DE still high).
 *
 * Two ways, chosen per serial port in the board entry:
 * - `kernel`: the UART driver's RS-485 mode switches RTS, wired to DE, around each frame
 *   (TIOCSRS485, struct serial_rs485). The kernel sanitises the request (uart_sanitize_serial_rs485 in
 *   drivers/tty/serial/serial_core.c) and a driver without the mode answers ENOTTY
 *   (uart_set_rs485_config), so what it applied is read back (TIOCGRS485) and checked.
 * - `gpio`: the firmware drives a GPIO line wired to DE: high before writing, low once the transmitter
 *   drained (tcdrain: the last stop bit has left the shift register). A userspace toggle is late by
 *   the process's scheduling latency on both edges; the kernel's is not.
 *
 * A transceiver whose receiver stays enabled while it drives (/RE grounded rather than tied to DE)
 * echoes our own request back; with `echo` the port consumes exactly those bytes and compares them
 * with what it sent (a difference is a collision or a wiring fault). In `kernel` mode `echo` also asks
 * the UART to receive while sending (SER_RS485_RX_DURING_TX); a driver that drops that flag does not
 * receive during sending, so no echo reaches us and none is expected.
 */
import type { Clock } from './clock.js';
import { HalInvalidArgumentError, HalRs485UnsupportedError, errnoOf, halErrorFromErrno } from './errors.js';
import type { GpioController, GpioLine, GpioLineSpec } from './gpio.js';

export interface Rs485Spec {
  /** `kernel`: the UART driver switches RTS as DE; `gpio`: the firmware drives `deLine`. */
  direction: 'kernel' | 'gpio';
  /** `gpio` only: the output wired to the transceiver's DE (and /RE, when tied to it). */
  deLine?: GpioLineSpec;
  /** `kernel` only: the RTS level while sending. Default `high` (SER_RS485_RTS_ON_SEND). */
  rtsWhileSending?: 'high' | 'low';
  /** ms between DE rising and the first start bit. Default 0. */
  delayBeforeSendMs?: number;
  /** ms between the last stop bit and DE falling. Default 0. */
  delayAfterSendMs?: number;
  /** The transceiver echoes what we send: consume and check it. Default false. */
  echo?: boolean;
}

/** struct serial_rs485 (linux/serial.h), the fields handcheck sets. */
export interface SerialRs485 {
  flags: number;
  delayRtsBeforeSend: number;
  delayRtsAfterSend: number;
}

/** include/uapi/linux/serial.h */
export const SER_RS485_ENABLED = 1 << 0;
export const SER_RS485_RTS_ON_SEND = 1 << 1;
export const SER_RS485_RTS_AFTER_SEND = 1 << 2;
export const SER_RS485_RX_DURING_TX = 1 << 4;
/** Handcheck never sets it; it is in a driver's supported set (em485's) and among serial_core.c's legacy flags. */
export const SER_RS485_TERMINATE_BUS = 1 << 5;

/** TIOCSRS485 / TIOCGRS485 on one open port; both throw errors whose `code` is the errno name. */
export interface Rs485Ioctl {
  /** Returns what the driver applied. */
  set(request: SerialRs485): SerialRs485;
  get(): SerialRs485;
}

/** Switches the transceiver around each frame the port writes. */
export interface DirectionControl {
  /** Whether our own bytes come back before the answer. */
  readonly echo: boolean;
  /** What the kernel applied (`kernel` mode), for status and tests. */
  readonly applied?: SerialRs485;
  /** Around a write: `send` puts the bytes into the UART, `drain` waits until the last stop bit left. */
  frame(send: () => Promise<void>, drain: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** The struct a spec asks the kernel for. */
export function serialRs485Request(spec: Rs485Spec): SerialRs485 {
  return {
    flags:
      SER_RS485_ENABLED |
      ((spec.rtsWhileSending ?? 'high') === 'high' ? SER_RS485_RTS_ON_SEND : SER_RS485_RTS_AFTER_SEND) |
      (spec.echo ? SER_RS485_RX_DURING_TX : 0),
    delayRtsBeforeSend: spec.delayBeforeSendMs ?? 0,
    delayRtsAfterSend: spec.delayAfterSendMs ?? 0,
  };
}

const gpioInstead = 'set rs485.direction to "gpio" with a DE line in the board entry, or use a UART whose driver has an RS-485 mode (a Raspberry Pi\'s PL011 /dev/ttyAMA0 or its mini UART /dev/ttyS0)';

/**
 * Puts the port into the kernel's RS-485 mode and checks what the driver kept: RS-485 on, RTS at the
 * asked level while sending. Delays the driver cannot do are zeroed and ones past 100 ms clamped
 * (uart_sanitize_serial_rs485_delays); a dropped SER_RS485_RX_DURING_TX means the UART does not
 * receive while sending, so the echo is not expected.
 */
export function kernelDirection(ioctl: Rs485Ioctl, spec: Rs485Spec, target: string): DirectionControl {
  const request = serialRs485Request(spec);
  let applied: SerialRs485;
  try {
    ioctl.set(request);
    applied = ioctl.get();
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOTTY') {
      throw new HalRs485UnsupportedError(`${target}: the port's driver has no RS-485 mode (TIOCSRS485 answered ENOTTY), so the kernel cannot switch the transceiver's DE; ${gpioInstead}`, {
        target,
        errno,
        cause: err,
      });
    }
    throw halErrorFromErrno(err, 'TIOCSRS485', target);
  }
  if ((applied.flags & SER_RS485_ENABLED) === 0) {
    throw new HalRs485UnsupportedError(`${target}: the driver did not keep RS-485 mode on (TIOCGRS485 reads flags 0x${applied.flags.toString(16)}); ${gpioInstead}`, { target });
  }
  const wantHigh = (request.flags & SER_RS485_RTS_ON_SEND) !== 0;
  if (((applied.flags & SER_RS485_RTS_ON_SEND) !== 0) !== wantHigh) {
    throw new HalRs485UnsupportedError(
      `${target}: the driver drives RTS ${wantHigh ? 'low' : 'high'} while sending, not ${wantHigh ? 'high' : 'low'} as rs485.rtsWhileSending asks (TIOCGRS485 flags 0x${applied.flags.toString(16)}); set rtsWhileSending to what the transceiver's DE needs behind the driver's polarity, or use direction "gpio"`,
      { target },
    );
  }
  const echo = spec.echo === true && (applied.flags & SER_RS485_RX_DURING_TX) !== 0;
  return {
    echo,
    applied,
    frame: (send) => send(),
    close: async () => undefined,
  };
}

/**
 * Drives `deLine` around each frame: high, `delayBeforeSendMs`, the bytes, the transmitter drained,
 * `delayAfterSendMs`, low - low again on any failure, so a failed write never leaves the bus driven.
 * The line is opened low (listening) and released with the port.
 */
export async function gpioDirection(gpio: GpioController, clock: Clock, spec: Rs485Spec, target: string): Promise<DirectionControl> {
  const lineSpec = spec.deLine;
  if (!lineSpec) throw new HalInvalidArgumentError(`${target}: rs485 direction "gpio" needs a deLine`, { target });
  const line: GpioLine = await gpio.open({ ...lineSpec, direction: 'out', initial: 0 });
  const before = spec.delayBeforeSendMs ?? 0;
  const after = spec.delayAfterSendMs ?? 0;
  return {
    echo: spec.echo === true,
    async frame(send, drain) {
      await line.write(1);
      try {
        if (before > 0) await clock.sleep(before);
        await send();
        await drain();
        if (after > 0) await clock.sleep(after);
      } finally {
        await line.write(0);
      }
    },
    close: () => line.close(),
  };
}
