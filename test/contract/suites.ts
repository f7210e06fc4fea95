/**
 * One contract suite per HAL interface, written against BoardHal only, so the same expectations run
 * against the sim board (always) and a real board (when HANDCHECK_HW_BOARD names its entry). Checks
 * use only what the board entry declares; nothing here knows which backend it talks to.
 */
import { describe, expect, it } from 'vitest';
import type { BoardHal } from '../../hal/board.js';
import { netCounterNames } from '../../hal/net.js';
import { serialPortSpec } from '../../hal/serial.js';

export type BoardFactory = () => Promise<BoardHal>;

async function withBoard<T>(open: BoardFactory, fn: (board: BoardHal) => Promise<T>): Promise<T> {
  const board = await open();
  try {
    return await fn(board);
  } finally {
    await board.close();
  }
}

export function gpioContract(open: BoardFactory, config: BoardHal['config']): void {
  const lines = Object.entries(config.gpio ?? {});
  const output = lines.find(([name, l]) => l.direction === 'out' && name !== config.statusLed) ?? lines.find(([, l]) => l.direction === 'out');
  const input = lines.find(([, l]) => l.direction === 'in');

  describe('GPIO', () => {
    it.runIf(output)('an output reads back what was written, logically', () =>
      withBoard(open, async (board) => {
        const spec = output![1];
        const line = await board.gpio.open(spec);
        for (const value of [1, 0, 1, 0] as const) {
          await line.write(value);
          expect(await line.read()).toBe(value);
        }
        await line.close();
      }),
    );

    it.runIf(input)('an input reads 0 or 1 and refuses writes', () =>
      withBoard(open, async (board) => {
        const line = await board.gpio.open(input![1]);
        expect([0, 1]).toContain(await line.read());
        await expect(line.write(1)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
        await line.close();
      }),
    );

    it.runIf(input)('after close, operations fail canceled and close is idempotent', () =>
      withBoard(open, async (board) => {
        const line = await board.gpio.open(input![1]);
        await line.close();
        await line.close();
        await expect(line.read()).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED', canceled: true });
      }),
    );

    it('an unknown chip label is not found, naming the label', () =>
      withBoard(open, async (board) => {
        await expect(board.gpio.open({ chip: 'no-such-chip', line: 0, direction: 'in' })).rejects.toMatchObject({
          code: 'ERR_HAL_NOT_FOUND',
          message: expect.stringContaining('no-such-chip'),
        });
      }),
    );
  });
}

export function i2cContract(open: BoardFactory, config: BoardHal['config']): void {
  const buses = config.i2c ?? [];
  const byBus = new Map<string, number[]>();
  for (const c of config.components) {
    if ('bus' in c && 'address' in c && typeof c.address === 'number') byBus.set(c.bus, [...(byBus.get(c.bus) ?? []), c.address]);
  }
  const first = buses[0];

  // bcm2835 and DesignWare answer an unacknowledged address with EREMOTEIO (i2c-bcm2835.c
  // bcm2835_i2c_xfer, i2c-designware-master.c i2c_dw_handle_tx_abort); a generic adapter may also
  // say ENODEV, as the kernel's own i2c-stub does (i2c-stub.c, stub_xfer), which is not found.
  const absent = first?.adapter === 'bcm2835' || first?.adapter === 'designware' ? ['ERR_HAL_NACK'] : ['ERR_HAL_NACK', 'ERR_HAL_NOT_FOUND'];

  describe('I2C', () => {
    it.runIf(first)('an address where no chip sits NACKs (or, on a generic adapter, is not found)', () =>
      withBoard(open, async (board) => {
        const bus = await board.i2c(first!.id);
        const used = new Set(byBus.get(first!.id) ?? []);
        const free = [0x0c, 0x0d, 0x0e, 0x1c, 0x1d].find((a) => !used.has(a))!;
        const code = await bus.readByte(free, 0).then(
          () => 'answered',
          (err: { code: string }) => err.code,
        );
        expect(absent).toContain(code);
      }),
    );

    it.runIf(first)('addresses outside 0x03-0x77 and blocks over 32 bytes are refused before the bus', () =>
      withBoard(open, async (board) => {
        const bus = await board.i2c(first!.id);
        await expect(bus.readByte(0x78, 0)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
        await expect(bus.readBlock(byBus.get(first!.id)?.[0] ?? 0x48, 0, 33)).rejects.toMatchObject({ code: 'ERR_HAL_INVALID_ARG' });
      }),
    );

    it.runIf(first && byBus.get(first.id)?.length)('a declared chip answers, transfers keep call order', () =>
      withBoard(open, async (board) => {
        const bus = await board.i2c(first!.id);
        const address = byBus.get(first!.id)![0]!;
        const order: number[] = [];
        await Promise.all([0, 1, 2, 3].map((n) => bus.readByte(address, 0).then(() => order.push(n))));
        expect(order).toEqual([0, 1, 2, 3]);
      }),
    );

    it('an unknown bus id is not found', () =>
      withBoard(open, async (board) => {
        await expect(board.i2c('i2c-404')).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
      }),
    );
  });
}

export function watchdogContract(open: BoardFactory, config: BoardHal['config']): void {
  describe.runIf(config.watchdog)('watchdog', () => {
    it('arms on open, kicks, reports the applied timeout, and disarms on magic close', () =>
      withBoard(open, async (board) => {
        const wdt = await board.watchdog();
        const info = await wdt.open();
        try {
          expect(info.timeoutS).toBeGreaterThan(0);
          await wdt.kick();
          expect(await wdt.getTimeout()).toBe(info.timeoutS);
          const applied = await wdt.setTimeout(info.timeoutS).catch((err: { code: string }) => err.code);
          expect([info.timeoutS, 'ERR_HAL_UNSUPPORTED']).toContain(applied);
          const left = await wdt.timeLeft().catch((err: { code: string }) => err.code);
          if (typeof left === 'number') expect(left).toBeLessThanOrEqual(info.timeoutS);
          else expect(left).toBe('ERR_HAL_UNSUPPORTED');
        } finally {
          await wdt.close({ magic: true });
        }
      }),
    );
  });
}

export function netContract(open: BoardFactory, config: BoardHal['config']): void {
  const ifaces = (config.net ?? []).map((n) => n.name);
  describe('network interfaces', () => {
    it.runIf(ifaces.length)('a declared interface reports carrier, operstate, speed and every counter', () =>
      withBoard(open, async (board) => {
        const status = await (await board.net.open(ifaces[0]!)).status();
        expect(status.name).toBe(ifaces[0]);
        expect(typeof status.carrier).toBe('boolean');
        expect(['up', 'down', 'dormant', 'lowerlayerdown', 'notpresent', 'testing', 'unknown']).toContain(status.operstate);
        expect(status.speedMbps === null || status.speedMbps > 0).toBe(true);
        for (const name of netCounterNames) expect(status.counters[name]).toBeGreaterThanOrEqual(0);
      }),
    );

    it('an unknown interface is not found', () =>
      withBoard(open, async (board) => {
        const status = board.net.open('nope404').then((iface) => iface.status());
        await expect(status).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
      }),
    );
  });
}

export function serialContract(open: BoardFactory, config: BoardHal['config']): void {
  const ports = config.serial ?? [];
  describe('serial ports', () => {
    it.runIf(ports.length)('a declared port opens and closes idempotently', () =>
      withBoard(open, async (board) => {
        const port = await board.serial.open(serialPortSpec(config, ports[0]!));
        expect(port.isOpen).toBe(true);
        await port.close();
        await port.close();
        await expect(port.write(Buffer.of(1))).rejects.toMatchObject({ code: 'ERR_HAL_CLOSED' });
      }),
    );

    it('a path that does not exist is not found', () =>
      withBoard(open, async (board) => {
        await expect(board.serial.open({ path: '/dev/ttyNOPE404', baudRate: 9600 })).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
      }),
    );
  });
}

export function halContract(open: BoardFactory, config: BoardHal['config']): void {
  gpioContract(open, config);
  i2cContract(open, config);
  watchdogContract(open, config);
  netContract(open, config);
  serialContract(open, config);
}
