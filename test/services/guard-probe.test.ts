/**
 * Guard services with a probe, as root in network namespaces: the firmware (`handcheck run` on the sim
 * board) guards Debian's mosquitto with a send/expect probe (an MQTT 3.1.1 CONNECT and the CONNACK
 * that accepts it, OASIS MQTT 3.1.1 sections 3.1 and 3.2) and a pymodbus server (python3-pymodbus)
 * with a Modbus read, the daemons on every address of the server namespace (a second mosquitto on ::
 * alone, whose probe goes to ::1 through ip6tables' rule); mosquitto_pub
 * (mosquitto-clients) and a Modbus client connect from a second namespace over a veth pair.
 *
 * The probe connects to the daemon on 127.0.0.1 while the diagnosis runs, through the INPUT hook where
 * the guard's NFQUEUE rule sits; its SYN carries the bypass mark (SO_MARK), so it never reaches the
 * queue - were it queued, it would wait for the very diagnosis that waits for it. A hung daemon
 * (SIGSTOP) still completes handshakes from its kernel backlog (net/ipv4/tcp_input.c, tcp_conn_request
 * queues until sk_acceptq_is_full), so only an answer tells it from a healthy one: the probe's
 * timeout fails the verdict and clients get RST; SIGCONT, and they are accepted again.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns, ROOT, SERVER_V4, SERVER_V6, link } from '../before/netns.js';
import { describeWhen, notRoot } from '../helpers/requirements.js';
import { type GuardFirmware, cli, describeWithDaemons, expectRefusedAtSyn, inClient, inNamespace, startGuardFirmware } from './guard-rig.js';
import { type Upstream, missing, pymodbusPython, startMosquitto, startPymodbus } from './upstreams.js';

const IOCTL_ADDON = join(ROOT, 'native', 'build', 'Release', 'handcheck_ioctl.node');
const BROKER = 1883;
/** A second mosquitto on :: alone, so its probe goes to ::1 through ip6tables' rule. */
const BROKER6 = 1884;
const MODBUS = 5020;
const CONTROL = '127.0.0.1:9502';
/** MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, client id "hc". */
const MQTT_CONNECT = '100e00044d5154540402000a00026863';
/** CONNACK, session present 0, return code 0 (accepted). */
const MQTT_CONNACK = '20020000';
const python = pymodbusPython();
const why =
  missing('mosquitto', 'mosquitto') ??
  missing('mosquitto_pub', 'mosquitto-clients') ??
  (python === undefined ? 'pymodbus is not installed (apt-get install python3-pymodbus)' : undefined);

interface GuardStats {
  diagnosed: number;
  lastVerdict?: { ok: boolean };
  accepted: number;
  reset: number;
  queue: { syns: number; accepted: number; reset: number };
}

describeWithDaemons(why, 'guards with a probe in front of mosquitto and a pymodbus server', () => {
  let server: Netns;
  let client: Netns;
  let firmware: GuardFirmware;
  let broker: Upstream;
  let broker6: Upstream;
  let modbus: Upstream;
  let brokerLog = '';

  beforeAll(async () => {
    server = await Netns.create('gprsrv');
    client = await Netns.create('gprcli');
    await link(server, client);
    broker = await startMosquitto({ host: '0.0.0.0', port: BROKER, ...inNamespace(() => server) });
    broker.child.stderr!.on('data', (chunk: Buffer) => {
      brokerLog += chunk.toString();
    });
    broker6 = await startMosquitto({ host: '::', port: BROKER6, ...inNamespace(() => server) });
    modbus = await startPymodbus(python as string, { host: '0.0.0.0', port: MODBUS, ...inNamespace(() => server) });

    firmware = await startGuardFirmware(
      server,
      [
        { id: 'broker', kind: 'guard', listen: `0.0.0.0:${BROKER}`, dependsOn: [], probe: { type: 'send-expect', send: MQTT_CONNECT, expect: MQTT_CONNACK, encoding: 'hex' } },
        { id: 'broker6', kind: 'guard', listen: `[::]:${BROKER6}`, dependsOn: [], probe: { type: 'send-expect', send: MQTT_CONNECT, expect: MQTT_CONNACK, encoding: 'hex' }, gate: { queue: 2 } },
        { id: 'plc', kind: 'guard', listen: `0.0.0.0:${MODBUS}`, dependsOn: [], probe: { type: 'modbus', address: 0, count: 2 }, gate: { queue: 1 } },
      ],
      CONTROL,
      /service plc \(guard\) holding SYNs/,
    );
  });

  afterAll(async () => {
    for (const daemon of [broker, broker6, modbus]) daemon?.child.kill('SIGCONT');
    await firmware?.stop();
    await broker?.stop().catch(() => undefined);
    await broker6?.stop().catch(() => undefined);
    await modbus?.stop().catch(() => undefined);
    await client?.destroy();
    await server?.destroy();
  });

  const inClientNs = inClient(() => client);
  const publish = (message: string, host = SERVER_V4, port = BROKER) => inClientNs('mosquitto_pub', ['-h', host, '-p', String(port), '-t', 'handcheck/guard-probe', '-m', message]);
  /** A Modbus read of holding registers 0-1 by pymodbus' own client: `7,7` from the server's store. */
  const readRegisters = () =>
    inClientNs(python as string, [
      '-c',
      'import sys\nfrom pymodbus.client import ModbusTcpClient\nc = ModbusTcpClient(sys.argv[1], port=int(sys.argv[2]), timeout=5, retries=0)\n' +
        'ok = c.connect()\nr = c.read_holding_registers(0, count=2) if ok else None\nprint(",".join(map(str, r.registers)) if r is not None and not r.isError() else "refused")\nc.close()',
      SERVER_V4,
      String(MODBUS),
    ]);
  const status = async (id: string): Promise<GuardStats> => {
    const body = JSON.parse(await server.exec('curl', ['-sS', `http://${CONTROL}/status`])) as { services: Array<{ id: string; stats: GuardStats }> };
    return body.services.find((s) => s.id === id)!.stats;
  };
  /**
   * A connect from a process of the server namespace to the broker on loopback, its socket marked
   * `mark`: resolves `connected` once the handshake completes (`handshake`), or the answer to an MQTT
   * CONNECT in hex; an errno name when the connect fails.
   */
  const localConnect = (mark: number | undefined, until: 'handshake' | 'answer' = 'answer'): Promise<string> =>
    server.exec(process.execPath, [
      '-e',
      `const net = require('node:net');
const mark = ${mark === undefined ? 'undefined' : String(mark)};
const socket = mark === undefined ? new net.Socket() : new net.Socket({ fd: require(${JSON.stringify(IOCTL_ADDON)}).markedTcpSocket(4, mark) });
socket.on('connect', () => {
  if (${JSON.stringify(until)} === 'handshake') { console.log('connected'); socket.destroy(); }
  else socket.write(Buffer.from('${MQTT_CONNECT}', 'hex'));
});
socket.on('data', (d) => { console.log(d.toString('hex')); socket.destroy(); });
socket.on('error', (e) => console.log(e.code));
socket.connect(${BROKER}, '127.0.0.1');`,
    ]);
  const decisions = (): Array<Record<string, unknown>> => firmware.decisions();

  it('healthy: clients are accepted, one queued SYN and one diagnosis each - the probe inside it never reaches the queue', async () => {
    const clients: Record<string, () => Promise<unknown>> = {
      broker: () => publish('healthy'),
      broker6: () => publish('healthy over IPv6', SERVER_V6, BROKER6),
      plc: readRegisters,
    };
    for (const [id, connect] of Object.entries(clients)) {
      const before = await status(id);
      expect(await connect(), id).toMatchObject({ code: 0, ...(id === 'plc' ? { stdout: '7,7\n' } : {}) });
      const after = await status(id);
      // The client's SYN was queued and diagnosed once (a SYN it retransmits on a slow machine gets the
      // first one's answer, no diagnosis of its own). Were the probe's SYN queued too, the diagnosis
      // would have waited for itself and the client would have been refused; the next test shows the
      // mark is what keeps it out.
      expect(after.queue.syns - before.queue.syns, id).toBeGreaterThanOrEqual(1);
      expect(after.queue.accepted - before.queue.accepted, id).toBe(after.queue.syns - before.queue.syns);
      expect(after.diagnosed - before.diagnosed, id).toBe(1);
      expect(after.reset, id).toBe(before.reset);
    }
    // The probe reached the daemon: mosquitto logs each of its connections.
    expect(brokerLog).toMatch(/New client connected from 127\.0\.0\.1:\d+ as hc/);
    expect((await status('broker6')).lastVerdict).toMatchObject({ ok: true });
  });

  it('a SYN from loopback with the bypass mark skips the queue; the same connect unmarked waits in it for a diagnosis', async () => {
    const before = await status('broker');
    expect(await localConnect(0x2)).toBe(`${MQTT_CONNACK}\n`);
    const marked = await status('broker');
    expect(marked.queue.syns).toBe(before.queue.syns);
    expect(marked.diagnosed).toBe(before.diagnosed);
    expect(await localConnect(undefined)).toBe(`${MQTT_CONNACK}\n`);
    const unmarked = await status('broker');
    expect(unmarked.queue.syns - marked.queue.syns).toBe(1);
    expect(unmarked.diagnosed - marked.diagnosed).toBe(1);
  });

  it('a hung daemon (SIGSTOP): its handshakes still complete, its probe gets no answer, and clients get RST with no SYN/ACK; SIGCONT, accepted again', async () => {
    broker.child.kill('SIGSTOP');
    modbus.child.kill('SIGSTOP');
    try {
      // Stopped, the daemon's kernel still completes the handshake: only an answer can tell.
      expect(await localConnect(0x2, 'handshake')).toBe('connected\n');
      await expectRefusedAtSyn(client, BROKER, () => publish('hung'));
      expect(await readRegisters()).toMatchObject({ stdout: 'refused\n' });
      expect(decisions()).toContainEqual(
        expect.objectContaining({
          service: 'broker',
          action: 'reset',
          failures: [expect.objectContaining({ component: 'app', code: 'ERR_UPSTREAM_TIMEOUT', reason: expect.stringMatching(/^daemon 127\.0\.0\.1:1883: no answer to send 0x100e.* within 500 ms$/) as string })],
        }),
      );
      expect(decisions()).toContainEqual(
        expect.objectContaining({ service: 'plc', action: 'reset', failures: [expect.objectContaining({ component: 'app', code: 'ERR_UPSTREAM_TIMEOUT', reason: expect.stringContaining('no answer to Modbus read') as string })] }),
      );
    } finally {
      broker.child.kill('SIGCONT');
      modbus.child.kill('SIGCONT');
    }
    expect(await publish('running again')).toMatchObject({ code: 0 });
    expect(await readRegisters()).toMatchObject({ code: 0, stdout: '7,7\n' });
  });
});

/** `handcheck run` of the sim board with one guard that has a probe; resolves its exit code and stderr. */
async function runGuardWithProbe(wrapper: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-guard-probe-start-'));
  try {
    const boards = JSON.parse(await readFile(join(ROOT, 'boards.json'), 'utf8')) as { boards: Array<{ id: string; services: unknown[] }> };
    boards.boards.find((b) => b.id === 'sim-appliance')!.services = [
      { id: 'broker', kind: 'guard', listen: `0.0.0.0:${BROKER}`, dependsOn: [], probe: { type: 'send-expect', send: MQTT_CONNECT, expect: MQTT_CONNACK, encoding: 'hex' } },
    ];
    await writeFile(join(dir, 'boards.json'), JSON.stringify(boards));
    const [command, ...args] = [...wrapper, process.execPath, cli, 'run', '--boards', join(dir, 'boards.json'), '--control', ''];
    return await new Promise((resolve) => {
      execFile(command!, args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } }, (err, _out, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('a guard with a probe refuses to start when its socket cannot skip the queue', () => {
  it('without the ioctl addon: ERR_GUARD_PROBE_UNAVAILABLE naming the build step', async () => {
    const result = await runGuardWithProbe([], { HANDCHECK_IOCTL_ADDON: '/nonexistent/handcheck_ioctl.node' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ERR_GUARD_PROBE_UNAVAILABLE: service broker: a guard's probe is not available: SO_MARK on its socket needs the ioctl addon, which is not built \(looked for \/nonexistent\/handcheck_ioctl\.node\); build it with "npm run build:native"/);
  });
});

describeWhen(notRoot('dropping capabilities from a root process') ?? (existsSync(IOCTL_ADDON) ? undefined : `the ioctl addon is not built at ${IOCTL_ADDON} ("npm run build:native")`), 'a guard with a probe without CAP_NET_ADMIN', () => {
  it('refuses to start: SO_MARK needs CAP_NET_ADMIN (or CAP_NET_RAW)', async () => {
    const result = await runGuardWithProbe(['setpriv', '--inh-caps=-net_admin,-net_raw', '--bounding-set=-net_admin,-net_raw'], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ERR_GUARD_PROBE_UNAVAILABLE: service broker: a guard's probe is not available: setting SO_MARK on its socket needs CAP_NET_ADMIN/);
  });
});
