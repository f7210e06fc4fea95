/**
 * Before mode on the wire (claim 3): the fixture gate runs in one network namespace, clients in it
 * (loopback) and in a second namespace over a veth pair. Healthy: SYN, SYN/ACK, ACK and the
 * application's greeting. Abnormal in any way (abnormal verdict, a diagnosis that throws, one that
 * misses its deadline): the client's connect fails with ECONNREFUSED and a capture on the server's
 * side holds the SYNs and RSTs but not one SYN/ACK.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { until } from '../helpers/wait.js';
import {
  CLIENT_V4,
  CLIENT_V6,
  Capture,
  ClientSession,
  FixtureServer,
  Netns,
  SERVER_V4,
  SERVER_V6,
  connectFrom,
  describeAsRoot,
  link,
  outcomes,
  resetsFrom,
  synAcksFrom,
  synsTo,
} from './netns.js';

const PORT = 7100;

describeAsRoot('before mode: the SYN waits for the verdict', () => {
  let server: Netns;
  let client: Netns;
  let gate: FixtureServer;

  beforeAll(async () => {
    server = await Netns.create('hs');
    client = await Netns.create('hc');
    await link(server, client);
    gate = new FixtureServer(server, { host: '::', port: PORT, policy: { mode: 'before' }, diagnosisTimeoutMs: 300 });
    await gate.started();
  });

  afterAll(async () => {
    await server?.destroy();
    await client?.destroy();
  });

  async function diagnosed(): Promise<number> {
    return (await gate.stats()).diagnosed as number;
  }

  it('installs, for IPv4 and IPv6, the REJECT rule for the mark above the NFQUEUE rule with --queue-bypass, which skips the bypass mark', async () => {
    for (const family of [4, 6] as const) {
      const rules = await server.rules(family);
      expect(rules).toHaveLength(2);
      expect(rules[0]).toMatch(new RegExp(`--dport ${PORT} .*-m mark --mark 0x1/0x1 .*-j REJECT --reject-with tcp-reset`));
      expect(rules[1]).toMatch(new RegExp(`--dport ${PORT} .*-m mark --mark 0x0/0x3 .*-j NFQUEUE --queue-num 0 --queue-bypass`));
    }
  });

  it('keeps its liveness in the kernel: table inet handcheck_PORT marks SYNs for both families when the element lapses', async () => {
    expect(await server.setElements(PORT, 'alive')).toEqual([PORT]);
    const table = await server.exec('nft', ['list', 'table', 'inet', `handcheck_${PORT}`]);
    for (const family of ['ipv4', 'ipv6']) {
      expect(table).toMatch(new RegExp(`meta nfproto ${family} tcp dport ${PORT} tcp flags syn / fin,syn,rst,ack tcp dport != @alive meta mark set meta mark \\| 0x00000002`));
      expect(table).toMatch(new RegExp(`meta nfproto ${family} tcp dport ${PORT} tcp flags syn / fin,syn,rst,ack tcp dport @reusable meta mark set meta mark \\| 0x00000002`));
    }
  });

  it('lets a healthy connection through on loopback, IPv4 and IPv6, after one diagnosis each', async () => {
    await gate.command('ok', 'behaviour');
    for (const host of ['127.0.0.1', '::1']) {
      const before = await diagnosed();
      const results = await connectFrom(server, { host, port: PORT });
      expect(results).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'hello' })]);
      expect(await diagnosed()).toBe(before + 1);
    }
  });

  it('completes SYN, SYN/ACK, ACK for a client in another namespace, IPv4 and IPv6', async () => {
    await gate.command('ok', 'behaviour');
    const capture = await Capture.start(server, 'any', `tcp port ${PORT}`);
    const v4 = await connectFrom(client, { host: SERVER_V4, port: PORT });
    const v6 = await connectFrom(client, { host: SERVER_V6, port: PORT });
    const packets = await capture.stop();
    expect(v4).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'hello' })]);
    expect(v6).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'hello' })]);
    const synAcks = synAcksFrom(packets, PORT);
    expect(synAcks.filter((line) => line.includes(`${SERVER_V4}.${PORT} > ${CLIENT_V4}`))).toHaveLength(1);
    expect(synAcks.filter((line) => line.includes(`${SERVER_V6}.${PORT} > ${CLIENT_V6}`))).toHaveLength(1);
  });

  it.each([
    ['abnormal', 'an abnormal verdict'],
    ['throw', 'a diagnosis that throws'],
    ['hang', 'a diagnosis past its 300 ms deadline'],
  ])('answers RST and no SYN/ACK on %s (%s), over loopback and the veth, IPv4 and IPv6', async (behaviour) => {
    await gate.command(behaviour, 'behaviour');
    const resetsBefore = (await gate.stats()).reset as number;
    const capture = await Capture.start(server, 'any', `tcp port ${PORT}`);
    const results = [
      ...(await connectFrom(client, { host: SERVER_V4, port: PORT, count: 3 })),
      ...(await connectFrom(client, { host: SERVER_V6, port: PORT, count: 3 })),
      ...(await connectFrom(server, { host: '127.0.0.1', port: PORT })),
      ...(await connectFrom(server, { host: '::1', port: PORT })),
    ];
    const packets = await capture.stop();
    expect(outcomes(results)).toEqual({ ECONNREFUSED: 8 });
    expect(synAcksFrom(packets, PORT)).toEqual([]);
    expect(synsTo(packets, PORT).length).toBeGreaterThanOrEqual(8);
    expect(resetsFrom(packets, PORT).length).toBeGreaterThanOrEqual(8);
    expect((await gate.stats()).reset).toBe(resetsBefore + 8);
  });
});

/** Diagnoses that take their time, under the default 2000 ms deadline. */
describeAsRoot('before mode: slow diagnoses and held connections', () => {
  const SLOW_PORT = PORT + 1;
  let server: Netns;
  let client: Netns;
  let slow: FixtureServer;
  let clients: ClientSession;

  beforeAll(async () => {
    server = await Netns.create('hh');
    client = await Netns.create('hk');
    await link(server, client);
    slow = new FixtureServer(server, { host: SERVER_V4, port: SLOW_PORT, policy: { mode: 'before', reuse: 'never' } });
    clients = new ClientSession(client);
    await Promise.all([slow.started(), clients.started()]);
  });

  afterAll(async () => {
    clients?.close();
    await server?.destroy();
    await client?.destroy();
  });

  it('holds 100 simultaneous SYNs for one diagnosis and lets them all through', async () => {
    await slow.command('ok', 'behaviour');
    await slow.command('delay 500', 'delay');
    const before = (await slow.stats()).diagnosed as number;
    const results = await connectFrom(client, { host: SERVER_V4, port: SLOW_PORT, count: 100, timeoutMs: 5000 });
    await slow.command('delay 0', 'delay');
    expect(outcomes(results)).toEqual({ connected: 100 });
    // Every connect waited for the one diagnosis.
    expect(Math.min(...results.map((r) => r.ms))).toBeGreaterThanOrEqual(450);
    expect((await slow.stats()).diagnosed).toBe(before + 1);
  });

  it('recognises a retransmitted SYN while its diagnosis runs and answers both copies with the verdict', async () => {
    await slow.command('abnormal', 'behaviour');
    // Longer than the client's first SYN retransmission (1 s), shorter than its second (3 s).
    await slow.command('delay 1500', 'delay');
    const before = (await slow.stats()).diagnosed as number;
    const capture = await Capture.start(server, 'any', `tcp port ${SLOW_PORT}`);
    const results = await connectFrom(client, { host: SERVER_V4, port: SLOW_PORT, timeoutMs: 5000 });
    const packets = await capture.stop();
    await slow.command('delay 0', 'delay');
    expect(outcomes(results)).toEqual({ ECONNREFUSED: 1 });
    const syns = synsTo(packets, SLOW_PORT);
    expect(syns).toHaveLength(2);
    const seq = (line: string): string | undefined => /seq (\d+)/.exec(line)?.[1];
    expect(seq(syns[1] as string)).toBe(seq(syns[0] as string));
    expect(resetsFrom(packets, SLOW_PORT)).toHaveLength(2);
    expect(synAcksFrom(packets, SLOW_PORT)).toEqual([]);
    expect((await slow.stats()).diagnosed).toBe(before + 1);
  });

  it('answers SYNs at once with the verdict of a held connection (claim 5) and resets held connections when a recheck fails', async () => {
    const gate = new FixtureServer(server, { host: SERVER_V4, port: PORT + 2, policy: { mode: 'before', recheckMs: 200, queue: 1 } });
    await gate.started();
    await gate.command('delay 300', 'delay');
    // Held until the failing recheck cuts it, however long the clients below take.
    const holding = clients.connect({ host: SERVER_V4, port: PORT + 2, holdMs: 600_000 });
    await until(async () => (await gate.stats()).held === 1, 'the first connection to be held');
    const quick = await clients.connect({ host: SERVER_V4, port: PORT + 2, count: 5 });
    expect(outcomes(quick)).toEqual({ connected: 5 });
    // No SYN of these waited for a diagnosis: the held connection's verdict answered at once.
    expect((await gate.stats()).reused).toBe(5);

    await gate.command('abnormal', 'behaviour');
    const held = await holding;
    expect(held).toEqual([expect.objectContaining({ outcome: 'connected-then-ECONNRESET', greeting: 'hello' })]);
    expect((await gate.stats()).recheckReset).toBe(1);
    expect(outcomes(await clients.connect({ host: SERVER_V4, port: PORT + 2 }))).toEqual({ ECONNREFUSED: 1 });
  });

  it('stops answering SYNs with a held connection verdict once it is older than maxAgeMs', async () => {
    // Wide enough that the young connect, from a client already running, lands inside it on a busy
    // machine; the old one waits until the verdict is older than maxAgeMs whatever the machine's speed.
    const maxAgeMs = 3000;
    const gate = new FixtureServer(server, { host: SERVER_V4, port: PORT + 3, policy: { mode: 'before', maxAgeMs, queue: 2 } });
    await gate.started();
    const holding = clients.connect({ host: SERVER_V4, port: PORT + 3, holdMs: 600_000 });
    await until(async () => (await gate.stats()).held === 1, 'the first connection to be held');
    // The verdict's diagnosis started before the holder got its greeting, so before this.
    const heldSeen = Date.now();
    await gate.command('abnormal', 'behaviour');
    expect(outcomes(await clients.connect({ host: SERVER_V4, port: PORT + 3 }))).toEqual({ connected: 1 });
    await new Promise((resolve) => setTimeout(resolve, heldSeen + maxAgeMs + 50 - Date.now()));
    expect(outcomes(await clients.connect({ host: SERVER_V4, port: PORT + 3 }))).toEqual({ ECONNREFUSED: 1 });
    await gate.command('close', 'closed');
    await holding;
  });
});
