/**
 * The gate of a `guard` service: a port another process on the appliance listens on (a vendor Modbus
 * or OPC UA daemon, an MQTT broker, a web server). handcheck holds the port's SYNs in an NFQUEUE with
 * the same rules, nftables sets and fail-open as before mode (before.ts) and answers each from the
 * service's self-diagnosis: NF_ACCEPT, and the kernel hands the handshake to the daemon's listening
 * socket; or RST. No byte of the connection passes through handcheck and the daemon is not changed.
 *
 * Because the connections are the daemon's, the gate holds none: there is no held connection whose
 * verdict a new one could reuse (claim 5), no recheck that could reset one, no idle timer. Every SYN
 * that reaches the queue is diagnosed; SYNs that arrive while a diagnosis runs share it, and a
 * retransmitted SYN gets the answer its first one got.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { GatePolicy } from '../../config/board-config.js';
import { type Clock, systemClock } from '../../hal/clock.js';
import type { AdmissionContext } from './admission.js';
import { BeforeAdmission } from './before.js';
import { GateClosedError } from './errors.js';
import type { GateEvents, GateSettings, GateStats } from './gate.js';
import { VerdictSource } from './verdicts.js';
import type { Diagnose, Failure, Verdict } from '../verdict.js';

export interface GuardOptions {
  service: string;
  /** The service's resolved gate policy; a guard reads `failClosed` and `queue`. */
  policy: Readonly<GatePolicy>;
  diagnose: Diagnose;
  logger: Logger;
  clock?: Clock;
  /** Deadline of one self-diagnosis. Default 2000 ms. */
  diagnosisTimeoutMs?: number;
  /** As GateOptions.livenessMs: the kernel lets SYNs past the queue once the firmware is this late. Default 500 ms. */
  livenessMs?: number;
}

function summary(verdict: Verdict): { verdict: 'ok' | 'abnormal'; failures: Failure[]; durationMs: number } {
  return { verdict: verdict.ok ? 'ok' : 'abnormal', failures: verdict.failures, durationMs: verdict.durationMs };
}

export class Guard extends EventEmitter<GateEvents> {
  readonly service: string;
  readonly policy: Readonly<GateSettings>;
  private readonly log: Logger;
  private readonly verdicts: VerdictSource;
  private readonly admission: BeforeAdmission;
  private state: 'idle' | 'guarding' | 'closing' = 'idle';
  private closing: Promise<void> | undefined;
  private bound: AddressInfo | undefined;
  private reset = 0;

  constructor(options: GuardOptions) {
    super();
    this.service = options.service;
    this.policy = Object.freeze({
      ...options.policy,
      mode: 'before',
      reuse: 'never',
      diagnosisTimeoutMs: options.diagnosisTimeoutMs ?? 2000,
      closeTimeoutMs: 0,
      livenessMs: options.livenessMs ?? 500,
    });
    this.log = options.logger.child({ subsystem: 'gate', service: options.service, kind: 'guard' });
    this.verdicts = new VerdictSource({
      service: this.service,
      diagnose: options.diagnose,
      clock: options.clock ?? systemClock,
      timeoutMs: this.policy.diagnosisTimeoutMs,
      reuse: 'never',
      maxAgeMs: 0,
      onVerdict: () => undefined,
    });
    const ctx: AdmissionContext = {
      service: this.service,
      policy: this.policy,
      verdicts: this.verdicts,
      log: this.log,
      // The daemon accepts the connections; no socket ever reaches handcheck.
      decide: (socket) => socket.destroy(),
      refused: (peer, verdict) => this.refused(peer, verdict),
      livenessMs: this.policy.livenessMs,
    };
    this.admission = new BeforeAdmission(ctx);
  }

  /**
   * Holds the SYNs for `host:port` (an IP address; 0.0.0.0 or :: for every address, as the daemon
   * binds) from now on: queue bound, rules and table installed.
   */
  async start(host: string, port: number): Promise<AddressInfo> {
    if (this.state !== 'idle') throw new GateClosedError(this.service, `cannot guard ${host}:${port} again`);
    const family = isIP(host) === 6 ? 'IPv6' : 'IPv4';
    const address: AddressInfo = { address: host, family, port };
    await this.admission.start(address);
    if (this.state !== 'idle') {
      await this.admission.stop();
      throw new GateClosedError(this.service, `stopped guarding ${host}:${port}`);
    }
    this.state = 'guarding';
    this.bound = address;
    this.log.info({ address: host, port, policy: this.policy }, 'guard holding SYNs for a port another process listens on');
    return address;
  }

  /** The guarded address while guarding. */
  address(): AddressInfo | undefined {
    return this.bound;
  }

  stats(): GateStats {
    const queue = this.admission.queueStats;
    return {
      service: this.service,
      mode: 'before',
      listening: this.state === 'guarding',
      connections: 0,
      accepted: queue.accepted,
      reused: 0,
      reset: this.reset,
      closed: 0,
      diagnosed: this.verdicts.diagnosed,
      diagnosisTimeouts: this.verdicts.timeouts,
      rejectedLimit: 0,
      idleClosed: 0,
      recheckReset: 0,
      held: 0,
      waiting: queue.held,
      lastVerdict: this.verdicts.lastVerdict,
      queue,
    };
  }

  /** Refuses the SYNs still held, removes rules and table; from then on the daemon gets every SYN. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closing';
      this.admission.close();
      this.verdicts.close();
      await this.admission.stop().catch((err: unknown) => this.log.error({ err }, 'guard did not stop cleanly'));
      this.log.info({ accepted: this.admission.queueStats.accepted, reset: this.reset }, 'guard closed');
    })();
    return this.closing;
  }

  private refused(peer: string, verdict: Verdict): void {
    this.reset++;
    this.log.warn({ action: 'reset', peer, ...summary(verdict) }, 'connection reset before the handshake: self-diagnosis abnormal');
    if (this.listenerCount('decision') > 0) this.emit('decision', { service: this.service, action: 'reset', peer, verdict });
  }
}
