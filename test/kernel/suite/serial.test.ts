/**
 * The serial backend (@serialport/bindings-cpp) on a real UART driver: /dev/ttyS1 is QEMU's 16550
 * under the kernel's 8250 driver; its other end, on the host, is the Modbus RTU meter of the pty tests
 * (test/linux/modbus-rtu-peer.ts, started by the lane on QEMU's pty).
 */
import { expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { SerialPeerDriver } from '../../../hal/drivers/serial-peer.js';
import { LinuxSerialController } from '../../../hal/linux/serial.js';
import { rejection } from '../../helpers/rejection.js';
import { askHost, describeInLane } from '../in-guest.js';

describeInLane('serial through the 8250 driver to the host meter', () => {
  it('reads the meter over ttyS1, fails while it is silent, and reads it again', async () => {
    const controller = new LinuxSerialController({ clock: systemClock });
    try {
      const port = await controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even' });
      const meter = new SerialPeerDriver(port, systemClock, { protocol: 'modbus-rtu', unitId: 1 });
      expect(await meter.identify({ timeoutMs: 2000 })).toMatchObject({ part: 'Modbus RTU unit 1', details: { register0: 0x1234 } });
      await askHost('meter silent');
      const silent = await rejection(meter.read({ timeoutMs: 500 }));
      expect(silent.code).toBe('ERR_HAL_TIMEOUT');
      await askHost('meter answer');
      expect(await meter.read({ timeoutMs: 2000 })).toMatchObject({ responding: true, exceptionCode: 0 });
    } finally {
      await controller.close();
    }
  });
});
