import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BoardsSchemaError } from '../../config/boards.js';
import { gatePolicy } from '../../config/gate-policy.js';
import { Gate } from '../../firmware/gate/gate.js';
import { DiagnosisTimeoutError, GateModeUnavailableError } from '../../firmware/gate/errors.js';
import { ERR_DIAG_FAILED, ERR_DIAG_INVALID, ERR_DIAG_TIMEOUT, SELF_DIAGNOSIS, type Verdict } from '../../firmware/verdict.js';
import { HalTimeoutError } from '../../hal/errors.js';
import { VirtualClock } from '../../sim/clock.js';
import { FakeDiagnosis, HOST, Rig, deferred, okVerdict, sensorFailure } from './harness.js';
import { logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';

const rig = new Rig();
afterEach(() => rig.cleanup());

describe('gate, after mode: the verdict decides each accepted connection (claims 2, 4)', () => {
  it('hands a connection with an ok verdict to the application, which can use it', async () => {
    const { gate, port, diagnosis, decisions } = await rig.start();
    const client = rig.connect(port);
    await client.connected;

    expect(await client.roundTrip('read holding registers')).toBe('read holding registers');
    expect(diagnosis.calls).toBe(1);
    expect(gate.stats()).toMatchObject({ connections: 1, accepted: 1, reused: 0, reset: 0, diagnosed: 1, held: 1, waiting: 0 });
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({ service: 'modbus', action: 'accept', verdict: { ok: true, reused: false } });
    expect(decisions[0]?.peer).toBe(`${HOST}:${client.socket.localPort}`);
  });

  it('resets a connection whose verdict is abnormal: the client sees ECONNRESET and no data', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.failing();
    const served: Socket[] = [];
    const { gate, port, decisions } = await rig.start({ diagnosis, onConnection: (socket) => served.push(socket) });

    const fate = await rig.connect(port).fate;

    expect(fate).toEqual({ data: Buffer.alloc(0), ended: false, error: 'ECONNRESET' });
    expect(served).toHaveLength(0);
    expect(gate.stats()).toMatchObject({ connections: 1, accepted: 0, reset: 1, closed: 0, held: 0, lastVerdict: { ok: false } });
    expect(decisions.map((d) => [d.action, d.verdict?.failures])).toEqual([['reset', [sensorFailure]]]);
  });

  it("closes with FIN when onFail is 'close': the client sees a clean end, even after writing", async () => {
    const diagnosis = new FakeDiagnosis();
    const verdict = diagnosis.gated();
    const { gate, port } = await rig.start({ diagnosis, policy: { onFail: 'close' } });
    const client = rig.connect(port);
    await client.connected;
    client.socket.write('request sent before the verdict');
    await until(() => diagnosis.calls === 1, 'the diagnosis to start');
    verdict.resolve({ ok: false, failures: [sensorFailure], startedAt: Date.now(), durationMs: 2, reused: false });

    const fate = await client.fate;

    expect(fate).toEqual({ data: Buffer.alloc(0), ended: true, error: undefined });
    expect(gate.stats()).toMatchObject({ closed: 1, reset: 0, accepted: 0 });
  });

  it('delivers every byte the client sent while the diagnosis ran (50 ms)', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => new Promise((resolve) => setTimeout(() => resolve(okVerdict()), 50));
    const got: Buffer[] = [];
    const done = deferred<void>();
    let readBeforeVerdict = -1;
    const { port } = await rig.start({
      diagnosis,
      onConnection: (socket) => {
        readBeforeVerdict = socket.bytesRead;
        socket.on('data', (chunk: Buffer) => got.push(chunk));
        socket.on('end', () => done.resolve());
      },
    });
    const payload = randomBytes(256 * 1024);
    const client = rig.connect(port);
    client.socket.on('connect', () => client.socket.end(payload));

    await done.promise;

    expect(diagnosis.calls).toBe(1);
    // Nothing was read while the verdict was pending: the bytes waited in the kernel.
    expect(readBeforeVerdict).toBe(0);
    expect(Buffer.concat(got).equals(payload)).toBe(true);
  });

  it('runs one diagnosis for 20 connections that arrive while it runs (single flight)', async () => {
    const diagnosis = new FakeDiagnosis();
    const verdict = diagnosis.gated();
    const { gate, port, served } = await rig.start({ diagnosis });
    const clients = Array.from({ length: 20 }, () => rig.connect(port));
    await until(() => gate.stats().waiting === 20, '20 connections waiting for the verdict');
    expect(diagnosis.calls).toBe(1);

    verdict.resolve(okVerdict());
    await until(() => served.length === 20, 'all 20 handed over');

    const echoes = await Promise.all(clients.map((client, i) => client.roundTrip(`unit ${i}`)));
    expect(echoes).toEqual(clients.map((_, i) => `unit ${i}`));
    expect(diagnosis.calls).toBe(1);
    expect(gate.stats()).toMatchObject({ accepted: 20, reused: 0, diagnosed: 1, held: 20, waiting: 0 });
  });

  it('counts a diagnosis that throws as abnormal, naming the error', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => {
      throw new HalTimeoutError('read on i2c-1@0x48 timed out after 50 ms', { target: 'i2c-1@0x48' });
    };
    const { gate, port, decisions } = await rig.start({ diagnosis });

    const fate = await rig.connect(port).fate;

    expect(fate.error).toBe('ECONNRESET');
    expect(decisions[0]?.verdict?.failures).toEqual([
      { component: SELF_DIAGNOSIS, code: 'ERR_HAL_TIMEOUT', reason: 'HalTimeoutError: read on i2c-1@0x48 timed out after 50 ms' },
    ]);
    expect(gate.stats().reset).toBe(1);
  });

  it('counts a rejection without an ERR_ code as ERR_DIAG_FAILED, and a non-verdict as ERR_DIAG_INVALID', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'bus')"));
    const { port, decisions } = await rig.start({ diagnosis });

    expect((await rig.connect(port).fate).error).toBe('ECONNRESET');
    diagnosis.behaviour = () => Promise.resolve(undefined as unknown as Verdict);
    expect((await rig.connect(port).fate).error).toBe('ECONNRESET');

    expect(decisions.map((d) => d.verdict?.failures[0]?.code)).toEqual([ERR_DIAG_FAILED, ERR_DIAG_INVALID]);
    expect(decisions[0]?.verdict?.failures[0]?.reason).toBe("TypeError: Cannot read properties of undefined (reading 'bus')");
    expect(decisions[1]?.verdict?.failures[0]?.reason).toBe('self-diagnosis of service modbus resolved with undefined instead of a verdict');
  });

  it('fails a diagnosis that never settles at its 2000 ms deadline and aborts its signal', async () => {
    const clock = new VirtualClock(1_000_000);
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => new Promise<Verdict>(() => undefined);
    const { gate, port, decisions } = await rig.start({ diagnosis, clock });
    const client = rig.connect(port);
    await until(() => gate.stats().waiting === 1 && diagnosis.calls === 1, 'the connection to wait for the hung diagnosis');

    await clock.advance(1999);
    expect(gate.stats().waiting).toBe(1);
    expect(diagnosis.signals[0]?.aborted).toBe(false);

    await clock.advance(1);
    const fate = await client.fate;

    expect(fate.error).toBe('ECONNRESET');
    expect(diagnosis.signals[0]?.reason).toBeInstanceOf(DiagnosisTimeoutError);
    expect(decisions[0]?.verdict).toEqual({
      ok: false,
      failures: [{ component: SELF_DIAGNOSIS, code: ERR_DIAG_TIMEOUT, reason: 'service modbus: self-diagnosis gave no verdict within 2000 ms' }],
      startedAt: 1_000_000,
      durationMs: 2000,
      reused: false,
    });
    expect(gate.stats()).toMatchObject({ diagnosisTimeouts: 1, reset: 1, waiting: 0 });

    diagnosis.healthy();
    const next = rig.connect(port);
    expect(await next.roundTrip('after the hang')).toBe('after the hang');
    expect(diagnosis.calls).toBe(2);
  });

  it('honours diagnosisTimeoutMs', async () => {
    const clock = new VirtualClock(0);
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => new Promise<Verdict>(() => undefined);
    const { port } = await rig.start({ diagnosis, clock, diagnosisTimeoutMs: 150 });
    const client = rig.connect(port);
    await until(() => diagnosis.calls === 1, 'the diagnosis to start');
    await clock.advance(150);
    expect((await client.fate).error).toBe('ECONNRESET');
  });
});

describe('gate modes and policy', () => {
  it("refuses mode 'before' with ERR_GATE_MODE_UNAVAILABLE when the NFQUEUE addon is missing", () => {
    // This process has not loaded the addon yet, so the loader looks where this points, and finds nothing.
    process.env.HANDCHECK_NFQUEUE_ADDON = '/nonexistent/handcheck_nfqueue.node';
    const create = (): Gate =>
      new Gate({
        service: 'modbus',
        policy: gatePolicy({ mode: 'before' }),
        diagnose: () => Promise.resolve(okVerdict()),
        logger: logSink().logger,
        onConnection: () => undefined,
      });
    expect(create).toThrow(GateModeUnavailableError);
    expect(create).toThrow(expect.objectContaining({ code: 'ERR_GATE_MODE_UNAVAILABLE', mode: 'before', service: 'modbus' }));
    delete process.env.HANDCHECK_NFQUEUE_ADDON;
  });

  it('applies the defaults of boards.schema.json, the one place they are written', () => {
    expect(gatePolicy()).toEqual({ mode: 'after', onFail: 'reset', reuse: 'while-held', maxAgeMs: 30_000, recheckMs: 1000, failClosed: false, queue: 0, keepAliveMs: 60_000 });
    expect(Object.isFrozen(gatePolicy())).toBe(true);
    const gate = new Gate({ service: 'modbus', policy: gatePolicy(), diagnose: () => Promise.resolve(okVerdict()), logger: logSink().logger, onConnection: () => undefined });
    expect(gate.policy).toMatchObject({ diagnosisTimeoutMs: 2000, closeTimeoutMs: 2000 });
  });

  it.each([
    [{ maxAgeMs: -1 }, '/maxAgeMs'],
    [{ recheckMs: Number.NaN }, '/recheckMs'],
    [{ maxConnections: 2.5 }, '/maxConnections'],
    [{ idleTimeoutMs: 0 }, '/idleTimeoutMs'],
    [{ onFail: 'drop' as 'reset' }, '/onFail'],
    [{ reuse: 'always' as 'never' }, '/reuse'],
  ])('rejects %o naming %s', (policy, path) => {
    expect(() => gatePolicy(policy, 'service modbus')).toThrow(expect.objectContaining({ code: 'ERR_BOARDS_SCHEMA', issues: [expect.objectContaining({ path })] }));
    expect(() => gatePolicy(policy, 'service modbus')).toThrow(BoardsSchemaError);
  });
});
