/**
 * The application behind a `proxy` service: each connection the gate admits is spliced to the
 * upstream the appliance runs (a vendor daemon on loopback, an HTTP API). Once the upstream has
 * accepted, the splice(2) relay (firmware/splice-relay.ts) moves the bytes both ways inside the kernel;
 * where its addon is not built, stream pipes do, with two copies through JavaScript. Either way the
 * client's bytes sent while the verdict was pending go first and a slow reader on either side stops
 * the other (backpressure). Both sockets allow half-open connections: a FIN from one side is passed on
 * as a FIN and the other direction keeps flowing. A reset, or a close without a FIN, on either side
 * resets the other, so a client learns that the upstream died mid-conversation the same way a direct
 * client would.
 */
import { type Socket, connect } from 'node:net';
import type { Logger } from 'pino';
import type { HostPort } from '../config/host-port.js';
import { formatHostPort } from '../config/host-port.js';
import type { ServiceHandler } from './firmware.js';
import { type SpliceBinding, type SplicedPair, spliceAddon, spliceAddonCandidates, splicePair } from './splice-relay.js';
import { ERR_UPSTREAM_DOWN, ERR_UPSTREAM_RESET, ERR_UPSTREAM_TIMEOUT } from './upstream-probe.js';

export interface ProxyServiceOptions {
  service: string;
  upstream: HostPort;
  /** ms the upstream has to accept a spliced connection before the client is reset. */
  connectTimeoutMs: number;
  /** Idle ms before TCP keepalive probes start on the upstream side; 0 turns them off. */
  keepAliveMs: number;
  logger: Logger;
  /** The splice(2) relay; null pipes streams (as where the addon is not built). Default: the addon if built. */
  splice?: SpliceBinding | null;
}

export interface ProxyStats {
  /** What carries the bytes: the kernel (`splice`) or stream pipes through JavaScript (`stream`). */
  relay: 'splice' | 'stream';
  /** Client connections spliced to the upstream. */
  spliced: number;
  /** Admitted clients reset because the upstream did not take the spliced connection. */
  upstreamFailed: number;
  /** Pairs open now. */
  open: number;
  /** Bytes waiting in the proxy's own buffers (pipes or write buffers), both directions of every pair: what backpressure bounds. */
  buffered: number;
}

function peerOf(socket: Socket): string {
  return socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
}

/** RST for an open connection; a connect still in flight is abandoned instead of awaited. */
function cut(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

/** One client and its upstream connection. */
class Splice {
  private clientEnded = false;
  private upstreamEnded = false;
  private connected = false;
  /** Set while the splice(2) relay carries the bytes. */
  private relay: SplicedPair | undefined;
  /** The relay took the pair: Node's sockets close after it, and their closing says nothing of the peers. */
  private relayed = false;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    private readonly addon: SpliceBinding | undefined,
    private readonly log: Logger,
  ) {}

  /** Bytes the proxy holds for this pair. */
  buffered(): number {
    return this.relay ? this.relay.stats().buffered : this.client.writableLength + this.upstream.writableLength;
  }

  /** Wires the two together; `onFailure` hears of an upstream that never took the connection. */
  start(connectTimeoutMs: number, onFailure: (code: string, reason: string) => void, onClosed: () => void): void {
    const { client, upstream } = this;
    let closed = 0;
    const closedOne = (): void => {
      if (++closed === 2) onClosed();
    };
    const timer = setTimeout(() => {
      onFailure(ERR_UPSTREAM_TIMEOUT, `the upstream did not accept within ${connectTimeoutMs} ms`);
      cut(client);
      cut(upstream);
    }, connectTimeoutMs);
    upstream.once('connect', () => {
      clearTimeout(timer);
      this.connected = true;
      upstream.setNoDelay(true);
      if (this.addon && !client.destroyed && this.handOver(this.addon)) return;
      client.pipe(upstream);
      upstream.pipe(client);
    });
    client.on('end', () => {
      this.clientEnded = true;
    });
    upstream.on('end', () => {
      this.upstreamEnded = true;
    });
    // Errors end in 'close'; what matters there is whether the side ended with its FIN.
    client.on('error', () => undefined);
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (this.connected) return;
      clearTimeout(timer);
      onFailure(err.code === 'ECONNRESET' ? ERR_UPSTREAM_RESET : ERR_UPSTREAM_DOWN, `the upstream refused the spliced connection: ${err.code ?? err.message}`);
    });
    client.on('close', () => {
      clearTimeout(timer);
      // Both directions finished cleanly only when the client sent its FIN and took ours; anything
      // else (an RST, a destroy by the gate's recheck) must not leave the upstream talking to no one.
      if (this.relay) {
        // Node's handle is closed, the relay's duplicate is not: the client closes as the gate left its
        // socket (RST after resetAndDestroy), the upstream is reset.
        this.relay.abort(false);
        this.relay = undefined;
        upstream.destroy();
      } else if (!this.relayed && !(this.clientEnded && client.writableFinished)) cut(upstream);
      closedOne();
    });
    upstream.on('close', () => {
      if (!this.relayed && !(this.upstreamEnded && upstream.writableFinished)) cut(client);
      closedOne();
    });
  }

  /** Resets both at once (the proxy closing). */
  cut(): void {
    this.relay?.abort(true);
    this.relay = undefined;
    cut(this.client);
    cut(this.upstream);
  }

  /** The relay takes the pair, or false (no descriptors left) and the pair is piped instead. */
  private handOver(addon: SpliceBinding): boolean {
    const { client, upstream } = this;
    try {
      this.relay = splicePair(addon, client, upstream, (outcome, code) => {
        // The relay has closed its descriptors, setting SO_LINGER 0 on the side to reset: Node's close
        // of the last one sends the FIN or the RST.
        this.relay = undefined;
        if (outcome !== 'ended') this.log.debug({ action: 'splice-failed', peer: peerOf(client), outcome, code }, 'spliced connection ended by a failed side; the other was reset');
        client.destroy();
        upstream.destroy();
      });
      this.relayed = true;
      return true;
    } catch (err) {
      this.log.warn({ err, peer: peerOf(client) }, 'splice relay unavailable for this connection; piping it through JavaScript');
      return false;
    }
  }
}

export class ProxyService implements ServiceHandler {
  private readonly options: ProxyServiceOptions;
  private readonly log: Logger;
  private readonly splices = new Set<Splice>();
  private readonly counters = { spliced: 0, upstreamFailed: 0 };
  private readonly where: string;
  private readonly addon: SpliceBinding | undefined;

  constructor(options: ProxyServiceOptions) {
    this.options = options;
    this.log = options.logger;
    this.where = formatHostPort(options.upstream);
    this.addon = options.splice === null ? undefined : (options.splice ?? spliceAddon());
    if (!this.addon) {
      this.log.info(
        { relay: 'stream' },
        `the splice relay (${spliceAddonCandidates()[0]}) is not built or not loadable here: bytes are piped through JavaScript, at a fraction of direct throughput; build it with "npm run build:native" (Linux)`,
      );
    }
  }

  stats(): ProxyStats {
    let buffered = 0;
    for (const splice of this.splices) buffered += splice.buffered();
    return { relay: this.addon ? 'splice' : 'stream', ...this.counters, open: this.splices.size, buffered };
  }

  /** The proxy itself is responsive while its event loop runs; the upstream is the gate's probe's. */
  health = (): { ok: true } => ({ ok: true });

  onConnection(client: Socket): void {
    // Held until the upstream accepts: the kernel keeps what the client sends meanwhile.
    client.pause();
    const upstream = connect({ host: this.options.upstream.host, port: this.options.upstream.port, allowHalfOpen: true });
    if (this.options.keepAliveMs > 0) upstream.setKeepAlive(true, this.options.keepAliveMs);
    const splice = new Splice(client, upstream, this.addon, this.log);
    this.splices.add(splice);
    this.counters.spliced++;
    splice.start(
      this.options.connectTimeoutMs,
      (code, reason) => {
        this.counters.upstreamFailed++;
        this.log.warn({ action: 'upstream-failed', peer: peerOf(client), upstream: this.where, code, reason }, 'connection reset: the upstream did not take it after an ok verdict');
      },
      () => this.splices.delete(splice),
    );
  }

  /** Resets what is still spliced: the gate has already ended its clients with FIN and waited. */
  async close(): Promise<void> {
    const open = [...this.splices];
    await Promise.all(
      open.map(
        (splice) =>
          new Promise<void>((resolve) => {
            let left = 2;
            const done = (): void => {
              if (--left === 0) resolve();
            };
            for (const socket of [splice.client, splice.upstream]) {
              if (socket.closed) done();
              else socket.once('close', done);
            }
            splice.cut();
          }),
      ),
    );
  }
}
