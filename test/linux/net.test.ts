import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseLinkLine } from '../../hal/linux/link-monitor.js';
import { LinuxNetController } from '../../hal/linux/net.js';
import { Netns } from '../before/netns.js';
import { until, waitForOutput } from '../helpers/wait.js';
import { describeAsRoot } from './root.js';
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

describe('carrier events from rtnetlink (ip -o monitor link)', () => {
  it('reads LOWER_UP from the flags of RTM_NEWLINK lines, and RTM_DELLINK as no carrier', () => {
    // print_linkinfo (iproute2 ip/ipaddress.c) in oneline mode; a veth shows its peer after @.
    expect(parseLinkLine('7: hcw0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 4e:5f:2a:00:00:01 brd ff:ff:ff:ff:ff:ff')).toEqual({ name: 'hcw0', carrier: true });
    expect(parseLinkLine('7: hcw0@if6: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default')).toEqual({ name: 'hcw0', carrier: false });
    expect(parseLinkLine('Deleted 7: hcw0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500')).toEqual({ name: 'hcw0', carrier: false });
    expect(parseLinkLine('2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP')).toEqual({ name: 'eth0', carrier: true });
    expect(parseLinkLine('garbage')).toBeUndefined();
  });

  it('without iproute2 there are no events, and nothing fails', async () => {
    const lo = await new LinuxNetController({ ipCommand: '/nonexistent/ip' }).open('lo');
    const stop = lo.watch!(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop();
  });
});

describeAsRoot('carrier events on a veth pair in a network namespace', 'a network namespace', ['ip'], () => {
  it('tells a carrier loss the moment the peer goes down, and its return, once each', { timeout: 60_000 }, async () => {
    const ns = await Netns.create('carrier');
    try {
      await ns.exec('ip', ['link', 'add', 'hcw0', 'type', 'veth', 'peer', 'name', 'hcw1']);
      await ns.exec('ip', ['link', 'set', 'hcw0', 'up']);
      await ns.exec('ip', ['link', 'set', 'hcw1', 'up']);
      const body = fileURLToPath(new URL('./net-watch-body.ts', import.meta.url));
      const child = ns.spawn(process.execPath, ['--import', 'tsx', body, 'hcw0']);
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      await waitForOutput(child, /watching/, 'the watch to start', { stdout: true });
      const events = (): Array<{ carrier: boolean }> => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { carrier: boolean });
      // veth_close calls netif_carrier_off on the peer (drivers/net/veth.c): hcw0 loses its carrier.
      // `ip monitor` binds its netlink socket just after it starts, with no sign that it has: a loss it
      // missed leaves its last carrier up, so the peer goes up and down again until the loss is told.
      for (let round = 0; events().length === 0; round++) {
        if (round > 0) await ns.exec('ip', ['link', 'set', 'hcw1', 'up']);
        await ns.exec('ip', ['link', 'set', 'hcw1', 'down']);
        await until(() => events().length >= 1, 'the carrier loss event', 2_000).catch((err: unknown) => {
          if (round >= 5) throw err;
        });
      }
      await ns.exec('ip', ['link', 'set', 'hcw1', 'up']);
      await until(() => events().length >= 2, 'the carrier return event', 20_000);
      expect(events()).toEqual([{ name: 'hcw0', carrier: false }, { name: 'hcw0', carrier: true }]);
      child.stdin!.end();
      await new Promise((resolve) => child.once('exit', resolve));
    } finally {
      await ns.destroy();
    }
  });
});
