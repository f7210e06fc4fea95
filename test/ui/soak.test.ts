/**
 * A bounded fuzz and soak of the two ports a stranger can reach, on loopback: random requests to the
 * control endpoint (methods, paths, percent-encoding, content types, bodies, fault specs) and random
 * bytes to the Modbus port. Whatever arrives, the endpoint answers below 500, nothing crashes, and
 * afterwards both ports still serve and no connection is left held. Seeded, so a failure replays.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInputRegisters } from '../firmware/helpers.js';
import { type PageAppliance, startPageAppliance } from './harness.js';

let running: PageAppliance;
let controlPort: number;
beforeAll(async () => {
  running = await startPageAppliance();
  controlPort = Number(new URL(running.base).port);
});
afterAll(async () => {
  await running.appliance.stop();
});

/** Sends raw bytes, resolves with the status code of the answer (0 if the connection closed without one). */
function exchange(port: number, bytes: Buffer): Promise<{ status: number; data: Buffer }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(bound);
      socket.destroy();
      const data = Buffer.concat(chunks);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1'))?.[1] ?? 0), data });
    };
    // A request the server still waits on (an announced body never sent) ends here; the endpoint's own
    // timeouts are tested elsewhere.
    const bound = setTimeout(done, 2000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', done);
    socket.once('close', done);
    socket.write(bytes);
    socket.end();
  });
}

const fault = fc.record(
  {
    target: fc.constantFrom('board-temp', 'eth0', 'meter', 'uplink-sfp', 'watchdog', 'nowhere', ''),
    kind: fc.constantFrom('nack', 'crc-errors', 'unplugged', 'drift', 'los', 'starve', 'melt'),
    times: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.double()),
    durationMs: fc.oneof(fc.integer({ min: 0, max: 500 }), fc.double(), fc.constant(1e309)),
    params: fc.dictionary(fc.constantFrom('ratePerS', 'quantity', 'value', 'x'), fc.oneof(fc.double(), fc.string(), fc.object())),
  },
  { requiredKeys: [] },
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'BREW'),
  path: fc.oneof(
    fc.constantFrom('/status', '/metrics', '/faults', '/faults/f1', '/faults/%zz', '/scenario', '/clock', '/events?sample=0', '/ui/app.js', '/ui/zz.svg', '/login', '/', '//..//'),
    fc.string({ maxLength: 40 }).map((s) => `/${encodeURIComponent(s)}`),
    fc.string({ maxLength: 20 }).map((s) => `/${s.replace(/[\s]/g, '')}`),
  ),
  host: fc.constantFrom('127.0.0.1', 'localhost', 'evil.example', '[::1]', ''),
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
  cookie: fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }).map((s) => `handcheck_token=${s.replace(/[\r\n]/g, '')}`), fc.constant('handcheck_token=%zz')),
  body: fc.oneof(
    fault.map((f) => JSON.stringify(f) ?? ''),
    fc.json(),
    fc.string({ maxLength: 200 }),
    fc.constant('{"steps":[{"atMs":0,"inject":{"target":"meter","kind":"unplugged","times":1,"durationMs":10}}]}'),
    fc.constant('{"speed":1e309}'),
  ),
});

type RandomRequest = typeof request extends fc.Arbitrary<infer T> ? T : never;

function toBytes(r: RandomRequest): Buffer {
  const body = Buffer.from(r.body);
  const headers = [`Host: ${r.host}`, 'Connection: close', `Content-Length: ${body.length}`];
  if (r.contentType) headers.push(`Content-Type: ${r.contentType}`);
  if (r.cookie) headers.push(`Cookie: ${r.cookie}`);
  return Buffer.concat([Buffer.from(`${r.method} ${r.path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`), body]);
}

describe('fuzz and soak, loopback, bounded', () => {
  it('the control endpoint answers every random request below 500 and keeps serving', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const { status } = await exchange(controlPort, toBytes(r));
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: 300, seed: 13, endOnFailure: true },
    );
    expect([...statuses.keys()].some((s) => s >= 200 && s < 300)).toBe(true);
    expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
    await fetch(`${running.base}/faults`, { method: 'DELETE' });
    await fetch(`${running.base}/scenario`, { method: 'DELETE' });
    expect((await fetch(`${running.base}/status`)).status).toBe(200);
  }, 120_000);

  it('the Modbus port survives random bytes on many connections and still answers a valid request', async () => {
    const port = running.port;
    await fetch(`${running.base}/faults`, { method: 'DELETE' });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
        await exchange(port, Buffer.from(bytes));
      }),
      { numRuns: 300, seed: 13 },
    );
    const { data } = await new Promise<{ data: Buffer }>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.write(readInputRegisters(7, 0, 1)));
      socket.once('data', (chunk: Buffer) => {
        socket.destroy();
        resolve({ data: chunk });
      });
    });
    expect(data.readUInt16BE(0)).toBe(7);
    expect(data[7]).toBe(4);
    const gate = running.appliance.services[0]!.gate;
    const deadline = Date.now() + 5000;
    while (gate.stats().held > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(gate.stats().held).toBe(0);
  }, 120_000);
});
