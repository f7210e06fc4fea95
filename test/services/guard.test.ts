/**
 * Guard services as root, in network namespaces: the firmware (`handcheck run` on the sim board) holds
 * the SYNs of ports that Debian's mosquitto and nginx (nginx-light) listen on in the same namespace,
 * and real clients in a second namespace over a veth pair - mosquitto_pub / mosquitto_sub
 * (mosquitto-clients) and curl - connect to the daemons, never to handcheck. Healthy, the clients
 * work; a fault on a component the guard names, and the connect is refused with RST and no SYN/ACK;
 * the daemon gone, the gate log says so; the firmware frozen or killed, the port fails open as in
 * before mode.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Capture, Netns, ROOT, SERVER_V4, describeAsRoot, link, synAcksFrom, synsTo } from '../before/netns.js';
import { until } from '../helpers/wait.js';
import { type Upstream, missing, startMosquitto, startNginx } from './upstreams.js';

const cli = `${ROOT}/dist/app/handcheck.js`;
const BROKER = 1883;
const WEB = 8080;
const why = missing('mosquitto', 'mosquitto') ?? missing('mosquitto_pub', 'mosquitto-clients') ?? missing('nginx', 'nginx-light') ?? missing('curl', 'curl');

function describeGuard(name: string, body: () => void): void {
  if (why !== undefined) {
    // Root and the tools: the before-mode requirements decide skip or fail; the tools are on top.
    describeAsRoot(name, () => {
      it('has its third-party servers and clients', () => {
        throw new Error(why);
      });
    });
    return;
  }
  describeAsRoot(name, body);
}

describeGuard('guard services in front of mosquitto and nginx', () => {
  let server: Netns;
  let client: Netns;
  let firmware: ChildProcess;
  let broker: Upstream;
  let web: Upstream;
  let dir: string;
  let stdout = '';

  const inNs = (ns: () => Netns) => ({
    spawner: (command: string, args: string[]) => ns().spawn(command, args),
    ready: (_host: string, port: number) => until(async () => (await ns().exec('ss', ['-Htln', `sport = :${port}`])).trim().length > 0, `a listener on port ${port}`, 20_000),
  });

  beforeAll(async () => {
    server = await Netns.create('grdsrv');
    client = await Netns.create('grdcli');
    await link(server, client);
    broker = await startMosquitto({ host: '0.0.0.0', port: BROKER, ...inNs(() => server) });
    web = await startNginx({ host: '0.0.0.0', port: WEB, bigBytes: 1024, ...inNs(() => server) });

    dir = await mkdtemp(join(tmpdir(), 'hc-guard-'));
    const boards = JSON.parse(await readFile(join(ROOT, 'boards.json'), 'utf8')) as { boards: Array<{ id: string; services: unknown[] }> };
    const sim = boards.boards.find((b) => b.id === 'sim-appliance')!;
    sim.services = [
      { id: 'broker', kind: 'guard', listen: `0.0.0.0:${BROKER}`, dependsOn: ['power-good'] },
      { id: 'web', kind: 'guard', listen: `0.0.0.0:${WEB}`, dependsOn: ['board-temp'], gate: { queue: 1 } },
    ];
    await writeFile(join(dir, 'boards.json'), JSON.stringify(boards));
    firmware = server.spawn(process.execPath, [cli, 'run', '--boards', join(dir, 'boards.json'), '--control', '127.0.0.1:9502']);
    firmware.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    await new Promise<void>((resolve, reject) => {
      let text = '';
      firmware.stderr!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (/service web \(guard\) holding SYNs for 0\.0\.0\.0:8080/.test(text)) resolve();
      });
      firmware.once('exit', (code) => reject(new Error(`firmware exited with ${code}: ${text}`)));
    });
  });

  afterAll(async () => {
    if (firmware?.exitCode === null && firmware.signalCode === null) {
      firmware.kill('SIGCONT');
      firmware.kill('SIGTERM');
    }
    await broker?.stop().catch(() => undefined);
    await web?.stop().catch(() => undefined);
    await client?.destroy();
    await server?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const inClient = (command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', client.name, command, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, out, errOut) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: out, stderr: errOut });
      });
    });
  const publish = (message: string) => inClient('mosquitto_pub', ['-h', SERVER_V4, '-p', String(BROKER), '-t', 'handcheck/guard', '-r', '-m', message]);
  const subscribe = () => inClient('mosquitto_sub', ['-h', SERVER_V4, '-p', String(BROKER), '-t', 'handcheck/guard', '-C', '1', '-W', '10']);
  const curl = () => inClient('curl', ['-sS', '--max-time', '10', `http://${SERVER_V4}:${WEB}/health`]);
  const fault = (...args: string[]): Promise<string> => server.exec(process.execPath, [cli, 'fault', ...args, '--control', '127.0.0.1:9502']);
  const decisions = (): Array<Record<string, unknown>> =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => 'action' in line);

  it('installs the SYN rules for both ports; healthy, the clients talk to the daemons', async () => {
    const rules = (await server.rules()).join('\n');
    expect(rules).toMatch(new RegExp(`--dport ${BROKER} .*NFQUEUE --queue-num 0`));
    expect(rules).toMatch(new RegExp(`--dport ${WEB} .*NFQUEUE --queue-num 1`));
    expect(await publish('healthy')).toMatchObject({ code: 0 });
    expect(await subscribe()).toMatchObject({ code: 0, stdout: 'healthy\n' });
    expect(await curl()).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('a fault on a dependency: the connect is refused with no SYN/ACK, only for the guard that names it; cleared, it works', async () => {
    await fault('inject', 'power-good', 'stuck-low');
    const capture = await Capture.start(client, 'any', `tcp port ${BROKER}`);
    const refused = await publish('faulty');
    const packets = await capture.stop();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Connection refused/);
    expect(synsTo(packets, BROKER).length).toBeGreaterThan(0);
    expect(synAcksFrom(packets, BROKER)).toEqual([]);
    expect(decisions()).toContainEqual(expect.objectContaining({ service: 'broker', action: 'reset', failures: [expect.objectContaining({ component: 'power-good' })] }));
    // The web guard depends on the board temperature alone.
    expect(await curl()).toMatchObject({ code: 0, stdout: 'ok\n' });
    await fault('clear');
    expect(await publish('cleared')).toMatchObject({ code: 0 });
  });

  it('the daemon stopped: the connect is refused and the gate log says nothing listens', async () => {
    await web.stop();
    // 7: CURLE_COULDNT_CONNECT.
    expect(await curl()).toMatchObject({ code: 7 });
    expect(decisions()).toContainEqual(expect.objectContaining({ service: 'web', action: 'reset', failures: [expect.objectContaining({ component: 'app', code: 'ERR_GUARD_NOT_LISTENING' })] }));
  });

  it('fails open when the firmware freezes, holds again when it runs, and lets SYNs through once it is killed', async () => {
    await fault('inject', 'power-good', 'stuck-low');
    expect(await publish('refused while healthy firmware runs')).toMatchObject({ code: 1 });
    firmware.kill('SIGSTOP');
    await until(async () => ((await server.setElements(BROKER, 'alive')) ?? []).length === 0, 'the liveness element lapsing');
    expect(await publish('frozen firmware: fail-open')).toMatchObject({ code: 0 });
    firmware.kill('SIGCONT');
    await until(async () => ((await server.setElements(BROKER, 'alive')) ?? []).length > 0, 'the liveness element written again');
    expect(await publish('running again')).toMatchObject({ code: 1 });
    const exited = new Promise((resolve) => firmware.once('exit', resolve));
    firmware.kill('SIGKILL');
    await exited;
    expect(await publish('killed firmware: queue bypass')).toMatchObject({ code: 0 });
    expect(await subscribe()).toMatchObject({ code: 0, stdout: 'killed firmware: queue bypass\n' });
  });
});
