/**
 * For the suites that run inside the kernel lane's VM (test/kernel/lane.ts): they need its kernel,
 * its modules and its QEMU devices, so anywhere else they are skipped (or fail under
 * HANDCHECK_REQUIRE_ROOT=1, which the guest sets).
 */
import { systemClock } from '../../hal/clock.js';
import { LinuxSerialController } from '../../hal/linux/serial.js';
import type { ProbeResult } from '../../monitor/probe.js';
import { describeWhen } from '../helpers/requirements.js';

export const inLane = process.env.HANDCHECK_KERNEL_LANE === '1';

export function describeInLane(name: string, body: () => void): void {
  describeWhen(inLane ? undefined : 'runs only inside the kernel lane VM (npm run test:kernel)', name, body);
}

/**
 * Asks the host (test/kernel/lane.ts) over the control line, ttyS2, to act on the VM from outside:
 * `set_link on|off` flips the virtio-net link by QMP, `meter silent|answer` mutes the Modbus RTU meter
 * on ttyS1 or lets it answer, `client becomes ...` (see `remoteClientSees`). Resolves with what the
 * host said after `ok` once it is done.
 */
export async function askHost(request: string, timeoutMs = 30_000): Promise<string> {
  const controller = new LinuxSerialController({ clock: systemClock });
  try {
    const port = await controller.open({ path: '/dev/ttyS2', baudRate: 115200 });
    const answer = (await port.transact(Buffer.from(`${request}\n`), { timeoutMs, isComplete: (received) => received.includes(0x0a) })).toString().trim();
    const ok = /^ok(?: (.*))?$/.exec(answer);
    if (!ok) throw new Error(`the host answered ${JSON.stringify(answer)} to ${JSON.stringify(request)}`);
    return ok[1] ?? '';
  } finally {
    await controller.close();
  }
}

/**
 * Has the lane's remote client - on the host, across the tap to eth0 - connect to `host:port` until
 * monitor/probe.ts classifies a connect as one of `wanted` (the host gives up after two minutes).
 * Resolves with that result and its errno, e.g. `reset ECONNRESET`, or `up -`.
 */
export function remoteClientSees(target: { host: string; port: number }, ...wanted: ProbeResult[]): Promise<string> {
  return askHost(`client becomes ${wanted.join('|')} ${target.host}:${target.port}`, 150_000);
}
