/**
 * Runs inside `unshare -m` (a private mount namespace, as root) for health.test.ts: mounts a 1 MiB
 * tmpfs on the directory given, fills half of it, remounts it read-only, and prints what LinuxHealth
 * reads of it from the real /proc/mounts and statfs(2) as one JSON object.
 *
 *   unshare -m --propagation private node --import tsx health-readonly-body.ts /tmp/dir
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxHealth } from '../../hal/linux/health.js';

const dir = process.argv[2] ?? '';
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'handcheck-health', dir]);
writeFileSync(join(dir, 'half'), Buffer.alloc(512 * 1024));
const health = new LinuxHealth();
const before = await health.storage(dir);
execFileSync('mount', ['-o', 'remount,ro', dir]);
const after = await health.storage(dir);
process.stdout.write(JSON.stringify({ before, after }));
