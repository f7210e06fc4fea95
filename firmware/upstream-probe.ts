/**
 * The application-layer part of a proxy's self-diagnosis: is the upstream the proxy splices clients to
 * healthy? One probe per diagnosis, over a fresh connection: a connect, an HTTP request's status, a
 * Modbus read, or bytes sent and an answer expected. Every outcome other than healthy is a Failure
 * with a code that says which way the upstream failed, so the gate log tells a dead daemon from a
 * slow one from one that answers wrong. A guard probes the daemon behind its port the same way
 * (firmware/guard-listener.ts), over a socket whose SYN skips the guard's own queue.
 */
import { Socket, isIP } from 'node:net';
import type { ProbeConfig } from '../config/board-config.js';
import { type HostPort, formatHostPort } from '../config/host-port.js';
import type { Failure } from './verdict.js';

/** Failure.component of what a probe finds: the service behind the proxy. */
export const UPSTREAM = 'upstream';

/** Connect refused or the host unreachable: nothing listens there. */
export const ERR_UPSTREAM_DOWN = 'ERR_UPSTREAM_DOWN';
/** No connect, or no answer, within the probe's timeoutMs. */
export const ERR_UPSTREAM_TIMEOUT = 'ERR_UPSTREAM_TIMEOUT';
/** The upstream reset or closed the connection before it answered. */
export const ERR_UPSTREAM_RESET = 'ERR_UPSTREAM_RESET';
/** It answered, but not as a healthy one does: an HTTP status, a Modbus exception, other bytes. */
export const ERR_UPSTREAM_ANSWER = 'ERR_UPSTREAM_ANSWER';

/** Default of a probe's timeoutMs, as in boards.schema.json. */
export const DEFAULT_PROBE_TIMEOUT_MS = 500;

/**
 * Checks the upstream once; resolves undefined when healthy, a Failure otherwise. Rejects only when
 * ProbeOptions.socket throws (no descriptor left): that is handcheck's failure, not the upstream's.
 */
export type UpstreamProbe = (signal: AbortSignal) => Promise<Failure | undefined>;

export interface ProbeOptions {
  /** Failure.component of what the probe finds. Default `upstream`. */
  component?: string;
  /** What reasons call the target, before its address. Default `upstream`. */
  name?: string;
  /** The unconnected socket the probe connects, for the target's address family. Default a plain one. */
  socket?: (family: 4 | 6) => Socket;
}

/** What an answer so far means: undefined to wait for more bytes, true for healthy, a string for why not. */
type Judge = (received: Buffer) => true | string | undefined;

interface Exchange {
  send: Buffer;
  /** Absent: the connect alone decides. */
  judge?: Judge;
  /** What the probe was, for reasons: `HTTP GET /health`. */
  what: string;
}

const downCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);
const resetCodes = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

const modbusExceptions: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

function printable(bytes: Buffer): string {
  const shown = bytes.subarray(0, 32);
  const text = shown.toString('latin1');
  const hex = /^[\x20-\x7e\r\n\t]*$/.test(text) ? JSON.stringify(text) : `0x${shown.toString('hex')}`;
  return bytes.length > shown.length ? `${hex}...` : hex;
}

function httpExchange(target: HostPort, probe: Extract<ProbeConfig, { type: 'http' }>): Exchange {
  const path = probe.path ?? '/';
  const host = probe.host ?? formatHostPort(target);
  const healthy = (status: number): boolean => (probe.expectStatus ? probe.expectStatus.includes(status) : status < 400);
  return {
    what: `HTTP GET ${path}`,
    send: Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: handcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n`, 'latin1'),
    judge: (received) => {
      const end = received.indexOf('\r\n');
      if (end < 0) return received.length > 8192 ? `no HTTP status line in the first ${received.length} bytes` : undefined;
      const line = received.subarray(0, end).toString('latin1');
      const status = /^HTTP\/\d(?:\.\d)? (\d{3})(?: |$)/.exec(line)?.[1];
      if (status === undefined) return `answered ${printable(received.subarray(0, end))}, not an HTTP status line`;
      if (healthy(Number(status))) return true;
      return `status ${line.slice(line.indexOf(' ') + 1)}, expected ${probe.expectStatus ? probe.expectStatus.join(' or ') : 'below 400'}`;
    },
  };
}

function modbusExchange(probe: Extract<ProbeConfig, { type: 'modbus' }>): Exchange {
  const fn = probe.function ?? 3;
  const unit = probe.unitId ?? 1;
  const address = probe.address ?? 0;
  const count = probe.count ?? 1;
  // A fresh connection per probe, so one fixed transaction id is never ambiguous.
  const transaction = 0x4843;
  const request = Buffer.alloc(12);
  request.writeUInt16BE(transaction, 0);
  request.writeUInt16BE(0, 2);
  request.writeUInt16BE(6, 4);
  request.writeUInt8(unit, 6);
  request.writeUInt8(fn, 7);
  request.writeUInt16BE(address, 8);
  request.writeUInt16BE(count, 10);
  return {
    what: `Modbus read (function ${fn}, unit ${unit}, ${count} register${count === 1 ? '' : 's'} at ${address})`,
    send: request,
    judge: (received) => {
      if (received.length < 9) return undefined;
      const length = received.readUInt16BE(4);
      if (received.readUInt16BE(0) !== transaction || received.readUInt16BE(2) !== 0 || length < 3) {
        return `answered ${printable(received)}, not a Modbus TCP response to the read`;
      }
      if (received.length < 6 + length) return undefined;
      const answered = received.readUInt8(7);
      if (answered === (fn | 0x80)) {
        const exception = received.readUInt8(8);
        return `Modbus exception ${exception.toString(16).padStart(2, '0')} (${modbusExceptions[exception] ?? 'unknown'})`;
      }
      if (answered !== fn || received.readUInt8(8) !== 2 * count) return `answered ${printable(received.subarray(0, 6 + length))}, not a response to function ${fn} for ${count} register${count === 1 ? '' : 's'}`;
      return true;
    },
  };
}

function sendExpectExchange(probe: Extract<ProbeConfig, { type: 'send-expect' }>): Exchange {
  const encoding = probe.encoding ?? 'utf8';
  const expect = Buffer.from(probe.expect, encoding);
  return {
    what: `send ${printable(Buffer.from(probe.send, encoding))}, expect ${printable(expect)}`,
    send: Buffer.from(probe.send, encoding),
    judge: (received) => {
      const head = received.subarray(0, expect.length);
      if (!head.equals(expect.subarray(0, head.length))) return `answered ${printable(received)}`;
      return head.length === expect.length ? true : undefined;
    },
  };
}

function exchangeOf(target: HostPort, probe: ProbeConfig): Exchange {
  switch (probe.type) {
    case 'connect':
      return { what: 'connect', send: Buffer.alloc(0) };
    case 'http':
      return httpExchange(target, probe);
    case 'modbus':
      return modbusExchange(probe);
    case 'send-expect':
      return sendExpectExchange(probe);
  }
}

/** The probe of `target` that `config` describes (absent: a connect). */
export function upstreamProbe(target: HostPort, config: ProbeConfig = { type: 'connect' }, options: ProbeOptions = {}): UpstreamProbe {
  const exchange = exchangeOf(target, config);
  const timeoutMs = config.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const where = `${options.name ?? 'upstream'} ${formatHostPort(target)}`;
  const component = options.component ?? UPSTREAM;
  const open = options.socket ?? (() => new Socket());
  return (signal) =>
    new Promise((resolve) => {
      let socket: Socket | undefined;
      let received = Buffer.alloc(0);
      let connected = false;
      const finish = (failure: Failure | undefined): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket?.removeAllListeners();
        // The probe's own socket: nothing of it may outlive the diagnosis, errors included.
        socket?.on('error', () => undefined);
        socket?.destroy();
        resolve(failure);
      };
      const fail = (code: string, reason: string): void => finish({ component, code, reason: `${where}: ${reason}` });
      const onAbort = (): void => fail(ERR_UPSTREAM_TIMEOUT, `${exchange.what} abandoned: the diagnosis ended first`);
      const timer = setTimeout(() => {
        fail(ERR_UPSTREAM_TIMEOUT, connected ? `no answer to ${exchange.what} within ${timeoutMs} ms` : `no connect within ${timeoutMs} ms`);
      }, timeoutMs);
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        socket = open(isIP(target.host) === 6 ? 6 : 4);
      } catch (err) {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        throw err;
      }
      socket.connect({ host: target.host, port: target.port });
      socket.setNoDelay(true);
      socket.on('connect', () => {
        connected = true;
        if (exchange.judge === undefined) {
          finish(undefined);
          return;
        }
        if (exchange.send.length > 0) socket?.write(exchange.send);
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const judged = exchange.judge?.(received);
        if (judged === true) finish(undefined);
        else if (typeof judged === 'string') fail(ERR_UPSTREAM_ANSWER, `${exchange.what}: ${judged}`);
      });
      socket.on('end', () => {
        fail(ERR_UPSTREAM_RESET, received.length > 0 ? `closed after ${printable(received)}, before a full answer to ${exchange.what}` : `closed the connection without answering ${exchange.what}`);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        if (!connected && downCodes.has(code)) fail(ERR_UPSTREAM_DOWN, `connect failed (${code}): nothing accepts connections there`);
        else if (resetCodes.has(code)) fail(ERR_UPSTREAM_RESET, `reset the connection (${code}) ${connected ? `before answering ${exchange.what}` : 'while connecting'}`);
        else fail(connected ? ERR_UPSTREAM_RESET : ERR_UPSTREAM_DOWN, `${err.message}`);
      });
    });
}
