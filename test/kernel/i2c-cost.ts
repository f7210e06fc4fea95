/**
 * Run by guest.sh after the suite: what one I2C transfer costs apart from the bus, in the VM - the
 * syscall, i2c-dev and the i2c core on i2c-stub (drivers/i2c/i2c-stub.c, which answers from memory, so
 * no wire time is in the figure), and on top of it what the firmware adds per call (hal/linux/i2c.ts:
 * the transfer queue, i2c-bus's libuv worker hop, the promise). A measurement, not a test: the lane
 * prints it in its summary; that the transfers return what the chips hold is test/kernel/suite/i2c.test.ts's.
 * TCG emulates every guest instruction, so every figure here is many times a real CPU's: the null
 * syscall timed here and by `npm run bench -- i2cOverhead` on the host gives the VM's slowdown, by which
 * the i2c-dev part (ioctl minus null syscall) is scaled for sim/i2c-bus.ts `transferOverheadUs`.
 * Lines starting with "handcheck-lane: measured" are the lane's to print again (test/kernel/lane.ts).
 */
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { calls, median, nullCosts, timed } from '../../bench/null-syscall.js';
import { systemClock } from '../../hal/clock.js';
import { openLinuxI2cBus } from '../../hal/linux/i2c.js';

const TMP102 = 0x48;

interface SyncBus {
  readWordSync(addr: number, cmd: number): number;
  readI2cBlockSync(addr: number, cmd: number, length: number, buffer: Buffer): number;
  closeSync(): void;
}

async function stubAdapter(): Promise<number> {
  for (const entry of await readdir('/sys/bus/i2c/devices')) {
    if (!/^i2c-\d+$/.test(entry)) continue;
    if ((await readFile(join('/sys/bus/i2c/devices', entry, 'name'), 'utf8')).trim() === 'SMBus stub driver') return Number(entry.slice(4));
  }
  throw new Error('no i2c-stub adapter: guest.sh loads it with modprobe i2c-stub');
}

const adapter = await stubAdapter();
const raw = (createRequire(import.meta.url)('i2c-bus') as { openSync(n: number): SyncBus }).openSync(adapter);
const bus = await openLinuxI2cBus({ id: 'i2c-1', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
try {
  const block = Buffer.alloc(16);
  const syscall = await timed(() => raw.readWordSync(TMP102, 0x02));
  const syscallBlock = await timed(() => raw.readI2cBlockSync(TMP102, 0x00, 16, block));
  const firmware = await timed(() => bus.readWord(TMP102, 0x02, 'le'));
  const firmwareBlock = await timed(() => bus.readBlock(TMP102, 0x00, 16));
  const vm = await nullCosts();
  const us = (samples: number[]): string => `median ${median(samples).toFixed(1)} us`;
  console.log(`handcheck-lane: measured VM null syscall: sync median ${vm.syncUs.toFixed(2)} us, through libuv's worker pool ${vm.asyncUs.toFixed(2)} us`);
  console.log(
    `handcheck-lane: measured I2C per-transfer cost on i2c-stub, ${calls} calls each: ioctl read word ${us(syscall)}, ioctl 16-byte block ${us(syscallBlock)}; ` +
      `firmware path (LinuxI2cBus, queue + i2c-bus worker) read word ${us(firmware)}, 16-byte block ${us(firmwareBlock)}`,
  );
} finally {
  raw.closeSync();
  await bus.close();
}
