/**
 * What before mode leaves to the kernel, so that it holds while the firmware's event loop does not run
 * (a SIGSTOPped, swapped-out or wedged process): per service port, an nftables table `inet
 * handcheck_PORT` with two sets whose one element each has a timeout the firmware keeps writing.
 *
 *   set alive     the firmware's liveness: refreshed every livenessMs / 4 with a timeout of livenessMs
 *   set reusable  the reusable verdict (claim 5): "accept this port's SYNs until T", its timeout the
 *                 verdict's remaining age, never more than livenessMs; emptied at once when withdrawn
 *   chain syn     hook input, priority filter - 10 (before iptables' INPUT): a SYN for the port gets
 *                 the bypass mark bit when `alive` lacks the port (fail-open only) or `reusable` has it
 *
 * The NFQUEUE rule of iptables.ts leaves SYNs with the bypass bit alone, so they go on through INPUT
 * as if the gate's rules were not there and the socket they make is diagnosed after accept, reusing
 * the verdict. Why this shape:
 * - nftables set elements take timeouts in milliseconds and lapse by themselves, exactly on lookup.
 *   ipset (iptables `-m set`) counts timeouts in whole seconds: too coarse for a sub-second liveness
 *   or a verdict age of a few hundred ms.
 * - The queue itself stays an iptables NFQUEUE rule: nft's own `queue` statement needs
 *   CONFIG_NFT_QUEUE, which kernels (the CI machine's among them) may lack, while the xtables target
 *   works on iptables-nft and iptables-legacy alike.
 * - The chain marks instead of accepting because an accept in one nftables base chain does not skip
 *   the base chains of other tables on the same hook: iptables' INPUT would still queue the SYN. A
 *   mark bit is seen by both, whichever iptables backend runs.
 * - Capping the verdict's timeout at livenessMs means the kernel never holds a verdict longer than
 *   the firmware is alive: with `failClosed` a frozen firmware's port drops SYNs within livenessMs.
 *
 * The table is created and removed with the nft tool (Debian package nftables), once per start and
 * stop; elements are written through the addon (native/src/kernel_sets.cc) over netlink, a few tens
 * of microseconds each, so that a refresh forks nothing and a withdrawal is in force when it returns.
 */
import type { Logger } from 'pino';
import { HandcheckError, type HandcheckErrorOptions } from '../../config/errors.js';
import { commandDetail, isPermissionProblem, runCommand, runCommandSync } from './commands.js';
import type { IpFamily } from './iptables.js';
import { type NativeKernelSets, loadNfqueueAddon } from './nfqueue.js';

/** An nft command, or a write of the sets' elements, failed; `command` names which. */
export class NftablesError extends HandcheckError {
  readonly command: string;

  constructor(command: string, message: string, options: HandcheckErrorOptions = {}) {
    super('ERR_NFTABLES', message, options);
    this.command = command;
  }
}

export const ALIVE_SET = 'alive';
export const REUSABLE_SET = 'reusable';

/** Liveness writes per livenessMs: three may be late before the element lapses. */
const REFRESHES_PER_LIVENESS = 4;

export interface SynTableSpec {
  port: number;
  /** Tag for people reading `nft list ruleset`, as the iptables rules' comment. */
  comment: string;
  /** Without the liveness rule: a frozen firmware's SYNs wait in the queue (and are dropped). */
  failClosed: boolean;
  /** The mark bit that takes a SYN past the NFQUEUE rule. */
  bypassBit: number;
  targets: ReadonlyArray<{ family: IpFamily; destination: string | undefined }>;
}

export function tableName(port: number): string {
  return `handcheck_${port}`;
}

function destinationMatch(family: IpFamily, destination: string | undefined): string {
  if (family === 4) return destination === undefined ? 'meta nfproto ipv4' : `meta nfproto ipv4 ip daddr ${destination}`;
  return destination === undefined ? 'meta nfproto ipv6' : `meta nfproto ipv6 ip6 daddr ${destination}`;
}

/** The nft script that replaces the port's table (a stale one of a killed run included) atomically. */
export function tableScript(spec: SynTableSpec): string {
  const table = `inet ${tableName(spec.port)}`;
  const bypass = `meta mark set meta mark | 0x${spec.bypassBit.toString(16)}`;
  const rules: string[] = [];
  for (const { family, destination } of spec.targets) {
    const syn = `${destinationMatch(family, destination)} tcp dport ${spec.port} tcp flags & (fin | syn | rst | ack) == syn`;
    if (!spec.failClosed) rules.push(`${syn} tcp dport != @${ALIVE_SET} ${bypass}`);
    rules.push(`${syn} tcp dport @${REUSABLE_SET} ${bypass}`);
  }
  return [
    // `add` then `delete` cannot fail whether or not the table exists; the three run as one transaction.
    `add table ${table}`,
    `delete table ${table}`,
    `table ${table} {`,
    `  comment "${spec.comment}"`,
    `  set ${ALIVE_SET} { type inet_service; flags timeout; }`,
    `  set ${REUSABLE_SET} { type inet_service; flags timeout; }`,
    '  chain syn {',
    '    type filter hook input priority filter - 10; policy accept;',
    ...rules.map((rule) => `    ${rule}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

function removeScript(port: number): string {
  const table = `inet ${tableName(port)}`;
  return `add table ${table}\ndelete table ${table}\n`;
}

/** Whether `nft list tables` output has the port's table. */
export function hasTable(listing: string, port: number): boolean {
  return listing.split('\n').some((line) => line.trim() === `table inet ${tableName(port)}`);
}

function nftError(command: string, err: unknown, what: string): NftablesError {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new NftablesError(command, `${command} not found: ${what} needs the Debian package nftables`, { cause: err });
  }
  const detail = commandDetail(err);
  const permission = isPermissionProblem(detail) ? '; this needs CAP_NET_ADMIN' : '';
  return new NftablesError(command, `${command} failed to ${what}: ${detail}${permission}`, { cause: err });
}

/** Creates the port's table, replacing one left by a killed run; resolves whether there was one. */
export async function installTable(spec: SynTableSpec): Promise<{ replaced: boolean }> {
  const listing = await runCommand('nft', ['list', 'tables', 'inet'], undefined, `list the nftables tables for port ${spec.port}`, nftError);
  await runCommand('nft', ['-f', '-'], tableScript(spec), `create the before-mode table for port ${spec.port}`, nftError);
  return { replaced: hasTable(listing, spec.port) };
}

/** Deletes the port's table if it is there. */
export async function removeTable(port: number): Promise<void> {
  await runCommand('nft', ['-f', '-'], removeScript(port), `delete the before-mode table for port ${port}`, nftError);
}

/** As removeTable(), blocking: for exit paths. */
export function removeTableSync(port: number): void {
  runCommandSync('nft', ['-f', '-'], removeScript(port), `delete the before-mode table for port ${port}`, nftError);
}

/** A refusal of the kernel from the addon (its message names the table) as an NftablesError. */
function netlinkError(err: unknown, port: number): NftablesError {
  const detail = err instanceof Error ? err.message : String(err);
  return new NftablesError('netlink', detail.includes(tableName(port)) ? detail : `nftables table inet ${tableName(port)}: ${detail}`, { cause: err });
}

/**
 * Keeps the elements of one port's table: the liveness element on a timer, the reusable verdict when
 * it changes. A write that fails is logged once until one succeeds again; meanwhile the elements lapse
 * by themselves, which fails open (or, with failClosed, queues SYNs as if no verdict were reusable).
 */
export class SynSets {
  private readonly port: number;
  private readonly livenessMs: number;
  private readonly log: Logger;
  private readonly native: NativeKernelSets;
  private timer: NodeJS.Timeout | undefined;
  /** Wall-clock end of the reusable verdict; 0 when none. */
  private reusableUntil = 0;
  private failing = false;
  private stopped = false;

  constructor(port: number, livenessMs: number, log: Logger) {
    this.port = port;
    this.livenessMs = livenessMs;
    this.log = log;
    const { KernelSets } = loadNfqueueAddon();
    try {
      this.native = new KernelSets(tableName(port));
    } catch (err) {
      throw netlinkError(err, port);
    }
  }

  /** Writes the liveness element now and then every livenessMs / 4. Throws if the first write fails. */
  start(): void {
    try {
      this.native.replace(this.port, this.entries(true));
    } catch (err) {
      throw netlinkError(err, this.port);
    }
    this.timer = setInterval(() => this.write(true), this.livenessMs / REFRESHES_PER_LIVENESS);
    this.timer.unref();
  }

  /** Lets the kernel accept the port's SYNs until `epochMs` (wall clock); 0 withdraws at once. */
  reuseUntil(epochMs: number): void {
    this.reusableUntil = epochMs;
    if (!this.stopped) this.write(false);
  }

  /** Stops the refresh; what is in the kernel lapses, or goes with the table. Idempotent. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.native.close();
  }

  private entries(alive: boolean): Array<{ set: string; timeoutMs: number }> {
    const reusable = { set: REUSABLE_SET, timeoutMs: Math.max(0, Math.min(this.reusableUntil - Date.now(), this.livenessMs)) };
    return alive ? [{ set: ALIVE_SET, timeoutMs: this.livenessMs }, reusable] : [reusable];
  }

  private write(alive: boolean): void {
    try {
      this.native.replace(this.port, this.entries(alive));
      if (this.failing) this.log.info({ port: this.port }, 'before mode: the kernel sets are written again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) {
        this.log.error({ err: netlinkError(err, this.port), port: this.port }, 'before mode: cannot write the kernel sets; liveness and the reusable verdict lapse until it works again');
      }
      this.failing = true;
    }
  }
}
