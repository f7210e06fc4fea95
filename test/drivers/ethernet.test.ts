import { describe, expect, it } from 'vitest';
import { EthernetDriver } from '../../hal/drivers/ethernet.js';
import type { NetInterface } from '../../hal/net.js';
import { VirtualClock } from '../../sim/clock.js';
import { FaultRegistry } from '../../sim/faults.js';
import { SimGpio } from '../../sim/gpio.js';
import { SimNic } from '../../sim/nic.js';

async function board() {
  const clock = new VirtualClock(0);
  const faults = new FaultRegistry(clock);
  const nic = new SimNic(clock, faults);
  nic.addInterface('eth0', { faultTarget: 'uplink' });
  const gpio = new SimGpio(clock, faults);
  gpio.define('link-led', { chip: 'sim-gpio', line: 'GPIO27' }, { level: 1 });
  const led = await gpio.open({ chip: 'sim-gpio', line: 'GPIO27', direction: 'in' });
  const driver = new EthernetDriver(await nic.open('eth0'), clock, led);
  return { clock, faults, nic, gpio, driver };
}

describe('EthernetDriver', () => {
  it('identifies the interface, and fails with ERR_HAL_NOT_FOUND once it is gone', async () => {
    const { driver, clock } = await board();
    expect(await driver.identify()).toEqual({
      part: 'ethernet eth0',
      details: { interface: 'eth0', operstate: 'up', carrier: true, speedMbps: 1000 },
    });
    const vanished: NetInterface = { name: 'eth0', status: async () => (await new SimNic(clock, new FaultRegistry(clock)).open('eth0')).status() };
    await expect(new EthernetDriver(vanished, clock).identify()).rejects.toMatchObject({ code: 'ERR_HAL_NOT_FOUND' });
  });

  it('reads carrier, speed and counters; error rates are 0 on the first read', async () => {
    const { driver, clock } = await board();
    await clock.advance(1000);
    const reading = await driver.read();
    expect(reading).toMatchObject({ carrier: true, operstate: 'up', speedMbps: 1000, crcErrorsPerS: 0, rxErrorsPerS: 0, rx_packets: 850, tx_packets: 620 });
  });

  it('turns climbing CRC errors into rates over virtual time between reads', async () => {
    const { driver, clock, faults } = await board();
    await driver.read();
    faults.inject({ target: 'uplink', kind: 'crc-errors', params: { ratePerS: 250 } });
    await clock.advance(4000);
    expect(await driver.read()).toMatchObject({ crcErrorsPerS: 250, rxErrorsPerS: 250, rx_crc_errors: 1000 });
    await clock.advance(500);
    expect(await driver.read()).toMatchObject({ crcErrorsPerS: 250, rx_crc_errors: 1125 });
    faults.clearAll();
    await clock.advance(2000);
    expect(await driver.read()).toMatchObject({ crcErrorsPerS: 0, rxErrorsPerS: 0, rx_crc_errors: 1125 });
  });

  it('reads a pulled cable as no carrier, operstate down and speed 0', async () => {
    const { driver, faults } = await board();
    faults.inject({ target: 'uplink', kind: 'carrier-down' });
    expect(await driver.read()).toMatchObject({ carrier: false, operstate: 'down', speedMbps: 0 });
  });

  it('drives a link LED on a GPIO output from the carrier it reads', async () => {
    const clock = new VirtualClock(0);
    const faults = new FaultRegistry(clock);
    const nic = new SimNic(clock, faults);
    nic.addInterface('eth0', { faultTarget: 'uplink' });
    const gpio = new SimGpio(clock, faults);
    gpio.define('link-led', { chip: 'sim-gpio', line: 'GPIO27' });
    const led = await gpio.open({ chip: 'sim-gpio', line: 'GPIO27', direction: 'out' });
    const driver = new EthernetDriver(await nic.open('eth0'), clock, led);
    await driver.read();
    expect(gpio.level('link-led')).toBe(1);
    faults.inject({ target: 'uplink', kind: 'carrier-down' });
    await driver.read();
    expect(gpio.level('link-led')).toBe(0);
  });

  it('fails on its deadline when the status read hangs', async () => {
    const clock = new VirtualClock(0);
    const hung: NetInterface = { name: 'eth0', status: () => new Promise(() => undefined) };
    const reading = new EthernetDriver(hung, clock).read({ timeoutMs: 20 });
    const outcome = expect(reading).rejects.toMatchObject({ code: 'ERR_HAL_TIMEOUT', target: 'net:eth0' });
    await clock.advance(20);
    await outcome;
  });
});
