/**
 * The gate: the socket layer of one service (patent item 5). Every connection the service accepts gets
 * a verdict from the self-diagnosis, or reuses the verdict of a connection still held (claim 5); an ok
 * verdict hands the socket to the application, an abnormal one cuts it with RST or FIN (claim 4).
 *
 * This file wires a net.Server to an Admission (admission.ts: when to ask for a verdict, per mode)
 * and a VerdictSource (verdicts.ts: single flight, deadline, reuse), and owns what happens to a
 * socket once it has its verdict: holding, idle timeout, recheck resets, limits, counters, logs, close.
 */
import { EventEmitter } from 'node:events';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import type { Logger } from 'pino';
import type { GatePolicy } from '../../config/board-config.js';
import { type Clock, type Timer, systemClock } from '../../hal/clock.js';
import { type Admission, type GateMode, createAdmission } from './admission.js';
import type { BeforeStats } from './before.js';
import { GateClosedError, GateListenError } from './errors.js';
import { LogSummary } from '../log-summary.js';
import { VerdictSource } from './verdicts.js';
import type { Diagnose, Failure, Verdict } from '../verdict.js';

export interface GateOptions {
  /** Service id, for logs, errors and decisions. */
  service: string;
  /** The service's resolved `gate` entry (loaded from boards.json, or built by `gatePolicy()`). */
  policy: Readonly<GatePolicy>;
  diagnose: Diagnose;
  /** The gate logs through a child of it (`subsystem: 'gate'`, `service`). */
  logger: Logger;
  /**
   * Receives each connection whose verdict is ok, already resumed: data events start on a later tick,
   * so listeners attached here see every byte, including bytes sent while the verdict was pending. To
   * read later, pause the socket here. Throwing destroys the socket.
   */
  onConnection: (socket: Socket) => void;
  /**
   * Keep a connection's write side open after the client's FIN, for an application that answers a
   * half-closed client (a proxy passing the FIN on to its upstream). Default false: Node ends it.
   */
  allowHalfOpen?: boolean;
  /** Clock for diagnosis deadlines, verdict age and rechecks. Default: the system clock. */
  clock?: Clock;
  /** Deadline of one self-diagnosis. Default 2000 ms. */
  diagnosisTimeoutMs?: number;
  /**
   * Subscribes the gate to changes, learned between diagnoses, of the components the service depends
   * on (a GPIO status edge, a carrier change, a background reading out of range); returns the
   * unsubscribe. Each withdraws the reusable verdict at once and, with `recheckMs`, re-diagnoses now,
   * so that held connections are cut without waiting for the next recheck.
   */
  watchDependencies?: (onChange: (change: DependencyChange) => void) => () => void;
  /**
   * Bound, in real time, on waiting for a peer to answer our FIN (close(), onFail 'close', idle close)
   * before the socket is destroyed. Default 2000 ms.
   */
  closeTimeoutMs?: number;
  /**
   * Before mode, in real time: the kernel lets SYNs bypass the queue once the firmware has not
   * refreshed its liveness for this long (a frozen process), and holds a reusable verdict no longer.
   * Default 500 ms.
   */
  livenessMs?: number;
}

/**
 * A component the service depends on may no longer be what the last verdict saw: it failed, its state
 * became unknown, or its part signalled a change (an edge, a carrier change) that is being diagnosed.
 */
export interface DependencyChange {
  component: string;
  /** For logs: what happened. */
  reason: string;
}

/** The board's policy plus the bounds the gate sets itself. */
export interface GateSettings extends GatePolicy {
  diagnosisTimeoutMs: number;
  closeTimeoutMs: number;
  livenessMs: number;
}

/**
 * What the gate did with one connection:
 * - `accept`: verdict ok (diagnosed or reused), handed to the application;
 * - `reset` / `close`: verdict abnormal, cut with RST / FIN;
 * - `limit`: reset without diagnosis, `maxConnections` reached;
 * - `idle-close`: a held connection closed with FIN after `idleTimeoutMs` without traffic;
 * - `recheck-reset`: a held connection reset because a later diagnosis found a fault.
 */
export type GateAction = 'accept' | 'reset' | 'close' | 'limit' | 'idle-close' | 'recheck-reset';

export interface GateDecision {
  service: string;
  action: GateAction;
  /** `address:port` of the client. */
  peer: string;
  /** The verdict acted on; undefined for `limit` and `idle-close`, which need none. */
  verdict: Verdict | undefined;
}

export interface GateStats {
  service: string;
  mode: GateMode;
  listening: boolean;
  /** Connections the server accepted, whatever became of them. */
  connections: number;
  /** Handed to the application on an ok verdict (diagnosed or reused). */
  accepted: number;
  /** Of `accepted`, how many reused a held connection's verdict without a diagnosis. */
  reused: number;
  /** Cut with RST on an abnormal verdict. */
  reset: number;
  /** Cut with FIN on an abnormal verdict. */
  closed: number;
  /** Calls of the self-diagnosis. */
  diagnosed: number;
  /** Diagnoses that missed their deadline. */
  diagnosisTimeouts: number;
  /** Reset without diagnosis because `maxConnections` were open. */
  rejectedLimit: number;
  idleClosed: number;
  /** Held connections reset because a later diagnosis (recheck) was abnormal. */
  recheckReset: number;
  /** Connections handed to the application and still open. */
  held: number;
  /** Connections accepted and waiting for their verdict. */
  waiting: number;
  lastVerdict: Verdict | undefined;
  /** Before mode: the SYNs the NFQUEUE saw and how they were answered (none for SYNs the kernel let through); undefined in after mode. */
  queue: BeforeStats | undefined;
}

export interface GateEvents {
  decision: [GateDecision];
}

/** Bounds the gate sets itself; they are not part of a board's policy. */
const diagnosisTimeoutMs = 2000;
const closeTimeoutMs = 2000;
/** Fail-open within half a second of the firmware freezing (DESIGN: <= 1 s). */
const livenessMs = 500;

function peerOf(socket: Socket): string {
  const address = socket.remoteAddress;
  if (address === undefined) return 'unknown';
  return socket.remoteFamily === 'IPv6' ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}

function summary(verdict: Verdict): { verdict: 'ok' | 'abnormal'; failures: Failure[]; reused: boolean; durationMs: number } {
  return { verdict: verdict.ok ? 'ok' : 'abnormal', failures: verdict.failures, reused: verdict.reused, durationMs: verdict.durationMs };
}

type State = 'idle' | 'listening' | 'closing';

export class Gate extends EventEmitter<GateEvents> {
  readonly service: string;
  readonly policy: Readonly<GateSettings>;
  private readonly log: Logger;
  private readonly onConnection: (socket: Socket) => void;
  private readonly clock: Clock;
  private readonly verdicts: VerdictSource;
  private readonly admission: Admission;
  private readonly server: Server;
  private readonly held = new Set<Socket>();
  private state: State = 'idle';
  private closing: Promise<void> | undefined;
  private recheckTimer: Timer | undefined;
  private readonly limitLog: LogSummary;
  private readonly unwatchDependencies: () => void;
  private readonly counters = {
    connections: 0,
    accepted: 0,
    reused: 0,
    reset: 0,
    closed: 0,
    rejectedLimit: 0,
    idleClosed: 0,
    recheckReset: 0,
  };
  // Socket listeners shared by every connection (they read the socket from `this`), so holding a
  // connection allocates no closures.
  private readonly onHeldClose: (this: Socket) => void;
  private readonly onSocketTimeout: (this: Socket) => void;
  private readonly onSocketError: (this: Socket, err: Error) => void;

  constructor(options: GateOptions) {
    super();
    this.service = options.service;
    this.policy = Object.freeze({
      ...options.policy,
      diagnosisTimeoutMs: options.diagnosisTimeoutMs ?? diagnosisTimeoutMs,
      closeTimeoutMs: options.closeTimeoutMs ?? closeTimeoutMs,
      livenessMs: options.livenessMs ?? livenessMs,
    });
    this.log = options.logger.child({ subsystem: 'gate', service: options.service });
    this.limitLog = new LogSummary(this.log, 'warn', `connection reset without diagnosis: maxConnections (${String(this.policy.maxConnections)}) reached, not a fault`);
    this.onConnection = options.onConnection;
    this.clock = options.clock ?? systemClock;
    this.verdicts = new VerdictSource({
      service: this.service,
      diagnose: options.diagnose,
      clock: this.clock,
      timeoutMs: this.policy.diagnosisTimeoutMs,
      reuse: this.policy.reuse,
      maxAgeMs: this.policy.maxAgeMs,
      onVerdict: (verdict) => this.onVerdict(verdict),
    });
    this.admission = createAdmission(this.policy.mode, {
      service: this.service,
      policy: options.policy,
      verdicts: this.verdicts,
      log: this.log,
      decide: (socket, verdict) => this.decide(socket, verdict),
      refused: (peer, verdict) => this.refusedEarly(peer, verdict),
      livenessMs: this.policy.livenessMs,
    });

    const gate = this;
    this.onHeldClose = function onHeldClose(this: Socket): void {
      gate.release(this);
    };
    this.onSocketTimeout = function onSocketTimeout(this: Socket): void {
      gate.timedOut(this);
    };
    this.onSocketError = function onSocketError(this: Socket, err: Error): void {
      if (gate.log.isLevelEnabled('debug')) {
        gate.log.debug({ peer: peerOf(this), err: { code: (err as NodeJS.ErrnoException).code, message: err.message } }, 'connection error');
      }
    };

    this.unwatchDependencies = options.watchDependencies?.((change) => this.dependencyChanged(change)) ?? (() => undefined);

    this.server = createServer({ pauseOnConnect: this.admission.pauseOnConnect, allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => this.accept(socket));
    this.server.on('error', (err) => {
      if (this.state === 'listening') this.log.error({ err }, 'server error');
    });
  }

  /** Starts accepting connections; resolves with the bound address (port 0 picks a free port). */
  listen(host: string, port: number): Promise<AddressInfo> {
    const where = `${host}:${port}`;
    if (this.state === 'closing') return Promise.reject(new GateClosedError(this.service, `cannot listen on ${where}`));
    if (this.state === 'listening') {
      return Promise.reject(new GateListenError(this.service, where, { cause: new Error('the gate is already listening') }));
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new GateListenError(this.service, where, { cause: err }));
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const address = this.server.address() as AddressInfo;
        const started = this.admission.start ? this.admission.start(address) : Promise.resolve();
        started.then(
          () => {
            if (this.state === 'closing') {
              // close() ran while the bind was pending and found nothing listening to stop.
              this.server.close();
              reject(new GateClosedError(this.service, `stopped listening on ${where}`));
              return;
            }
            this.state = 'listening';
            this.log.info({ address: address.address, port: address.port, policy: this.policy }, 'gate listening');
            resolve(address);
          },
          (err: unknown) => {
            this.server.close();
            reject(err);
          },
        );
      });
    });
  }

  /** The bound address while listening. */
  address(): AddressInfo | undefined {
    const address = this.server.address();
    return address !== null && typeof address === 'object' ? address : undefined;
  }

  stats(): GateStats {
    return {
      service: this.service,
      mode: this.policy.mode,
      listening: this.state === 'listening',
      ...this.counters,
      diagnosed: this.verdicts.diagnosed,
      diagnosisTimeouts: this.verdicts.timeouts,
      held: this.held.size,
      waiting: this.admission.waiting,
      lastVerdict: this.verdicts.lastVerdict,
      queue: this.admission.queueStats,
    };
  }

  /**
   * Stops accepting, cancels the running diagnosis, ends every open connection with FIN, waits up to
   * `closeTimeoutMs` for the peers to close, then destroys what is left. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const wasListening = this.state === 'listening';
    this.state = 'closing';
    this.unwatchDependencies();
    this.stopRecheck();
    const serverClosed = new Promise<void>((resolve) => {
      if (wasListening) this.server.close(() => resolve());
      else resolve();
    });
    const waiting = this.admission.close();
    this.verdicts.close();
    const stopped = (this.admission.stop?.() ?? Promise.resolve()).catch((err: unknown) => {
      this.log.error({ err }, 'gate admission did not stop cleanly');
    });

    const open = [...waiting, ...this.held].filter((socket) => !socket.destroyed);
    const allClosed = Promise.all(open.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()))));
    for (const socket of waiting) this.endUndecided(socket);
    for (const socket of this.held) socket.end();

    let bound: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      bound = setTimeout(resolve, this.policy.closeTimeoutMs);
    });
    await Promise.race([allClosed, expired]);
    clearTimeout(bound);
    for (const socket of open) socket.destroy();
    await Promise.all([allClosed, serverClosed, stopped]);
    this.log.info({ ...this.counters }, 'gate closed');
  }

  private accept(socket: Socket): void {
    this.counters.connections++;
    // A client that vanished (power cut, cable pulled, NAT entry dropped) sends no FIN: without
    // probes its connection would be held, and count against maxConnections, for ever.
    if (this.policy.keepAliveMs > 0) socket.setKeepAlive(true, this.policy.keepAliveMs);
    const max = this.policy.maxConnections;
    if (max !== undefined && this.held.size + this.admission.waiting >= max) {
      this.rejectForLimit(socket, max);
      return;
    }
    this.admission.admit(socket);
  }

  private decide(socket: Socket, verdict: Verdict): void {
    // A socket that died while it waited has no 'close' left to come, so holding it would keep the
    // verdict reusable for ever.
    if (socket.destroyed) return;
    if (this.state !== 'listening') {
      this.endUndecided(socket);
      return;
    }
    if (verdict.ok) this.admit(socket, verdict);
    else this.refuse(socket, verdict);
  }

  private admit(socket: Socket, verdict: Verdict): void {
    this.held.add(socket);
    this.verdicts.hold();
    if (this.held.size === 1) this.startRecheck();
    socket.on('close', this.onHeldClose);
    socket.on('error', this.onSocketError);
    if (this.policy.idleTimeoutMs !== undefined) {
      socket.setTimeout(this.policy.idleTimeoutMs);
      socket.on('timeout', this.onSocketTimeout);
    }
    this.counters.accepted++;
    if (verdict.reused) this.counters.reused++;
    this.report('accept', socket, verdict, 'debug', 'connection accepted');
    // Resumed before the hand-over so that an application may pause it; no data event can fire before
    // onConnection returns, because reads complete on a later turn of the event loop.
    socket.resume();
    try {
      this.onConnection(socket);
    } catch (err) {
      this.log.error({ err, peer: peerOf(socket) }, 'onConnection threw; connection destroyed');
      socket.destroy();
    }
  }

  private refuse(socket: Socket, verdict: Verdict): void {
    if (this.policy.onFail === 'reset') {
      this.report('reset', socket, verdict, 'warn', 'connection reset: self-diagnosis abnormal');
      this.counters.reset++;
      socket.resetAndDestroy();
    } else {
      this.report('close', socket, verdict, 'warn', 'connection closed: self-diagnosis abnormal');
      this.counters.closed++;
      this.endUndecided(socket);
    }
  }

  private rejectForLimit(socket: Socket, max: number): void {
    this.counters.rejectedLimit++;
    const notify = this.listenerCount('decision') > 0;
    const peer = peerOf(socket);
    // Not a fault: said so, and summarised, so a flood at the limit cannot flood the log.
    this.limitLog.note({ action: 'limit', peer, held: this.held.size, waiting: this.admission.waiting, maxConnections: max });
    if (notify) this.emit('decision', { service: this.service, action: 'limit', peer, verdict: undefined });
    socket.resetAndDestroy();
  }

  /**
   * FIN for a socket the application never saw. It is drained while the peer answers, because closing a
   * socket with unread bytes makes the kernel send RST instead of the FIN the policy promised.
   */
  private endUndecided(socket: Socket): void {
    socket.on('error', this.onSocketError);
    socket.on('timeout', this.onSocketTimeout);
    socket.setTimeout(this.policy.closeTimeoutMs);
    socket.end();
    socket.resume();
  }

  private timedOut(socket: Socket): void {
    if (socket.writableEnded) {
      socket.destroy();
      return;
    }
    this.counters.idleClosed++;
    this.report('idle-close', socket, undefined, 'info', `connection closed: idle for ${this.policy.idleTimeoutMs} ms`);
    socket.setTimeout(this.policy.closeTimeoutMs);
    socket.end();
  }

  private release(socket: Socket): void {
    if (!this.held.delete(socket)) return;
    this.verdicts.release();
    if (this.held.size === 0) this.stopRecheck();
  }

  private startRecheck(): void {
    if (this.policy.recheckMs === 0 || this.recheckTimer !== undefined) return;
    this.recheckTimer = this.clock.setInterval(() => void this.verdicts.diagnose(), this.policy.recheckMs);
  }

  private stopRecheck(): void {
    this.recheckTimer?.cancel();
    this.recheckTimer = undefined;
  }

  private dependencyChanged({ component, reason }: DependencyChange): void {
    if (this.verdicts.withdraw(`component ${component}: ${reason}`)) {
      this.log.info({ component, reason, held: this.held.size }, 'reusable verdict withdrawn: a dependency changed');
    }
    if (this.policy.recheckMs > 0 && this.held.size > 0 && this.state === 'listening') void this.verdicts.diagnose();
  }

  /**
   * With rechecks on, any abnormal verdict - from a recheck or from a new connection - resets the held
   * connections at once, so that clients holding a connection (hold-mode monitors) learn of the fault.
   */
  private onVerdict(verdict: Verdict): void {
    if (verdict.ok || this.policy.recheckMs === 0 || this.held.size === 0 || this.state !== 'listening') return;
    const sockets = [...this.held];
    const peers = sockets.map(peerOf);
    this.log.warn(
      { action: 'recheck-reset', ...summary(verdict), connections: sockets.length, peers },
      'held connections reset: self-diagnosis abnormal',
    );
    const notify = this.listenerCount('decision') > 0;
    sockets.forEach((socket, i) => {
      this.counters.recheckReset++;
      if (notify) this.emit('decision', { service: this.service, action: 'recheck-reset', peer: peers[i] ?? 'unknown', verdict });
      socket.resetAndDestroy();
    });
  }

  /** Before mode: a SYN answered with RST; there never was a socket. */
  private refusedEarly(peer: string, verdict: Verdict): void {
    this.counters.reset++;
    this.reportPeer('reset', () => peer, verdict, 'warn', 'connection reset before the handshake: self-diagnosis abnormal');
  }

  private report(action: GateAction, socket: Socket, verdict: Verdict | undefined, level: 'debug' | 'info' | 'warn', msg: string): void {
    this.reportPeer(action, () => peerOf(socket), verdict, level, msg);
  }

  private reportPeer(action: GateAction, peerOfIt: () => string, verdict: Verdict | undefined, level: 'debug' | 'info' | 'warn', msg: string): void {
    const logging = this.log.isLevelEnabled(level);
    const notify = this.listenerCount('decision') > 0;
    if (!logging && !notify) return;
    const peer = peerOfIt();
    if (logging) this.log[level](verdict ? { action, peer, ...summary(verdict) } : { action, peer }, msg);
    if (notify) this.emit('decision', { service: this.service, action, peer, verdict });
  }
}
