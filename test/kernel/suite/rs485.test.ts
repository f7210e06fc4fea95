/**
 * RS-485 direction control on a real kernel. /dev/ttyS1 is QEMU's 16550 under the 8250 driver, wired
 * to the host's meter with no transceiver in between.
 * - The kernel's RS-485 mode: this port's driver has none. A PC's 16550 is registered through
 *   serial8250_register_8250_port (8250_core.c) from a template without rs485_config or
 *   rs485_supported (8250_pnp.c; only drivers such as 8250_bcm2835aux, 8250_dw and 8250_of set
 *   serial8250_em485_config), so uart_set_rs485_config (serial_core.c) answers TIOCSRS485 with ENOTTY,
 *   while uart_get_rs485_config answers TIOCGRS485 for any uart port with the all-zero struct. The
 *   firmware refuses the port with ERR_HAL_RS485_UNSUPPORTED and runs it without RS-485 mode.
 * - A DE line on gpio-sim (gpiolib-cdev.c): driven high around each frame and low once tcdrain
 *   returned (tty_ioctl.c tty_wait_until_sent, uart_wait_until_sent polling the 8250's TEMT), read
 *   back from sim_gpioN/value; a DE line another consumer holds is EBUSY (gpiolib.c
 *   gpiod_request_commit), ERR_HAL_LINE_BUSY naming that consumer.
 */
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { SerialPeerDriver } from '../../../hal/drivers/serial-peer.js';
import type { GpioController, GpioLineSpec } from '../../../hal/gpio.js';
import { CdevGpioController } from '../../../hal/linux/gpio-cdev.js';
import { requireIoctlAddon } from '../../../hal/linux/ioctl.js';
import { LinuxSerialController } from '../../../hal/linux/serial.js';
import { SER_RS485_ENABLED, SER_RS485_RTS_ON_SEND } from '../../../hal/rs485.js';
import { rejection } from '../../helpers/rejection.js';
import { describeInLane } from '../in-guest.js';

const label = 'handcheck-rs485';
const configfs = '/sys/kernel/config/gpio-sim/rs485';
const deLine: GpioLineSpec = { chip: label, line: 'rs485-de', direction: 'out' };
let valueFile: string;

beforeAll(async () => {
  await mkdir(join(configfs, 'bank0', 'line0'), { recursive: true });
  await writeFile(join(configfs, 'bank0', 'label'), label);
  await writeFile(join(configfs, 'bank0', 'num_lines'), '1');
  await writeFile(join(configfs, 'bank0', 'line0', 'name'), 'rs485-de');
  await writeFile(join(configfs, 'live'), '1');
  const device = (await readFile(join(configfs, 'dev_name'), 'utf8')).trim();
  const chip = (await readFile(join(configfs, 'bank0', 'chip_name'), 'utf8')).trim();
  valueFile = join('/sys/devices/platform', device, chip, 'sim_gpio0', 'value');
});

afterAll(async () => {
  await writeFile(join(configfs, 'live'), '0');
  await rmdir(join(configfs, 'bank0', 'line0'));
  await rmdir(join(configfs, 'bank0'));
  await rmdir(configfs);
});

describeInLane('RS-485 direction control on the 8250 driver and gpio-sim', () => {
  it("answers TIOCSRS485 with ENOTTY on a 16550 and TIOCGRS485 with zeros; the firmware refuses kernel mode and the port works without it", async () => {
    const { serialGetRs485, serialSetRs485 } = requireIoctlAddon('the RS-485 ioctls');
    if (!serialGetRs485 || !serialSetRs485) throw new Error('the ioctl addon lacks the RS-485 ioctls: npm run build:native');
    const fd = openSync('/dev/ttyS1', constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    try {
      expect(serialGetRs485(fd)).toEqual({ flags: 0, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 });
      expect(() => serialSetRs485(fd, SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND, 0, 0)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'TIOCSRS485' }));
    } finally {
      closeSync(fd);
    }
    const controller = new LinuxSerialController({ clock: systemClock });
    try {
      const refused = await rejection(controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even', rs485: { direction: 'kernel' } }));
      expect([refused.code, refused.errno]).toEqual(['ERR_HAL_RS485_UNSUPPORTED', 'ENOTTY']);
      const port = await controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even' });
      expect(await new SerialPeerDriver(port, systemClock, { protocol: 'modbus-rtu' }).read({ timeoutMs: 5000 })).toMatchObject({ responding: true });
    } finally {
      await controller.close();
    }
  });

  it('drives a gpio-sim DE line high for each frame and low after the transmitter drained; a DE line held elsewhere is ERR_HAL_LINE_BUSY', async () => {
    const gpio = new CdevGpioController({ clock: systemClock });
    const other = new CdevGpioController({ clock: systemClock });
    // Each write of the DE line, with the pin's level gpio-sim reports right after it.
    const writes: string[] = [];
    const recording: GpioController = {
      async open(spec) {
        const line = await gpio.open(spec);
        return {
          spec: line.spec,
          target: line.target,
          read: () => line.read(),
          watch: (watcher) => line.watch(watcher),
          close: () => line.close(),
          async write(value) {
            await line.write(value);
            writes.push(`${value}:${readFileSync(valueFile, 'utf8').trim()}`);
          },
        };
      },
      close: () => gpio.close(),
    };
    const controller = new LinuxSerialController({ clock: systemClock, gpio: recording });
    try {
      const port = await controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even', rs485: { direction: 'gpio', deLine } });
      expect((await readFile(valueFile, 'utf8')).trim()).toBe('0');
      const meter = new SerialPeerDriver(port, systemClock, { protocol: 'modbus-rtu' });
      for (let n = 0; n < 3; n++) expect(await meter.read({ timeoutMs: 5000 })).toMatchObject({ responding: true, exceptionCode: 0 });
      // Up for each request, down once tcdrain returned, and the pin followed every time.
      expect(writes).toEqual(['1:1', '0:0', '1:1', '0:0', '1:1', '0:0']);
      await port.close();
      expect((await readFile(valueFile, 'utf8')).trim()).toBe('0');

      const holder = await other.open({ ...deLine, initial: 0 });
      const busy = await rejection(controller.open({ path: '/dev/ttyS1', baudRate: 19200, parity: 'even', rs485: { direction: 'gpio', deLine } }));
      expect([busy.code, busy.errno]).toEqual(['ERR_HAL_LINE_BUSY', 'EBUSY']);
      expect(busy.message).toContain('consumer "handcheck"');
      await holder.close();
    } finally {
      await controller.close();
      await other.close();
      await gpio.close();
    }
  });
});
