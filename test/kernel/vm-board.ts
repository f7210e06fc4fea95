/**
 * A linux board entry made of the kernel lane VM's real devices, for the firmware run end to end and
 * for the HAL contract suite (the one a Pi owner runs with HANDCHECK_HW_BOARD): the TMP102 on
 * i2c-stub, a gpio-sim chip with a power-good input, the Modbus RTU meter behind ttyS1 (the host's,
 * test/kernel/meter.ts), a watchdog (softdog, or QEMU's i6300esb where the VM must really be reset)
 * and eth0 on virtio_net. The Modbus service listens on the guest's eth0 address, port 502, for the
 * lane's remote client (test/kernel/remote-client.ts). Deadlines are in seconds: Node under TCG is an
 * order of magnitude slower than on a Pi.
 */
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../../hal/clock.js';
import { TMP102_POWER_ON_CONFIG, TMP102_REG } from '../../hal/drivers/tmp102.js';
import { openLinuxI2cBus } from '../../hal/linux/i2c.js';

/** The first entry of `dir` whose `attribute` file reads `value`. */
async function findByAttribute(dir: string, attribute: string, value: string): Promise<string> {
  for (const entry of await readdir(dir)) {
    const text = await readFile(join(dir, entry, attribute), 'utf8').catch(() => '');
    if (text.trim() === value) return entry;
  }
  throw new Error(`nothing in ${dir} with ${attribute} "${value}"`);
}

const chipLabel = 'handcheck-vm';
/** The guest's eth0 address (guest.sh) and the Modbus service's port there. */
export const guestModbus = { host: '10.0.2.15', port: 502 } as const;

export interface VmBoardOptions {
  /**
   * softdog (default): a reset only the guest sees. i6300esb: QEMU resets the VM, the host sees a
   * WATCHDOG event, and the boot status after it says so (i6300esb.c, esb_initdevice).
   */
  watchdog?: 'softdog' | 'i6300esb';
  timeoutS?: number;
}
const configfs = '/sys/kernel/config/gpio-sim/handcheck-vm';

export interface VmBoard {
  /** The i2c-stub adapter's number N (/dev/i2c-N, /sys/bus/i2c/devices/i2c-N). */
  adapter: number;
  /** The boards file's content: one entry, `vm`. */
  boards: { boards: Record<string, unknown>[] };
  /** Drives the power-good pin from outside through gpio-sim's simulated pull (sim_gpio0/pull). */
  powerGood(level: 0 | 1): Promise<void>;
  /** Takes the gpio-sim chip down. */
  remove(): Promise<void>;
}

export async function setUpVmBoard(options: VmBoardOptions = {}): Promise<VmBoard> {
  const adapter = (await findByAttribute('/sys/bus/i2c/devices', 'name', 'SMBus stub driver')).replace(/^i2c-/, '');
  const watchdog = await findByAttribute('/sys/class/watchdog', 'identity', options.watchdog === 'i6300esb' ? 'i6300ESB timer' : 'Software Watchdog');
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
  // A gpio-sim chip (drivers/gpio/gpio-sim.c, configured through configfs) with two named lines.
  await mkdir(join(configfs, 'bank0'), { recursive: true });
  await writeFile(join(configfs, 'bank0', 'label'), chipLabel);
  await writeFile(join(configfs, 'bank0', 'num_lines'), '2');
  for (const [offset, name] of ['power-good', 'relay'].entries()) {
    await mkdir(join(configfs, 'bank0', `line${offset}`));
    await writeFile(join(configfs, 'bank0', `line${offset}`, 'name'), name);
  }
  await writeFile(join(configfs, 'live'), '1');
  const simDir = join('/sys/devices/platform', (await readFile(join(configfs, 'dev_name'), 'utf8')).trim(), (await readFile(join(configfs, 'bank0', 'chip_name'), 'utf8')).trim());
  const powerGood = (level: 0 | 1): Promise<void> => writeFile(join(simDir, 'sim_gpio0', 'pull'), level ? 'pull-up' : 'pull-down');
  await powerGood(1);
  return {
    adapter: Number(adapter),
    boards: {
      boards: [
        {
          id: 'vm',
          name: 'the kernel lane VM',
          backend: 'linux',
          i2c: [{ id: 'stub', device: `/dev/i2c-${adapter}`, timeoutMs: 1000 }],
          gpio: {
            'power-good': { chip: chipLabel, line: 'power-good', direction: 'in', edge: 'both' },
            relay: { chip: chipLabel, line: 'relay', direction: 'out', initial: 0 },
          },
          serial: [{ id: 'line', path: '/dev/ttyS1', baudRate: 19200, parity: 'even' }],
          watchdog: { device: `/dev/${watchdog}`, timeoutS: options.timeoutS ?? 60 },
          net: [{ name: 'eth0' }],
          components: [
            { id: 'board-temp', kind: 'tmp102', bus: 'stub', address: 0x48, timeoutMs: 3000, thresholds: { temperatureC: { min: -20, max: 85 } } },
            { id: 'meter', kind: 'serial-peer', port: 'line', protocol: 'modbus-rtu', unitId: 1, timeoutMs: 2500, thresholds: { latencyMs: { max: 2000 } } },
            { id: 'power-good', kind: 'gpio-status', line: 'power-good', expect: 1, timeoutMs: 3000 },
            { id: 'eth0', kind: 'ethernet', interface: 'eth0', timeoutMs: 3000 },
            { id: 'watchdog', kind: 'watchdog', timeoutMs: 3000 },
          ],
          services: [
            {
              id: 'modbus',
              protocol: 'modbus-tcp',
              listen: `0.0.0.0:${guestModbus.port}`,
              dependsOn: ['board-temp', 'meter', 'power-good', 'eth0', 'watchdog'],
              gate: { recheckMs: 500 },
            },
          ],
        },
      ],
    },
    powerGood,
    remove: async () => {
      await writeFile(join(configfs, 'live'), '0');
      for (const offset of [0, 1]) await rmdir(join(configfs, 'bank0', `line${offset}`));
      await rmdir(join(configfs, 'bank0'));
      await rmdir(configfs);
    },
  };
}
