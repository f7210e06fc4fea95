import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { Rig, badVerdict, okVerdict, sensorFailure } from './harness.js';
import { until } from '../helpers/wait.js';

const rig = new Rig();
afterEach(() => rig.cleanup());

describe('gate: reusing the verdict of a held connection (claim 5)', () => {
  it('does not diagnose a second client while the first is held, and diagnoses again once none is', async () => {
    const { gate, port, diagnosis, decisions } = await rig.start();
    const first = rig.connect(port);
    expect(await first.roundTrip('first')).toBe('first');

    const second = rig.connect(port);
    expect(await second.roundTrip('second')).toBe('second');
    expect(diagnosis.calls).toBe(1);
    expect(decisions[1]?.verdict).toEqual({ ...decisions[0]?.verdict, reused: true });

    second.end();
    await second.fate;
    const third = rig.connect(port);
    expect(await third.roundTrip('third, first still held')).toBe('third, first still held');
    expect(diagnosis.calls).toBe(1);

    third.end();
    first.end();
    await Promise.all([first.fate, third.fate]);
    await until(() => gate.stats().held === 0, 'the server to see both closes');

    const fourth = rig.connect(port);
    expect(await fourth.roundTrip('fourth')).toBe('fourth');
    expect(diagnosis.calls).toBe(2);
    expect(decisions.map((d) => d.verdict?.reused)).toEqual([false, true, true, false]);
    expect(gate.stats()).toMatchObject({ accepted: 4, reused: 2, diagnosed: 2 });
  });

  it("diagnoses every connection with reuse 'never'", async () => {
    const { port, diagnosis } = await rig.start({ policy: { reuse: 'never' } });
    const first = rig.connect(port);
    await first.roundTrip('a');
    const second = rig.connect(port);
    await second.roundTrip('b');
    expect(diagnosis.calls).toBe(2);
  });

  it('stops reusing a verdict older than maxAgeMs, then reuses the new one', async () => {
    const clock = new VirtualClock(0);
    const { port, diagnosis, decisions } = await rig.start({ clock, policy: { maxAgeMs: 10_000, recheckMs: 0 } });
    const held = rig.connect(port);
    await held.roundTrip('held');

    await clock.advance(10_000);
    await rig.connect(port).roundTrip('at the limit');
    expect(diagnosis.calls).toBe(1);

    await clock.advance(1);
    await rig.connect(port).roundTrip('too old');
    expect(diagnosis.calls).toBe(2);

    await rig.connect(port).roundTrip('fresh again');
    expect(diagnosis.calls).toBe(2);
    expect(decisions.map((d) => d.verdict?.reused)).toEqual([false, true, false, true]);
  });

  it('resets a new connection, not the held ones, when the re-diagnosis after maxAgeMs fails (no recheck), and does not reuse the old ok verdict after it', async () => {
    const clock = new VirtualClock(0);
    const { gate, port, diagnosis } = await rig.start({ clock, policy: { maxAgeMs: 1000, recheckMs: 0 } });
    const held = rig.connect(port);
    await held.roundTrip('held');
    await clock.advance(1001);
    diagnosis.failing();

    expect((await rig.connect(port).fate).error).toBe('ECONNRESET');
    expect(await held.roundTrip('still here')).toBe('still here');
    expect(gate.stats()).toMatchObject({ reset: 1, held: 1, recheckReset: 0 });

    diagnosis.healthy();
    await rig.connect(port).roundTrip('diagnosed, not reused');
    expect(diagnosis.calls).toBe(3);
  });
});

describe('gate: background recheck while connections are held', () => {
  it('resets every held connection at once when a recheck turns abnormal', async () => {
    const clock = new VirtualClock(0);
    const { gate, port, diagnosis, decisions, sink } = await rig.start({ clock, policy: { recheckMs: 5000 } });
    const monitors = [rig.connect(port), rig.connect(port)];
    for (const monitor of monitors) await monitor.roundTrip('hold');
    const ports = monitors.map((monitor) => monitor.socket.localPort);
    expect(diagnosis.calls).toBe(1);

    await clock.advance(5000);
    expect(diagnosis.calls).toBe(2);
    expect(await monitors[0]?.roundTrip('still fine')).toBe('still fine');

    diagnosis.failing();
    await clock.advance(5000);
    const fates = await Promise.all(monitors.map((monitor) => monitor.fate));

    expect(fates.map((fate) => fate.error)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(diagnosis.calls).toBe(3);
    expect(gate.stats()).toMatchObject({ recheckReset: 2, held: 0 });
    expect(decisions.filter((d) => d.action === 'recheck-reset').map((d) => d.verdict?.failures)).toEqual([[sensorFailure], [sensorFailure]]);
    const line = sink.lines().find((l) => l.action === 'recheck-reset');
    expect(line).toMatchObject({ level: 40, service: 'modbus', verdict: 'abnormal', failures: [sensorFailure], connections: 2 });
    expect(line?.peers).toEqual(ports.map((port) => `127.0.0.1:${port}`));
  });

  it('stops rechecking when no connection is held', async () => {
    const clock = new VirtualClock(0);
    const { gate, port, diagnosis } = await rig.start({ clock, policy: { recheckMs: 1000 } });
    const client = rig.connect(port);
    await client.roundTrip('x');
    client.end();
    await client.fate;
    await until(() => gate.stats().held === 0, 'the server to see the close');

    await clock.advance(10_000);
    expect(diagnosis.calls).toBe(1);
  });

  it('joins a recheck that is already running instead of calling the diagnosis twice', async () => {
    const clock = new VirtualClock(0);
    const { gate, port, diagnosis } = await rig.start({ clock, policy: { recheckMs: 1000, maxAgeMs: 500 } });
    await rig.connect(port).roundTrip('held');
    const running = diagnosis.gated();
    await clock.advance(1000);
    expect(diagnosis.calls).toBe(2);

    const late = rig.connect(port);
    await until(() => gate.stats().waiting === 1, 'the new connection to wait for the running recheck');
    running.resolve(okVerdict(clock.now()));

    expect(await late.roundTrip('joined')).toBe('joined');
    expect(diagnosis.calls).toBe(2);
  });

  it('resets the held connections when a new connection finds the fault first', async () => {
    const clock = new VirtualClock(0);
    const { gate, port, diagnosis } = await rig.start({ clock, policy: { recheckMs: 60_000, maxAgeMs: 1000 } });
    const held = rig.connect(port);
    await held.roundTrip('held');
    await clock.advance(1001);
    diagnosis.behaviour = () => Promise.resolve(badVerdict());

    const newcomer = rig.connect(port);
    const fates = await Promise.all([held.fate, newcomer.fate]);

    expect(fates.map((fate) => fate.error)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(gate.stats()).toMatchObject({ reset: 1, recheckReset: 1 });
  });
});
