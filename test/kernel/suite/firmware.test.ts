/**
 * The firmware end to end on the VM's real drivers: `handcheck run` (dist/app/handcheck.js, as a Pi
 * runs it) on the lane's linux board entry (test/kernel/vm-board.ts: a TMP102 on i2c-stub, a
 * power-good line on gpio-sim, the Modbus RTU meter behind ttyS1, softdog, eth0 on virtio_net) with a
 * Modbus TCP service depending on all of them. A client connecting is accepted while they are
 * healthy; real faults - the virtio-net link taken down by the host's QMP set_link
 * (virtio_net.c, virtnet_config_changed_work -> netif_carrier_off), the meter muted by the host, the
 * power-good pin pulled low through gpio-sim (gpio-sim.c, gpio_sim_set_pull: an edge on the line fd) -
 * refuse it with a reset, and it is accepted again after each.
 * SIGTERM ends with the magic close, so softdog is left disarmed (watchdog_dev.c,
 * watchdog_release: a stop after 'V').
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { probe } from '../../../monitor/probe.js';
import { until, waitForOutput } from '../../helpers/wait.js';
import { askHost, describeInLane } from '../in-guest.js';
import { type VmBoard, setUpVmBoard } from '../vm-board.js';

const CLI = fileURLToPath(new URL('../../../dist/app/handcheck.js', import.meta.url));

let vm: VmBoard | undefined;
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
    vm = await setUpVmBoard();
    const boards = '/tmp/vm-boards.json';
    await writeFile(boards, JSON.stringify(vm.boards));
    firmware = spawn(process.execPath, [CLI, 'run', '--board', 'vm', '--boards', boards, '--control', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    firmware.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    firmware.stdout!.resume();
    const [, listening] = await waitForOutput(firmware, /service modbus \(modbus-tcp\) listening on 127\.0\.0\.1:(\d+)/, 'firmware', { boundMs: 240_000 });
    port = Number(listening);
  }, 300_000);

  afterAll(async () => {
    if (firmware && firmware.exitCode === null) {
      const exited = new Promise((resolve) => firmware!.once('exit', resolve));
      firmware.kill('SIGTERM');
      await exited;
    }
    await vm?.remove();
  });

  it('accepts while the drivers are healthy, resets on a link, meter or power-good fault made for real, and heals', { timeout: 600_000 }, async () => {
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

    await vm!.powerGood(0);
    await becomes('reset');
    await vm!.powerGood(1);
    await becomes('up');

    const exited = new Promise<number | null>((resolve) => firmware!.once('exit', resolve));
    firmware!.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
