/**
 * Claim 3, before mode: each SYN for the service's port is held in an NFQUEUE (nfqueue.ts) behind the
 * rules of iptables.ts until the service has a verdict. Ok: NF_ACCEPT, the kernel answers SYN/ACK and
 * the handshake completes. Abnormal: NF_REPEAT with the mark bit, the REJECT rule answers RST, and the
 * client never saw a SYN/ACK - so every plain connect check (nc -z, a load balancer's `check`, a
 * Kubernetes tcpSocket probe) is a deep check.
 *
 * Verdicts come from the gate's VerdictSource like in after mode: single flight, deadline, claim-5
 * reuse. What must hold while the event loop does not run is left to the kernel (nftables.ts): while a
 * verdict is reusable its SYNs never reach the queue, and when the firmware stops refreshing its
 * liveness, SYNs bypass the queue (fail-open). A socket reaching the server was born from a SYN
 * accepted here, and takes that SYN's verdict without a second diagnosis; one with no SYN on record
 * (let through by the kernel, accepted before the rules were in, or after its record expired) is
 * admitted as in after mode: it reuses the verdict or is diagnosed.
 */
import type { AddressInfo, Socket } from 'node:net';
import type { Admission, AdmissionContext } from './admission.js';
import { AfterAdmission } from './after.js';
import { GateModeUnavailableError } from './errors.js';
import { type IpFamily, SynRules, iptablesVariantFromEnv } from './iptables.js';
import { SynSets } from './nftables.js';
import { type QueueSubscription, type QueueVerdicts, type QueuedPacket, type SynHandler, hasNetAdmin, loadNfqueueAddon, subscribeQueue } from './nfqueue.js';
import type { Verdict } from '../verdict.js';

/** The mark bit an abnormal verdict sets; the REJECT rule matches it. */
export const REJECT_MARK_BIT = 0x1;

/** The mark bit the nftables chain sets on SYNs the kernel lets past the queue. */
export const BYPASS_MARK_BIT = 0x2;

/**
 * How long an answered SYN is remembered, in real time: long enough for the client's retransmissions
 * (1 s, 3 s, 7 s ...) to get the same answer and for the handshake to reach accept(); records live
 * between one and two of these.
 */
const ANSWER_MEMORY_MS = 10_000;

/** Strips the IPv4-mapped prefix a dual-stack server reports, to match the addresses in the IPv4 header. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function socketTuple(socket: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
  return `${plainAddress(remoteAddress)}|${remotePort}|${plainAddress(localAddress)}|${localPort}`;
}

function packetTuple(packet: QueuedPacket): string {
  return `${packet.src}|${packet.sport}|${packet.dst}|${packet.dport}`;
}

function packetPeer(packet: QueuedPacket): string {
  return packet.family === 6 ? `[${packet.src}]:${packet.sport}` : `${packet.src}:${packet.sport}`;
}

/** Which families and destination addresses the rules need for a server bound to `address`. */
export function ruleTargets(address: AddressInfo): Array<{ family: IpFamily; destination: string | undefined }> {
  if (address.address === '0.0.0.0') return [{ family: 4, destination: undefined }];
  // A server on :: is dual-stack on Linux: it takes IPv4 too.
  if (address.address === '::') return [{ family: 4, destination: undefined }, { family: 6, destination: undefined }];
  if (address.family === 'IPv6') return [{ family: 6, destination: address.address }];
  return [{ family: 4, destination: address.address }];
}

/**
 * Remembers keys for between one and two periods without a timestamp per entry: lookups read two
 * generations, and every period the older one is dropped.
 */
class Memory<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();

  get(key: string): V | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  set(key: string, value: V): void {
    this.current.set(key, value);
  }

  take(key: string): V | undefined {
    const value = this.get(key);
    if (value !== undefined) {
      this.current.delete(key);
      this.previous.delete(key);
    }
    return value;
  }

  age(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  clear(): void {
    this.current.clear();
    this.previous.clear();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}

/** SYNs waiting for the running diagnosis: one entry per SYN, with the ids of its retransmissions. */
interface HeldSyn {
  packet: QueuedPacket;
  ids: number[];
}

export interface BeforeStats {
  /** SYNs taken from the queue, retransmissions included. */
  syns: number;
  /** Retransmitted SYNs that joined a held SYN or got its earlier answer instead of a diagnosis. */
  retransmits: number;
  /**
   * SYNs answered at once with a reused verdict (claim 5) from the queue: those that arrived before the
   * kernel held the verdict. The kernel's own (never queued) are counted by the gate, after accept.
   */
  reused: number;
  /** SYNs answered with NF_ACCEPT. */
  accepted: number;
  /** SYNs answered with RST (NF_REPEAT and the mark bit). */
  reset: number;
  /** SYNs held now, waiting for a verdict. */
  held: number;
}

export class BeforeAdmission implements Admission, SynHandler {
  readonly pauseOnConnect = true;
  private readonly ctx: AdmissionContext;
  private readonly failClosed: boolean;
  private readonly queueNum: number;
  private readonly livenessMs: number;
  /** Sockets that arrive with no SYN on record are diagnosed after accept. */
  private readonly fallback: AfterAdmission;
  private held = new Map<string, HeldSyn>();
  private waitingForVerdict = false;
  private out: QueueVerdicts | undefined;
  /** Answer per SYN (tuple and sequence number), for retransmissions that arrive after it. */
  private readonly answered = new Memory<Verdict>();
  /** Ok verdict per accepted connection tuple, for the socket the handshake will produce. */
  private readonly accepted = new Memory<Verdict>();
  private agingTimer: NodeJS.Timeout | undefined;
  private subscription: QueueSubscription | undefined;
  private stopWatching: (() => void) | undefined;
  private rules: SynRules | undefined;
  private sets: SynSets | undefined;
  private closed = false;
  private readonly counters = { syns: 0, retransmits: 0, reused: 0, accepted: 0, reset: 0 };

  constructor(ctx: AdmissionContext) {
    const { service, policy } = ctx;
    try {
      loadNfqueueAddon();
    } catch (err) {
      throw new GateModeUnavailableError(service, 'before', err instanceof Error ? err.message : String(err), { cause: err });
    }
    if (hasNetAdmin() === false) {
      throw new GateModeUnavailableError(
        service,
        'before',
        'holding SYNs in an NFQUEUE and installing iptables rules needs CAP_NET_ADMIN, which this process lacks ' +
          '(run as root, or with systemd AmbientCapabilities=CAP_NET_ADMIN); use mode "after" otherwise',
      );
    }
    this.ctx = ctx;
    this.failClosed = policy.failClosed;
    this.queueNum = policy.queue;
    this.livenessMs = ctx.livenessMs;
    this.fallback = new AfterAdmission(ctx);
  }

  get waiting(): number {
    return this.fallback.waiting;
  }

  get queueStats(): BeforeStats {
    let held = 0;
    for (const syn of this.held.values()) held += syn.ids.length;
    return { ...this.counters, held };
  }

  /**
   * Binds the queue, installs the table and rules (replacing a crashed run's) for the address just
   * bound, then writes the liveness element: from then on SYNs wait for verdicts.
   */
  async start(address: AddressInfo): Promise<void> {
    const targets = ruleTargets(address);
    this.subscription = subscribeQueue(
      this.queueNum,
      targets.map((t) => t.family),
      address.port,
      this,
      { failOpen: !this.failClosed },
    );
    this.rules = new SynRules({
      service: this.ctx.service,
      port: address.port,
      queue: this.queueNum,
      failClosed: this.failClosed,
      markBit: REJECT_MARK_BIT,
      bypassBit: BYPASS_MARK_BIT,
      targets,
      variant: iptablesVariantFromEnv(),
    });
    try {
      const { replaced, replacedTable } = await this.rules.install();
      if (replaced > 0 || replacedTable) this.ctx.log.warn({ port: address.port, replaced, replacedTable }, 'before mode: replaced rules left by an earlier run');
      this.sets = new SynSets(address.port, this.livenessMs, this.ctx.log);
      this.sets.start();
    } catch (err) {
      this.sets?.stop();
      this.sets = undefined;
      await this.rules.remove().catch(() => undefined);
      this.subscription.close();
      this.subscription = undefined;
      throw err;
    }
    // The kernel's timeouts run on the wall clock; the verdict source counts on the gate's.
    this.stopWatching = this.ctx.verdicts.onReusableChange((remainingMs) => this.sets?.reuseUntil(remainingMs > 0 ? Date.now() + remainingMs : 0));
    this.agingTimer = setInterval(() => {
      this.answered.age();
      this.accepted.age();
    }, ANSWER_MEMORY_MS);
    this.agingTimer.unref();
    this.ctx.log.info(
      { port: address.port, queue: this.queueNum, failClosed: this.failClosed, livenessMs: this.livenessMs, families: targets.map((t) => t.family) },
      'before mode: SYNs held until the verdict',
    );
  }

  /** Removes the rules and the table, then lets go of the queue: from then on the kernel answers SYNs itself. */
  async stop(): Promise<void> {
    clearInterval(this.agingTimer);
    this.agingTimer = undefined;
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.sets?.stop();
    this.sets = undefined;
    try {
      await this.rules?.remove();
    } finally {
      this.subscription?.close();
      this.subscription = undefined;
    }
  }

  onSyn(packet: QueuedPacket, out: QueueVerdicts): void {
    this.out = out;
    this.counters.syns++;
    if (this.closed) {
      this.answer(packet, packet.id, undefined);
      return;
    }
    const tuple = packetTuple(packet);
    const key = `${tuple}|${packet.seq}`;
    const held = this.held.get(key);
    if (held !== undefined) {
      this.counters.retransmits++;
      held.ids.push(packet.id);
      return;
    }
    const earlier = this.answered.get(key);
    if (earlier !== undefined) {
      this.counters.retransmits++;
      this.answer(packet, packet.id, earlier);
      return;
    }
    const reused = this.ctx.verdicts.reusable();
    if (reused !== undefined) {
      this.counters.reused++;
      this.answered.set(key, reused);
      this.answer(packet, packet.id, reused);
      return;
    }
    this.held.set(key, { packet, ids: [packet.id] });
    if (this.waitingForVerdict) return;
    this.waitingForVerdict = true;
    void this.ctx.verdicts.diagnose().then(this.flush);
  }

  admit(socket: Socket): void {
    // While the kernel holds the verdict no SYN is queued, so nothing is on record: skip the lookup.
    const tuple = this.accepted.size === 0 ? undefined : socketTuple(socket);
    const synVerdict = tuple === undefined ? undefined : this.accepted.take(tuple);
    if (synVerdict === undefined) {
      this.fallback.admit(socket);
      return;
    }
    // A diagnosis that finished abnormal after this SYN was accepted outranks the SYN's verdict, as it
    // would reset the connection had it been held already.
    const last = this.ctx.verdicts.lastVerdict;
    this.ctx.decide(socket, last !== undefined && !last.ok ? last : synVerdict);
  }

  /** The server has stopped listening: held SYNs get RST now, later ones too until the rules are gone. */
  close(): Socket[] {
    this.closed = true;
    this.sets?.reuseUntil(0);
    const held = [...this.held.values()];
    this.held = new Map();
    for (const syn of held) for (const id of syn.ids) this.answer(syn.packet, id, undefined);
    this.answered.clear();
    this.accepted.clear();
    return this.fallback.close();
  }

  private readonly flush = (verdict: Verdict): void => {
    this.waitingForVerdict = false;
    const batch = [...this.held.entries()];
    this.held = new Map();
    for (const [key, syn] of batch) {
      this.answered.set(key, verdict);
      for (const id of syn.ids) this.answer(syn.packet, id, verdict);
    }
  };

  /** `verdict` undefined: the gate is closing, refuse. */
  private answer(packet: QueuedPacket, id: number, verdict: Verdict | undefined): void {
    const out = this.out;
    if (out === undefined) return;
    try {
      if (verdict?.ok) {
        this.accepted.set(packetTuple(packet), verdict);
        out.accept(id);
        this.counters.accepted++;
        return;
      }
      out.repeat(id, packet.mark | REJECT_MARK_BIT);
      this.counters.reset++;
      if (verdict !== undefined) this.ctx.refused(packetPeer(packet), verdict);
    } catch (err) {
      // The kernel keeps the packet until the queue closes; nothing better to do than say so.
      this.ctx.log.error({ err, peer: packetPeer(packet), id }, 'before mode: verdict not delivered to the kernel');
    }
  }
}
