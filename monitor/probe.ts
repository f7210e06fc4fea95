/**
 * One connect as a client of the appliance would make it, classified from what TCP showed:
 * - `up`: the handshake completed and nothing cut the connection within the grace window;
 * - `refused`: RST to our SYN (a before-mode diagnosis failed, or nothing listens);
 * - `reset`: RST right after the handshake (an after-mode diagnosis failed);
 * - `closed`: FIN right after the handshake (diagnosis failed with `onFail: close`);
 * - `timeout`: no answer to the SYN within the connect timeout;
 * - `unreachable`: the host or network is unreachable.
 * No heartbeat, no application bytes: the connect itself is the question.
 */
import { Socket } from 'node:net';

export type ProbeResult = 'up' | 'refused' | 'reset' | 'closed' | 'timeout' | 'unreachable';

export interface ProbeOutcome {
  result: ProbeResult;
  /** Time to the SYN/ACK (or to the failure of the connect), ms. */
  connectMs: number;
  /** The errno behind the result, when there was one. */
  errno: string | undefined;
  /** For `reset` and `closed`: how long after the handshake the connection was cut, ms. */
  cutAfterMs?: number;
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

const unreachable = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);

/** The classification of a connect that failed before the handshake completed. */
export function classifyConnectError(code: string): ProbeResult {
  // A reset that overtakes the connect callback: the handshake completed, then RST.
  if (code === 'ECONNRESET') return 'reset';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT') return 'timeout';
  if (unreachable.has(code)) return 'unreachable';
  return 'refused';
}

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

export async function probe(options: ProbeOptions): Promise<ProbeOutcome> {
  const { result, connectMs, errno, cutAfterMs } = await connectAndWatch({ ...options, keep: false });
  return cutAfterMs === undefined ? { result, connectMs, errno } : { result, connectMs, errno, cutAfterMs };
}
