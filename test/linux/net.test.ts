import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinuxNetController } from '../../hal/linux/net.js';
import { netCounterNames } from '../../hal/net.js';
import { makeTempDir } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

/** Sends `rounds` request/response pairs over 127.0.0.1, so lo's counters must move. */
async function loopbackTraffic(rounds: number): Promise<void> {
  const server = createServer((socket) => socket.on('data', (data) => socket.write(data)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = createConnection(port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  for (let i = 0; i < rounds; i += 1) {
    const echoed = new Promise<void>((resolve) => client.once('data', () => resolve()));
    client.write(`ping ${i}`);
    await echoed;
  }
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('LinuxNetController on the real lo', () => {
  it('reads carrier, operstate, no speed, and counters that follow real traffic', async () => {
    const lo = await new LinuxNetController().open('lo');
    const before = await lo.status();
    // lo has carrier, no PHY (operstate unknown) and no link speed (the kernel answers EINVAL).
    expect([before.name, before.carrier, before.operstate, before.speedMbps]).toEqual(['lo', true, 'unknown', null]);
    expect(Object.keys(before.counters).sort()).toEqual([...netCounterNames].sort());
    await loopbackTraffic(10);
    const after = await lo.status();
    // Every segment on lo is counted once sent and once received: 10 requests + 10 replies at least
    // (other processes may add their own).
    expect(after.counters.tx_packets - before.counters.tx_packets).toBeGreaterThanOrEqual(20);
    expect(after.counters.rx_packets - before.counters.rx_packets).toBeGreaterThanOrEqual(20);
    expect(after.counters.rx_crc_errors).toBe(0);
  });

  it('rejects an interface that does not exist', async () => {
    const err = await rejection(new LinuxNetController().open('eth-handcheck9'));
    expect([err.code, err.target]).toEqual(['ERR_HAL_NOT_FOUND', 'net:eth-handcheck9']);
    expect((await rejection(new LinuxNetController().open('../lo'))).code).toBe('ERR_HAL_NOT_FOUND');
  });
});

describe('LinuxNetController on a fake tree', () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  beforeEach(async () => {
    temp = await makeTempDir('net');
  });
  afterEach(async () => {
    await temp.remove();
  });

  async function fakeInterface(name: string, files: Record<string, string>, counters: Partial<Record<string, string>> = {}): Promise<string> {
    const dir = join(temp.dir, name);
    await mkdir(join(dir, 'statistics'), { recursive: true });
    for (const [file, value] of Object.entries(files)) await writeFile(join(dir, file), `${value}\n`);
    for (const counter of netCounterNames) await writeFile(join(dir, 'statistics', counter), `${counters[counter] ?? '0'}\n`);
    return dir;
  }

  it('treats EINVAL from carrier and speed (interface down) as no carrier and no speed', async () => {
    const dir = await fakeInterface('end0', { operstate: 'down' });
    // A file in a temp dir cannot answer EINVAL; lo's speed attribute really does.
    await symlink('/sys/class/net/lo/speed', join(dir, 'carrier'));
    await symlink('/sys/class/net/lo/speed', join(dir, 'speed'));
    const status = await (await new LinuxNetController({ root: temp.dir }).open('end0')).status();
    expect([status.carrier, status.operstate, status.speedMbps]).toEqual([false, 'down', null]);
  });

  it('maps speed -1 to null and reads a gigabit link with climbing CRC errors', async () => {
    await fakeInterface('eth1', { carrier: '0', operstate: 'lowerlayerdown', speed: '-1' });
    await fakeInterface('eth0', { carrier: '1', operstate: 'up', speed: '1000' }, { rx_packets: '123456', rx_crc_errors: '17', rx_errors: '17' });
    const net = new LinuxNetController({ root: temp.dir });
    const down = await (await net.open('eth1')).status();
    expect([down.carrier, down.operstate, down.speedMbps]).toEqual([false, 'lowerlayerdown', null]);
    const up = await (await net.open('eth0')).status();
    expect([up.carrier, up.operstate, up.speedMbps]).toEqual([true, 'up', 1000]);
    expect([up.counters.rx_packets, up.counters.rx_crc_errors, up.counters.rx_errors, up.counters.collisions]).toEqual([123456, 17, 17, 0]);
  });

  it('reports an interface that vanished between open and status as not found, and garbage as I/O', async () => {
    const dir = await fakeInterface('wlan0', { carrier: '1', operstate: 'up', speed: '72' }, { tx_errors: 'n/a' });
    const net = new LinuxNetController({ root: temp.dir });
    const wlan = await net.open('wlan0');
    const garbage = await rejection(wlan.status());
    expect(garbage.code).toBe('ERR_HAL_IO');
    expect(garbage.message).toContain('statistics/tx_errors holds "n/a"');
    await temp.remove();
    const gone = await rejection(wlan.status());
    expect(gone.code).toBe('ERR_HAL_NOT_FOUND');
    expect(gone.message).toContain(dir);
  });
});
