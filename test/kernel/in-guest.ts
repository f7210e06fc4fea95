/**
 * For the suites that run inside the kernel lane's VM (test/kernel/lane.ts): they need its kernel,
 * its modules and its QEMU devices, so anywhere else they are skipped (or fail under
 * HANDCHECK_REQUIRE_ROOT=1, which the guest sets).
 */
import { describeWhen } from '../helpers/requirements.js';

export const inLane = process.env.HANDCHECK_KERNEL_LANE === '1';

export function describeInLane(name: string, body: () => void): void {
  describeWhen(inLane ? undefined : 'runs only inside the kernel lane VM (npm run test:kernel)', name, body);
}
