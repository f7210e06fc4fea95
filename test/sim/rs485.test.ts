/**
 * RS-485 direction control on the sim board, against the parts it models:
 * - the transceiver: MAX485 (Maxim 19-0122) and TI SN65HVD72 function tables - the driver's outputs
 *   follow DI only while DE is high and are high-impedance while DE is low; the receiver's output
 *   follows the bus while /RE is low, so a transceiver with /RE grounded hears its own driver (echo);
 * - the kernel: TIOCSRS485 in drivers/tty/serial/serial_core.c (uart_set_rs485_config: ENOTTY without
 *   driver support; uart_check_rs485_flags; uart_sanitize_serial_rs485 and
 *   uart_sanitize_serial_rs485_delays), the PL011's supported set (amba-pl011.c pl011_rs485_supported,
 *   pl011_rs485_tx_start: RXE off while sending unless SER_RS485_RX_DURING_TX) and the mini UART's
 *   (8250_bcm2835aux.c with serial8250_em485_supported in 8250_port.c);
 * - RTS outside RS-485 mode: asserted from open (serial_core.c uart_port_dtr_rts), a low pin.
 */
import { describe, expect, it } from 'vitest';
import { SerialPeerDriver } from '../../hal/drivers/serial-peer.js';
import { readHoldingRegistersRequest } from '../../hal/drivers/modbus-rtu.js';
import type { GpioValue } from '../../hal/gpio.js';
import { SER_RS485_ENABLED, SER_RS485_RTS_AFTER_SEND, SER_RS485_RTS_ON_SEND, SER_RS485_RX_DURING_TX } from '../../hal/rs485.js';
import { type SerialPortSpec, openSerialPort } from '../../hal/serial.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimGpio } from '../../sim/gpio.js';
import { ModbusRtuPeer } from '../../sim/peers/modbus-rtu.js';
import { type SimPortBinding, SimSerialBinding, type SimTransceiver, type SimUartDriver, sanitizeRs485, simUartDriver } from '../../sim/serial.js';
import { settle } from '../helpers/settle.js';

const deLine = { chip: 'sim-gpio', line: 'GPIO24', direction: 'out' as const };

function rig(options: { transceiver: 'gpio' | 'rts'; echo?: boolean; uart?: SimUartDriver }) {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const gpio = new SimGpio(clock, faults);
  gpio.define('rs485-de', deLine, { level: 0 });
  const binding = new SimSerialBinding(clock, faults);
  const meter = new ModbusRtuPeer({ unitId: 1, holdingRegisters: [230] });
  const transceiver: SimTransceiver = {
    de: options.transceiver === 'gpio' ? { line: (): GpioValue => gpio.level('rs485-de') } : { rts: { inverted: false } },
    echo: options.echo ?? false,
  };
  binding.addPeer('/dev/ttyAMA0', meter, 'meter', { transceiver, ...(options.uart && { uart: options.uart }) });
  const platform = { gpio, rs485Ioctl: (port: unknown) => (port as SimPortBinding).rs485Ioctl() };
  const open = (extra: Partial<SerialPortSpec> = {}) => openSerialPort(binding, clock, { path: '/dev/ttyAMA0', baudRate: 19200, parity: 'even', ...extra }, platform);
  const probe = async (extra: Partial<SerialPortSpec> = {}) => {
    const port = await open(extra);
    try {
      return await settle(clock, new SerialPeerDriver(port, clock, { protocol: 'modbus-rtu' }).read({ timeoutMs: 100 }));
    } finally {
      await port.close();
    }
  };
  return { clock, faults, gpio, binding, meter, open, probe };
}

describe('an RS-485 transceiver without direction control', () => {
  it('DE on a GPIO nobody drives: the driver stays high-impedance and the meter never hears the request', async () => {
    const { probe, meter } = rig({ transceiver: 'gpio' });
    await expect(probe()).rejects.toMatchObject({ code: 'ERR_HAL_TIMEOUT' });
    expect(meter.requests).toBe(0);
    expect(meter.rejectedFrames).toBe(0);
  });

  it('DE on RTS without the kernel RS-485 mode: RTS is asserted from open, a low pin, so again nothing reaches the bus', async () => {
    const { probe, meter } = rig({ transceiver: 'rts' });
    await expect(probe()).rejects.toMatchObject({ code: 'ERR_HAL_TIMEOUT' });
    expect(meter.requests).toBe(0);
  });

  it('DE dropped by a fixed wait before the transmitter drained (no tcdrain): the frame is cut and the meter drops it', async () => {
    const { clock, gpio, open, meter } = rig({ transceiver: 'gpio' });
    const port = await open();
    const de = await gpio.open({ ...deLine, initial: 0 });
    await de.write(1);
    await port.write(readHoldingRegistersRequest(1, 0, 1));
    // write() returns once the bytes are queued; 8 characters at 19200 baud take 4.6 ms on the wire.
    await clock.advance(2);
    await de.write(0);
    await clock.advance(50);
    expect(meter.requests).toBe(0);
    expect(meter.rejectedFrames).toBe(1);
    await port.close();
  });
});

describe('direction gpio: the firmware drives DE around each frame', () => {
  it('raises DE, writes, waits for the last stop bit (tcdrain), drops DE: the meter answers', async () => {
    const { probe, meter, gpio } = rig({ transceiver: 'gpio' });
    const reading = await probe({ rs485: { direction: 'gpio', deLine } });
    expect(reading).toMatchObject({ responding: true, exceptionCode: 0 });
    expect(meter.requests).toBe(1);
    expect(gpio.level('rs485-de')).toBe(0);
  });

  it('holds DE for delayBeforeSendMs before the first start bit and delayAfterSendMs after the last stop bit', async () => {
    const { clock, gpio, open } = rig({ transceiver: 'gpio' });
    const port = await open({ rs485: { direction: 'gpio', deLine, delayBeforeSendMs: 2, delayAfterSendMs: 3 } });
    const levels: Array<[number, GpioValue]> = [];
    const written = port.write(readHoldingRegistersRequest(1, 0, 1));
    await clock.advance(0.25);
    for (let t = 0.25; t <= 12; t += 0.5) {
      levels.push([t, gpio.level('rs485-de')]);
      await clock.advance(0.5);
    }
    await written;
    // 8 characters of 11 bits at 19200 baud: 4.58 ms on the wire, from 2 ms to 6.58 ms; DE low 3 ms later, at 9.58 ms.
    const high = levels.filter(([, level]) => level === 1).map(([t]) => t);
    expect(high[0]).toBe(0.25);
    expect(high.at(-1)).toBe(9.25);
    await port.close();
  });

  it('a DE line another consumer holds fails the open with ERR_HAL_LINE_BUSY (EBUSY, gpiolib.c gpiod_request_commit)', async () => {
    const { open, gpio } = rig({ transceiver: 'gpio' });
    const release = gpio.holdElsewhere('rs485-de', 'gpioset');
    await expect(open({ rs485: { direction: 'gpio', deLine } })).rejects.toMatchObject({ code: 'ERR_HAL_LINE_BUSY', errno: 'EBUSY', message: expect.stringContaining('gpioset') });
    release();
    await (await open({ rs485: { direction: 'gpio', deLine } })).close();
  });
});

describe('direction kernel: TIOCSRS485', () => {
  it('on a PL011 the kernel switches RTS as DE: the meter answers, and TIOCGRS485 reads back what was applied', async () => {
    const { probe, open, meter, binding } = rig({ transceiver: 'rts' });
    await expect(probe({ rs485: { direction: 'kernel' } })).resolves.toMatchObject({ responding: true });
    expect(meter.requests).toBe(1);
    const port = await open({ rs485: { direction: 'kernel', delayAfterSendMs: 1 } });
    expect(binding.openPort('/dev/ttyAMA0')?.rs485Ioctl().get()).toEqual({ flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND, delayRtsBeforeSend: 0, delayRtsAfterSend: 1 });
    await port.close();
  });

  it('a UART whose driver has no RS-485 mode answers ENOTTY: ERR_HAL_RS485_UNSUPPORTED, naming direction gpio as the way out', async () => {
    const { open } = rig({ transceiver: 'rts', uart: 'none' });
    await expect(open({ rs485: { direction: 'kernel' } })).rejects.toMatchObject({
      code: 'ERR_HAL_RS485_UNSUPPORTED',
      errno: 'ENOTTY',
      message: expect.stringContaining('direction to "gpio"'),
    });
  });

  it('sanitises as serial_core.c does: unsupported flags dropped, RTS both-or-neither made RTS_ON_SEND, delays clamped to 100 ms', () => {
    expect(sanitizeRs485('pl011', { flags: SER_RS485_ENABLED, delayRtsBeforeSend: 250, delayRtsAfterSend: 5 })).toEqual({
      flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND,
      delayRtsBeforeSend: 100,
      delayRtsAfterSend: 5,
    });
    expect(sanitizeRs485('pl011', { flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 }).flags).toBe(
      SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND,
    );
    expect(sanitizeRs485('bcm2835aux', { flags: SER_RS485_ENABLED | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 }).flags).toBe(
      SER_RS485_ENABLED | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX,
    );
    expect(sanitizeRs485('pl011', { flags: SER_RS485_RTS_ON_SEND, delayRtsBeforeSend: 7, delayRtsAfterSend: 7 })).toEqual({ flags: 0, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 });
    // SER_RS485_ADDRB (bit 6) is not a legacy flag and neither driver has it: EINVAL, not a silent drop.
    expect(() => sanitizeRs485('pl011', { flags: SER_RS485_ENABLED | (1 << 6), delayRtsBeforeSend: 0, delayRtsAfterSend: 0 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => sanitizeRs485('none', { flags: SER_RS485_ENABLED, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 })).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    expect([simUartDriver('/dev/ttyAMA0'), simUartDriver('/dev/ttyS0'), simUartDriver('/dev/ttyUSB0')]).toEqual(['pl011', 'bcm2835aux', 'none']);
  });

  it('RTS low while sending on a board wired straight to DE keys the transceiver at the wrong times: the meter never hears', async () => {
    const { probe, meter } = rig({ transceiver: 'rts' });
    await expect(probe({ rs485: { direction: 'kernel', rtsWhileSending: 'low' } })).rejects.toMatchObject({ code: 'ERR_HAL_TIMEOUT' });
    expect(meter.requests).toBe(0);
  });

  it('hardware flow control on an RS-485 port is refused before opening: ERR_HAL_RS485_CONFLICT', async () => {
    const { open } = rig({ transceiver: 'rts' });
    await expect(open({ rtscts: true, rs485: { direction: 'kernel' } })).rejects.toMatchObject({ code: 'ERR_HAL_RS485_CONFLICT', message: expect.stringContaining('remove rtscts') });
  });
});

describe('echo of our own request (/RE grounded)', () => {
  it('taken for the answer when the port does not expect it: the driver says the bytes are our own request', async () => {
    const { probe } = rig({ transceiver: 'gpio', echo: true });
    await expect(probe({ rs485: { direction: 'gpio', deLine } })).rejects.toMatchObject({ code: 'ERR_HAL_IO', message: expect.stringContaining('our own request') });
  });

  it('with echo set, exactly the echoed bytes are consumed and checked, and the answer after them is read', async () => {
    const { probe, meter } = rig({ transceiver: 'gpio', echo: true });
    await expect(probe({ rs485: { direction: 'gpio', deLine, echo: true } })).resolves.toMatchObject({ responding: true, exceptionCode: 0 });
    expect(meter.requests).toBe(1);
  });

  it('in kernel mode echo asks for SER_RS485_RX_DURING_TX; without it the PL011 keeps RXE off while sending and no echo arrives', async () => {
    const echoing = rig({ transceiver: 'rts', echo: true });
    await expect(echoing.probe({ rs485: { direction: 'kernel', echo: true } })).resolves.toMatchObject({ responding: true });
    const quiet = rig({ transceiver: 'rts', echo: true });
    await expect(quiet.probe({ rs485: { direction: 'kernel' } })).resolves.toMatchObject({ responding: true });
  });

  it('an echo that differs from the request is a bus collision: ERR_HAL_BUS_COLLISION, not a garbled answer', async () => {
    const { probe, faults, meter } = rig({ transceiver: 'gpio', echo: true });
    faults.inject({ target: 'meter', kind: 'collision', times: 1 });
    await expect(probe({ rs485: { direction: 'gpio', deLine, echo: true } })).rejects.toMatchObject({
      code: 'ERR_HAL_BUS_COLLISION',
      message: expect.stringContaining('differs from what we sent at byte 4'),
    });
    expect(meter.requests).toBe(0);
  });

  it('no echo at all where one is expected: the bus was never driven (DE stuck low), ERR_HAL_NO_ECHO', async () => {
    const { probe, faults, meter } = rig({ transceiver: 'gpio', echo: true });
    faults.inject({ target: 'rs485-de', kind: 'stuck-low' });
    await expect(probe({ rs485: { direction: 'gpio', deLine, echo: true } })).rejects.toMatchObject({ code: 'ERR_HAL_NO_ECHO', message: expect.stringContaining('DE not switched') });
    expect(meter.requests).toBe(0);
  });

  it('echo expected from a transceiver that does not echo (/RE tied to DE): the answer cannot pass for the echo, and the error names that case', async () => {
    const { probe } = rig({ transceiver: 'gpio', echo: false });
    await expect(probe({ rs485: { direction: 'gpio', deLine, echo: true } })).rejects.toMatchObject({
      code: 'ERR_HAL_BUS_COLLISION',
      message: expect.stringContaining('does not echo at all'),
    });
  });
});

describe('the flags handcheck asks the kernel for', () => {
  it('RTS high while sending unless told otherwise, RX_DURING_TX only with echo', async () => {
    const { serialRs485Request } = await import('../../hal/rs485.js');
    expect(serialRs485Request({ direction: 'kernel' })).toEqual({ flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND, delayRtsBeforeSend: 0, delayRtsAfterSend: 0 });
    expect(serialRs485Request({ direction: 'kernel', rtsWhileSending: 'low', echo: true, delayAfterSendMs: 2 })).toEqual({
      flags: SER_RS485_ENABLED | SER_RS485_RTS_AFTER_SEND | SER_RS485_RX_DURING_TX,
      delayRtsBeforeSend: 0,
      delayRtsAfterSend: 2,
    });
  });
});
