/**
 * What one I2C transfer costs the host apart from the bus: the syscall, i2c-dev and the i2c core on
 * i2c-stub (drivers/i2c/i2c-stub.c, which answers from memory, so no wire time is in the figure),
 * and on top of it what the firmware adds per call (hal/linux/i2c.ts: the transfer queue, i2c-bus's
 * libuv worker hop, the promise). The sim board charges the median of the firmware path per
 * transfer (sim/i2c-bus.ts `transferOverheadUs`). Printed, not asserted: tests assert behaviour.
 *
 * TCG emulates every guest instruction, so every figure here is many times a real CPU's. The same
 * null operations - a 2-byte read of /dev/zero, synchronous and through libuv's worker pool as
 * i2c-bus's asynchronous calls go - are timed here and on the host (`nullCosts`, printed by
 * running this file with HANDCHECK_I2C_COST_HOST=1 outside the lane), so the i2c-dev part (ioctl minus
 * null syscall) can be scaled by the VM's slowdown and added to the host's own worker hop.
 */
import { closeSync, openSync, read, readSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { type I2cBusHandle, LinuxI2cBus, openLinuxI2cBus } from '../../../hal/linux/i2c.js';
import { describeInLane } from '../in-guest.js';

const TMP102 = 0x48;
const calls = 500;

interface SyncBus {
  writeWordSync(addr: number, cmd: number, word: number): void;
  readWordSync(addr: number, cmd: number): number;
  readI2cBlockSync(addr: number, cmd: number, length: number, buffer: Buffer): number;
  closeSync(): void;
}

async function stubAdapter(): Promise<number> {
  for (const entry of await readdir('/sys/bus/i2c/devices')) {
    if (!/^i2c-\d+$/.test(entry)) continue;
    if ((await readFile(join('/sys/bus/i2c/devices', entry, 'name'), 'utf8')).trim() === 'SMBus stub driver') return Number(entry.slice(4));
  }
  throw new Error('no i2c-stub adapter');
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed(each: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await each();
    samples.push((performance.now() - t) * 1000);
  }
  return samples;
}

/** Medians in us of a null syscall (2 bytes from /dev/zero), synchronous and through libuv's worker pool. */
export async function nullCosts(): Promise<{ syncUs: number; asyncUs: number }> {
  const fd = openSync('/dev/zero', 'r');
  const buffer = Buffer.alloc(2);
  try {
    const sync = await timed(() => readSync(fd, buffer, 0, 2, null));
    const async = await timed(() => new Promise((resolve, reject) => read(fd, buffer, 0, 2, null, (err, n) => (err ? reject(err) : resolve(n)))));
    return { syncUs: median(sync), asyncUs: median(async) };
  } finally {
    closeSync(fd);
  }
}

if (process.env.HANDCHECK_I2C_COST_HOST === '1') {
  it('prints the host null syscall costs and the firmware path over a null worker hop', async () => {
    const host = await nullCosts();
    const fd = openSync('/dev/zero', 'r');
    const buffer = Buffer.alloc(2);
    const hop = (): Promise<void> => new Promise((resolve, reject) => read(fd, buffer, 0, 2, null, (err) => (err ? reject(err) : resolve())));
    const handle = { readWord: async () => (await hop(), 0x4b00), close: async () => undefined } as unknown as I2cBusHandle;
    const bus = new LinuxI2cBus('i2c-1', handle, { clock: systemClock, defaultTimeoutMs: 1000 });
    try {
      const path = await timed(async () => expect(await bus.readWord(TMP102, 0x02, 'le')).toBe(0x4b00));
      console.log(
        `host null syscall: sync median ${host.syncUs.toFixed(2)} us, through libuv's worker pool ${host.asyncUs.toFixed(2)} us; ` +
          `LinuxI2cBus read word over a null worker hop median ${median(path).toFixed(2)} us`,
      );
    } finally {
      closeSync(fd);
    }
  });
}

describeInLane('I2C per-transfer cost on i2c-stub', () => {
  it('every timed transfer returns what was written; the medians are printed', async () => {
    const adapter = await stubAdapter();
    const i2c = createRequire(import.meta.url)('i2c-bus') as { openSync(n: number): SyncBus };
    const raw = i2c.openSync(adapter);
    const bus = await openLinuxI2cBus({ id: 'i2c-1', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
    try {
      raw.writeWordSync(TMP102, 0x02, 0x4b00);
      const block = Buffer.alloc(16);
      const syscall = await timed(() => expect(raw.readWordSync(TMP102, 0x02)).toBe(0x4b00));
      const syscallBlock = await timed(() => expect(raw.readI2cBlockSync(TMP102, 0x00, 16, block)).toBe(16));
      const firmware = await timed(async () => expect(await bus.readWord(TMP102, 0x02, 'le')).toBe(0x4b00));
      const firmwareBlock = await timed(async () => expect((await bus.readBlock(TMP102, 0x00, 16)).length).toBe(16));
      const vm = await nullCosts();
      const us = (samples: number[]): string => `median ${median(samples).toFixed(1)} us`;
      console.log(`VM null syscall: sync median ${vm.syncUs.toFixed(2)} us, through libuv's worker pool ${vm.asyncUs.toFixed(2)} us`);
      console.log(
        `I2C per-transfer cost, ${calls} calls each: ioctl read word ${us(syscall)}, ioctl 16-byte block ${us(syscallBlock)}; ` +
          `firmware path (LinuxI2cBus, queue + i2c-bus worker) read word ${us(firmware)}, 16-byte block ${us(firmwareBlock)}`,
      );
    } finally {
      raw.closeSync();
      await bus.close();
    }
  }, 600_000);
});
