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
}

export interface ProbeOptions {
  host: string;
  port: number;
  /** How long to wait for the SYN/ACK. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** How long to stay connected waiting for a reset or close. Default 300 ms. */
  graceMs?: number;
}

const unreachable = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);

export function probe({ host, port, connectTimeoutMs = 2000, graceMs = 300 }: ProbeOptions): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = new Socket();
    let connectedAt: number | undefined;
    let settled = false;
    const finish = (result: ProbeResult, errno?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      if (result === 'up') socket.end();
      socket.destroy();
      resolve({ result, connectMs: (connectedAt ?? performance.now()) - started, errno });
    };
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
      if (connectedAt === undefined) {
        // A reset that overtakes the connect callback: the handshake completed, then RST.
        if (code === 'ECONNRESET') finish('reset', code);
        else if (code === 'ECONNREFUSED') finish('refused', code);
        else if (code === 'ETIMEDOUT') finish('timeout', code);
        else if (unreachable.has(code)) finish('unreachable', code);
        else finish('refused', code);
      } else {
        finish('reset', code);
      }
    });
    socket.connect({ host, port, noDelay: true });
  });
}
