/**
 * The boot record: a small file in the state directory that outlives reboots, so the firmware can
 * say how many times the board has booted, since when it runs, and why the last boot happened - and
 * so a monitor can see a reboot loop. It is keyed by the boot's identity (BoardHal.boot): a firmware
 * restart within one boot is not a reboot.
 *
 * The reset cause of a new boot, first match wins:
 * - `watchdog`: the watchdog driver's boot status has WDIOF_CARDRESET;
 * - `power-on`: the board itself says the boot began with power applied (the sim board when built);
 * - `orderly`: the previous boot's firmware stopped in order (SIGTERM, as `systemctl reboot` does);
 * - `unknown`: nothing says why - no record yet, or one whose firmware never stopped in order and no
 *   watchdog reset: on a Pi a power cut, a kernel panic or the reset button all look like this.
 *
 * A reset loop is resetLoopCount unclean resets - `watchdog` or `unknown` - within the window. Unknown
 * ones count because on a Raspberry Pi a watchdog reset is one: bcm2835_wdt never sets the boot
 * status (bcm2835_wdt_probe only marks WDOG_HW_RUNNING), so there it reads as `unknown`, as a power
 * cut does. A first boot with no record is not counted: nothing says it was a reset at all.
 *
 * Written atomically (temporary file, fsync, rename, fsync of the directory), so a power cut mid-write
 * leaves the old record or the new one. A record that cannot be parsed or fails its checksum is
 * reported (ERR_BOOT_RECORD_CORRUPT) and a new count starts; a record that cannot be read or written
 * (ERR_BOOT_RECORD_IO) leaves the firmware running on what it knows. Neither ever stops the firmware.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { HandcheckError } from '../config/errors.js';
import type { BootIdentity } from '../hal/boot.js';
import type { Clock } from '../hal/clock.js';

/** In Modbus code order: the register holds the index. */
export const resetCauses = ['unknown', 'power-on', 'watchdog', 'orderly'] as const;
export type ResetCause = (typeof resetCauses)[number];

export const bootRecordFile = 'boot-record.json';
/** Unclean reset times kept; the schema's bound on `resetLoopCount`. */
const maxUncleanResets = 100;

/** The record cannot be used: not JSON, a field missing or of the wrong type, a checksum mismatch. */
export class BootRecordCorruptError extends HandcheckError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super('ERR_BOOT_RECORD_CORRUPT', `boot record ${file} is corrupt (${detail}); starting a new boot count`);
  }
}

/** The record or its directory cannot be read or written (EACCES, EROFS, ENOSPC, ...). */
export class BootRecordIoError extends HandcheckError {
  constructor(
    readonly file: string,
    operation: string,
    cause: unknown,
  ) {
    super('ERR_BOOT_RECORD_IO', `cannot ${operation} boot record ${file}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

interface StoredRecord {
  version: 1;
  bootId: string;
  bootCount: number;
  /** Board-clock ms. */
  bootedAt: number;
  lastResetCause: ResetCause;
  /** Board-clock ms at which the boots after an unclean reset (watchdog, unknown) began, oldest first. */
  uncleanResets: number[];
  /** `orderly` once the firmware of this boot stopped in order; `running` until then. */
  shutdown: 'orderly' | 'running';
}

export interface ResetLoopLimit {
  /** This many unclean resets within the window is a reset loop. */
  count: number;
  windowS: number;
}

export interface BootStatus {
  id: string;
  /** Boots counted since the record began (1 for the first). */
  count: number;
  /** Board-clock ms at which this boot began. */
  bootedAt: number;
  uptimeS: number;
  lastResetCause: ResetCause;
  /** Unclean resets (watchdog, unknown) within the reset-loop window (all those kept, when no limit is set). */
  uncleanResets: number;
  resetLoop: ResetLoopLimit | undefined;
  file: string;
}

export interface BootRecordOptions {
  stateDir: string;
  identity: BootIdentity;
  /** From the watchdog driver's boot status; undefined where it cannot tell or there is no watchdog. */
  resetByWatchdog: boolean | undefined;
  clock: Clock;
  logger: Logger;
  resetLoop?: ResetLoopLimit;
}

function checksum(body: StoredRecord): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The record in `text`, or why it cannot be used. */
function parseRecord(text: string, file: string): StoredRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new BootRecordCorruptError(file, `not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new BootRecordCorruptError(file, 'not a JSON object');
  const { sha256, ...rest } = parsed as Record<string, unknown>;
  const body = rest as unknown as StoredRecord;
  const problem =
    body.version !== 1
      ? `version ${JSON.stringify(body.version)}, expected 1`
      : typeof body.bootId !== 'string' || body.bootId === ''
        ? 'bootId is not a non-empty string'
        : !Number.isSafeInteger(body.bootCount) || body.bootCount < 1
          ? `bootCount ${JSON.stringify(body.bootCount)} is not a positive integer`
          : !isTime(body.bootedAt)
            ? 'bootedAt is not a number'
            : !(resetCauses as readonly unknown[]).includes(body.lastResetCause)
              ? `lastResetCause ${JSON.stringify(body.lastResetCause)} is not one of ${resetCauses.join(', ')}`
              : !Array.isArray(body.uncleanResets) || body.uncleanResets.length > maxUncleanResets || !body.uncleanResets.every(isTime)
                ? 'uncleanResets is not a list of times'
                : body.shutdown !== 'orderly' && body.shutdown !== 'running'
                  ? `shutdown ${JSON.stringify(body.shutdown)} is not orderly or running`
                  : sha256 !== checksum(body)
                    ? 'checksum mismatch'
                    : undefined;
  if (problem) throw new BootRecordCorruptError(file, problem);
  return body;
}

/** Writes `text` to `path` so that a crash or power cut leaves either the old file or the new one. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    const handle = await open(temporary, 'w', 0o644);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
  // The rename is durable only once the directory entry is.
  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

export class BootRecord {
  private constructor(
    private record: StoredRecord,
    private readonly file: string,
    private readonly options: BootRecordOptions,
  ) {}

  /** Reads the previous record, decides whether this is a new boot and why, and writes the record back. */
  static async open(options: BootRecordOptions): Promise<BootRecord> {
    const { stateDir, identity, resetByWatchdog, logger } = options;
    const file = join(stateDir, bootRecordFile);
    let previous: StoredRecord | undefined;
    try {
      previous = parseRecord(await readFile(file, 'utf8'), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') previous = undefined;
      else if (err instanceof BootRecordCorruptError) logger.warn({ err, code: err.code, file }, err.message);
      else {
        const error = new BootRecordIoError(file, 'read', err);
        logger.warn({ err: error, code: error.code, file }, `${error.message}; starting a new boot count`);
      }
    }
    let record: StoredRecord;
    if (previous && previous.bootId === identity.id) {
      record = { ...previous, shutdown: 'running' };
    } else {
      const cause: ResetCause = resetByWatchdog ? 'watchdog' : identity.powerOn ? 'power-on' : previous?.shutdown === 'orderly' ? 'orderly' : 'unknown';
      const unclean = cause === 'watchdog' || (cause === 'unknown' && previous !== undefined);
      record = {
        version: 1,
        bootId: identity.id,
        bootCount: (previous?.bootCount ?? 0) + 1,
        bootedAt: identity.bootedAt,
        lastResetCause: cause,
        uncleanResets: [...(previous?.uncleanResets ?? []), ...(unclean ? [identity.bootedAt] : [])].slice(-maxUncleanResets),
        shutdown: 'running',
      };
      logger.info({ bootCount: record.bootCount, cause, bootId: identity.id }, 'new boot recorded');
    }
    const bootRecord = new BootRecord(record, file, options);
    await bootRecord.write();
    return bootRecord;
  }

  private async write(): Promise<void> {
    try {
      await mkdir(this.options.stateDir, { recursive: true });
      await writeAtomically(this.file, `${JSON.stringify({ ...this.record, sha256: checksum(this.record) })}\n`);
    } catch (err) {
      const error = new BootRecordIoError(this.file, 'write', err);
      this.options.logger.warn({ err: error, code: error.code, file: this.file }, error.message);
    }
  }

  private recentUncleanResets(): number {
    const loop = this.options.resetLoop;
    if (!loop) return this.record.uncleanResets.length;
    const since = this.options.clock.now() - loop.windowS * 1000;
    return this.record.uncleanResets.filter((at) => at > since).length;
  }

  /** Why the unclean resets amount to a reset loop, or undefined while they do not. */
  resetLoop(): string | undefined {
    const loop = this.options.resetLoop;
    if (!loop) return undefined;
    const recent = this.recentUncleanResets();
    return recent >= loop.count ? `reset loop: ${recent} unclean resets (the watchdog's or of unknown cause) within ${loop.windowS} s (limit ${loop.count})` : undefined;
  }

  status(): BootStatus {
    return {
      id: this.record.bootId,
      count: this.record.bootCount,
      bootedAt: this.record.bootedAt,
      uptimeS: Math.max(0, Math.floor((this.options.clock.now() - this.record.bootedAt) / 1000)),
      lastResetCause: this.record.lastResetCause,
      uncleanResets: this.recentUncleanResets(),
      resetLoop: this.options.resetLoop,
      file: this.file,
    };
  }

  /** Records that this boot's firmware stopped in order, so a reboot that follows is `orderly`. */
  async markOrderly(): Promise<void> {
    this.record = { ...this.record, shutdown: 'orderly' };
    await this.write();
  }
}
