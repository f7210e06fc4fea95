/**
 * The NFQUEUE side of before mode: loads the optional native addon (native/, built on libnetfilter_queue)
 * and shares one kernel queue per queue number between the services of this process, routing each held
 * SYN to the service that owns its destination port. Verdicts go back by packet id, so a SYN waiting
 * for a diagnosis never holds up the others.
 */
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { HandcheckError, type HandcheckErrorOptions } from '../../config/errors.js';
import { loadNativeAddon } from '../../hal/linux/native-addon.js';

/** One queued packet as the addon reports it. */
export interface QueuedPacket {
  /** Kernel packet id: the handle of the verdict. */
  id: number;
  /** The packet's netfilter mark when it was queued. */
  mark: number;
  /** 4 or 6; 0 when the payload was not a TCP segment the addon could read. */
  family: 0 | 4 | 6;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** TCP sequence number: with the addresses and ports it tells a retransmitted SYN from a new one. */
  seq: number;
}

interface NativeQueue {
  accept(id: number): boolean;
  repeat(id: number, mark: number): boolean;
  close(): void;
}

/** The elements of the sets of one nftables table `inet TABLE` (native/src/kernel_sets.cc). */
export interface NativeKernelSets {
  /**
   * In one transaction, empties each named set and, when `timeoutMs` > 0, gives it the one element
   * `port`, lapsing after `timeoutMs`. Throws with `errno` when the kernel refuses.
   */
  replace(port: number, sets: ReadonlyArray<{ set: string; timeoutMs: number }>): void;
  close(): void;
}

interface NativeBinding {
  Queue: new (queueNum: number, failOpen: boolean, maxLen: number, onPackets: (packets: QueuedPacket[]) => void) => NativeQueue;
  KernelSets: new (table: string) => NativeKernelSets;
}

const ADDON_FILE = 'handcheck_nfqueue.node';
const ADDON_ENV = 'HANDCHECK_NFQUEUE_ADDON';

/** The NFQUEUE addon is not built or cannot be loaded on this host. */
export class NfqueueUnavailableError extends HandcheckError {
  constructor(message: string, options: HandcheckErrorOptions = {}) {
    super('ERR_NFQUEUE_UNAVAILABLE', message, options);
  }
}

/** The kernel refused an NFQUEUE operation (no CAP_NET_ADMIN, queue taken by another process, ...). */
export class NfqueueError extends HandcheckError {
  readonly queue: number;
  /** Linux errno name (`EPERM`, `EBUSY`, ...) when the kernel gave one. */
  readonly errno: string | undefined;

  constructor(queue: number, message: string, errno: string | undefined, options: HandcheckErrorOptions = {}) {
    super('ERR_NFQUEUE', message, options);
    this.queue = queue;
    this.errno = errno;
  }
}

function errnoName(err: unknown): string | undefined {
  const value = typeof err === 'object' && err !== null ? (err as { errno?: unknown }).errno : undefined;
  if (typeof value !== 'number') return undefined;
  return Object.entries(osConstants.errno).find(([, n]) => n === value)?.[0];
}

const CAP_NET_ADMIN = 12n;

/** Whether this process has CAP_NET_ADMIN in its effective set; undefined where /proc does not tell. */
export function hasNetAdmin(statusPath = '/proc/self/status'): boolean | undefined {
  let status: string;
  try {
    status = readFileSync(statusPath, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status);
  if (!match?.[1]) return undefined;
  return ((BigInt(`0x${match[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

const TAKEN = 'another process is bound to this queue number; give the service another gate.queue';

/** The kernel says EPERM both without CAP_NET_ADMIN and when another process owns the queue. */
function hint(errno: string | undefined): string | undefined {
  if (errno === 'EBUSY') return TAKEN;
  if (errno !== 'EPERM') return undefined;
  if (hasNetAdmin() === true) return TAKEN;
  return 'the process needs CAP_NET_ADMIN (run as root or grant it with systemd AmbientCapabilities=CAP_NET_ADMIN)';
}

function nativeError(queue: number, what: string, err: unknown): NfqueueError {
  const errno = errnoName(err);
  const detail = err instanceof Error ? err.message : String(err);
  const why = hint(errno);
  return new NfqueueError(queue, `NFQUEUE ${queue}: ${what}: ${detail}${why ? `; ${why}` : ''}`, errno, { cause: err });
}

let binding: NativeBinding | undefined;

/** Loads the addon once; throws NfqueueUnavailableError naming what is missing. */
export function loadNfqueueAddon(): NativeBinding {
  if (binding) return binding;
  const addon = loadNativeAddon<Partial<NativeBinding>>(ADDON_FILE, ADDON_ENV);
  if (addon.state === 'missing') {
    throw new NfqueueUnavailableError(
      `the NFQUEUE addon is not built (looked for ${addon.lookedFor.join(', ')}); build it with "npm run build:native", ` +
        'which needs the Debian packages build-essential, python3, libnetfilter-queue-dev, libnftnl-dev and libmnl-dev',
    );
  }
  if (addon.state === 'unloadable') {
    throw new NfqueueUnavailableError(
      `the NFQUEUE addon ${addon.path} cannot be loaded: ${addon.reason}; install the Debian packages libnetfilter-queue1, libnftnl11 and libmnl0 ` +
        'or rebuild it with "npm run build:native"',
      { cause: addon.cause },
    );
  }
  const loaded = addon.binding;
  if (typeof loaded.Queue !== 'function' || typeof loaded.KernelSets !== 'function') {
    throw new NfqueueUnavailableError(`the NFQUEUE addon ${addon.path} was built from older sources (it has no kernel sets); rebuild it with "npm run build:native"`);
  }
  binding = loaded as NativeBinding;
  return binding;
}

/** Takes the SYNs of one destination port (and address family) that reach a shared queue. */
export interface SynHandler {
  onSyn(packet: QueuedPacket, verdicts: QueueVerdicts): void;
}

/** How a handler answers a packet of the queue it subscribed to. */
export interface QueueVerdicts {
  /** NF_ACCEPT: the kernel goes on and answers the SYN with SYN/ACK. */
  accept(id: number): void;
  /** NF_REPEAT with `mark`: the packet walks the chain again, where the REJECT rule matching it sends RST. */
  repeat(id: number, mark: number): void;
}

export interface QueueOptions {
  /** Kernel fail-open flag: accept instead of drop when the queue is full. */
  failOpen: boolean;
  /** Packets the kernel may hold for this queue. Default 4096. */
  maxLen?: number;
}

function routeKey(family: number, port: number): string {
  return `${family}/${port}`;
}

/** One open kernel queue and the handlers subscribed to it. */
class SharedQueue implements QueueVerdicts {
  readonly num: number;
  readonly failOpen: boolean;
  private readonly native: NativeQueue;
  private readonly routes = new Map<string, SynHandler>();

  constructor(num: number, options: QueueOptions) {
    this.num = num;
    this.failOpen = options.failOpen;
    const { Queue } = loadNfqueueAddon();
    try {
      this.native = new Queue(num, options.failOpen, options.maxLen ?? 4096, (packets) => this.dispatch(packets));
    } catch (err) {
      throw nativeError(num, 'cannot bind the queue', err);
    }
  }

  get empty(): boolean {
    return this.routes.size === 0;
  }

  add(families: readonly (4 | 6)[], port: number, handler: SynHandler): void {
    for (const family of families) {
      const key = routeKey(family, port);
      if (this.routes.has(key)) {
        throw new NfqueueError(this.num, `NFQUEUE ${this.num}: IPv${family} port ${port} is already held by another service of this process`, undefined);
      }
    }
    for (const family of families) this.routes.set(routeKey(family, port), handler);
  }

  remove(handler: SynHandler): void {
    for (const [key, value] of this.routes) if (value === handler) this.routes.delete(key);
  }

  close(): void {
    this.native.close();
  }

  accept(id: number): void {
    try {
      this.native.accept(id);
    } catch (err) {
      throw nativeError(this.num, `cannot accept packet ${id}`, err);
    }
  }

  repeat(id: number, mark: number): void {
    try {
      this.native.repeat(id, mark >>> 0);
    } catch (err) {
      throw nativeError(this.num, `cannot repeat packet ${id}`, err);
    }
  }

  private dispatch(packets: QueuedPacket[]): void {
    for (const packet of packets) {
      const handler = packet.family === 0 ? undefined : this.routes.get(routeKey(packet.family, packet.dport));
      try {
        // Nobody owns it (a stale rule of a closed service, an unreadable packet): let it through, as
        // the kernel would with the firmware gone.
        if (handler === undefined) this.accept(packet.id);
        else handler.onSyn(packet, this);
      } catch (err) {
        // Thrown here it would reach the addon's callback and take the process down with every held SYN.
        process.emitWarning(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}

const queues = new Map<number, SharedQueue>();

/** A handler's subscription to a shared queue; `close` unsubscribes and closes the queue when it was the last. */
export interface QueueSubscription {
  readonly queue: number;
  close(): void;
}

/**
 * Subscribes `handler` to the SYNs for `port` reaching queue `num`, opening the queue on first use.
 * Services sharing a queue number must agree on fail-open.
 */
export function subscribeQueue(num: number, families: readonly (4 | 6)[], port: number, handler: SynHandler, options: QueueOptions): QueueSubscription {
  if (!Number.isInteger(num) || num < 0 || num > 65535) {
    throw new NfqueueError(num, `NFQUEUE number must be an integer 0-65535, got ${String(num)}`, undefined);
  }
  let queue = queues.get(num);
  if (queue === undefined) {
    queue = new SharedQueue(num, options);
    queues.set(num, queue);
  } else if (queue.failOpen !== options.failOpen) {
    throw new NfqueueError(num, `NFQUEUE ${num} is open ${queue.failOpen ? 'fail-open' : 'fail-closed'} by another service of this process; use another gate.queue`, undefined);
  }
  const shared = queue;
  try {
    shared.add(families, port, handler);
  } catch (err) {
    if (shared.empty) {
      shared.close();
      queues.delete(num);
    }
    throw err;
  }
  let open = true;
  return {
    queue: num,
    close: () => {
      if (!open) return;
      open = false;
      shared.remove(handler);
      if (shared.empty) {
        shared.close();
        queues.delete(num);
      }
    },
  };
}
