/**
 * The firmware end to end on the VM's real drivers: `handcheck run` (dist/app/handcheck.js, as a Pi
 * runs it) on a linux board entry whose parts are the guest's devices - a TMP102 on i2c-stub
 * (drivers/i2c/i2c-stub.c), the Modbus RTU meter behind ttyS1 (8250 driver, the host's meter),
 * softdog (drivers/watchdog/softdog.c) and eth0 on virtio_net - with a Modbus TCP service depending on
 * all of them. A client connecting is accepted while they are healthy; faults made from outside the
 * guest by the host - the virtio-net link taken down by QMP set_link (virtnet_config_changed ->
 * netif_carrier_off), the meter muted - refuse it with a reset, and it is accepted again after.
 * SIGTERM ends with the magic close, so softdog is left disarmed (watchdog_dev.c,
 * watchdog_release: a stop after 'V').
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { systemClock } from '../../../hal/clock.js';
import { TMP102_POWER_ON_CONFIG, TMP102_REG } from '../../../hal/drivers/tmp102.js';
import { openLinuxI2cBus } from '../../../hal/linux/i2c.js';
import { probe } from '../../../monitor/probe.js';
import { until, waitForOutput } from '../../helpers/wait.js';
import { askHost, describeInLane } from '../in-guest.js';

const CLI = fileURLToPath(new URL('../../../dist/app/handcheck.js', import.meta.url));

/** The first entry of `dir` whose `attribute` file reads `value`. */
async function findByAttribute(dir: string, attribute: string, value: string): Promise<string> {
  for (const entry of await readdir(dir)) {
    const text = await readFile(join(dir, entry, attribute), 'utf8').catch(() => '');
    if (text.trim() === value) return entry;
  }
  throw new Error(`nothing in ${dir} with ${attribute} "${value}"`);
}

let firmware: ChildProcess | undefined;
let port = 0;
let stderr = '';

/** A connect held for 4 s: a reset that comes after a fresh diagnosis (deadlines of 2.5 s) is seen. */
async function probeResult(): Promise<string> {
  return (await probe({ host: '127.0.0.1', port, graceMs: 4000, connectTimeoutMs: 5000 })).result;
}

/** Probes until `wanted`: the firmware's state follows a fault within a recheck or a refresh. */
async function becomes(wanted: string): Promise<void> {
  let last = '';
  await until(async () => (last = await probeResult()) === wanted, `a connect to be ${wanted} (last: ${last})`, 60_000);
}

describeInLane('the firmware on the VM board', () => {
  beforeAll(async () => {
    const adapter = (await findByAttribute('/sys/bus/i2c/devices', 'name', 'SMBus stub driver')).replace(/^i2c-/, '');
    const softdog = await findByAttribute('/sys/class/watchdog', 'identity', 'Software Watchdog');
    // The TMP102's power-on registers (datasheet table 7): 25 C, continuous conversion.
    const bus = await openLinuxI2cBus({ id: 'stub', device: `/dev/i2c-${adapter}` }, { clock: systemClock, defaultTimeoutMs: 1000 });
    try {
      await bus.writeWord(0x48, TMP102_REG.temperature, 0x1900, 'be');
      await bus.writeWord(0x48, TMP102_REG.config, TMP102_POWER_ON_CONFIG, 'be');
      await bus.writeWord(0x48, TMP102_REG.tlow, 0x4b00, 'be');
      await bus.writeWord(0x48, TMP102_REG.thigh, 0x5000, 'be');
    } finally {
      await bus.close();
    }
    const boards = '/tmp/vm-boards.json';
    // Deadlines in seconds: a Node process under TCG is an order of magnitude slower than on a Pi.
    await writeFile(
      boards,
      JSON.stringify({
        boards: [
          {
            id: 'vm',
            name: 'the kernel lane VM',
            backend: 'linux',
            i2c: [{ id: 'stub', device: `/dev/i2c-${adapter}`, timeoutMs: 1000 }],
            serial: [{ id: 'line', path: '/dev/ttyS1', baudRate: 19200, parity: 'even' }],
            watchdog: { device: `/dev/${softdog}`, timeoutS: 60 },
            net: [{ name: 'eth0' }],
            components: [
              { id: 'board-temp', kind: 'tmp102', bus: 'stub', address: 0x48, timeoutMs: 3000, thresholds: { temperatureC: { min: -20, max: 85 } } },
              { id: 'meter', kind: 'serial-peer', port: 'line', protocol: 'modbus-rtu', unitId: 1, timeoutMs: 2500, thresholds: { latencyMs: { max: 2000 } } },
              { id: 'eth0', kind: 'ethernet', interface: 'eth0', timeoutMs: 3000 },
              { id: 'watchdog', kind: 'watchdog', timeoutMs: 3000 },
            ],
            services: [
              { id: 'modbus', protocol: 'modbus-tcp', listen: '127.0.0.1:0', dependsOn: ['board-temp', 'meter', 'eth0', 'watchdog'], gate: { recheckMs: 500 } },
            ],
          },
        ],
      }),
    );
    firmware = spawn(process.execPath, [CLI, 'run', '--board', 'vm', '--boards', boards, '--control', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    firmware.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    firmware.stdout!.resume();
    const [, listening] = await waitForOutput(firmware, /service modbus \(modbus-tcp\) listening on 127\.0\.0\.1:(\d+)/, 'firmware', { boundMs: 240_000 });
    port = Number(listening);
  }, 300_000);

  afterAll(async () => {
    if (!firmware || firmware.exitCode !== null) return;
    const exited = new Promise((resolve) => firmware!.once('exit', resolve));
    firmware.kill('SIGTERM');
    await exited;
  });

  it('accepts while the drivers are healthy, resets on a link or meter fault made from the host, and heals', { timeout: 600_000 }, async () => {
    // The start-up self-check ran on the real devices.
    expect(stderr).toMatch(/^net +eth0 +OK/m);
    await becomes('up');

    await askHost('set_link off');
    await becomes('reset');
    await askHost('set_link on');
    await becomes('up');

    await askHost('meter silent');
    await becomes('reset');
    await askHost('meter answer');
    await becomes('up');

    const exited = new Promise<number | null>((resolve) => firmware!.once('exit', resolve));
    firmware!.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
