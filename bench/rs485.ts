/**
 * How late a userspace RS-485 DE line falls (rs485.direction "gpio"). The firmware's own path - the
 * real @serialport/bindings-cpp binding, the HAL's direction control, a GPIO line - on a socat pty pair,
 * where write(2) and tcdrain return at once because a pty has no transmitter to drain: the time DE
 * stays high is then the userspace cost alone (the write, tcdrain's trip through libuv's thread pool,
 * the event loop, the line write), which on a UART comes on top of the frame's wire time. A slave may
 * answer 3.5 characters after the last stop bit (1.82 ms at 19200 baud 8E1), so DE must be down by
 * then. A setImmediate round trip in the same run is the baseline for the machine's load.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../dist/hal/clock.js';
import type { GpioController, GpioLine, GpioLineSpec, GpioValue } from '../dist/hal/gpio.js';
import { LinuxSerialController } from '../dist/hal/linux/serial.js';

type Report = (what: string, value: string, target: string, verdict: boolean | undefined) => void;

const frames = 500;
/** Modbus over Serial Line 2.5.1.1: 3.5 characters of 11 bits at 19200 baud. */
const answerMayStartUs = (3.5 * 11 * 1e6) / 19200;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** A DE line that records when it went up and down. */
function recordingGpio(edges: Array<{ value: GpioValue; at: bigint }>): GpioController {
  return {
    async open(spec: GpioLineSpec): Promise<GpioLine> {
      return {
        spec,
        target: `bench:${String(spec.line)}`,
        read: async () => 0,
        watch: () => () => undefined,
        close: async () => undefined,
        async write(value) {
          edges.push({ value, at: process.hrtime.bigint() });
        },
      };
    },
    close: async () => undefined,
  };
}

export async function rs485Bench(report: Report): Promise<void> {
  const a = `/tmp/handcheck-bench-pty-a-${process.pid}`;
  const b = `/tmp/handcheck-bench-pty-b-${process.pid}`;
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  const edges: Array<{ value: GpioValue; at: bigint }> = [];
  const controller = new LinuxSerialController({ clock: systemClock, gpio: recordingGpio(edges) });
  try {
    await sleep(500);
    const port = await controller.open({ path: a, baudRate: 19200, parity: 'even', rs485: { direction: 'gpio', deLine: { chip: 'bench', line: 'de', direction: 'out' } } });
    const peer = await controller.open({ path: b, baudRate: 19200, parity: 'even' });
    const frame = Buffer.from('010300000001840a', 'hex');
    const baseline: number[] = [];
    for (let i = 0; i < frames; i++) {
      await port.write(frame);
      await peer.readUntil({ timeoutMs: 1000, isComplete: (r) => r.length >= frame.length });
      const t0 = process.hrtime.bigint();
      await new Promise((resolve) => setImmediate(resolve));
      baseline.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    const held: number[] = [];
    for (let i = 0; i + 1 < edges.length; i += 2) held.push(Number(edges[i + 1]!.at - edges[i]!.at) / 1000);
    held.sort((x, y) => x - y);
    baseline.sort((x, y) => x - y);
    const p99 = quantile(held, 0.99);
    const late = held.filter((us) => us > answerMayStartUs).length;
    report(
      `RS-485 DE high in userspace per frame, pty (no wire time; load ${loadavg()[0]!.toFixed(1)})`,
      `p50 ${quantile(held, 0.5).toFixed(0)} us, p99 ${p99.toFixed(0)} us, max ${held.at(-1)!.toFixed(0)} us; ${late}/${held.length} past ${answerMayStartUs.toFixed(0)} us; setImmediate p50 ${quantile(baseline, 0.5).toFixed(0)} us, p99 ${quantile(baseline, 0.99).toFixed(0)} us`,
      `p99 < ${answerMayStartUs.toFixed(0)} us (t3.5 at 19200 8E1)`,
      p99 < answerMayStartUs,
    );
  } finally {
    await controller.close();
    socat.kill();
  }
}
