/**
 * The host's half of what one I2C transfer costs apart from the bus (sim/i2c-bus.ts
 * `transferOverheadUs`): the firmware's own path (hal/linux/i2c.ts: the transfer queue, the promise)
 * over a null libuv worker hop in place of i2c-bus's ioctl, and the null syscall the kernel lane's
 * figures are scaled by. The other half, i2c-dev and the i2c core on i2c-stub, is measured in the
 * lane's VM and printed in its summary (test/kernel/i2c-cost.ts).
 */
import { closeSync, openSync } from 'node:fs';
import { loadavg } from 'node:os';
import { systemClock } from '../dist/hal/clock.js';
import { type I2cBusHandle, LinuxI2cBus } from '../dist/hal/linux/i2c.js';
import { calls, median, nullCosts, timed, workerHop } from './null-syscall.js';

type Report = (what: string, value: string, target: string, verdict: boolean | undefined) => void;

const TMP102 = 0x48;

export async function i2cOverheadBench(report: Report): Promise<void> {
  const host = await nullCosts();
  report(`null syscall (2 bytes from /dev/zero), median (load ${loadavg()[0]!.toFixed(1)})`, `sync ${host.syncUs.toFixed(2)} us, through libuv's worker pool ${host.asyncUs.toFixed(2)} us`, '', undefined);
  const fd = openSync('/dev/zero', 'r');
  const buffer = Buffer.alloc(2);
  const handle = { readWord: async () => (await workerHop(fd, buffer), 0x4b00), close: async () => undefined } as unknown as I2cBusHandle;
  const bus = new LinuxI2cBus('i2c-1', handle, { clock: systemClock, defaultTimeoutMs: 1000 });
  try {
    const path = await timed(async () => {
      if ((await bus.readWord(TMP102, 0x02, 'le')) !== 0x4b00) throw new Error('LinuxI2cBus.readWord returned another word than the handle gave');
    });
    const pathUs = median(path);
    report(`LinuxI2cBus.readWord over a null worker hop (${calls} calls), median`, `${pathUs.toFixed(2)} us = ${(pathUs / host.asyncUs).toFixed(2)}x the bare worker hop`, '', undefined);
  } finally {
    closeSync(fd);
  }
}
