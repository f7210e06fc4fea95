/**
 * The network backend (/sys/class/net) on a real driver: virtio_net, whose link the host flips with
 * QMP set_link (QEMU raises VIRTIO_NET_S_LINK_UP, the driver calls netif_carrier_on/off). The change
 * is awaited as the kernel announces it on rtnetlink (`ip monitor link`), never by polling.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { LinuxNetController } from '../../../hal/linux/net.js';
import { askHost, describeInLane } from '../in-guest.js';

/**
 * Resolves with the first rtnetlink link message about eth0 that `matches` after `act`. `ip monitor`
 * says nothing when it has subscribed, so a change of lo's alias, which it reports as a message about
 * lo, marks that point.
 */
async function linkMessage(matches: (line: string) => boolean, act: () => Promise<unknown>): Promise<string> {
  const monitor = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let listening: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const seen = new Promise<string>((resolve) => {
      createInterface({ input: monitor.stdout }).on('line', (line) => {
        if (/^\d+: lo:/.test(line)) listening();
        else if (line.includes(' eth0:') && matches(line)) resolve(line);
      });
    });
    await new Promise((resolve) => monitor.once('spawn', resolve));
    // Repeated until the monitor hears one: it may not have subscribed to rtnetlink yet.
    for (let n = 0; !(await Promise.race([ready.then(() => true), aliasChange(`handcheck-${n}`).then(() => false)])); n++);
    await act();
    return await seen;
  } finally {
    monitor.kill();
  }
}

function aliasChange(alias: string): Promise<void> {
  return new Promise((resolve, reject) => {
    spawn('ip', ['link', 'set', 'dev', 'lo', 'alias', alias], { stdio: 'inherit' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ip link set lo alias: exit ${code}`))));
  });
}

describeInLane('NIC carrier on virtio-net', () => {
  it('sees the carrier go and come back when the host takes the link down and up', async () => {
    const eth0 = await new LinuxNetController().open('eth0');
    expect(await eth0.status()).toMatchObject({ name: 'eth0', carrier: true, operstate: 'up' });
    await linkMessage((line) => line.includes('NO-CARRIER'), () => askHost('set_link off'));
    expect(await eth0.status()).toMatchObject({ carrier: false, operstate: 'down' });
    await linkMessage((line) => line.includes('LOWER_UP'), () => askHost('set_link on'));
    expect(await eth0.status()).toMatchObject({ carrier: true, operstate: 'up' });
  });
});
