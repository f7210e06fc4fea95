import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BoardConfig } from '../../config/board-config.js';
import { systemClock } from '../../hal/clock.js';
import { LinuxBoard } from '../../hal/linux/board.js';
import type { OnoffGpio } from '../../hal/linux/gpio.js';
import type { I2cBusHandle } from '../../hal/linux/i2c.js';
import { importPackage } from '../../hal/linux/optional.js';
import { makeGpioTree, makeTempDir, pi4Chips } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

let temp: Awaited<ReturnType<typeof makeTempDir>>;
let events: string[];
let loads: string[];

/** Package stand-ins that log what happens at their boundary. */
const loaders = {
  onoff: async (): Promise<unknown> => {
    loads.push('onoff');
    return {
      Gpio: class implements OnoffGpio {
        constructor(private readonly number: number) {
          events.push(`export ${number}`);
        }
        read = async (): Promise<0 | 1> => 0;
        readSync = (): 0 | 1 => 0;
        write = async (): Promise<void> => undefined;
        watch = (): void => undefined;
        unwatchAll = (): void => undefined;
        unexport = (): void => {
          events.push(`unexport ${this.number}`);
        };
      },
    };
  },
  i2cBus: async (): Promise<unknown> => {
    loads.push('i2c-bus');
    return {
      openPromisified: async (bus: number): Promise<Partial<I2cBusHandle>> => {
        events.push(`open i2c ${bus}`);
        return {
          readByte: async () => 0x75,
          close: async () => {
            events.push(`close i2c ${bus}`);
          },
        };
      },
    };
  },
};

function boardConfig(overrides: Partial<BoardConfig> = {}): BoardConfig {
  return {
    id: 'pi4-test',
    name: 'Pi 4 on a desk',
    backend: 'linux',
    i2c: [{ id: 'i2c-1', device: join(temp.dir, 'dev', 'i2c-4094'), timeoutMs: 25 }],
    watchdog: { device: join(temp.dir, 'dev', 'watchdog'), timeoutS: 15 },
    components: [],
    services: [],
    ...overrides,
  };
}

beforeEach(async () => {
  temp = await makeTempDir('board');
  events = [];
  loads = [];
  await makeGpioTree(join(temp.dir, 'sys'), pi4Chips);
  await mkdir(join(temp.dir, 'dev'));
  await mkdir(join(temp.dir, 'sys', 'class', 'watchdog', 'watchdog0'), { recursive: true });
  await writeFile(join(temp.dir, 'sys', 'class', 'watchdog', 'watchdog0', 'identity'), 'Broadcom BCM2835 Watchdog timer\n');
  await writeFile(join(temp.dir, 'sys', 'class', 'watchdog', 'watchdog0', 'timeout'), '15\n');
  await writeFile(join(temp.dir, 'dev', 'i2c-4094'), '');
  await writeFile(join(temp.dir, 'dev', 'watchdog'), '');
});
afterEach(async () => {
  await temp.remove();
});

function makeBoard(config = boardConfig()): LinuxBoard {
  return new LinuxBoard(config, {
    gpioRoot: join(temp.dir, 'sys', 'class', 'gpio'),
    watchdogSysfsRoot: join(temp.dir, 'sys', 'class', 'watchdog'),
    loaders,
  });
}

describe('LinuxBoard', () => {
  it('serves only linux entries', () => {
    expect(() => new LinuxBoard(boardConfig({ backend: 'sim' }))).toThrow(/backend 'sim'; LinuxBoard serves only 'linux'/);
  });

  it('opens nothing and imports nothing until asked', async () => {
    const board = makeBoard();
    expect(board.clock).toBe(systemClock);
    expect(loads).toEqual([]);
    const bus = await board.i2c('i2c-1');
    expect(await board.i2c('i2c-1')).toBe(bus);
    expect(loads).toEqual(['i2c-bus']);
    expect(bus.defaultTimeoutMs).toBe(25);
    expect(await bus.readByte(0x48, 0x0f)).toBe(0x75);
    await board.gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'out' });
    expect(loads).toEqual(['i2c-bus', 'onoff']);
    expect(events).toEqual(['open i2c 4094', 'export 529']);
    await board.close();
  });

  it('names unknown buses and a missing watchdog', async () => {
    const board = makeBoard(boardConfig({ watchdog: undefined }));
    const bus = await rejection(board.i2c('i2c-0'));
    expect([bus.code, bus.message]).toEqual(['ERR_HAL_NOT_FOUND', 'board pi4-test has no I2C bus i2c-0 (buses: i2c-1)']);
    expect((await rejection(board.watchdog())).code).toBe('ERR_HAL_NOT_FOUND');
    await board.close();
  });

  it('closes everything in reverse order of opening, once, leaving the watchdog armed', async () => {
    const board = makeBoard();
    await board.gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO5', direction: 'in' });
    await board.i2c('i2c-1');
    const wd = await board.watchdog();
    expect(await board.watchdog()).toBe(wd);
    await wd.open();
    await wd.kick();
    await board.gpio.open({ chip: 'raspberrypi-exp-gpio', line: 2, direction: 'out' });
    events = [];
    await Promise.all([board.close(), board.close()]);
    await board.close();
    // The output (572) stays exported at its level; the input goes back to the kernel.
    expect(events).toEqual(['close i2c 4094', 'unexport 517']);
    expect(await readFile(join(temp.dir, 'dev', 'watchdog'))).toEqual(Buffer.of(0));
    expect((await rejection(wd.kick())).canceled).toBe(true);
    const after = await rejection(board.i2c('i2c-1'));
    expect([after.code, after.canceled]).toEqual(['ERR_HAL_CLOSED', true]);
    expect((await rejection(board.gpio.open({ chip: 'pinctrl-bcm2711', line: 6, direction: 'in' }))).code).toBe('ERR_HAL_CLOSED');
    expect((await rejection(board.watchdog())).code).toBe('ERR_HAL_CLOSED');
  });

  it('reports a missing optional package per backend, and retries the import on the next open', async () => {
    let installed = false;
    const board = new LinuxBoard(boardConfig(), {
      gpioRoot: join(temp.dir, 'sys', 'class', 'gpio'),
      loaders: {
        onoff: () => (installed ? loaders.onoff() : importPackage('onoff-absent')()),
        i2cBus: importPackage('i2c-bus-absent'),
      },
    });
    const gpio = await rejection(board.gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' }));
    expect([gpio.code, gpio.target]).toEqual(['ERR_HAL_UNSUPPORTED', 'onoff']);
    const i2c = await rejection(board.i2c('i2c-1'));
    expect([i2c.code, i2c.target]).toEqual(['ERR_HAL_UNSUPPORTED', 'i2c-bus']);
    installed = true;
    await board.gpio.open({ chip: 'pinctrl-bcm2711', line: 'GPIO17', direction: 'in' });
    expect(events).toEqual(['export 529']);
    await board.close();
  });
});
