/**
 * The boot's identity from procfs: /proc/sys/kernel/random/boot_id (drivers/char/random.c,
 * proc_do_uuid: a UUID generated on first read after boot and fixed until the next) and the boot time
 * from /proc/stat's `btime` line (fs/proc/stat.c show_stat: seconds since the epoch).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootIdentity } from '../boot.js';
import { HalIoError, halErrorFromErrno } from '../errors.js';

/** Reads the boot id and boot time under `procRoot` (default `/proc`). */
export async function readBootIdentity(procRoot = '/proc'): Promise<BootIdentity> {
  const idPath = join(procRoot, 'sys/kernel/random/boot_id');
  const statPath = join(procRoot, 'stat');
  let id: string;
  let stat: string;
  try {
    [id, stat] = await Promise.all([readFile(idPath, 'utf8'), readFile(statPath, 'utf8')]);
  } catch (err) {
    throw halErrorFromErrno(err, 'reading the boot identity', (err as NodeJS.ErrnoException).path ?? idPath);
  }
  id = id.trim();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new HalIoError(`${idPath} holds "${id.slice(0, 40)}", not a UUID`, { target: idPath });
  const btime = /^btime (\d+)$/m.exec(stat);
  if (!btime) throw new HalIoError(`${statPath} has no btime line`, { target: statPath });
  return { id, bootedAt: Number(btime[1]) * 1000 };
}
