import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimNic } from '../../sim/nic.js';

function nic() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const sim = new SimNic(clock, faults);
  sim.addInterface('eth0', { faultTarget: 'uplink', rxPacketsPerS: 1000, txPacketsPerS: 500 });
  sim.addInterface('eth1', { faultTarget: 'mgmt', speedMbps: 100 });
  return { clock, faults, sim };
}

describe('SimNic', () => {
  it('rejects an interface that does not exist with ERR_HAL_NOT_FOUND, like sysfs', async () => {
    const { sim } = nic();
    await expect(sim.open('eth9')).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND', errno: 'ENOENT', target: 'net:eth9' });
  });

  it('reports a healthy link at its speed, with packet counters growing with virtual time', async () => {
    const { clock, sim } = nic();
    const eth0 = await sim.open('eth0');
    const eth1 = await sim.open('eth1');
    expect(await eth1.status()).toMatchObject({ name: 'eth1', carrier: true, operstate: 'up', speedMbps: 100 });
    await clock.advance(2500);
    const status = await eth0.status();
    expect(status).toMatchObject({ carrier: true, operstate: 'up', speedMbps: 1000 });
    expect(status.counters).toMatchObject({ rx_packets: 2500, tx_packets: 1250, rx_errors: 0, rx_crc_errors: 0 });
  });

  it('carrier-down: no carrier, operstate down, no speed and no traffic while it lasts', async () => {
    const { clock, faults, sim } = nic();
    const eth0 = await sim.open('eth0');
    await clock.advance(1000);
    faults.inject({ target: 'uplink', kind: 'carrier-down', durationMs: 3000 });
    await clock.advance(2000);
    const down = await eth0.status();
    expect(down).toMatchObject({ carrier: false, operstate: 'down', speedMbps: null });
    expect(down.counters.rx_packets).toBe(1000);
    expect((await (await sim.open('eth1')).status()).carrier).toBe(true);
    await clock.advance(2000);
    const up = await eth0.status();
    expect(up).toMatchObject({ carrier: true, operstate: 'up', speedMbps: 1000 });
    // 1 s before the fault, 3 s down, 1 s after it cleared.
    expect(up.counters.rx_packets).toBe(2000);
  });

  it('carrier-down with times: each status read uses one', async () => {
    const { faults, sim } = nic();
    const eth0 = await sim.open('eth0');
    faults.inject({ target: 'uplink', kind: 'carrier-down', times: 2 });
    expect((await eth0.status()).carrier).toBe(false);
    expect((await eth0.status()).carrier).toBe(false);
    expect((await eth0.status()).carrier).toBe(true);
  });

  it('crc-errors: rx_crc_errors and rx_errors climb at params.ratePerS over virtual time', async () => {
    const { clock, faults, sim } = nic();
    const eth0 = await sim.open('eth0');
    faults.inject({ target: 'uplink', kind: 'crc-errors', atMs: 500, durationMs: 10_000, params: { ratePerS: 40 } });
    await clock.advance(5500);
    expect((await eth0.status()).counters).toMatchObject({ rx_crc_errors: 200, rx_errors: 200 });
    await clock.advance(60_000);
    expect((await eth0.status()).counters).toMatchObject({ rx_crc_errors: 400, rx_errors: 400, rx_packets: 65_500 });
  });

  it('crc-errors defaults to 100 per second', async () => {
    const { clock, faults, sim } = nic();
    const eth1 = await sim.open('eth1');
    faults.inject({ target: 'mgmt', kind: 'crc-errors' });
    await clock.advance(1500);
    expect((await eth1.status()).counters.rx_crc_errors).toBe(150);
  });
});
