import { gatePolicy } from '../../config/gate-policy.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Gate } from '../../firmware/gate/gate.js';
import { FakeDiagnosis, HOST, Rig, okVerdict, sensorFailure } from './harness.js';
import { logSink } from '../helpers/log.js';
import { until } from '../helpers/wait.js';

const rig = new Rig();
afterEach(() => rig.cleanup());

describe('gate: one structured log line per decision', () => {
  it('logs accept, reused accept and reset with peer, service, verdict, failures, reused and duration', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.behaviour = () => Promise.resolve(okVerdict(1_700_000_000_000, 4));
    const { gate, port, sink, decisions } = await rig.start({ diagnosis, policy: { maxAgeMs: 60_000 } });
    const first = rig.connect(port);
    await first.roundTrip('a');
    const second = rig.connect(port);
    await second.roundTrip('b');
    const clientPorts = [first.socket.localPort, second.socket.localPort];
    for (const client of [first, second]) client.end();
    await Promise.all([first.fate, second.fate]);
    await until(() => gate.stats().held === 0, 'the server to see both closes');
    diagnosis.behaviour = () =>
      Promise.resolve({ ok: false, failures: [sensorFailure], startedAt: 1_700_000_000_500, durationMs: 7, reused: false });
    // The RST can beat the client's own connect completion, so its port is taken from the decision.
    await rig.connect(port).fate;
    expect(decisions[2]?.peer).toMatch(/^127\.0\.0\.1:\d+$/);

    const lines = sink.decisions();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      level: 20,
      subsystem: 'gate',
      service: 'modbus',
      action: 'accept',
      peer: `${HOST}:${clientPorts[0]}`,
      verdict: 'ok',
      failures: [],
      reused: false,
      durationMs: 4,
      msg: 'connection accepted',
    });
    expect(lines[1]).toMatchObject({ level: 20, action: 'accept', peer: `${HOST}:${clientPorts[1]}`, reused: true, durationMs: 4 });
    expect(lines[2]).toMatchObject({
      level: 40,
      service: 'modbus',
      action: 'reset',
      peer: decisions[2]?.peer,
      verdict: 'abnormal',
      failures: [sensorFailure],
      reused: false,
      durationMs: 7,
      msg: 'connection reset: self-diagnosis abnormal',
    });
  });

  it('logs a FIN close at warn and an idle close at info', async () => {
    const diagnosis = new FakeDiagnosis();
    diagnosis.failing();
    const { port, sink } = await rig.start({ diagnosis, policy: { onFail: 'close' } });
    await rig.connect(port).fate;
    diagnosis.healthy();
    const idle = await rig.start({ policy: { idleTimeoutMs: 30 } });
    await rig.connect(idle.port).fate;

    expect(sink.decisions()).toEqual([
      expect.objectContaining({ level: 40, action: 'close', verdict: 'abnormal', failures: [sensorFailure], msg: 'connection closed: self-diagnosis abnormal' }),
    ]);
    expect(idle.sink.decisions()).toEqual([
      expect.objectContaining({ level: 20, action: 'accept' }),
      expect.objectContaining({ level: 30, action: 'idle-close', msg: 'connection closed: idle for 30 ms' }),
    ]);
  });

  it('writes no accept lines at info level, but still every abnormal decision', async () => {
    const sink = logSink('info');
    const diagnosis = new FakeDiagnosis();
    const gate = new Gate({ service: 'modbus', policy: gatePolicy(), diagnose: diagnosis.diagnose, logger: sink.logger, onConnection: (s) => s.pipe(s) });
    const { port } = await gate.listen(HOST, 0);
    try {
      const ok = rig.connect(port);
      await ok.roundTrip('quiet');
      ok.end();
      await ok.fate;
      await until(() => gate.stats().held === 0, 'the server to see the close');
      diagnosis.failing();
      await rig.connect(port).fate;

      expect(sink.decisions().map((line) => line.action)).toEqual(['reset']);
    } finally {
      await gate.close();
    }
  });
});
