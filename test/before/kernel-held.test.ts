/**
 * What before mode leaves to the kernel (firmware/gate/nftables.ts), because it must hold while the
 * firmware's event loop does not run:
 * - liveness: SIGSTOP the firmware and its element lapses after livenessMs, after which SYNs bypass
 *   the queue (fail-open) instead of waiting in it for a process that will not answer; SIGCONT and the
 *   firmware writes it again and gates again. With failClosed the port stays shut instead.
 * - the reusable verdict (claim 5): while a healthy connection is held, the kernel accepts the port's
 *   SYNs itself - the queue sees none of them - and a withdrawal takes it out of the kernel at once,
 *   so the very next SYN is queued and refused.
 *
 * Connects come from a client process already running in the client namespace (ClientSession), so
 * that the windows below are the kernel's, not a process start-up's.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { until } from '../helpers/wait.js';
import { ClientSession, FixtureServer, Netns, SERVER_V4, describeAsRoot, link, outcomes } from './netns.js';

const LIVENESS_MS = 300;

interface QueueStats {
  syns: number;
  reset: number;
  accepted: number;
}

describeAsRoot('before mode: what the kernel holds', () => {
  let server: Netns;
  let client: Netns;
  let clients: ClientSession;
  let port = 7400;

  beforeAll(async () => {
    server = await Netns.create('ks');
    client = await Netns.create('kc');
    await link(server, client);
    clients = new ClientSession(client);
    await clients.started();
  });

  afterAll(async () => {
    clients?.close();
    await server?.destroy();
    await client?.destroy();
  });

  async function start(policy: Record<string, unknown>, livenessMs?: number): Promise<FixtureServer> {
    port++;
    const gate = new FixtureServer(server, { host: SERVER_V4, port, policy: { mode: 'before', ...policy }, ...(livenessMs === undefined ? {} : { livenessMs }) });
    await gate.started();
    return gate;
  }

  async function queue(gate: FixtureServer): Promise<QueueStats> {
    return (await gate.stats()).queue as QueueStats;
  }

  const connect = (extra: { count?: number; timeoutMs?: number; holdMs?: number; handshake?: boolean } = {}) => clients.connect({ host: SERVER_V4, port, ...extra });

  it('fails open while the firmware is stopped (SIGSTOP), within livenessMs of the stop, and gates again after SIGCONT', async () => {
    const gate = await start({}, LIVENESS_MS);
    await gate.command('abnormal', 'behaviour');
    expect(outcomes(await connect())).toEqual({ ECONNREFUSED: 1 });
    expect(await server.setElements(port, 'alive')).toEqual([port]);

    gate.kill('SIGSTOP');
    const stoppedAt = Date.now();
    // The element lapses at most livenessMs after the stop; a SYN sent before that waits in the queue,
    // so each attempt gives up after livenessMs and the next one is a new SYN. The bound only stops a
    // liveness that never lapses from hanging the test: how fast it lapses is measured in the bench.
    const boundMs = 10 * LIVENESS_MS;
    let outcome: string | undefined;
    do {
      // Handshake only: the stopped firmware sends no greeting.
      outcome = (await connect({ timeoutMs: LIVENESS_MS, handshake: true }))[0]?.outcome;
    } while (outcome !== 'connected' && Date.now() - stoppedAt < boundMs);
    expect(outcome).toBe('connected');
    expect(await server.setElements(port, 'alive')).toEqual([]);
    // The rules are all still there: it is the lapsed element that let the SYN past the queue.
    expect(await server.rules()).toHaveLength(2);

    gate.kill('SIGCONT');
    await until(async () => (await server.setElements(port, 'alive'))?.length === 1, 'the liveness element written again', boundMs);
    const before = await queue(gate);
    expect(outcomes(await connect())).toEqual({ ECONNREFUSED: 1 });
    const after = await queue(gate);
    expect(after.syns).toBe(before.syns + 1);
    expect(after.reset).toBe(before.reset + 1);
    await gate.command('close', 'closed');
  });

  it('lets a client whose SYN reached the stopped firmware queue through on its retransmission', async () => {
    const gate = await start({}, LIVENESS_MS);
    await gate.command('abnormal', 'behaviour');
    gate.kill('SIGSTOP');
    // Sent at once, the first SYN most likely waits in the queue; Linux retransmits it after 1 s, by
    // when the liveness element has lapsed. Either way the handshake completes with the firmware stopped.
    expect(outcomes(await connect({ timeoutMs: 5000, handshake: true }))).toEqual({ connected: 1 });
    gate.kill('SIGCONT');
    await gate.command('close', 'closed');
  });

  it('with failClosed: true keeps a stopped firmware port shut, a held verdict included', async () => {
    const gate = await start({ failClosed: true, maxAgeMs: 600_000 }, LIVENESS_MS);
    const holding = connect({ holdMs: 600_000 });
    await until(async () => (await gate.stats()).held === 1, 'the held connection');
    expect(await server.setElements(port, 'reusable')).toEqual([port]);

    gate.kill('SIGSTOP');
    // Past livenessMs the stopped firmware's elements have lapsed, the held verdict's with them.
    await until(async () => (await server.setElements(port, 'reusable'))?.length === 0, 'the elements to lapse', 10 * LIVENESS_MS);
    expect(await server.setElements(port, 'alive')).toEqual([]);
    expect(outcomes(await connect({ timeoutMs: 2 * LIVENESS_MS, handshake: true }))).toEqual({ timeout: 1 });

    gate.kill('SIGCONT');
    expect(outcomes(await connect({ timeoutMs: 5000 }))).toEqual({ connected: 1 });
    await gate.command('close', 'closed');
    await holding;
  });

  it('answers SYNs in the kernel while a held connection lends its verdict, and a withdrawal queues and refuses the very next SYN', async () => {
    const gate = await start({ maxAgeMs: 600_000 });
    const holding = connect({ holdMs: 600_000 });
    await until(async () => (await gate.stats()).held === 1, 'the held connection');
    expect(await server.setElements(port, 'reusable')).toEqual([port]);

    const before = await gate.stats();
    const beforeQueue = before.queue as QueueStats;
    // Each greeting says the gate admitted that socket.
    expect(outcomes(await connect({ count: 20 }))).toEqual({ connected: 20 });
    const after = await gate.stats();
    // Not one of the 20 SYNs reached the queue; each socket reused the verdict after accept.
    expect((after.queue as QueueStats).syns).toBe(beforeQueue.syns);
    expect(after.reused).toBe((before.reused as number) + 20);
    expect(after.diagnosed).toBe(before.diagnosed);

    await gate.command('abnormal', 'behaviour');
    await gate.command('withdraw', 'withdrawn');
    // Out of the kernel by the time the command answered.
    expect(await server.setElements(port, 'reusable')).toEqual([]);
    expect(outcomes(await connect())).toEqual({ ECONNREFUSED: 1 });
    const refused = (await gate.stats()).queue as QueueStats;
    expect(refused.syns).toBe(beforeQueue.syns + 1);
    expect(refused.reset).toBe(beforeQueue.reset + 1);
    await gate.command('close', 'closed');
    await holding;
  });

  it('takes the verdict out of the kernel when the last held connection ends', async () => {
    const gate = await start({ maxAgeMs: 600_000 });
    const holding = connect({ holdMs: 500 });
    await until(async () => (await gate.stats()).held === 1, 'the held connection');
    expect(await server.setElements(port, 'reusable')).toEqual([port]);
    expect(outcomes(await holding)).toEqual({ held: 1 });
    await until(async () => (await gate.stats()).held === 0, 'the gate to see the close');
    expect(await server.setElements(port, 'reusable')).toEqual([]);
    await gate.command('close', 'closed');
  });
});
