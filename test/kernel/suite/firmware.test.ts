/**
 * The firmware end to end on the VM's real drivers: `handcheck run` (dist/app/handcheck.js, as a Pi
 * runs it) on the lane's linux board entry (test/kernel/vm-board.ts: a TMP102 on i2c-stub, a
 * power-good line on gpio-sim, the Modbus RTU meter behind ttyS1, softdog, eth0 on virtio_net) with a
 * Modbus TCP service on eth0, port 502, depending on all of them. The client is remote: the lane's
 * remote client on the host, across the tap to eth0 (test/kernel/remote-client.ts), so what it sees is
 * what the guest kernel put on the wire - a SYN/ACK, then an RST (ECONNRESET) when the firmware's
 * diagnosis fails. Faults are made by kernel-level means, and it is accepted again after each:
 * - the meter muted by the host: the 8250 UART hears no answer;
 * - the power-good pin pulled low through gpio-sim (gpio-sim.c, gpio_sim_set_pull: an edge on the
 *   line fd);
 * - the kernel's tmp102 driver bound to the TMP102's address (`new_device`, i2c-core-base.c
 *   new_device_store), then deleted (`delete_device`): the firmware's bus finds the driver on an
 *   address it already uses and fails the chip with ERR_HAL_ADDRESS_IN_USE (hal/linux/i2c.ts;
 *   i2c-dev itself would say EBUSY only to a new I2C_SLAVE, and i2c-bus selects an address once);
 * - the virtio-net link taken down by the host's QMP set_link (virtio_net.c,
 *   virtnet_config_changed_work -> netif_carrier_off): the firmware refuses - a client on the guest's
 *   own loopback is reset - but no RST can reach the remote client, because QEMU drops every frame of
 *   a link that is down (net/net.c, qemu_deliver_packet_iov): its SYN goes unanswered.
 * SIGTERM ends with the magic close, so softdog is left disarmed (watchdog_dev.c,
 * watchdog_release: a stop after 'V'). The boot record goes to the lane's state directory, which
 * outlives the VM's reset (test/kernel/starve.ts, test/kernel/after-reset).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ProbeResult, probe } from '../../../monitor/probe.js';
import { waitForOutput } from '../../helpers/wait.js';
import { askHost, describeInLane, remoteClientSees } from '../in-guest.js';
import { type VmBoard, guestModbus, setUpVmBoard } from '../vm-board.js';

const CLI = fileURLToPath(new URL('../../../dist/app/handcheck.js', import.meta.url));
const TMP102 = 0x48;

let vm: VmBoard | undefined;
let firmware: ChildProcess | undefined;
let stderr = '';
let stdout = '';

/** Once the firmware has exited, why no wait below can see what it waits for. */
function firmwareGone(): string | undefined {
  const { exitCode, signalCode } = firmware!;
  return exitCode === null && signalCode === null ? undefined : `the firmware exited (${signalCode ?? exitCode}): ${stderr.slice(-2000)}`;
}

/**
 * A local client's view, on the guest's loopback: a connect held 4 s, as the remote client's, until
 * one is `wanted` or the firmware exited (in-guest.ts `remoteClientSees` says why there is no time limit).
 */
async function localBecomes(wanted: ProbeResult): Promise<void> {
  for (;;) {
    const { result } = await probe({ host: '127.0.0.1', port: guestModbus.port, graceMs: 4000, connectTimeoutMs: 5000 });
    if (result === wanted) return;
    const why = firmwareGone();
    if (why !== undefined) throw new Error(`no local connect was ${wanted} (the last: ${result}): ${why}`);
    await sleep(250);
  }
}

/** What the remote client sees of the firmware's Modbus service. */
function remoteSees(...wanted: ProbeResult[]): Promise<string> {
  return remoteClientSees(guestModbus, wanted, firmwareGone);
}

/** The firmware's log lines (pino, JSON on stdout) about `component` changing state, from offset `since` on. */
function stateChanges(component: string, since: number): Array<{ state: string; code?: string; reason?: string }> {
  return stdout
    .slice(since)
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as { msg?: string; component?: string; state: string; code?: string; reason?: string })
    .filter((entry) => entry.msg === 'component state changed' && entry.component === component);
}

describeInLane('the firmware on the VM board', () => {
  beforeAll(async () => {
    vm = await setUpVmBoard();
    const boards = '/tmp/vm-boards.json';
    await writeFile(boards, JSON.stringify(vm.boards));
    const stateDir = join(process.env.HANDCHECK_LANE_STATE ?? '/tmp', 'firmware');
    firmware = spawn(process.execPath, [CLI, 'run', '--board', 'vm', '--boards', boards, '--control', '', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    firmware.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    firmware.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    await waitForOutput(firmware, /service modbus \(modbus-tcp\) listening on 0\.0\.0\.0:502 /, 'firmware', { boundMs: 240_000 });
  }, 300_000);

  afterAll(async () => {
    if (firmware && firmware.exitCode === null) {
      const exited = new Promise((resolve) => firmware!.once('exit', resolve));
      firmware.kill('SIGTERM');
      await exited;
    }
    // The kernel's tmp102 still bound to 0x48 after a failure above is deleted for the files after this one.
    if (vm && existsSync(`/sys/bus/i2c/devices/${vm.adapter}-0048`)) await writeFile(`/sys/bus/i2c/devices/i2c-${vm.adapter}/delete_device`, `0x${TMP102.toString(16)}`);
    await vm?.remove();
  });

  it('a remote client is accepted while the drivers are healthy, reset on a meter, power-good or I2C fault made for real, unanswered while the link is down, and accepted again after each', { timeout: 0 }, async () => {
    // No time limit of its own (timeout 0): each wait ends on its result or on the firmware's exit.
    // The start-up self-check ran on the real devices.
    expect(stderr).toMatch(/^net +eth0 +OK/m);
    expect(await remoteSees('up')).toBe('up -');

    await askHost('meter silent');
    expect(await remoteSees('reset')).toBe('reset ECONNRESET');
    await askHost('meter answer');
    expect(await remoteSees('up')).toBe('up -');

    await vm!.powerGood(0);
    expect(await remoteSees('reset')).toBe('reset ECONNRESET');
    await vm!.powerGood(1);
    expect(await remoteSees('up')).toBe('up -');

    const adapter = `/sys/bus/i2c/devices/i2c-${vm!.adapter}`;
    const logged = stdout.length;
    await writeFile(join(adapter, 'new_device'), `tmp102 0x${TMP102.toString(16)}`);
    // The kernel's tmp102 bound (tmp102_probe accepted the chip's configuration).
    expect(basename(await readlink(`/sys/bus/i2c/devices/${vm!.adapter}-0048/driver`))).toBe('tmp102');
    expect(await remoteSees('reset')).toBe('reset ECONNRESET');
    const failed = stateChanges('board-temp', logged).find((change) => change.state === 'failed');
    expect(failed).toMatchObject({ code: 'ERR_HAL_ADDRESS_IN_USE' });
    expect(failed?.reason).toContain('a kernel driver (tmp102) was bound to the address while the firmware used it');
    await writeFile(join(adapter, 'delete_device'), `0x${TMP102.toString(16)}`);
    expect(await remoteSees('up')).toBe('up -');

    await askHost('set_link off');
    await localBecomes('reset');
    expect(await remoteSees('timeout', 'unreachable')).toMatch(/^(timeout ETIMEDOUT|unreachable EHOSTUNREACH)$/);
    await askHost('set_link on');
    expect(await remoteSees('up')).toBe('up -');

    const exited = new Promise<number | null>((resolve) => firmware!.once('exit', resolve));
    firmware!.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
