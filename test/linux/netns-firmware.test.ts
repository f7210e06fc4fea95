/**
 * The real network path and the real watchdog path through the running firmware. A veth pair lives in
 * a network namespace made by the test; the firmware runs there as a process (`handcheck run`) on a
 * linux board entry whose only hardware is that veth, a watchdog stand-in FIFO read by this process,
 * and a Modbus service depending on the link. Taking the peer down must show in carrier and operstate
 * (LinuxNetController reading the namespace's /sys/class/net), reset the held connection through the
 * recheck, and reset new connections; bringing it up must heal. SIGTERM must end with the magic close.
 *
 * The firmware reads the watchdog's sysfs attributes at the real /sys/class/watchdog, so it runs in a
 * private mount namespace with a stand-in class directory bound there; the host's /sys is untouched.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { type NetStatus, netCounterNames } from '../../hal/net.js';
import { Netns } from '../before/netns.js';
import { until, waitForOutput } from '../helpers/wait.js';
import { makeTempDir } from './fake-sysfs.js';
import { describeAsRoot } from './root.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'app', 'handcheck.js');
const STATUS = fileURLToPath(new URL('./net-status-body.js', import.meta.url));
const HOLD = fileURLToPath(new URL('./hold-client.js', import.meta.url));

let temp: Awaited<ReturnType<typeof makeTempDir>>;
beforeEach(async () => {
  temp = await makeTempDir('netns-fw');
  await chmod(temp.dir, 0o755);
});
afterEach(async () => {
  await temp.remove();
});

/** What is read from the watchdog FIFO: so far, and everything once the firmware closes it. */
function recordWatchdog(fifo: string): { received: () => number; all: Promise<Buffer> } {
  const chunks: Buffer[] = [];
  const all = new Promise<Buffer>((resolve, reject) => {
    const stream = createReadStream(fifo);
    stream.on('data', (chunk) => chunks.push(chunk as Buffer));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
  return { received: () => chunks.reduce((n, c) => n + c.length, 0), all };
}

describeAsRoot('firmware on a veth in a network namespace', 'network and mount namespaces', ['ip', 'unshare', 'mount', 'mkfifo'], () => {
  let ns: Netns;

  beforeAll(async () => {
    ns = await Netns.create('nic');
    await ns.exec('ip', ['link', 'add', 'hcnic0', 'type', 'veth', 'peer', 'name', 'hcnic1']);
    await ns.exec('ip', ['link', 'set', 'hcnic0', 'up']);
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'up']);
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  async function status(): Promise<NetStatus> {
    return JSON.parse(await ns.exec(process.execPath, ['--import', 'tsx', STATUS, 'hcnic0'])) as NetStatus;
  }

  async function probe(port: number): Promise<string> {
    const out = await ns.exec('sh', ['-c', `${process.execPath} ${CLI} probe --grace 300 127.0.0.1:${port}; true`]);
    return out.split(' ')[1] ?? out;
  }


  it('LinuxNetController follows carrier and operstate as the link goes down and up', async () => {
    const up = await status();
    expect({ carrier: up.carrier, operstate: up.operstate, speedMbps: up.speedMbps }).toEqual({ carrier: true, operstate: 'up', speedMbps: 10000 });
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'down']);
    // The peer down: no carrier, and the kernel says why: the layer below is down.
    const peerDown = await status();
    expect([peerDown.carrier, peerDown.operstate]).toEqual([false, 'lowerlayerdown']);
    await ns.exec('ip', ['link', 'set', 'hcnic0', 'down']);
    const adminDown = await status();
    expect([adminDown.carrier, adminDown.operstate, adminDown.speedMbps]).toEqual([false, 'down', null]);
    await ns.exec('ip', ['link', 'set', 'hcnic0', 'up']);
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'up']);
    const back = await status();
    expect([back.carrier, back.operstate]).toEqual([true, 'up']);
    expect(Object.keys(back.counters).sort()).toEqual([...netCounterNames].sort());
    expect(Object.values(back.counters).every((n) => Number.isSafeInteger(n) && n >= 0)).toBe(true);
  });

  async function startFirmware(gate: Record<string, number> = { recheckMs: 200 }, refreshMs = 2000): Promise<{ child: ChildProcess; port: number; stderr: () => string; stdout: () => string; watchdog: ReturnType<typeof recordWatchdog> }> {
    const wdClass = join(temp.dir, 'watchdog-class');
    await mkdir(join(wdClass, 'watchdog0'), { recursive: true });
    await writeFile(join(wdClass, 'watchdog0', 'identity'), 'Broadcom BCM2835 Watchdog timer\n');
    await writeFile(join(wdClass, 'watchdog0', 'timeout'), '15\n');
    const fifo = join(temp.dir, `watchdog-${Date.now()}-dev`);
    execFileSync('mkfifo', [fifo]);
    const boards = join(temp.dir, 'boards.json');
    await writeFile(
      boards,
      JSON.stringify({
        boards: [
          {
            id: 'veth-board',
            name: 'veth in a namespace',
            backend: 'linux',
            watchdog: { device: fifo, timeoutS: 15, kickIntervalMs: 200 },
            net: [{ name: 'hcnic0' }],
            // Patient deadlines, as for every process test (test/helpers/boards.ts): a fresh process on a
            // loaded machine can miss 100 ms on its first diagnosis.
            components: [
              { id: 'uplink', kind: 'ethernet', interface: 'hcnic0', timeoutMs: 1000 },
              { id: 'watchdog', kind: 'watchdog', timeoutMs: 1000 },
            ],
            refreshMs,
            services: [{ id: 'modbus', protocol: 'modbus-tcp', listen: '127.0.0.1:0', dependsOn: ['uplink', 'watchdog'], gate }],
          },
        ],
      }),
    );
    const watchdog = recordWatchdog(fifo);
    const script = `mount --bind ${wdClass} /sys/class/watchdog && exec ${process.execPath} ${CLI} run --board veth-board --boards ${boards} --control "" --state-dir ${join(temp.dir, 'state')}`;
    const child = ns.spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
    let stderr = '';
    let stdout = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const [, port] = await waitForOutput(child, /service modbus \(modbus-tcp\) listening on 127\.0\.0\.1:(\d+)/, 'firmware');
    return { child, port: Number(port), stderr: () => stderr, stdout: () => stdout, watchdog };
  }

  it('resets the held connection and new ones when the link drops, heals when it returns, and disarms the watchdog on SIGTERM', { timeout: 60_000 }, async () => {
    const fw = await startFirmware();
    // The start-up self-check ran first, on the namespace's interface and the stand-in watchdog.
    expect(fw.stderr()).toMatch(/^net +hcnic0 +OK +carrier up, operstate up, 10000 Mb\/s$/m);
    expect(fw.stderr()).toMatch(/^watchdog +timeout +OK +15 s in force, as requested$/m);
    expect(await probe(fw.port)).toBe('up');

    const holder = ns.spawn(process.execPath, ['--import', 'tsx', HOLD, '127.0.0.1', String(fw.port)]);
    const events = createInterface({ input: holder.stdout! });
    const next = (): Promise<Record<string, unknown>> =>
      new Promise((resolve) => events.once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>)));
    const answered = await next();
    expect(answered).toEqual({ event: 'answered', functionCode: 3 });

    const closed = next();
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'down']);
    expect(await closed).toEqual({ event: 'closed', how: 'ECONNRESET' });
    expect(await probe(fw.port)).toBe('reset');
    expect(fw.stdout()).toContain('no carrier on hcnic0');

    await ns.exec('ip', ['link', 'set', 'hcnic1', 'up']);
    // Healed once the link is up again and a diagnosis has seen it.
    let last = '';
    await until(async () => (last = await probe(fw.port)) === 'up', `a probe to be up again (last: ${last})`, 30_000);

    const exited = new Promise<number | null>((resolve) => fw.child.once('exit', resolve));
    fw.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const written = await fw.watchdog.all;
    // Kicks every 200 ms for the seconds the test ran, then the magic close as the last byte.
    expect(written.length).toBeGreaterThan(5);
    expect(written.subarray(-1).toString()).toBe('V');
    expect([...written.subarray(0, -1)].every((byte) => byte === 0)).toBe(true);
  });

  it('a carrier loss withdraws the reusable verdict at once (RTM_NEWLINK), with no recheck and no refresh to find it', { timeout: 60_000 }, async () => {
    const fw = await startFirmware({ recheckMs: 0, maxAgeMs: 3_600_000 }, 3_600_000);
    const holder = ns.spawn(process.execPath, ['--import', 'tsx', HOLD, '127.0.0.1', String(fw.port)]);
    const events = createInterface({ input: holder.stdout! });
    const answered = await new Promise<Record<string, unknown>>((resolve) => events.once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>)));
    expect(answered).toEqual({ event: 'answered', functionCode: 3 });
    // Held: a new connect reuses its verdict.
    expect(await probe(fw.port)).toBe('up');
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'down']);
    // Only the event can have withdrawn the verdict: the next connect is diagnosed and finds no carrier.
    await until(async () => (await probe(fw.port)) === 'reset', 'a connect to be reset after the carrier loss', 20_000);
    expect(fw.stdout()).toContain('no carrier on hcnic0');
    await ns.exec('ip', ['link', 'set', 'hcnic1', 'up']);
    holder.kill();
    fw.child.kill('SIGTERM');
    await new Promise((resolve) => fw.child.once('exit', resolve));
  });

  it('leaves the watchdog armed (no magic close) when the firmware is killed', { timeout: 30_000 }, async () => {
    const fw = await startFirmware();
    await until(() => fw.watchdog.received() > 1, 'two kicks');
    fw.child.kill('SIGKILL');
    const written = await fw.watchdog.all;
    expect(written.length).toBeGreaterThan(1);
    expect([...written].every((byte) => byte === 0)).toBe(true);
  });
});
