/**
 * The kernel lane's initramfs, built on the host at every run: busybox-static, the modules needed to
 * reach the host's tree over 9p (decompressed here, because busybox's insmod cannot read .ko.xz), and
 * an /init that mounts the host's root read-only and hands over to test/kernel/guest.sh in a chroot.
 * Everything else (the drivers under test) is loaded in the guest by the host's own modprobe.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Modules /init loads before it can mount the host; their dependencies come from modules.dep. */
export const bootModules = ['9pnet_virtio', '9p'] as const;

export class LaneSetupError extends Error {}

/** The module files (relative to the modules directory) for `names`, dependencies first. */
export function moduleLoadOrder(modulesDir: string, names: readonly string[]): string[] {
  const dep = new Map<string, string[]>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [file, deps] = line.split(':');
    if (!file || deps === undefined) continue;
    dep.set(file, deps.trim() === '' ? [] : deps.trim().split(/\s+/));
  }
  const byName = new Map<string, string>();
  for (const file of dep.keys()) {
    const base = file.split('/').pop()?.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '') ?? '';
    byName.set(base.replace(/-/g, '_'), file);
  }
  const order: string[] = [];
  const visit = (file: string): void => {
    if (order.includes(file)) return;
    // modules.dep lists every (transitive) dependency, deepest last: load them in reverse.
    for (const d of [...(dep.get(file) ?? [])].reverse()) visit(d);
    order.push(file);
  };
  for (const name of names) {
    const file = byName.get(name.replace(/-/g, '_'));
    if (!file) throw new LaneSetupError(`the kernel's modules (${modulesDir}) have no ${name} module`);
    visit(file);
  }
  return order;
}

interface Entry {
  name: string;
  mode: number;
  data?: Buffer;
}

/** A newc (SVR4, no CRC) cpio archive, the format the kernel unpacks as an initramfs. */
export function cpio(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  for (const entry of [...entries, { name: 'TRAILER!!!', mode: 0 }]) {
    const data = entry.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${entry.name}\0`);
    const fields = [ino++, entry.mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`);
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  }
  return Buffer.concat(parts);
}

export interface InitramfsOptions {
  modulesDir: string;
  busybox: string;
  /** The project's path on the host, which is also its path in the guest's chroot. */
  projectDir: string;
  /** The host directory the guest may write (phase and results), shared read-write. */
  stateDir: string;
  out: string;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

export function buildInitramfs(options: InitramfsOptions): void {
  const modules = moduleLoadOrder(options.modulesDir, bootModules);
  const entries: Entry[] = ['bin', 'dev', 'proc', 'sys', 'host', 'modules'].map((name) => ({ name, mode: S_IFDIR | 0o755 }));
  entries.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync(options.busybox) });
  const loads: string[] = [];
  for (const file of modules) {
    const path = join(options.modulesDir, file);
    const base = file.split('/').pop()?.replace(/\.(xz|zst|gz)$/, '') ?? file;
    const data = file.endsWith('.xz') ? execFileSync('xz', ['-dc', path], { maxBuffer: 64 << 20 }) : readFileSync(path);
    entries.push({ name: `modules/${base}`, mode: S_IFREG | 0o644, data });
    loads.push(base);
  }
  // The guest reports every failure on the console with the "handcheck-lane:" prefix the host parses.
  const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "handcheck-lane: setup-failed $*"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${loads.join(' ')}; do insmod /modules/$m || fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || fail "mount of the host's root over 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lanestate /host${options.stateDir} || fail "mount of the lane's state directory over 9p"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmp /host/dev/shm
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
mount -t tmpfs root /host/root
chroot /host /bin/sh ${options.projectDir}/test/kernel/guest.sh ${options.projectDir} ${options.stateDir}
echo "handcheck-lane: guest-exit $?"
poweroff -f
`;
  entries.push({ name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init) });
  writeFileSync(options.out, cpio(entries));
}
