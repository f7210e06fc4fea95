/**
 * MODBUS/TCP Security (protocol modbus-tls) on the sim appliance, against pymodbus' TLS client
 * (Debian's python3-pymodbus 3.0, driven by pymodbus_tls_client.py) and Node's TLS client, with
 * certificates made by the openssl command line (test/helpers/pki.ts): mutual authentication, the role
 * from the client certificate's role extension mapped to function codes, the gate acting at the TCP
 * accept before any TLS work, and clients that fail or stall the handshake cut without a trace.
 */
import { execFile, spawnSync } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Appliance } from '../../app/appliance.js';
import type { BoardConfig } from '../../config/board-config.js';
import { parseBoards } from '../../config/boards.js';
import { logSink, type LogSink } from '../helpers/log.js';
import { type Pki, makePki } from '../helpers/pki.js';
import { requireOrSkip } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { applianceConfig, attempt, startAppliance } from '../firmware/helpers.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('./pymodbus_tls_client.py', import.meta.url));
const python = ['/usr/bin/python3', 'python3'].find(
  (candidate) => spawnSync(candidate, ['-c', 'import pymodbus.client'], { timeout: 20_000 }).status === 0,
);
const pymodbusMissing = python ? null : 'pymodbus is not importable (apt-get install python3-pymodbus python3-serial-asyncio)';

const roles = { operator: [1, 2, 3, 4, 5, 6, 15, 16, 43], viewer: [1, 2, 3, 4, 43] };

interface Seen {
  connected: boolean;
  tlsVersion?: string;
  readInputRegisters?: number[] | { exception: number } | { error: string };
  writeCoil?: boolean | { exception: number } | { error: string };
  readCoils?: boolean[] | { exception: number } | { error: string };
}

let pki: Pki;
let appliance: Appliance;
let port: number;
let sink: LogSink;

function tlsConfig(handshakeTimeoutMs: number): BoardConfig {
  return applianceConfig({ recheckMs: 0 }, (c) => ({
    ...c,
    services: c.services.map((s) => ({
      ...s,
      protocol: 'modbus-tls',
      tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca, roles, handshakeTimeoutMs },
    })),
  }));
}

beforeAll(async () => {
  pki = await makePki(['operator', 'viewer', 'intruder']);
  sink = logSink('info');
  // Short enough that the stalled-handshake test waits little, long enough for a loaded machine's handshakes.
  ({ appliance, port } = await startAppliance(tlsConfig(1500), { logger: sink.logger }));
});

afterAll(async () => {
  await appliance?.stop();
  await pki?.remove();
});

async function pymodbus(client?: string): Promise<Seen> {
  const pair = client ? pki.clients[client]! : undefined;
  const { stdout } = await run(python ?? 'python3', [script, String(port), pki.ca, ...(pair ? [pair.cert, pair.key] : [])], { timeout: 60_000 });
  return JSON.parse(stdout) as Seen;
}

function refusals(reason: string): Record<string, unknown>[] {
  return sink.lines().filter((line) => line.action === 'tls-refused' && line.reason === reason);
}

function roleLines(): Record<string, unknown>[] {
  return sink.lines().filter((line) => line.action === 'tls-role');
}

describe('pymodbus TLS client', () => {
  it('an allowed role reads and writes, over TLS 1.2 or later', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    expect(appliance.board.sim!.gpio.level('relay')).toBe(0);
    const seen = await pymodbus('operator');
    expect(seen.connected).toBe(true);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(seen.tlsVersion);
    expect(seen.readInputRegisters).toEqual([1, 1]);
    expect(seen.writeCoil).toBe(true);
    expect((seen.readCoils as boolean[])[0]).toBe(true);
    expect(appliance.board.sim!.gpio.level('relay')).toBe(1);
  });

  it('a read-only role writing gets exception 01; its reads are answered', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const before = appliance.board.sim!.gpio.level('relay');
    const seen = await pymodbus('viewer');
    expect(seen.readInputRegisters).toEqual([1, 1]);
    expect(seen.writeCoil).toEqual({ exception: 1 });
    expect(appliance.board.sim!.gpio.level('relay')).toBe(before);
  });

  it('no client certificate: refused, and the log says why', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const seen = await pymodbus();
    expect(seen.readInputRegisters).toMatchObject({ error: expect.any(String) as string });
    expect(seen.writeCoil).toMatchObject({ error: expect.any(String) as string });
    await until(() => refusals('no-client-certificate').length > 0, 'the refusal logged');
    expect(refusals('no-client-certificate')[0]).toMatchObject({ level: 40, peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as string });
  });

  it('a client certificate from a CA the server does not trust: refused', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const seen = await pymodbus('stranger');
    expect(seen.readInputRegisters).toMatchObject({ error: expect.any(String) as string });
    await until(() => refusals('untrusted-certificate').length > 0, 'the refusal logged');
  });

  it('a certificate without a role: connected, every request answered exception 01, the decision logged with the subject', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const seen = await pymodbus('no-role');
    expect(seen).toMatchObject({ connected: true, readInputRegisters: { exception: 1 }, writeCoil: { exception: 1 }, readCoils: { exception: 1 } });
    const line = roleLines().find((l) => l.subject === 'CN=no-role');
    expect(line).toMatchObject({ level: 40, role: null });
    expect(line?.msg).toContain('no Modbus role (extension 1.3.6.1.4.1.50316.802.1)');
  });

  it('a role tls.roles does not name: every request answered exception 01', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const seen = await pymodbus('intruder');
    expect(seen).toMatchObject({ readInputRegisters: { exception: 1 }, writeCoil: { exception: 1 } });
    expect(roleLines().find((l) => l.role === 'intruder')).toMatchObject({ level: 40, roles: ['operator', 'viewer'] });
  });
});

describe('the gate and the handshake', () => {
  it('a faulty appliance resets the connection at the TCP accept, before any TLS work', async () => {
    const sim = appliance.board.sim!;
    const linesBefore = sink.lines().length;
    sim.faults.inject({ target: 'board-temp', kind: 'nack' });
    try {
      await until(async () => (await attempt(appliance)) === 'reset', 'a connect reset');
    } finally {
      sim.faults.clearAll();
    }
    // The gate refused it: no handshake was started, so none was refused or completed.
    const later = sink.lines().slice(linesBefore);
    expect(later.some((line) => line.action === 'reset')).toBe(true);
    expect(later.some((line) => line.action === 'tls-refused' || line.action === 'tls-role')).toBe(false);
    await until(async () => (await attempt(appliance)) === 'open', 'connects accepted again');
  });

  it('a client that stalls the handshake is cut after handshakeTimeoutMs, and its connection is not held', async () => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    // The first bytes of a TLS record header, then nothing.
    socket.write(Buffer.from([0x16, 0x03, 0x01]));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await closed;
    await until(() => refusals('handshake-timeout').length > 0, 'the timeout logged');
    await until(() => appliance.services[0]!.gate.stats().held === 0, 'nothing held');
  });

  it('after 300 bad clients (no certificate, wrong CA, plain Modbus TCP, a reset mid-handshake) nothing is held and the log stays short', async () => {
    const linesBefore = sink.lines().length;
    const stranger = pki.clients.stranger!;
    const ca = readFileSync(pki.ca);
    const bad = [
      () => tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }),
      () => tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) }),
      () => tcpConnect({ host: '127.0.0.1', port }, function (this: import('node:net').Socket) {
        this.write(Buffer.from([0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 1]));
      }),
      () => tcpConnect({ host: '127.0.0.1', port }, function (this: import('node:net').Socket) {
        this.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]));
        this.resetAndDestroy();
      }),
    ];
    for (let round = 0; round < 75; round++) {
      await Promise.all(
        bad.map(
          (open) =>
            new Promise<void>((resolve) => {
              const socket = open();
              socket.on('error', () => undefined);
              socket.on('secureConnect', () => socket.write(Buffer.from([0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 1])));
              socket.on('data', () => undefined);
              socket.once('close', () => resolve());
            }),
        ),
      );
    }
    await until(() => appliance.services[0]!.gate.stats().held === 0, 'nothing held');
    // One line per reason per 10 s window, however many clients.
    expect(sink.lines().slice(linesBefore).filter((line) => line.action === 'tls-refused').length).toBeLessThanOrEqual(8);
    expect(await attempt(appliance)).toBe('open');
  });
});

describe('start-up', () => {
  it('a key file that is missing, or that does not match the certificate, stops the start with ERR_TLS_CONFIG naming it', async () => {
    const missing = tlsConfig(1500);
    missing.services[0]!.tls!.key = `${pki.dir}/nowhere.key`;
    await expect(startAppliance(missing)).rejects.toMatchObject({ code: 'ERR_TLS_CONFIG', message: expect.stringContaining(`tls.key ${pki.dir}/nowhere.key: ENOENT`) as string });
    const mismatched = tlsConfig(1500);
    mismatched.services[0]!.tls!.key = pki.clients.operator!.key;
    await expect(startAppliance(mismatched)).rejects.toMatchObject({ code: 'ERR_TLS_CONFIG', message: expect.stringContaining('not usable') as string });
  });

  it('the boards file pairs protocol modbus-tls with tls, naming the path when one lacks the other', () => {
    const text = readFileSync(new URL('../../boards.json', import.meta.url), 'utf8');
    const doc = JSON.parse(text) as { boards: { services: Record<string, unknown>[] }[] };
    doc.boards[0]!.services[0]!.protocol = 'modbus-tls';
    doc.boards[1]!.services[0]!.tls = { cert: 'a', key: 'b', ca: 'c', roles: { viewer: [3] } };
    expect(() => parseBoards(JSON.stringify(doc), 'boards.json')).toThrow(
      expect.objectContaining({
        issues: [
          { path: '/boards/0/services/0/tls', message: 'protocol modbus-tls needs tls: { cert, key, ca, roles }' },
          { path: '/boards/1/services/0/tls', message: 'tls applies only to protocol "modbus-tls", this service\'s is "modbus-tcp"' },
        ],
      }) as Error,
    );
  });
});
