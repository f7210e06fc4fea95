import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../hal/clock.js';
import { type IoctlBinding, ioctlAddon } from '../../hal/linux/ioctl.js';
import { importPackage } from '../../hal/linux/optional.js';
import { LinuxSerialController } from '../../hal/linux/serial.js';
import { rejection } from '../helpers/rejection.js';
import { requireOrSkip } from '../helpers/requirements.js';
import { ptyPair } from './pty.js';

const lineComplete = (received: Buffer): boolean => received.includes(0x0a);

let socat: ChildProcess | undefined;
let controller: LinuxSerialController | undefined;

afterEach(async () => {
  await controller?.close();
  controller = undefined;
  socat?.kill();
  socat = undefined;
});

describe('LinuxSerialController over @serialport/bindings-cpp', () => {
  it('loads the real binding lazily and round-trips bytes across a socat pty pair', async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    let loads = 0;
    controller = new LinuxSerialController({
      clock: systemClock,
      load: () => {
        loads += 1;
        return importPackage('@serialport/bindings-cpp')();
      },
    });
    expect(loads).toBe(0);
    const appliance = await controller.open({ path: pair.a, baudRate: 115200 });
    const peer = await controller.open({ path: pair.b, baudRate: 115200 });
    expect(loads).toBe(1);
    expect(appliance.target).toBe(`serial:${pair.a}`);

    const answered = appliance.transact(Buffer.from('PING 42\n'), { timeoutMs: 2000, isComplete: lineComplete });
    const got = await peer.readUntil({ timeoutMs: 2000, isComplete: lineComplete });
    expect(got.toString()).toBe('PING 42\n');
    await peer.write(Buffer.from('PONG 42\n'));
    expect((await answered).toString()).toBe('PONG 42\n');

    // Raw mode: a Modbus RTU request (read holding register 0, CRC 0x0a84) passes byte for byte,
    // 0x03 and 0x0a included.
    const frame = Buffer.from('010300000001840a', 'hex');
    const received = appliance.readUntil({ timeoutMs: 2000, isComplete: (r) => r.length >= frame.length });
    await peer.write(frame);
    expect((await received).toString('hex')).toBe('010300000001840a');
  });

  it('times out on a silent peer and fails with ERR_HAL_CLOSED when the pty goes away', async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    controller = new LinuxSerialController({ clock: systemClock });
    const port = await controller.open({ path: pair.a, baudRate: 9600 });
    const silent = await rejection(port.transact(Buffer.from('?\n'), { timeoutMs: 100, isComplete: lineComplete }));
    expect(silent.code).toBe('ERR_HAL_TIMEOUT');

    // The deadline only has to outlast socat's exit and the binding's poll noticing it, which took
    // over 5 s on a loaded machine; the test's own timeout bounds a hang.
    const waiting = rejection(port.readUntil({ timeoutMs: 25_000, isComplete: lineComplete }));
    pair.proc.kill();
    const gone = await waiting;
    expect([gone.code, gone.canceled]).toEqual(['ERR_HAL_CLOSED', false]);
    expect(port.isOpen).toBe(false);
  });

  it('names missing ports and closes what it opened, newest first, once', async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    const closes: string[] = [];
    controller = new LinuxSerialController({ clock: systemClock, track: () => closes.push('tracked') });
    const missing = await rejection(controller.open({ path: '/dev/ttyHANDCHECK-none', baudRate: 9600 }));
    expect([missing.code, missing.target]).toEqual(['ERR_HAL_NOT_FOUND', 'serial:/dev/ttyHANDCHECK-none']);
    const a = await controller.open({ path: pair.a, baudRate: 9600 });
    const b = await controller.open({ path: pair.b, baudRate: 9600 });
    expect(closes).toEqual(['tracked', 'tracked']);
    await controller.close();
    await controller.close();
    expect([a.isOpen, b.isOpen]).toEqual([false, false]);
    expect((await rejection(a.write(Buffer.from('x')))).canceled).toBe(true);
    expect((await rejection(controller.open({ path: pair.a, baudRate: 9600 }))).code).toBe('ERR_HAL_CLOSED');
  });

  it('turns a missing binding package into ERR_HAL_UNSUPPORTED naming it', async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    controller = new LinuxSerialController({ clock: systemClock, load: importPackage('@serialport/bindings-cpp-missing') });
    const err = await rejection(controller.open({ path: pair.a, baudRate: 9600 }));
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('npm install @serialport/bindings-cpp');
  });

  it('refuses the kernel RS-485 mode on a port whose driver has none: a pty answers TIOCSRS485 with ENOTTY (tty_io.c tty_ioctl: neither the driver nor n_tty knows it), ERR_HAL_RS485_UNSUPPORTED', async (ctx) => {
    requireOrSkip(ctx, ioctlAddon()?.serialSetRs485 === undefined ? 'the ioctl addon is not built from these sources (npm run build:native)' : undefined);
    const pair = await ptyPair();
    socat = pair.proc;
    controller = new LinuxSerialController({ clock: systemClock });
    const refused = await rejection(controller.open({ path: pair.a, baudRate: 19200, rs485: { direction: 'kernel' } }));
    expect([refused.code, refused.errno]).toEqual(['ERR_HAL_RS485_UNSUPPORTED', 'ENOTTY']);
    expect(refused.message).toContain('set rs485.direction to "gpio"');
    // The refused open closed its port: the pty can be opened again at once.
    await (await controller.open({ path: pair.a, baudRate: 19200 })).close();
  });

  it('names the rebuild when the ioctl addon predates the RS-485 ioctls', async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    controller = new LinuxSerialController({ clock: systemClock, ioctl: {} as IoctlBinding });
    const stale = await rejection(controller.open({ path: pair.a, baudRate: 19200, rs485: { direction: 'kernel' } }));
    expect(stale.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(stale.message).toContain('npm run build:native');
  });
});
