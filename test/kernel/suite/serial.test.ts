/**
 * The serial backend (@serialport/bindings-cpp) on a real UART driver: /dev/ttyS1 is QEMU's 16550 at
 * 0x2f8, IRQ 3, under the kernel's 8250 driver (drivers/tty/serial/8250/8250_port.c: the binding's
 * termios reach serial8250_do_set_termios, its bytes go out through serial8250_tx_chars on the THRE
 * interrupt and come in through serial8250_rx_chars). Its other end, on the host, is the sim's Modbus
 * RTU meter on QEMU's chardev (test/kernel/meter.ts), which the host mutes on request.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { SerialPeerDriver } from '../../../hal/drivers/serial-peer.js';
import { LinuxSerialController } from '../../../hal/linux/serial.js';
import { rejection } from '../../helpers/rejection.js';
import { askHost, describeInLane } from '../in-guest.js';

/** ttyS1's line in /proc/tty/driver/serial (8250_core.c via serial_core.c uart_line_info). */
function ttyS1(): { uart: string; irq: number; tx: number; rx: number } {
  const line = readFileSync('/proc/tty/driver/serial', 'utf8').split('\n').find((l) => l.startsWith('1: '));
  const field = (name: string): string => new RegExp(`${name}:(\\S+)`).exec(line ?? '')?.[1] ?? '';
  return { uart: field('uart'), irq: Number(field('irq')), tx: Number(field('tx')), rx: Number(field('rx')) };
}

describeInLane('serial through the 8250 driver to the host meter', () => {
  it('reads the meter over ttyS1, fails while it is silent, and reads it again', async () => {
    const before = ttyS1();
    expect(before).toMatchObject({ uart: '16550A', irq: 3 });
    const controller = new LinuxSerialController({ clock: systemClock });
    try {
      const port = await controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even' });
      const meter = new SerialPeerDriver(port, systemClock, { protocol: 'modbus-rtu', unitId: 1 });
      expect(await meter.identify({ timeoutMs: 5000 })).toMatchObject({ part: 'Modbus RTU unit 1', details: { register0: 0x1234 } });
      for (let n = 0; n < 5; n++) expect(await meter.read({ timeoutMs: 5000 })).toMatchObject({ responding: true, exceptionCode: 0 });
      await askHost('meter silent');
      const silent = await rejection(meter.read({ timeoutMs: 1000 }));
      expect(silent.code).toBe('ERR_HAL_TIMEOUT');
      await askHost('meter answer');
      expect(await meter.read({ timeoutMs: 5000 })).toMatchObject({ responding: true, exceptionCode: 0 });
    } finally {
      await controller.close();
    }
    // Every request (8 bytes) and answer (7 bytes) crossed the 8250 driver's port: the silent round's
    // request went out, its answer never came.
    const after = ttyS1();
    expect(after.tx - before.tx).toBe(8 * 8);
    expect(after.rx - before.rx).toBe(7 * 7);
  });
});
