/**
 * Watches one interface's carrier as LinuxNetController reports it, for a test that runs it inside a
 * network namespace: prints `watching` once the monitor runs, then one JSON line per change.
 *
 *   ip netns exec NS node --import tsx net-watch-body.ts IFNAME
 */
import { LinuxNetController } from '../../hal/linux/net.js';

const name = process.argv[2] ?? '';
const iface = await new LinuxNetController().open(name);
const stop = iface.watch!((carrier) => process.stdout.write(`${JSON.stringify({ name, carrier })}\n`));
process.stdout.write('watching\n');
process.stdin.resume();
process.stdin.once('end', () => {
  stop();
  process.exit(0);
});
