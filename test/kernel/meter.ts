/**
 * The host end of the guest's /dev/ttyS1: the sim's Modbus RTU meter (sim/peers/modbus-rtu.ts, unit 1,
 * holding register 0 = 0x1234) on QEMU's serial chardev, a unix socket the lane listens on. It lives
 * in the lane's own process for the whole run, so it answers however late the guest's suite reaches it:
 * the first attempt's meter, test/linux/modbus-rtu-peer.ts behind socat's pty, leaves its loop after
 * 60 s without a request (its read deadline), and on a loaded machine the guest's suite reached ttyS1
 * 90 s after boot - socat passed every byte on to a pty nobody read any more, which looked like a
 * UART losing data. The 8250 side was never at fault (its tx counter counted every request).
 *
 * Framing. The meter ends a frame after 3.5 silent characters, as the Modbus RTU specification says. A
 * real 16550 sends a FIFO's bytes back to back at the line rate; QEMU's does not pace them at all:
 * hw/char/serial.c (serial_ioport_write, UART_TX -> serial_xmit) hands each byte to the chardev at the
 * guest's write to THR, and the 8250 driver writes THR once per byte (8250_port.c,
 * serial8250_tx_chars), each write an exit of the TCG vCPU. So the gaps the host sees inside one
 * request are the vCPU's scheduling, not the wire's: 6 ms between two bytes of one request was
 * measured on a loaded machine, three times the 2 ms t3.5 of 19200 baud, and a meter keeping the
 * wire's t3.5 cut the request in two runts and answered neither. The link here declares a character
 * time of `vcpuJitterCharMs`, so a frame ends after 3.5 times that of silence instead.
 */
import type { Socket } from 'node:net';
import { systemClock } from '../../hal/clock.js';
import { ModbusRtuPeer } from '../../sim/peers/modbus-rtu.js';
import type { SerialPeerLink } from '../../sim/serial.js';

/** The character time the meter assumes: a gap 3.5 times this long (70 ms) ends a frame. */
export const vcpuJitterCharMs = 20;

export class LaneMeter {
  readonly peer = new ModbusRtuPeer({ unitId: 1, holdingRegisters: [0x1234] });
  /** While silent, the meter hears requests and loses its answers (the sim's `silent` fault). */
  silent = false;

  constructor(socket: Socket) {
    const link: SerialPeerLink = {
      clock: systemClock,
      baudRate: 19200,
      charMs: vcpuJitterCharMs,
      send: (data) => {
        if (!this.silent) socket.write(data);
      },
    };
    this.peer.connect(link);
    socket.on('data', (data: Buffer) => this.peer.receive(data));
    socket.once('close', () => this.peer.disconnect());
  }
}
