/**
 * One Modbus TCP connection: reads MBAP frames from an accepted socket, answers each from the data
 * model, in the order the requests arrived, each with its own transaction id.
 *
 * Rules:
 * - The socket may arrive paused with bytes waiting (the gate holds it during diagnosis); the session
 *   attaches its listeners, then resumes it, so those bytes are answered like any others.
 * - Requests are executed one at a time, so a read pipelined after a write sees the write.
 * - Memory is bounded: at most `maxInFlight` received requests wait for their answer; past that the
 *   session stops reading and TCP flow control holds the client back. The same happens while the
 *   client does not read its answers.
 * - An invalid MBAP header (protocol id not 0, length outside 2..254) ends the connection: requests
 *   before it are answered, then the session closes with FIN and `closed` resolves with the
 *   `ModbusFrameError` as its reason. Past a bad header the stream cannot be resynchronised.
 * - When the client half-closes, the requests it sent are still answered before the session closes.
 * - Nothing the client sends and nothing the model does can throw out of the session.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ModbusDataModel } from './data-model.js';
import { answerPdu, type PduAnswer } from './engine.js';
import { ModbusConfigError, type ModbusFrameError } from './errors.js';
import { MbapParser, encodeAdu, type MbapFrame } from './mbap.js';
import { ExceptionCode, exceptionPdu } from './pdu.js';

export interface ModbusSessionOptions {
  model: ModbusDataModel;
  /** Unit ids this device answers as, 1..247. Default [1]. 0 and 255 are always accepted. */
  unitIds?: number[];
  /**
   * Whether this connection's client may use a function code, asked for each request (the caller
   * judges the client once: its address and certificate cannot change). Absent: every function code.
   * A refused one is answered with exception 0x01.
   */
  permits?: (functionCode: number) => boolean;
  logger: Logger;
  /**
   * Where a connection that is not Modbus TCP is reported; shared by the sessions of a service so a
   * garbage flood writes a line per window, not per connection. Default: a warning per connection.
   */
  notModbus?: (context: { remote: string; code: string; message: string }) => void;
  /** Received requests that may wait for their answer before the session stops reading. Default 16. */
  maxInFlight?: number;
}

export interface ModbusSessionEnd {
  /** Why the session closed the connection itself; null when the client closed it or the socket was destroyed. */
  reason: ModbusFrameError | null;
  /** Requests answered, exceptions included. */
  requests: number;
  /** Exception responses sent. */
  exceptions: number;
}

export interface ModbusSession {
  readonly remoteAddress: string;
  /** Requests answered so far, exceptions included. */
  readonly requests: number;
  readonly exceptions: number;
  /** Resolves when the socket has closed, for whatever reason. Never rejects. */
  readonly closed: Promise<ModbusSessionEnd>;
}

export const DEFAULT_UNIT_IDS: readonly number[] = [1];
export const DEFAULT_MAX_IN_FLIGHT = 16;
/**
 * Unit ids a Modbus TCP server accepts as "this device": the Messaging on TCP/IP Implementation Guide
 * has clients that address the device by IP alone send 0xFF, and many send 0.
 */
const THIS_DEVICE_UNIT_IDS = [0, 255];

function checkOptions(options: ModbusSessionOptions): { unitIds: Set<number>; maxInFlight: number } {
  const unitIds = options.unitIds ?? DEFAULT_UNIT_IDS;
  const bad = unitIds.find((id) => !Number.isInteger(id) || id < 1 || id > 247);
  if (bad !== undefined) throw new ModbusConfigError('unitIds', `must hold integers 1..247, got ${bad}`);
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new ModbusConfigError('maxInFlight', `must be an integer >= 1, got ${maxInFlight}`);
  }
  return { unitIds: new Set([...unitIds, ...THIS_DEVICE_UNIT_IDS]), maxInFlight };
}

/** Serves Modbus TCP on an accepted socket until it closes. Throws ModbusConfigError for bad options. */
export function serveModbus(socket: Socket, options: ModbusSessionOptions): ModbusSession {
  const { unitIds, maxInFlight } = checkOptions(options);
  const remoteAddress = socket.remoteAddress ?? 'unknown';
  const remote = `${remoteAddress}:${socket.remotePort ?? 0}`;
  const logger = options.logger.child({ component: 'modbus', remote });
  const parser = new MbapParser();
  const queue: MbapFrame[] = [];
  let requests = 0;
  let exceptions = 0;
  let pumping = false;
  let inputEnded = false;
  let ending = false;
  let reason: ModbusFrameError | null = null;

  let resolveClosed!: (end: ModbusSessionEnd) => void;
  const closed = new Promise<ModbusSessionEnd>((resolve) => {
    resolveClosed = resolve;
  });

  const answer = async (frame: MbapFrame): Promise<PduAnswer> => {
    // A unit id this device does not serve gets exception 0x0B rather than silence: the client learns
    // at once that nothing answers there instead of waiting out its timeout, and a silent connection is
    // what a hung appliance looks like, which is the one thing a monitor of this device must be able
    // to tell apart.
    if (!unitIds.has(frame.unitId)) {
      const code = ExceptionCode.GatewayTargetFailedToRespond;
      return { pdu: exceptionPdu(frame.pdu[0] ?? 0, code), exception: code };
    }
    return answerPdu(frame.pdu, { model: options.model, ...(options.permits ? { permits: options.permits } : {}) });
  };

  const finishIfDone = (): void => {
    if (ending || pumping || queue.length > 0 || !(reason || inputEnded)) return;
    ending = true;
    if (inputEnded && parser.buffered > 0 && !reason) {
      logger.debug({ bytes: parser.buffered }, 'client closed in the middle of a frame');
    }
    socket.end();
  };

  const refill = (): void => {
    while (!reason && queue.length < maxInFlight) {
      let frame: MbapFrame | null;
      try {
        frame = parser.next();
      } catch {
        reason = parser.error;
        // No stack: it is the client's bytes that are wrong, not this code.
        const context = { remote, code: reason?.code ?? 'ERR_MODBUS_FRAME', message: reason?.message ?? '' };
        if (options.notModbus) options.notModbus(context);
        else logger.warn(context, 'closing the connection: the byte stream is not Modbus TCP');
        break;
      }
      if (!frame) break;
      queue.push(frame);
    }
    // A full queue stops reading; so does a bad header, after which reading only discards bytes
    // until the client sees our FIN.
    if (queue.length >= maxInFlight && !reason) socket.pause();
    else if (!inputEnded && !socket.destroyed) socket.resume();
  };

  const waitDrain = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });

  const pump = async (): Promise<void> => {
    if (pumping) return;
    pumping = true;
    try {
      for (let frame = queue[0]; frame; frame = queue[0]) {
        const result = await answer(frame);
        if (socket.destroyed || !socket.writable) {
          queue.length = 0;
          break;
        }
        requests += 1;
        if (result.exception !== undefined) exceptions += 1;
        if (result.failure) logger.warn({ err: result.failure, transactionId: frame.transactionId }, 'data model failed; answered exception 0x04');
        const flushed = socket.write(encodeAdu(frame.transactionId, frame.unitId, result.pdu));
        queue.shift();
        if (!flushed) await waitDrain();
        refill();
      }
    } finally {
      pumping = false;
    }
    finishIfDone();
  };

  socket.allowHalfOpen = true;
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    parser.push(chunk);
    refill();
    pump().catch((err: unknown) => {
      // Only a bug in this module gets here (the engine turns every model error into an answer); the
      // connection's state is unknown then, so it is cut rather than left half-served.
      logger.error({ err }, 'modbus session failed; destroying the connection');
      socket.destroy();
    });
    finishIfDone();
  });
  socket.on('end', () => {
    inputEnded = true;
    finishIfDone();
  });
  socket.on('error', (err) => {
    logger.debug({ err }, 'socket error');
  });
  socket.on('close', () => {
    queue.length = 0;
    resolveClosed({ reason, requests, exceptions });
  });
  if (socket.destroyed) {
    resolveClosed({ reason, requests, exceptions });
  } else {
    socket.resume();
  }

  return {
    remoteAddress,
    get requests() {
      return requests;
    },
    get exceptions() {
      return exceptions;
    },
    closed,
  };
}
