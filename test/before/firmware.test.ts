/**
 * The firmware itself in before mode (`handcheck run --before modbus`) on the sim board, inside a
 * network namespace, probed by the `handcheck probe` client from a second namespace over a veth pair:
 * every sim fault the service depends on turns the connect into ECONNREFUSED (RST, no SYN/ACK).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Capture, Netns, ROOT, SERVER_V4, describeAsRoot, link, synAcksFrom, synsTo } from './netns.js';

const cli = `${ROOT}/dist/app/handcheck.js`;

describeAsRoot('handcheck run --before on the sim board', () => {
  let server: Netns;
  let client: Netns;
  let firmware: ChildProcess;
  let port: number;

  beforeAll(async () => {
    server = await Netns.create('fwsrv');
    client = await Netns.create('fwcli');
    await link(server, client);
    firmware = server.spawn(process.execPath, [cli, 'run', '--before', 'modbus', '--listen', 'modbus=0.0.0.0:0', '--control', '127.0.0.1:9502']);
    port = await new Promise<number>((resolve, reject) => {
      let text = '';
      firmware.stderr!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const match = /listening on [\d.]+:(\d+) - gate before/.exec(text);
        if (match) resolve(Number(match[1]));
      });
      firmware.once('exit', (code) => reject(new Error(`firmware exited with ${code}: ${text}`)));
    });
  });

  afterAll(async () => {
    firmware?.kill('SIGTERM');
    await client?.destroy();
    await server?.destroy();
  });

  /** `handcheck probe` from the client namespace; its exit status is the result, so it is read from stdout either way. */
  const probe = (): Promise<string> =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', client.name, process.execPath, cli, 'probe', `${SERVER_V4}:${port}`], (_err, stdout) => {
        resolve(/\s(up|refused|reset|closed|timeout|unreachable)\s/.exec(stdout)?.[1] ?? stdout);
      });
    });
  const fault = (...args: string[]): Promise<string> => server.exec(process.execPath, [cli, 'fault', ...args, '--control', '127.0.0.1:9502']);

  it('installs its SYN rules and lets a healthy board be connected', async () => {
    expect((await server.rules()).join('\n')).toMatch(new RegExp(`--dport ${port} .*NFQUEUE`));
    expect(await probe()).toBe('up');
  });

  for (const [target, kind] of [
    ['board-temp', 'nack'],
    ['rail-5v', 'out-of-range'],
    ['uplink-sfp', 'los'],
    ['eth0', 'carrier-down'],
    ['power-good', 'stuck-low'],
    ['i2c-1', 'stuck-bus'],
  ] as const) {
    it(`${target} ${kind}: the connect is refused without a SYN/ACK; cleared, it connects`, async () => {
      await fault('inject', target, kind);
      const capture = await Capture.start(client, 'any', `tcp port ${port}`);
      expect(await probe()).toBe('refused');
      const packets = await capture.stop();
      expect(synsTo(packets, port).length).toBeGreaterThan(0);
      expect(synAcksFrom(packets, port)).toEqual([]);
      await fault('clear');
      expect(await probe()).toBe('up');
    });
  }

  it('removes its rules on SIGTERM', async () => {
    const exited = new Promise((resolve) => firmware.once('exit', resolve));
    firmware.kill('SIGTERM');
    await exited;
    expect(await server.rules()).toEqual([]);
  });
});
