/**
 * Prints one interface's status as LinuxNetController reads it from /sys/class/net, for tests that run
 * it inside a network namespace (`ip netns exec` mounts that namespace's sysfs over /sys).
 *
 *   ip netns exec NS node --import tsx net-status-body.ts IFNAME
 */
import { LinuxNetController } from '../../hal/linux/net.js';

const name = process.argv[2] ?? '';
const status = await (await new LinuxNetController().open(name)).status();
process.stdout.write(`${JSON.stringify(status)}\n`);
