/**
 * Guard services as root, in network namespaces: the firmware (`handcheck run` on the sim board) holds
 * the SYNs of ports that Debian's mosquitto and nginx (nginx-light) listen on in the same namespace,
 * and real clients in a second namespace over a veth pair - mosquitto_pub / mosquitto_sub
 * (mosquitto-clients) and curl - connect to the daemons, never to handcheck. Healthy, the clients
 * work; a fault on a component the guard names, and the connect is refused with RST and no SYN/ACK;
 * the daemon gone, the gate log says so; the firmware frozen or killed, the port fails open as in
 * before mode.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Netns, SERVER_V4, link } from '../before/netns.js';
import { until } from '../helpers/wait.js';
import { type GuardFirmware, cli, describeWithDaemons, expectRefusedAtSyn, inClient, inNamespace, startGuardFirmware } from './guard-rig.js';
import { type Upstream, missing, startMosquitto, startNginx } from './upstreams.js';

const BROKER = 1883;
const WEB = 8080;
const why = missing('mosquitto', 'mosquitto') ?? missing('mosquitto_pub', 'mosquitto-clients') ?? missing('nginx', 'nginx-light') ?? missing('curl', 'curl');

describeWithDaemons(why, 'guard services in front of mosquitto and nginx', () => {
  let server: Netns;
  let client: Netns;
  let firmware: GuardFirmware;
  let broker: Upstream;
  let web: Upstream;

  beforeAll(async () => {
    server = await Netns.create('grdsrv');
    client = await Netns.create('grdcli');
    await link(server, client);
    broker = await startMosquitto({ host: '0.0.0.0', port: BROKER, ...inNamespace(() => server) });
    web = await startNginx({ host: '0.0.0.0', port: WEB, bigBytes: 1024, ...inNamespace(() => server) });
    firmware = await startGuardFirmware(
      server,
      [
        { id: 'broker', kind: 'guard', listen: `0.0.0.0:${BROKER}`, dependsOn: ['power-good'] },
        { id: 'web', kind: 'guard', listen: `0.0.0.0:${WEB}`, dependsOn: ['board-temp'], gate: { queue: 1 } },
      ],
      '127.0.0.1:9502',
      /service web \(guard\) holding SYNs for 0\.0\.0\.0:8080/,
    );
  });

  afterAll(async () => {
    await firmware?.stop();
    await broker?.stop().catch(() => undefined);
    await web?.stop().catch(() => undefined);
    await client?.destroy();
    await server?.destroy();
  });

  const inClientNs = inClient(() => client);
  const publish = (message: string) => inClientNs('mosquitto_pub', ['-h', SERVER_V4, '-p', String(BROKER), '-t', 'handcheck/guard', '-r', '-m', message]);
  const subscribe = () => inClientNs('mosquitto_sub', ['-h', SERVER_V4, '-p', String(BROKER), '-t', 'handcheck/guard', '-C', '1', '-W', '10']);
  const curl = () => inClientNs('curl', ['-sS', '--max-time', '10', `http://${SERVER_V4}:${WEB}/health`]);
  const fault = (...args: string[]): Promise<string> => server.exec(process.execPath, [cli, 'fault', ...args, '--control', '127.0.0.1:9502']);
  const decisions = (): Array<Record<string, unknown>> => firmware.decisions();

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
    await expectRefusedAtSyn(client, BROKER, () => publish('faulty'));
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
    firmware.child.kill('SIGSTOP');
    await until(async () => ((await server.setElements(BROKER, 'alive')) ?? []).length === 0, 'the liveness element lapsing');
    expect(await publish('frozen firmware: fail-open')).toMatchObject({ code: 0 });
    firmware.child.kill('SIGCONT');
    await until(async () => ((await server.setElements(BROKER, 'alive')) ?? []).length > 0, 'the liveness element written again');
    expect(await publish('running again')).toMatchObject({ code: 1 });
    const exited = new Promise((resolve) => firmware.child.once('exit', resolve));
    firmware.child.kill('SIGKILL');
    await exited;
    expect(await publish('killed firmware: queue bypass')).toMatchObject({ code: 0 });
    expect(await subscribe()).toMatchObject({ code: 0, stdout: 'killed firmware: queue bypass\n' });
  });
});
