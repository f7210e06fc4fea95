import { gatePolicy } from '../../config/gate-policy.js';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Gate } from '../../firmware/gate/gate.js';
import { GateClosedError, GateListenError } from '../../firmware/gate/errors.js';
import { FakeDiagnosis, HOST, Rig } from './harness.js';
import { logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';

const rig = new Rig();
afterEach(() => rig.cleanup());

function refused(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.on('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

describe('gate: limits and idle connections', () => {
  it('resets connections over maxConnections without diagnosing them', async () => {
    const { gate, port, diagnosis, decisions, sink } = await rig.start({ policy: { maxConnections: 2 } });
    const first = rig.connect(port);
    const second = rig.connect(port);
    await first.roundTrip('1');
    await second.roundTrip('2');

    const third = await rig.connect(port).fate;

    expect(third.error).toBe('ECONNRESET');
    expect(diagnosis.calls).toBe(1);
    expect(gate.stats()).toMatchObject({ rejectedLimit: 1, held: 2, reset: 0, connections: 3 });
    expect(decisions.at(-1)).toMatchObject({ action: 'limit', verdict: undefined });
    expect(sink.decisions().at(-1)).toMatchObject({ level: 40, action: 'limit', held: 2, waiting: 0, maxConnections: 2 });

    first.end();
    await first.fate;
    await until(() => gate.stats().held === 1, 'the server to see the close');
    expect(await rig.connect(port).roundTrip('room again')).toBe('room again');
  });

  it('counts connections waiting for a verdict against maxConnections', async () => {
    const diagnosis = new FakeDiagnosis();
    const verdict = diagnosis.gated();
    const { gate, port } = await rig.start({ diagnosis, policy: { maxConnections: 1 } });
    const waiting = rig.connect(port);
    await until(() => gate.stats().waiting === 1, 'the first connection to wait');

    expect((await rig.connect(port).fate).error).toBe('ECONNRESET');
    verdict.resolve({ ok: true, failures: [], startedAt: Date.now(), durationMs: 1, reused: false });
    expect(await waiting.roundTrip('first')).toBe('first');
  });

  it('closes a held connection with FIN after idleTimeoutMs without traffic either way', async () => {
    // The timeout must outlast the slowest round trip, which a loaded machine stretches: measured here
    // first, on a gate without one, and the timeout set well above it.
    const probe = await rig.start();
    const measuring = rig.connect(probe.port);
    let slowestMs = 0;
    for (let i = 0; i < 20; i++) {
      const sent = Date.now();
      expect(await measuring.roundTrip('poll')).toBe('poll');
      slowestMs = Math.max(slowestMs, Date.now() - sent);
    }
    const idleTimeoutMs = Math.max(150, 10 * slowestMs);
    const { gate, port, decisions } = await rig.start({ policy: { idleTimeoutMs } });
    const client = rig.connect(port);
    await client.connected;
    const opened = Date.now();
    // Traffic both ways, back to back, keeps it open well past the idle timeout.
    while (Date.now() - opened < 2.5 * idleTimeoutMs) expect(await client.roundTrip('poll')).toBe('poll');
    expect(client.closed).toBe(false);

    const fate = await client.fate;

    expect(fate.ended).toBe(true);
    expect(fate.error).toBeUndefined();
    await until(() => gate.stats().held === 0, 'the server to see the close');
    expect(gate.stats().idleClosed).toBe(1);
    expect(decisions.at(-1)).toMatchObject({ action: 'idle-close', verdict: undefined });
  });

  it('destroys an idle connection whose peer never answers the FIN, after closeTimeoutMs', async () => {
    const { gate, port, served } = await rig.start({ policy: { idleTimeoutMs: 50 }, closeTimeoutMs: 50 });
    const client = rig.connect(port, { allowHalfOpen: true });
    let finAt = 0;
    client.socket.on('end', () => (finAt = Date.now()));

    await until(() => served[0]?.destroyed === true && gate.stats().held === 0, 'the server to destroy the idle connection');

    expect(finAt).toBeGreaterThan(0);
    expect(Date.now() - finAt).toBeGreaterThanOrEqual(40);
    expect(client.closed).toBe(false);
    expect(gate.stats()).toMatchObject({ idleClosed: 1, held: 0 });
  });
});

describe('gate: close()', () => {
  it('stops accepting, ends held connections with FIN and waits for them', async () => {
    const { gate, port } = await rig.start();
    const clients = [rig.connect(port), rig.connect(port)];
    for (const client of clients) await client.roundTrip('held');

    await gate.close();

    const fates = await Promise.all(clients.map((client) => client.fate));
    expect(fates.map((fate) => [fate.ended, fate.error])).toEqual([
      [true, undefined],
      [true, undefined],
    ]);
    expect(gate.stats()).toMatchObject({ listening: false, held: 0 });
    expect(await refused(port)).toBe('ECONNREFUSED');
  });

  it('is idempotent', async () => {
    const { gate } = await rig.start();
    const first = gate.close();
    expect(gate.close()).toBe(first);
    await first;
    await gate.close();
  });

  it('destroys connections whose peers do not answer the FIN within closeTimeoutMs', async () => {
    const { gate, port, served } = await rig.start({ closeTimeoutMs: 100 });
    const stubborn = rig.connect(port, { allowHalfOpen: true });
    await stubborn.roundTrip('held');
    const started = Date.now();

    await gate.close();

    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(served[0]?.destroyed).toBe(true);
    expect(gate.stats().held).toBe(0);
    await until(() => stubborn.socket.readableEnded, 'the FIN to reach the client');
    expect(stubborn.closed).toBe(false);
  });

  it('ends connections still waiting for a verdict and cancels the diagnosis', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.gated();
    const { gate, port } = await rig.start({ diagnosis });
    const waiting = rig.connect(port);
    await until(() => gate.stats().waiting === 1, 'the connection to wait');

    await gate.close();

    expect(diagnosis.signals[0]?.aborted).toBe(true);
    expect(diagnosis.signals[0]?.reason).toMatchObject({ code: 'ERR_GATE_CLOSED' });
    expect(await waiting.fate).toMatchObject({ ended: true, error: undefined });
    expect(gate.stats()).toMatchObject({ accepted: 0, waiting: 0, lastVerdict: undefined });
  });

  it('refuses to listen after close, and reports a busy port with ERR_GATE_LISTEN', async () => {
    const { gate, port, sink } = await rig.start();
    const other = new Gate({ service: 'modbus-2', policy: gatePolicy(), diagnose: new FakeDiagnosis().diagnose, logger: sink.logger, onConnection: () => undefined });

    const err = await other.listen(HOST, port).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(GateListenError);
    expect(err).toMatchObject({ code: 'ERR_GATE_LISTEN', address: `${HOST}:${port}` });
    expect((err as Error).message).toBe(`service modbus-2: cannot listen on ${HOST}:${port}: listen EADDRINUSE: address already in use ${HOST}:${port}`);
    await other.close();

    await gate.close();
    await expect(gate.listen(HOST, 0)).rejects.toThrow(GateClosedError);
    await expect(gate.listen(HOST, 0)).rejects.toMatchObject({ code: 'ERR_GATE_CLOSED' });
  });

  it('rejects a listen that close() overtook', async () => {
    const gate = new Gate({ service: 'modbus', policy: gatePolicy(), diagnose: new FakeDiagnosis().diagnose, logger: logSink().logger, onConnection: () => undefined });
    const listening = gate.listen(HOST, 0);
    const closed = gate.close();
    await expect(listening).rejects.toMatchObject({ code: 'ERR_GATE_CLOSED' });
    await closed;
    expect(gate.address()).toBeUndefined();
  });

  it('destroys a connection whose onConnection throws, and keeps serving', async () => {
    let calls = 0;
    const { port, sink } = await rig.start({
      onConnection: (socket) => {
        calls++;
        if (calls === 1) throw new Error('application not ready');
        socket.pipe(socket);
      },
    });

    const fate = await rig.connect(port).fate;
    expect(fate.data.length).toBe(0);
    expect(sink.lines().find((line) => line.msg === 'onConnection threw; connection destroyed')).toMatchObject({ level: 50 });
    expect(await rig.connect(port).roundTrip('second')).toBe('second');
  });
});
