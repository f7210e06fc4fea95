/**
 * The control endpoint and the sim page against clients that misbehave on purpose: faults that used
 * to kill the process, out-of-range params, silent connections, too many connections, rebinding Host
 * headers, names that only look like loopback, token guessing, bad percent-encoding, bodies that are
 * not JSON, unbounded scenario uploads (issue 13, "It must not fall over").
 */
import { type Socket, connect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ControlServer, startControlServer } from '../../app/control.js';
import { packageRoot } from '../../app/package-root.js';
import { type PageAppliance, json, jsonType, startPageAppliance } from './harness.js';

let running: PageAppliance | undefined;
let server: ControlServer | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await running?.appliance.stop();
  running = undefined;
  await server?.close();
  server = undefined;
});

const api = { status: () => ({ ok: true }), metrics: async () => ({ contentType: 'text/plain', body: '' }), faults: undefined };

/** Sends `request` as raw bytes and resolves with the status code and body the endpoint answered. */
function raw(port: number, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.once('error', reject);
    socket.once('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(request.replace(/\n/g, '\r\n'));
  });
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const lines = Object.entries({ host: `127.0.0.1:${port}`, connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}`);
  return raw(port, `GET ${path} HTTP/1.1\n${lines.join('\n')}\n\n`);
}

/** Resolves once the endpoint closes `socket`. */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.on('data', () => undefined);
    socket.once('error', () => resolve());
    socket.once('close', () => resolve());
  });
}

function opened(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    sockets.push(socket);
    socket.once('error', reject);
  });
}

describe('faults that used to kill the process', () => {
  it('a serial fault with times 1 and a duration, through POST /faults and POST /scenario, leaves the board running', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    const clock = appliance.board.sim!.clock;
    const fault = { target: 'meter', kind: 'unplugged', times: 1, durationMs: 1000 };
    expect((await fetch(`${base}/faults`, { method: 'POST', headers: jsonType, body: JSON.stringify(fault) })).status).toBe(201);
    const scenario = { steps: [{ atMs: 0, inject: fault }] };
    expect((await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify(scenario) })).status).toBe(201);
    clock.stopRealtime();
    // Before: FaultError "no active fault with id" thrown on the clock's timer, 1 s of board time later.
    await expect(clock.advance(5000)).resolves.toBeUndefined();
    expect((await fetch(`${base}/status`)).status).toBe(200);
  });

  it('refuses crc-errors params a link cannot carry, naming the param and its range, and the link recovers after a clear', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    const post = async (body: string) => json(await fetch(`${base}/faults`, { method: 'POST', headers: jsonType, body }));
    for (const ratePerS of ['1e308', '1e309', '{"deep":{"er":1}}']) {
      const refused = await post(`{"target":"eth0","kind":"crc-errors","params":{"ratePerS":${ratePerS}}}`);
      expect(refused).toMatchObject({ status: 400, body: { error: { code: 'ERR_SIM_FAULT_SPEC', message: expect.stringContaining('"ratePerS"') } } });
    }
    expect((await post('{"target":"eth0","kind":"crc-errors","params":{"ratePerS":1e308}}')).body).toMatchObject({ error: { message: expect.stringContaining('from 0 to 1488095') } });
    expect((await post('{"target":"eth0","kind":"crc-errors","params":{"ratePerS":1488095}}')).status).toBe(201);
    // The driver turns counters into a rate between two reads (hal/drivers/ethernet.ts).
    const eth0 = async () => (await appliance.devices.diagnose()).find((c) => c.id === 'eth0')!;
    await eth0();
    expect((await eth0()).state).toBe('failed');
    expect((await fetch(`${base}/faults`, { method: 'DELETE' })).status).toBe(200);
    await eth0();
    expect((await eth0()).state).toBe('ok');
  });
});

describe('the control endpoint against hostile clients', () => {
  it('closes a connection that sends nothing', async () => {
    server = await startControlServer({ host: '127.0.0.1', port: 0, api, logger: pino({ level: 'silent' }), idleTimeoutMs: 200 });
    const socket = await opened(server.address.port);
    await closed(socket);
    expect(socket.destroyed).toBe(true);
  });

  it('closes connections past its cap at once and says so in the log', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    server = await startControlServer({ host: '127.0.0.1', port: 0, api, logger, maxConnections: 4 });
    const port = server.address.port;
    for (let i = 0; i < 4; i++) await opened(port);
    const fifth = await opened(port);
    await closed(fifth);
    expect(lines.join('')).toContain('connection limit');
    for (const socket of sockets.splice(0)) socket.destroy();
    // The server counts a connection gone on its own close event, a moment after ours.
    let status = NaN;
    for (let i = 0; i < 100 && status !== 200; i++) status = (await get(port, '/status').catch(() => ({ status: NaN }))).status;
    expect(status).toBe(200);
  });

  it('without a token, answers only to localhost and IP literals in Host (DNS rebinding)', async () => {
    running = await startPageAppliance();
    const port = Number(new URL(running.base).port);
    const body = '{"target":"board-temp","kind":"nack"}';
    const post = (host: string) => raw(port, `POST /faults HTTP/1.1\nhost: ${host}\ncontent-type: application/json\ncontent-length: ${body.length}\nconnection: close\n\n${body}`);
    expect(await post(`evil.example:${port}`)).toMatchObject({ status: 421, body: expect.stringContaining('ERR_CONTROL_HOST') });
    expect(await post('127.0.0.1.evil.example')).toMatchObject({ status: 421 });
    expect(running.appliance.board.sim!.faults.list()).toEqual([]);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) expect([host, (await get(port, '/status', { host })).status]).toEqual([host, 200]);
  });

  it('judges loopback by the address a name resolves to, not by how the name looks', async () => {
    const logger = pino({ level: 'silent' });
    const offLoopback = async () => ({ address: '192.0.2.7' });
    await expect(startControlServer({ host: '127.0.0.1.example', port: 0, api, logger, lookup: offLoopback })).rejects.toMatchObject({
      code: 'ERR_CONTROL_TOKEN_REQUIRED',
      message: expect.stringContaining('127.0.0.1.example (192.0.2.7)'),
    });
    server = await startControlServer({ host: 'my-loopback-name', port: 0, api, logger, lookup: async () => ({ address: '127.0.0.1' }) });
    expect(server.address.address).toBe('127.0.0.1');
  });

  it('refuses a token shorter than 16 characters', async () => {
    await expect(startControlServer({ host: '127.0.0.1', port: 0, api, logger: pino({ level: 'silent' }), token: 'x' })).rejects.toMatchObject({
      code: 'ERR_CONTROL_TOKEN_TOO_SHORT',
    });
  });

  it('limits token guesses per client: past the burst every attempt gets 429 until the bucket refills', async () => {
    let now = 0;
    const token = 'a-token-of-24-characters';
    server = await startControlServer({ host: '127.0.0.1', port: 0, api, logger: pino({ level: 'silent' }), token, guesses: { burst: 3, refillMs: 1000, now: () => now } });
    const port = server.address.port;
    const bearer = (t: string) => get(port, '/status', { authorization: `Bearer ${t}` });
    for (let i = 0; i < 3; i++) expect((await bearer(`guess-${i}`)).status).toBe(401);
    const limited = await bearer(token);
    expect(limited).toMatchObject({ status: 429, body: expect.stringContaining('ERR_CONTROL_TOO_MANY') });
    expect((await bearer(`${token}x`)).status).toBe(429);
    now += 1000;
    expect((await bearer(token)).status).toBe(200);
    expect((await bearer(token.slice(0, -1))).status).toBe(401);
  });

  it('answers bad percent-encoding in a cookie or a path with 400, not 500', async () => {
    server = await startControlServer({ host: '127.0.0.1', port: 0, api, logger: pino({ level: 'silent' }), token: 'a-token-of-24-characters' });
    const port = server.address.port;
    expect(await get(port, '/status', { cookie: 'handcheck_token=%zz' })).toMatchObject({ status: 400, body: expect.stringContaining('percent-encoding') });
    running = await startPageAppliance();
    const pagePort = Number(new URL(running.base).port);
    const bad = await raw(pagePort, `DELETE /faults/%E0%A4%A HTTP/1.1\nhost: 127.0.0.1\nconnection: close\n\n`);
    expect(bad).toMatchObject({ status: 400, body: expect.stringContaining('ERR_CONTROL_BAD_REQUEST') });
  });

  it('answers a missing page file with 404 and no install path', async () => {
    running = await startPageAppliance();
    const missing = await fetch(`${running.base}/ui/zz.svg`);
    const body = await missing.text();
    expect(missing.status).toBe(404);
    expect(body).toContain('zz.svg');
    expect(body).not.toContain(packageRoot);
    expect(body).not.toContain('sim-page');
  });

  it('takes JSON bodies only as application/json (415 for text/plain and forms)', async () => {
    running = await startPageAppliance();
    const body = JSON.stringify({ target: 'board-temp', kind: 'nack' });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await json(await fetch(`${running.base}/faults`, { method: 'POST', headers: { 'content-type': type }, body }));
      expect([type, res.status, (res.body.error as { code: string }).code]).toEqual([type, 415, 'ERR_CONTROL_MEDIA_TYPE']);
    }
    expect(running.appliance.board.sim!.faults.list()).toEqual([]);
    expect((await fetch(`${running.base}/faults`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body })).status).toBe(201);
  });

  it('bounds scenario playbacks, and DELETE /scenario lets go of them and their timers', async () => {
    running = await startPageAppliance();
    const { base, appliance } = running;
    const clock = appliance.board.sim!.clock;
    const baseline = clock.pending;
    const steps = Array.from({ length: 500 }, (_, i) => ({ atMs: 3_600_000 + i, set: { 'board-temp': { temperatureC: 20 + (i % 10) } } }));
    const upload = async () => (await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify({ steps }) })).status;
    for (let i = 0; i < 16; i++) expect(await upload()).toBe(201);
    expect(clock.pending).toBeGreaterThanOrEqual(baseline + 16 * 500);
    const refused = await json(await fetch(`${base}/scenario`, { method: 'POST', headers: jsonType, body: JSON.stringify({ steps }) }));
    expect(refused).toMatchObject({ status: 429, body: { error: { code: 'ERR_CONTROL_TOO_MANY' } } });
    expect((await json(await fetch(`${base}/scenario`, { method: 'DELETE' }))).body.stopped).toHaveLength(16);
    expect(clock.pending).toBeLessThanOrEqual(baseline + 1);
    expect((await json(await fetch(`${base}/scenario`))).body.scenarios).toEqual([]);
    expect(await upload()).toBe(201);
  });
});
