/**
 * For the suites that run inside the kernel lane's VM (test/kernel/lane.ts): they need its kernel,
 * its modules and its QEMU devices, so anywhere else they are skipped (or fail under
 * HANDCHECK_REQUIRE_ROOT=1, which the guest sets).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../hal/clock.js';
import { LinuxSerialController } from '../../hal/linux/serial.js';
import type { ProbeResult } from '../../monitor/probe.js';
import { describeWhen } from '../helpers/requirements.js';

export const inLane = process.env.HANDCHECK_KERNEL_LANE === '1';

export function describeInLane(name: string, body: () => void): void {
  describeWhen(inLane ? undefined : 'runs only inside the kernel lane VM (npm run test:kernel)', name, body);
}

/**
 * The host answers every request, at once or after one probe timed by the host's own clock, so the
 * VM's speed is not in this bound: it only turns a host that stopped answering into a failure.
 */
const hostAnswersWithinMs = 30_000;

/**
 * Asks the host (test/kernel/lane.ts) over the control line, ttyS2, to act on the VM from outside:
 * `set_link on|off` flips the virtio-net link by QMP, `meter silent|answer` mutes the Modbus RTU meter
 * on ttyS1 or lets it answer, `client probe ...` (see `remoteClientSees`). Resolves with what the
 * host said after `ok` once it is done.
 */
export async function askHost(request: string): Promise<string> {
  const controller = new LinuxSerialController({ clock: systemClock });
  try {
    const port = await controller.open({ path: '/dev/ttyS2', baudRate: 115200 });
    const answer = (await port.transact(Buffer.from(`${request}\n`), { timeoutMs: hostAnswersWithinMs, isComplete: (received) => received.includes(0x0a) })).toString().trim();
    const ok = /^ok(?: (.*))?$/.exec(answer);
    if (!ok) throw new Error(`the host answered ${JSON.stringify(answer)} to ${JSON.stringify(request)}`);
    return ok[1] ?? '';
  } finally {
    await controller.close();
  }
}

/**
 * Has the lane's remote client - on the host, across the tap to eth0 - connect to `host:port`, once
 * per request on the control line, until monitor/probe.ts classifies a connect as one of `wanted`.
 * Resolves with that result and its errno, e.g. `reset ECONNRESET`, or `up -`. No time limit: under
 * TCG on a busy machine the firmware may take minutes to answer differently, and a slow answer is not
 * a wrong one. The wait ends on the result, or fails when `gone` names why it can no longer come (the
 * server under test exited); a VM that hangs is the lane's to stop (lane.ts `laneTimeoutMs`). Each
 * request is answered within one probe (at most two connects of 5 s plus 4 s held, timed on the host).
 */
export async function remoteClientSees(target: { host: string; port: number }, wanted: readonly ProbeResult[], gone: () => string | undefined = () => undefined): Promise<string> {
  for (let connects = 1; ; connects++) {
    const answer = await askHost(`client probe ${target.host}:${target.port}`);
    if (wanted.some((result) => answer.startsWith(`${result} `))) return answer;
    const why = gone();
    if (why !== undefined) throw new Error(`the remote client saw no ${wanted.join(' or ')} in ${connects} connects (the last: ${answer}): ${why}`);
    // A refusal comes back at once: the guest is not flooded with SYNs.
    await sleep(250);
  }
}
