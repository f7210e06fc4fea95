import { afterEach, describe, expect, it } from 'vitest';
import type { DependencyChange } from '../../firmware/gate/gate.js';
import { VerdictSource, type Withdrawal } from '../../firmware/gate/verdicts.js';
import { VirtualClock } from '../../sim/clock.js';
import { until } from '../helpers/wait.js';
import { FakeDiagnosis, Rig, okVerdict } from './harness.js';

const rig = new Rig();
afterEach(() => rig.cleanup());

/** Stands in for the device-state manager: the test announces component changes. */
class Dependencies {
  private listener: ((change: DependencyChange) => void) | undefined;
  readonly watch = (onChange: (change: DependencyChange) => void): (() => void) => {
    this.listener = onChange;
    return () => (this.listener = undefined);
  };

  change(component: string, reason: string): void {
    this.listener?.({ component, reason });
  }

  get watched(): boolean {
    return this.listener !== undefined;
  }
}

describe('gate: a dependency that changes state between diagnoses withdraws the reusable verdict', () => {
  it('diagnoses (and refuses) the next connect right after the change, without the clock moving towards maxAgeMs or a recheck', async () => {
    const clock = new VirtualClock(0);
    const dependencies = new Dependencies();
    const { gate, port, diagnosis } = await rig.start({ clock, policy: { maxAgeMs: 30_000, recheckMs: 0 }, watchDependencies: dependencies.watch });
    const held = rig.connect(port);
    await held.roundTrip('held');
    await rig.connect(port).roundTrip('reused');
    expect(diagnosis.calls).toBe(1);

    diagnosis.failing();
    dependencies.change('uplink-sfp', 'line sfp-los changed to 1');

    expect((await rig.connect(port).fate).error).toBe('ECONNRESET');
    expect(diagnosis.calls).toBe(2);
    expect(clock.now()).toBe(0);
    // Without recheckMs the held connection is left alone, as the policy table says.
    expect(await held.roundTrip('still held')).toBe('still held');
    expect(gate.stats()).toMatchObject({ reset: 1, recheckReset: 0 });
  });

  it('with recheckMs, cuts the held connections at once instead of at the next recheck', async () => {
    const clock = new VirtualClock(0);
    const dependencies = new Dependencies();
    const { gate, port, diagnosis, decisions } = await rig.start({ clock, policy: { recheckMs: 60_000 }, watchDependencies: dependencies.watch });
    const monitors = [rig.connect(port), rig.connect(port)];
    for (const monitor of monitors) await monitor.roundTrip('hold');

    diagnosis.failing();
    dependencies.change('power-good', 'failed: line power-good reads 0, expected 1');
    const fates = await Promise.all(monitors.map((monitor) => monitor.fate));

    expect(fates.map((fate) => fate.error)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(clock.now()).toBe(0);
    expect(diagnosis.calls).toBe(2);
    await until(() => gate.stats().held === 0, 'the server to see both resets');
    expect(gate.stats()).toMatchObject({ recheckReset: 2 });
    expect(decisions.filter((d) => d.action === 'recheck-reset')).toHaveLength(2);
  });

  it('stops listening to its dependencies when it closes', async () => {
    const dependencies = new Dependencies();
    const { gate } = await rig.start({ watchDependencies: dependencies.watch });
    expect(dependencies.watched).toBe(true);
    await gate.close();
    expect(dependencies.watched).toBe(false);
  });
});

describe('VerdictSource: withdrawals', () => {
  function source(clock: VirtualClock, diagnosis = new FakeDiagnosis()): { verdicts: VerdictSource; withdrawals: Withdrawal[] } {
    const verdicts = new VerdictSource({
      service: 'modbus',
      diagnose: diagnosis.diagnose,
      clock,
      timeoutMs: 2000,
      reuse: 'while-held',
      maxAgeMs: 1000,
      onVerdict: () => undefined,
    });
    const withdrawals: Withdrawal[] = [];
    verdicts.onWithdraw((w) => withdrawals.push(w));
    return { verdicts, withdrawals };
  }

  it('announces each way a reusable verdict ends early, once, and not its expiry by age', async () => {
    const clock = new VirtualClock(0);
    const diagnosis = new FakeDiagnosis();
    const { verdicts, withdrawals } = source(clock, diagnosis);
    const remaining: number[] = [];
    verdicts.onReusableChange((ms) => remaining.push(ms));

    await verdicts.diagnose();
    verdicts.hold();
    verdicts.withdraw('component uplink-sfp failed: RX_LOS');
    verdicts.withdraw('again, with nothing left to withdraw');
    expect(verdicts.reusable()).toBeUndefined();
    expect(remaining.at(-1)).toBe(0);

    await verdicts.diagnose();
    diagnosis.failing();
    await verdicts.diagnose();

    diagnosis.healthy();
    await verdicts.diagnose();
    verdicts.release();

    verdicts.hold();
    await verdicts.diagnose();
    await clock.advance(1001);
    expect(verdicts.reusable()).toBeUndefined();
    await verdicts.diagnose();
    verdicts.close();

    expect(withdrawals.map((w) => w.cause)).toEqual(['component', 'abnormal', 'released', 'closed']);
    expect(withdrawals[0]?.reason).toBe('component uplink-sfp failed: RX_LOS');
    expect(withdrawals[1]?.reason).toBe('self-diagnosis abnormal: board-temp');
  });

  it('neither offers for reuse nor hands its waiters an ok verdict from a diagnosis that started before the withdrawal: they get the next one', async () => {
    const clock = new VirtualClock(0);
    const diagnosis = new FakeDiagnosis();
    const { verdicts } = source(clock, diagnosis);
    verdicts.hold();
    const running = diagnosis.gated();
    const verdict = verdicts.diagnose();
    verdicts.withdraw('component power-good failed');
    diagnosis.failing();
    running.resolve(okVerdict(0));
    expect(await verdict).toMatchObject({ ok: false, failures: [{ component: 'board-temp' }] });
    expect(diagnosis.calls).toBe(2);
    expect(verdicts.reusable()).toBeUndefined();

    diagnosis.healthy();
    await verdicts.diagnose();
    expect(verdicts.reusable()).toMatchObject({ ok: true, reused: true });
  });

  it('gives the waiters of an overtaken diagnosis the next one within the first deadline, never an unbounded wait', async () => {
    const clock = new VirtualClock(0);
    const diagnosis = new FakeDiagnosis();
    const { verdicts } = source(clock, diagnosis);
    const first = diagnosis.gated();
    const verdict = verdicts.diagnose();
    await clock.advance(1500);
    verdicts.withdraw('component eth0: carrier down on eth0');
    const second = diagnosis.gated();
    first.resolve(okVerdict(0));
    await clock.advance(0);
    expect(diagnosis.calls).toBe(2);
    await clock.advance(500);
    second.resolve(okVerdict(0));
    expect(await verdict).toMatchObject({ ok: false, failures: [{ code: 'ERR_DIAG_TIMEOUT' }] });
    expect(verdicts.timeouts).toBe(1);
  });

  it('tells its listeners synchronously, before the next connection could be admitted', async () => {
    const clock = new VirtualClock(0);
    const { verdicts } = source(clock);
    await verdicts.diagnose();
    verdicts.hold();
    let seenReusable: unknown = 'not called';
    verdicts.onWithdraw(() => (seenReusable = verdicts.reusable()));
    verdicts.withdraw('component eth0 failed: no carrier');
    // The listener runs while the old verdict is still in place, so it can tell what it withdraws.
    expect(seenReusable).toMatchObject({ ok: true });
    expect(verdicts.reusable()).toBeUndefined();
  });
});
