/**
 * Shared pieces of the Modbus tests: a data model laid out like the examples of the Modbus Application
 * Protocol spec V1.1b3, a real server on 127.0.0.1 port 0, and a raw TCP client that
 * reassembles MBAP responses.
 */
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { expect } from 'vitest';
import { TableDataModel, type DeviceIdentification } from '../../firmware/modbus/data-model.js';
import { type LogSink, logSink } from '../helpers/log.js';
import { serveModbus, type ModbusSession, type ModbusSessionOptions } from '../../firmware/modbus/session.js';

export const identification: DeviceIdentification = {
  vendorName: 'Company identification',
  productCode: 'Product code XX',
  majorMinorRevision: 'V2.11',
  vendorUrl: 'https://handcheck.example/',
  productName: 'handcheck appliance',
  modelName: 'sim-pi4',
  userApplicationName: 'modbus tests',
};

function bitsFromBytes(bytes: number[], count: number): boolean[] {
  return Array.from({ length: count }, (_, i) => (((bytes[i >> 3] ?? 0) >> (i & 7)) & 1) === 1);
}

/**
 * Tables of 300 entries whose values are those of the spec's examples: coils 20-38 (addresses 19-37)
 * read CD 6B 05 (6.1), discrete inputs 197-218 (addresses 196-217) read AC DB 35 (6.2), holding
 * registers 108-110 hold 555, 0, 100 (6.3), input register 9 holds 10 (6.4). Other registers hold
 * 1000 + their address, so that a read at the wrong offset shows.
 */
export function specModel(): TableDataModel {
  const model = new TableDataModel({ coils: 300, discreteInputs: 300, holdingRegisters: 300, inputRegisters: 300, identification });
  bitsFromBytes([0xcd, 0x6b, 0x05], 19).forEach((bit, i) => (model.coils[19 + i] = bit));
  bitsFromBytes([0xac, 0xdb, 0x35], 22).forEach((bit, i) => (model.discreteInputs[196 + i] = bit));
  model.holdingRegisters.forEach((_, i) => (model.holdingRegisters[i] = 1000 + i));
  model.inputRegisters.forEach((_, i) => (model.inputRegisters[i] = 2000 + i));
  model.holdingRegisters[107] = 555;
  model.holdingRegisters[108] = 0;
  model.holdingRegisters[109] = 100;
  model.inputRegisters[8] = 10;
  return model;
}

export interface TestServer {
  port: number;
  sink: LogSink;
  sessions: ModbusSession[];
  /** Server-side sockets, in accept order. */
  sockets: Socket[];
  close(): Promise<void>;
}

/**
 * How the accepted socket reaches serveModbus. `paused`: paused since accept, bytes wait in the kernel.
 * `unshifted`: the first bytes were read and pushed back into the paused socket, as a gate that peeks
 * at them would leave it.
 */
export type HandOver = 'paused' | 'unshifted';

/** A net.Server on 127.0.0.1 port 0 that hands each accepted socket to serveModbus the way the gate does. */
export async function startServer(options: Omit<ModbusSessionOptions, 'logger'>, handOver: HandOver = 'paused'): Promise<TestServer> {
  const sink = logSink();
  const sessions: ModbusSession[] = [];
  const sockets: Socket[] = [];
  const serve = (socket: Socket): void => {
    sessions.push(serveModbus(socket, { ...options, logger: sink.logger }));
  };
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    sockets.push(socket);
    if (handOver === 'paused') {
      setImmediate(() => serve(socket));
      return;
    }
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      serve(socket);
    });
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sink,
    sessions,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

export interface Adu {
  transactionId: number;
  protocolId: number;
  unitId: number;
  pdu: Buffer;
}

export function adu(transactionId: number, unitId: number, pdu: readonly number[] | Buffer): Buffer {
  const body = Buffer.from(pdu);
  const header = Buffer.alloc(7);
  header.writeUInt16BE(transactionId, 0);
  header.writeUInt16BE(0, 2);
  header.writeUInt16BE(body.length + 1, 4);
  header.writeUInt8(unitId, 6);
  return Buffer.concat([header, body]);
}

/** A raw TCP client that collects everything the server sends and cuts it into ADUs. */
export class RawClient {
  readonly socket: Socket;
  private received = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => this.wake());
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((wake) => wake());
  }

  send(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.from(bytes));
  }

  /** ADUs complete in what was received so far. */
  adus(): Adu[] {
    const out: Adu[] = [];
    let offset = 0;
    while (this.received.length - offset >= 6) {
      const length = this.received.readUInt16BE(offset + 4);
      if (this.received.length - offset < 6 + length) break;
      out.push({
        transactionId: this.received.readUInt16BE(offset),
        protocolId: this.received.readUInt16BE(offset + 2),
        unitId: this.received.readUInt8(offset + 6),
        pdu: this.received.subarray(offset + 7, offset + 6 + length),
      });
      offset += 6 + length;
    }
    return out;
  }

  get bytesReceived(): number {
    return this.received.length;
  }

  /** Waits until `count` ADUs have arrived (or the server ended the stream first) and returns all received. */
  async waitFor(count: number): Promise<Adu[]> {
    while (this.adus().length < count && !this.ended && !this.socket.destroyed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.adus();
  }

  /** Waits until the server has closed its side, then closes ours, as a client that is not half-open does. */
  async waitEnd(): Promise<void> {
    while (!this.ended && !this.socket.destroyed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.socket.end();
  }

  /** Sends one request and waits for its answer. */
  async request(transactionId: number, unitId: number, pdu: number[]): Promise<Adu> {
    const before = this.adus().length;
    this.send(adu(transactionId, unitId, pdu));
    const all = await this.waitFor(before + 1);
    const answer = all[before];
    if (!answer) return expect.fail(`no answer to transaction ${transactionId}: the server closed the connection`);
    return answer;
  }

  close(): void {
    this.socket.destroy();
  }
}

export function hex(bytes: Buffer): string {
  return bytes.toString('hex').replace(/(..)(?!$)/g, '$1 ');
}
