/**
 * One connect as a client of the appliance would make it, classified from what TCP showed:
 * - `up`: the handshake completed and nothing cut the connection within the grace window;
 * - `refused`: RST to our SYN (a before-mode diagnosis failed, or nothing listens);
 * - `reset`: RST right after the handshake (an after-mode diagnosis failed);
 * - `closed`: FIN right after the handshake, and FIN again on a second connect (diagnosis failed with
 *   `onFail: close`); a FIN followed by anything else is the second connect's result, since a
 *   firmware that dies (SIGKILL) closes its connections with FIN and then refuses new ones;
 * - `timeout`: no answer to the SYN within the connect timeout;
 * - `unreachable`: the host or network is unreachable;
 * - `error`: the connect failed on the monitor's own host before a packet got an answer: the name does
 *   not resolve, or a local route or rule forbids it (the errno says which).
 * No heartbeat, no application bytes: the connect itself is the question.
 */
import { Socket } from 'node:net';

export type ProbeResult = 'up' | 'refused' | 'reset' | 'closed' | 'timeout' | 'unreachable' | 'error';

export interface ProbeOutcome {
  result: ProbeResult;
  /** Time to the SYN/ACK (or to the failure of the connect), ms. */
  connectMs: number;
  /** The errno behind the result, when there was one. */
  errno: string | undefined;
  /** For `reset` and `closed`: how long after the handshake the connection was cut, ms. */
  cutAfterMs?: number;
  /** A FIN that the second connect did not confirm: how long after the handshake it came, ms. */
  finAfterMs?: number;
}

export interface ProbeOptions {
  host: string;
  port: number;
  /** How long to wait for the SYN/ACK. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** How long to stay connected waiting for a reset or close. Default 300 ms. */
  graceMs?: number;
  /** Aborting destroys the socket and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface HeldConnection extends ProbeOutcome {
  /** Present when the result is `up`: the open connection, its listeners removed, for the caller to keep. */
  socket: Socket | undefined;
}

const unreachable = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** The classification of a connect that failed before the handshake completed. */
export function classifyConnectError(code: string): ProbeResult {
  // A reset that overtakes the connect callback: the handshake completed, then RST.
  if (code === 'ECONNRESET') return 'reset';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (unreachable.has(code)) return 'unreachable';
  // Everything else was decided on this host (DNS, a prohibit or blackhole route, a local firewall
  // rule, no source address): no packet of the target's was seen, so it says nothing of the target.
  return 'error';
}

/**
 * What a local connect error means, for the reason. The route errnos are the kernel's fib_props
 * table (net/ipv4/fib_semantics.c): prohibit -> EACCES, blackhole -> EINVAL, unreachable ->
 * EHOSTUNREACH; EPERM is a netfilter DROP in the OUTPUT chain (nf_hook_slow returns -EPERM).
 */
export const localErrors: Readonly<Record<string, string>> = {
  ENOTFOUND: 'the name does not resolve (DNS)',
  EAI_AGAIN: 'the name could not be resolved now (DNS temporary failure)',
  EAI_FAIL: 'the name could not be resolved (DNS server failure)',
  EACCES: 'a prohibit route (or an administrative rule) on the monitor host forbids it',
  EINVAL: 'a blackhole route on the monitor host swallows it',
  EPERM: 'a firewall rule on the monitor host drops it',
  EADDRNOTAVAIL: 'the monitor host has no usable source address for it',
};

/**
 * Connects, waits the grace window, and either closes politely (`keep: false`) or hands the open
 * socket to the caller (`keep: true`, hold mode). Never rejects except on abort.
 */
export function connectAndWatch(options: ProbeOptions & { keep: boolean }): Promise<HeldConnection> {
  const { host, port, connectTimeoutMs = 2000, graceMs = 300, signal, keep } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const started = performance.now();
    const socket = new Socket();
    let connectedAt: number | undefined;
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      reject(signal?.reason);
    };
    const finish = (result: ProbeResult, errno?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const now = performance.now();
      socket.removeAllListeners();
      const outcome: HeldConnection = { result, connectMs: (connectedAt ?? now) - started, errno, socket: undefined };
      if ((result === 'reset' || result === 'closed') && connectedAt !== undefined) outcome.cutAfterMs = now - connectedAt;
      if (result === 'up' && keep) {
        outcome.socket = socket;
      } else {
        socket.on('error', () => undefined);
        if (result === 'up') socket.end();
        socket.destroy();
      }
      resolve(outcome);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer = setTimeout(() => finish('timeout', 'ETIMEDOUT'), connectTimeoutMs);
    socket.once('connect', () => {
      connectedAt = performance.now();
      clearTimeout(timer);
      timer = setTimeout(() => finish('up'), graceMs);
    });
    socket.on('data', () => undefined);
    socket.once('end', () => finish('closed'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'EIO';
      finish(connectedAt === undefined ? classifyConnectError(code) : 'reset', code);
    });
    socket.connect({ host, port, noDelay: true });
  });
}

/**
 * connectAndWatch, with a FIN confirmed by a second connect: `closed` only when that one ends in FIN
 * too; otherwise the second connect's result, with `finAfterMs` saying a FIN came first.
 */
export async function connectAndClassify(options: ProbeOptions & { keep: boolean }): Promise<HeldConnection> {
  const first = await connectAndWatch(options);
  if (first.result !== 'closed') return first;
  const second = await connectAndWatch(options);
  if (second.result === 'closed' || second.result === 'up') {
    second.socket?.destroy();
    return first;
  }
  return { ...second, finAfterMs: first.cutAfterMs ?? 0 };
}

export async function probe(options: ProbeOptions): Promise<ProbeOutcome> {
  const { socket: _, ...outcome } = await connectAndClassify({ ...options, keep: false });
  return outcome;
}
