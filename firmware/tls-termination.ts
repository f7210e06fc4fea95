/**
 * TLS for a service whose clients authenticate with certificates (MODBUS/TCP Security): takes the
 * sockets the gate admitted - the gate has already diagnosed at the TCP accept, so a faulty appliance
 * resets a client before any TLS work - and runs the server side of the handshake on them, TLS 1.2 or
 * later, a client certificate required and checked against the configured CA. A client that fails the
 * handshake or does not finish it in time is cut, with a line naming why (summarised, so a flood
 * writes a line per window per reason); one that completes it is handed on with its certificate.
 */
import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type TLSSocket, type Server as TlsServer, createServer } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/board-config.js';
import { HandcheckError } from '../config/errors.js';
import { LogSummary } from './log-summary.js';

export class TlsConfigError extends HandcheckError {
  constructor(service: string, message: string, options?: { cause?: unknown }) {
    super('ERR_TLS_CONFIG', `service ${service}: ${message}`, options);
  }
}

/** Why a client's handshake was refused, for logs and counters. */
export type TlsRefusal = 'no-client-certificate' | 'untrusted-certificate' | 'handshake-timeout' | 'handshake-failed';

export interface TlsTerminationOptions {
  service: string;
  tls: Readonly<TlsConfig>;
  /** Where refusals are logged (`action: 'tls-refused'`). */
  logger: Logger;
  /** A client whose handshake completed, with its certificate. */
  onSecure: (socket: TLSSocket, certificate: X509Certificate) => void;
}

export interface TlsTermination {
  /** Takes a socket the gate admitted; the handshake starts at once. */
  onConnection(socket: Socket): void;
  /** Handshakes refused so far, by reason. */
  readonly refused: Readonly<Record<TlsRefusal, number>>;
}

export const defaultHandshakeTimeoutMs = 10_000;

function refusalOf(err: NodeJS.ErrnoException): TlsRefusal {
  switch (err.code) {
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'handshake-timeout';
    default:
      return 'handshake-failed';
  }
}

const refusalText: Record<TlsRefusal, string> = {
  'no-client-certificate': 'TLS handshake refused: the client sent no certificate (MODBUS/TCP Security requires mutual authentication)',
  'untrusted-certificate': 'TLS handshake refused: the client certificate does not chain to tls.ca (or has expired)',
  'handshake-timeout': 'TLS handshake refused: the client did not finish it within tls.handshakeTimeoutMs',
  'handshake-failed': 'TLS handshake refused: the client does not speak TLS 1.2 or later, or broke off',
};

function read(service: string, field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsConfigError(service, `cannot read tls.${field} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Reads the certificate files now, so a missing or unusable one stops the start-up with ERR_TLS_CONFIG. */
export function tlsTermination({ service, tls, logger, onSecure }: TlsTerminationOptions): TlsTermination {
  let server: TlsServer;
  try {
    server = createServer({
      cert: read(service, 'cert', tls.cert),
      key: read(service, 'key', tls.key),
      ca: read(service, 'ca', tls.ca),
      requestCert: true,
      // The certificate is judged below, on the completed handshake, where the peer and the reason are
      // still at hand: Node destroys a socket it rejects itself before anyone can say whose it was.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: tls.handshakeTimeoutMs ?? defaultHandshakeTimeoutMs,
    });
  } catch (err) {
    if (err instanceof TlsConfigError) throw err;
    throw new TlsConfigError(service, `tls.cert, tls.key or tls.ca is not usable: ${(err as Error).message}`, { cause: err });
  }
  const refused: Record<TlsRefusal, number> = { 'no-client-certificate': 0, 'untrusted-certificate': 0, 'handshake-timeout': 0, 'handshake-failed': 0 };
  const summaries = Object.fromEntries(
    (Object.keys(refusalText) as TlsRefusal[]).map((reason) => [reason, new LogSummary(logger, 'warn', refusalText[reason])]),
  ) as Record<TlsRefusal, LogSummary>;

  const refuse = (socket: TLSSocket, reason: TlsRefusal, code: string | undefined, error: string): void => {
    refused[reason]++;
    summaries[reason].note({ action: 'tls-refused', reason, peer: `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`, code, error });
    // Node leaves a timed-out handshake's socket open; nothing more is wanted from any of these.
    socket.destroy();
  };

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => refuse(socket, refusalOf(err), err.code, err.message));
  server.on('secureConnection', (socket: TLSSocket) => {
    const certificate = socket.getPeerX509Certificate();
    if (!certificate) refuse(socket, 'no-client-certificate', undefined, 'no certificate');
    else if (!socket.authorized) refuse(socket, 'untrusted-certificate', String(socket.authorizationError), `${certificate.subject.replaceAll('\n', ', ')}: ${String(socket.authorizationError)}`);
    else onSecure(socket, certificate);
  });

  return {
    onConnection(socket: Socket): void {
      server.emit('connection', socket);
    },
    refused,
  };
}
