/**
 * MODBUS/TCP Security under bad clients: 10,000 connections that never become a session that may do
 * anything - no client certificate, a certificate from another CA, plain Modbus TCP on the TLS port, a
 * handshake that stalls until tls.handshakeTimeoutMs, a certificate without a role (its request is
 * answered with exception 01, then it hangs up) - against the firmware on the sim board, in this
 * process.
 * Measured: what is held afterwards, the heap after GC against where it started, the log lines
 * written, and the rate.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { Firmware } from '../dist/firmware/firmware.js';
import { FirmwareMetrics } from '../dist/firmware/metrics.js';
import type { BoardConfig } from '../dist/config/board-config.js';
import { SimBoard } from '../dist/sim/board.js';
import { makePki } from '../test/helpers/pki.js';

type Report = (what: string, value: string, target: string, verdict: boolean | undefined) => void;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMb = (): number => {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

export async function tlsBench(report: Report, appliance: Readonly<BoardConfig>): Promise<void> {
  const pki = await makePki(['operator']);
  const stateDir = mkdtempSync(join(tmpdir(), 'handcheck-bench-tls-'));
  const config = structuredClone(appliance) as BoardConfig;
  config.services = config.services.map((s) => ({
    ...s,
    protocol: 'modbus-tls',
    listen: '127.0.0.1:0',
    tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, roles: { operator: [1, 2, 3, 4] }, handshakeTimeoutMs: 200 },
  }));
  let lines = 0;
  const logger = pino({ level: 'warn' }, new Writable({ write: (_chunk, _enc, done) => { lines++; done(); } }));
  const board = new SimBoard(config);
  board.clock.startRealtime(1);
  const firmware = await Firmware.start({ board, logger, metrics: new FirmwareMetrics({ board: config.id }), stateDir });
  const { port, gate } = firmware.services[0]!;
  const ca = readFileSync(pki.ca);
  const stranger = { cert: readFileSync(pki.clients.stranger!.cert), key: readFileSync(pki.clients.stranger!.key) };
  const roleless = { cert: readFileSync(pki.clients['no-role']!.cert), key: readFileSync(pki.clients['no-role']!.key) };
  const kinds: Array<() => Socket> = [
    () => tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }),
    () => tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...stranger }),
    () => tcpConnect({ host: '127.0.0.1', port }).on('connect', function (this: Socket) { this.write(Buffer.from([0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 1])); }),
    () => tcpConnect({ host: '127.0.0.1', port }).on('connect', function (this: Socket) { this.write(Buffer.from([0x16, 0x03, 0x01])); }),
    () => tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...roleless }),
  ];
  const one = (kind: () => Socket): Promise<void> =>
    new Promise((resolve) => {
      const socket = kind();
      socket.on('error', () => undefined);
      socket.on('secureConnect', () => socket.write(Buffer.from([0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 1])));
      socket.on('data', () => socket.end());
      socket.once('close', () => resolve());
    });
  const total = 10_000;
  const concurrency = 64;
  // Warm up, so the heap baseline includes what the first connections allocate once (TLS contexts, JIT).
  await Promise.all(kinds.map(one));
  const before = heapMb();
  const began = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await one(kinds[next++ % kinds.length]!);
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  while (gate.stats().held > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  const after = heapMb();
  await firmware.stop({ magic: true });
  await board.close();
  rmSync(stateDir, { recursive: true, force: true });
  await pki.remove();
  const grown = after - before;
  report(
    'MODBUS/TCP Security: 10,000 bad clients (no certificate, other CA, plain Modbus, stalled handshake, no role)',
    `${gate.stats().held} held after; heap ${before.toFixed(1)} -> ${after.toFixed(1)} MB after GC; ${lines} log lines; ${Math.round(total / seconds)}/s`,
    'nothing held, heap within 16 MB',
    gate.stats().held === 0 && grown <= 16,
  );
}
