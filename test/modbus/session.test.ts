/**
 * serveModbus over real TCP sockets on 127.0.0.1: pipelining, segmentation, sockets handed over paused
 * with bytes waiting, unit ids, write access, half-close, invalid MBAP, flow control, and random
 * streams thrown at a live session.
 */
import fc from 'fast-check';
import type { Socket } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TableDataModel, type ModbusDataModel } from '../../firmware/modbus/data-model.js';
import { ModbusConfigError, ModbusFrameError } from '../../firmware/modbus/errors.js';
import { serveModbus } from '../../firmware/modbus/session.js';
import { RawClient, adu, hex, identification, specModel, startServer, type Adu, type TestServer } from './helpers.js';

let server: TestServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  clients.splice(0).forEach((client) => client.close());
  await server?.close();
  server = undefined;
});

async function start(options: Parameters<typeof startServer>[0], handOver?: Parameters<typeof startServer>[1]): Promise<TestServer> {
  server = await startServer(options, handOver);
  return server;
}

async function client(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

function summary(answer: Adu | undefined): string {
  return answer ? `${answer.transactionId}/${answer.unitId}: ${hex(answer.pdu)}` : 'none';
}

describe('serveModbus', () => {
  it('answers requests pipelined in one segment in order, each with its transaction id, reads seeing earlier writes', async () => {
    const { port } = await start({ model: specModel() });
    const c = await client(port);
    const requests: number[][] = [];
    for (let i = 0; i < 40; i++) {
      requests.push([0x06, 0x00, 0x10, i >> 8, i & 0xff]);
      requests.push([0x03, 0x00, 0x10, 0x00, 0x01]);
    }
    c.send(Buffer.concat(requests.map((pdu, i) => adu(0x1000 + i, 1, pdu))));
    const answers = await c.waitFor(requests.length);
    expect(answers).toHaveLength(80);
    answers.forEach((answer, i) => {
      expect(answer.transactionId).toBe(0x1000 + i);
      expect(answer.protocolId).toBe(0);
      expect(answer.unitId).toBe(1);
      const written = i >> 1;
      if (i % 2 === 0) expect(hex(answer.pdu)).toBe(hex(Buffer.from(requests[i] ?? [])));
      else expect(hex(answer.pdu)).toBe(`03 02 ${hex(Buffer.from([written >> 8, written & 0xff]))}`);
    });
  });

  it('answers a request written one byte at a time', async () => {
    const { port } = await start({ model: specModel() });
    const c = await client(port);
    c.socket.setNoDelay(true);
    const bytes = adu(7, 1, [0x04, 0x00, 0x08, 0x00, 0x01]);
    for (const byte of bytes) {
      await new Promise<void>((resolve) => c.socket.write(Buffer.from([byte]), () => resolve()));
    }
    expect(summary((await c.waitFor(1))[0])).toBe('7/1: 04 02 00 0a');
  });

  it.each(['paused', 'unshifted'] as const)('answers bytes that were waiting when the socket was handed over %s', async (handOver) => {
    const { port, sessions } = await start({ model: specModel() }, handOver);
    const c = await client(port);
    c.send(Buffer.concat([adu(1, 1, [0x01, 0x00, 0x13, 0x00, 0x13]), adu(2, 1, [0x02, 0x00, 0xc4, 0x00, 0x16])]));
    const answers = await c.waitFor(2);
    expect(answers.map(summary)).toEqual(['1/1: 01 03 cd 6b 05', '2/1: 02 03 ac db 35']);
    expect(sessions[0]?.requests).toBe(2);
  });

  it('serves its unit ids and 0 and 255, and answers other unit ids with exception 0x0B', async () => {
    const { port } = await start({ model: specModel(), unitIds: [1, 17] });
    const c = await client(port);
    const read = [0x04, 0x00, 0x08, 0x00, 0x01];
    expect(summary(await c.request(1, 17, read))).toBe('1/17: 04 02 00 0a');
    expect(summary(await c.request(2, 0, read))).toBe('2/0: 04 02 00 0a');
    expect(summary(await c.request(3, 255, read))).toBe('3/255: 04 02 00 0a');
    expect(summary(await c.request(4, 2, read))).toBe('4/2: 84 0b');
    expect(summary(await c.request(5, 247, [0x2b, 0x0e, 0x01, 0x00]))).toBe('5/247: ab 0b');
  });

  it('asks permits for each request and answers refused function codes with exception 1', async () => {
    const asked: number[] = [];
    const model = specModel();
    const { port, sessions } = await start({
      model,
      permits: (functionCode) => {
        asked.push(functionCode);
        return functionCode === 3;
      },
    });
    const c = await client(port);
    expect(summary(await c.request(1, 1, [0x06, 0x00, 0x01, 0x00, 0x03]))).toBe('1/1: 86 01');
    expect(summary(await c.request(2, 1, [0x03, 0x00, 0x6b, 0x00, 0x01]))).toBe('2/1: 03 02 02 2b');
    expect(model.holdingRegisters[1]).toBe(1001);
    expect(asked).toEqual([6, 3]);
    expect(sessions[0]?.exceptions).toBe(1);
  });

  it('answers exception 4 when the model fails, logs the failure with its cause, and serves the next request', async () => {
    const model = Object.assign(specModel(), {
      readDiscreteInputs: () => {
        throw new Error('gpio:pinctrl-bcm2711/GPIO17 read failed');
      },
    });
    const { port, sink, sessions } = await start({ model });
    const c = await client(port);
    expect(summary(await c.request(3, 1, [0x02, 0x00, 0x00, 0x00, 0x01]))).toBe('3/1: 82 04');
    expect(summary(await c.request(4, 1, [0x04, 0x00, 0x08, 0x00, 0x01]))).toBe('4/1: 04 02 00 0a');
    const line = sink.lines().find((entry) => entry.msg === 'data model failed; answered exception 0x04');
    expect(line?.level).toBe(40);
    expect(line?.transactionId).toBe(3);
    expect(line?.err).toMatchObject({ code: 'ERR_MODBUS_MODEL', method: 'readDiscreteInputs' });
    expect(JSON.stringify(line?.err)).toContain('GPIO17 read failed');
    expect(sessions[0]?.exceptions).toBe(1);
  });

  it('answers what a half-closed client sent, then closes', async () => {
    // The model holds its answer until the server socket has seen the client's FIN, so the answers
    // must still go out over the half-closed connection.
    const model = specModel();
    let sockets: Socket[] = [];
    const slow = Object.assign(model, {
      readInputRegisters: async (address: number, quantity: number) => {
        while (!sockets[0]?.readableEnded) await new Promise((resolve) => setImmediate(resolve));
        return model.inputRegisters.slice(address, address + quantity);
      },
    });
    const started = await start({ model: slow });
    sockets = started.sockets;
    const c = await client(started.port);
    c.send(Buffer.concat([adu(1, 1, [0x04, 0x00, 0x08, 0x00, 0x01]), adu(2, 1, [0x07]), adu(3, 1, [0x03, 0x00, 0x6b, 0x00, 0x03])]));
    c.socket.end();
    await c.waitEnd();
    expect(c.adus().map(summary)).toEqual(['1/1: 04 02 00 0a', '2/1: 87 01', '3/1: 03 06 02 2b 00 00 00 64']);
    const end = await started.sessions[0]?.closed;
    expect(end).toEqual({ reason: null, requests: 3, exceptions: 1 });
  });

  it('answers the requests before an invalid MBAP header, then closes with FIN and reports why', async () => {
    const { port, sessions, sink } = await start({ model: specModel() });
    const c = await client(port);
    const bad = Buffer.from('0009 0001 0006 01 03 00 00 00 01'.replaceAll(' ', ''), 'hex');
    c.send(Buffer.concat([adu(8, 1, [0x04, 0x00, 0x08, 0x00, 0x01]), bad, adu(10, 1, [0x04, 0x00, 0x08, 0x00, 0x01])]));
    await c.waitEnd();
    expect(c.adus().map(summary)).toEqual(['8/1: 04 02 00 0a']);
    expect(c.ended).toBe(true);
    const end = await sessions[0]?.closed;
    expect(end?.reason).toBeInstanceOf(ModbusFrameError);
    expect(end?.reason?.field).toBe('protocolId');
    expect(end?.reason?.transactionId).toBe(9);
    expect(end?.requests).toBe(1);
    const warning = sink.lines().find((line) => line.level === 40);
    expect(warning?.msg).toBe('closing the connection: the byte stream is not Modbus TCP');
    expect(warning?.code).toBe('ERR_MODBUS_FRAME');
    expect(warning?.message).toContain('protocol');
    expect(warning).not.toHaveProperty('err');
  });

  it('closes on a length past 254 without waiting for the bytes it announces', async () => {
    const { port, sessions } = await start({ model: specModel() });
    const c = await client(port);
    c.send(Buffer.from('0001 0000 ffff 01'.replaceAll(' ', ''), 'hex'));
    await c.waitEnd();
    expect((await sessions[0]?.closed)?.reason?.field).toBe('length');
  });

  it('stops reading at maxInFlight unanswered requests, then answers all of them in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const model = specModel();
    const slow: ModbusDataModel = Object.assign(model, {
      readInputRegisters: async (address: number, quantity: number) => {
        await gate;
        return model.inputRegisters.slice(address, address + quantity);
      },
    });
    const { port, sockets } = await start({ model: slow, maxInFlight: 4 });
    const c = await client(port);
    const count = 60_000;
    const requests = Buffer.concat(Array.from({ length: count }, (_, i) => adu(i, 1, [0x04, 0x00, 0x08, 0x00, 0x01])));
    c.send(requests);
    while (!sockets[0]) await new Promise((resolve) => setImmediate(resolve));
    const serverSocket = sockets[0];
    // Paused since accept until the session starts reading; then paused again only by the session.
    const reading = (): boolean => serverSocket.bytesRead === 0 || (!serverSocket.isPaused() && serverSocket.bytesRead < requests.length);
    while (reading()) await new Promise((resolve) => setImmediate(resolve));
    expect(serverSocket.isPaused()).toBe(true);
    // What Node reads ahead of a paused stream (one socket read past its high-water mark), not what the client sent.
    expect(serverSocket.bytesRead).toBeLessThanOrEqual(4 * 65536);
    expect(requests.length).toBeGreaterThan(10 * 65536);
    release();
    const answers = await c.waitFor(count);
    expect(answers).toHaveLength(count);
    expect(answers.every((answer, i) => answer.transactionId === i && hex(answer.pdu) === '04 02 00 0a')).toBe(true);
  });

  it('survives a client that resets while its request is in the model', async () => {
    let entered!: () => void;
    const inModel = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const model = Object.assign(specModel(), {
      readHoldingRegisters: async () => {
        entered();
        await new Promise<void>((resolve) => (release = resolve));
        return [1];
      },
    });
    const { port, sessions } = await start({ model });
    const c = await client(port);
    c.send(adu(1, 1, [0x03, 0x00, 0x00, 0x00, 0x01]));
    await inModel;
    c.socket.resetAndDestroy();
    const end = await sessions[0]?.closed;
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(end).toEqual({ reason: null, requests: 0, exceptions: 0 });
  });

  it('answers every frame of a random stream of requests, however segmented, and closes at garbage after answering what preceded it', async () => {
    const { port, sessions } = await start({ model: specModel(), unitIds: [1, 2] });
    const pduArb = fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 320 }), fc.integer({ min: 0, max: 130 })).map(([code, address, quantity]) => [
        code,
        address >> 8,
        address & 0xff,
        quantity >> 8,
        quantity & 0xff,
      ]),
      fc.constantFrom([0x2b, 0x0e, 0x02, 0x00], [0x2b, 0x0e, 0x04, 0x09], [0x05, 0x00, 0x01, 0xff, 0x00], [0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0x12, 0x34]),
      fc.uint8Array({ minLength: 1, maxLength: 253 }).map((bytes) => [...bytes]),
    );
    const frameArb = fc.record({ transactionId: fc.integer({ min: 0, max: 0xffff }), unitId: fc.constantFrom(0, 1, 2, 3, 255), pdu: pduArb });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), async (frames, cuts, garbage) => {
        run += 1;
        const c = await client(port);
        const stream = Buffer.concat([
          ...frames.map((frame) => adu(frame.transactionId, frame.unitId, frame.pdu)),
          ...(garbage ? [Buffer.from('GET / HTTP/1.1\r\n\r\n')] : []),
        ]);
        const points = [...new Set(cuts.map((cut) => cut % stream.length))].sort((a, b) => a - b);
        let from = 0;
        for (const point of [...points, stream.length]) {
          c.send(stream.subarray(from, point));
          from = point;
        }
        if (!garbage) c.socket.end();
        await c.waitEnd();
        const answers = c.adus();
        expect(answers).toHaveLength(frames.length);
        answers.forEach((answer, i) => {
          const frame = frames[i];
          expect(answer.transactionId).toBe(frame?.transactionId);
          expect(answer.unitId).toBe(frame?.unitId);
          expect((answer.pdu[0] ?? 0) & 0x7f).toBe((frame?.pdu[0] ?? -1) & 0x7f);
          if (frame?.unitId === 3) expect(answer.pdu[1]).toBe(0x0b);
        });
        const end = await sessions[run - 1]?.closed;
        expect(end?.requests).toBe(frames.length);
        expect(end?.reason?.code).toBe(garbage ? 'ERR_MODBUS_FRAME' : undefined);
        c.close();
      }),
      { numRuns: 40 },
    );
  });

  it('refuses unit ids outside 1..247 and a maxInFlight below 1', async () => {
    const { port } = await start({ model: specModel() });
    const c = await client(port);
    const options = { model: new TableDataModel({ identification }), logger: pino({ level: 'silent' }) };
    expect(() => serveModbus(c.socket, { ...options, unitIds: [248] })).toThrow(ModbusConfigError);
    expect(() => serveModbus(c.socket, { ...options, unitIds: [0] })).toThrow(/unitIds must hold integers 1..247, got 0/);
    expect(() => serveModbus(c.socket, { ...options, maxInFlight: 0 })).toThrow(/maxInFlight/);
  });
});
