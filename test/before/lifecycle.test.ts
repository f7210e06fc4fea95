/**
 * Before mode across the life of the firmware process: rules and the nftables table removed on every
 * way out, left in place by SIGKILL (where fail-open keeps the port reachable and the next start
 * replaces them), and clear errors when the addon, the capability or the queue is missing.
 *
 * What fail-open can show here: with the firmware killed nothing answers the queue, so without
 * --queue-bypass every SYN for the port would be dropped and clients would hang until their connect
 * timeout. With it, the SYN goes on to the socket layer: a client gets ECONNREFUSED at once while
 * nothing listens, and reaches whatever listens on the port (a plain server standing in for a restarted
 * service) as if the rules were not there. failClosed: true drops them instead.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { FixtureServer, Netns, SERVER_V4, connectFrom, describeAsRoot, link, outcomes } from './netns.js';

/** A plain net server in the namespace, no gate: what a client reaches when the rules let SYNs by. */
async function plainServer(ns: Netns, port: number): Promise<ChildProcess> {
  const script = `require('node:net').createServer((s) => { s.on('error', () => {}); s.end('plain\\n'); }).listen(${port}, '${SERVER_V4}', () => console.log('ready'))`;
  const child = ns.spawn('node', ['-e', script]);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`plain server exited with ${code}`)));
  });
  return child;
}

async function stopped(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describeAsRoot('before mode: process life', () => {
  let server: Netns;
  let client: Netns;
  let port = 7200;

  beforeAll(async () => {
    server = await Netns.create('ls');
    client = await Netns.create('lc');
    await link(server, client);
  });

  afterAll(async () => {
    await server?.destroy();
    await client?.destroy();
  });

  async function start(policy: Record<string, unknown> = {}, extra: { gracefulSignals?: boolean } = {}): Promise<FixtureServer> {
    const gate = new FixtureServer(server, { host: SERVER_V4, port, policy: { mode: 'before', ...policy }, ...extra });
    await gate.started();
    expect(await server.rules()).toHaveLength(2);
    expect(await server.setElements(port, 'alive')).toEqual([port]);
    return gate;
  }

  /** Neither the rules nor the table of the port are left. */
  async function cleanedUp(): Promise<void> {
    expect(await server.rules()).toEqual([]);
    expect(await server.rules(6)).toEqual([]);
    expect(await server.setElements(port, 'alive')).toBeUndefined();
  }

  it('fails open after SIGKILL: rules and table stay, SYNs bypass the dead queue, and the next start replaces them', async () => {
    port++;
    const gate = await start();
    expect(outcomes(await connectFrom(client, { host: SERVER_V4, port }))).toEqual({ connected: 1 });
    gate.kill('SIGKILL');
    expect(await gate.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const left = await server.rules();
    expect(left).toHaveLength(2);
    // The table stays too, its liveness element lapsing with nobody to refresh it.
    expect(await server.setElements(port, 'alive')).toBeDefined();

    const refused = await connectFrom(client, { host: SERVER_V4, port, timeoutMs: 3000 });
    expect(refused).toEqual([expect.objectContaining({ outcome: 'ECONNREFUSED' })]);
    // Under the 1 s of a first SYN retransmission: the first SYN was neither held nor dropped.
    expect(refused[0]?.ms).toBeLessThan(900);
    const plain = await plainServer(server, port);
    expect(await connectFrom(client, { host: SERVER_V4, port })).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'plain' })]);
    await stopped(plain);

    const again = await start();
    expect(await server.rules()).toEqual(left);
    expect(again.stderr).toContain('replaced rules left by an earlier run');
    expect(again.stderr).toContain('"replaced":2');
    expect(again.stderr).toContain('"replacedTable":true');
    expect(await connectFrom(client, { host: SERVER_V4, port })).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'hello' })]);
    await again.command('close', 'closed');
    await cleanedUp();
  });

  it('fails closed with failClosed: true: no --queue-bypass, and after SIGKILL SYNs are dropped', async () => {
    port++;
    const gate = await start({ failClosed: true });
    const rules = await server.rules();
    expect(rules.some((rule) => rule.includes('--queue-bypass'))).toBe(false);
    expect(rules.some((rule) => rule.includes('-j NFQUEUE --queue-num 0'))).toBe(true);
    gate.kill('SIGKILL');
    await gate.exited;
    const plain = await plainServer(server, port);
    expect(await connectFrom(client, { host: SERVER_V4, port, timeoutMs: 1500 })).toEqual([expect.objectContaining({ outcome: 'timeout' })]);
    await stopped(plain);
    // The next start of the service, fail-open again, replaces the fail-closed rules.
    const again = await start();
    expect((await server.rules()).every((rule) => !rule.includes('NFQUEUE') || rule.includes('--queue-bypass'))).toBe(true);
    await again.command('close', 'closed');
  });

  it.each([
    ['SIGTERM', { code: null, signal: 'SIGTERM' }],
    ['SIGINT', { code: null, signal: 'SIGINT' }],
    ['SIGHUP', { code: null, signal: 'SIGHUP' }],
  ] as const)('removes the rules and the table on %s when the process has no handler of its own, and still dies of the signal', async (signal, exit) => {
    port++;
    const gate = await start();
    gate.kill(signal);
    expect(await gate.exited).toEqual(exit);
    await cleanedUp();
  });

  it('removes the rules and the table when the application closes the gate on SIGTERM itself', async () => {
    port++;
    const gate = await start({}, { gracefulSignals: true });
    gate.kill('SIGTERM');
    expect(await gate.exited).toEqual({ code: 0, signal: null });
    await cleanedUp();
  });

  it('removes the rules and the table when the process dies of an uncaught error', async () => {
    port++;
    const gate = await start();
    gate.child.stdin?.write('crash\n');
    expect(await gate.exited).toEqual({ code: 1, signal: null });
    expect(gate.stderr).toContain('fixture crashed on purpose');
    await cleanedUp();
  });

  it('refuses a second process on a queue number already bound, naming gate.queue, and leaves the first alone', async () => {
    port++;
    const first = await start();
    const second = new FixtureServer(server, { host: SERVER_V4, port: port + 100, policy: { mode: 'before' } });
    const error = await second.next(['error', 'listening']);
    expect(error).toMatchObject({ event: 'error', code: 'ERR_NFQUEUE' });
    expect(error.message).toContain('another process is bound to this queue number; give the service another gate.queue');
    expect(await server.rules()).toHaveLength(2);
    expect(outcomes(await connectFrom(client, { host: SERVER_V4, port }))).toEqual({ connected: 1 });
    await first.command('close', 'closed');
  });
});

describeAsRoot('before mode: what it needs', () => {
  let server: Netns;

  beforeAll(async () => {
    server = await Netns.create('ln');
  });

  afterAll(async () => {
    await server?.destroy();
  });

  it('names CAP_NET_ADMIN when the process lacks it, while after mode starts in the same conditions', async () => {
    const dropCap = ['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin'];
    const before = new FixtureServer(server, { host: '127.0.0.1', port: 7301, policy: { mode: 'before' } }, {}, dropCap);
    const error = await before.next(['error', 'listening']);
    expect(error).toMatchObject({ event: 'error', code: 'ERR_GATE_MODE_UNAVAILABLE' });
    expect(error.message).toContain('needs CAP_NET_ADMIN');
    expect(await server.rules()).toEqual([]);

    const after = new FixtureServer(server, { host: '127.0.0.1', port: 7302, policy: { mode: 'after' } }, {}, dropCap);
    await after.started();
    expect(await connectFrom(server, { host: '127.0.0.1', port: 7302 })).toEqual([expect.objectContaining({ outcome: 'connected', greeting: 'hello' })]);
    after.kill('SIGTERM');
  });

  it('works with iptables-legacy when HANDCHECK_IPTABLES=legacy', async () => {
    const gate = new FixtureServer(server, { host: '127.0.0.1', port: 7304, policy: { mode: 'before' } }, { HANDCHECK_IPTABLES: 'legacy' });
    await gate.started();
    const legacy = async (): Promise<string[]> =>
      (await server.exec('iptables-legacy', ['-w', '-S', 'INPUT'])).split('\n').filter((line) => line.includes('handcheck:7304:'));
    expect(await legacy()).toHaveLength(2);
    expect(await connectFrom(server, { host: '127.0.0.1', port: 7304 })).toEqual([expect.objectContaining({ outcome: 'connected' })]);
    await gate.command('abnormal', 'behaviour');
    expect(await connectFrom(server, { host: '127.0.0.1', port: 7304 })).toEqual([expect.objectContaining({ outcome: 'ECONNREFUSED' })]);
    await gate.command('close', 'closed');
    expect(await legacy()).toEqual([]);
  });

  it('sets only its own bit on an abnormal verdict, keeping the mark bits others set', async () => {
    const port = 7305;
    await server.exec('iptables', ['-w', '-t', 'mangle', '-A', 'PREROUTING', '-p', 'tcp', '--dport', String(port), '-j', 'MARK', '--set-xmark', '0x100/0x100']);
    const gate = new FixtureServer(server, { host: '127.0.0.1', port, policy: { mode: 'before' } });
    await gate.started();
    // Above the gate's rules: counts the SYN on its second pass through INPUT, after NF_REPEAT.
    await server.exec('iptables', ['-w', '-I', 'INPUT', '1', '-p', 'tcp', '--dport', String(port), '-m', 'mark', '--mark', '0x101/0x101', '-m', 'comment', '--comment', 'probe']);
    await gate.command('abnormal', 'behaviour');
    expect(await connectFrom(server, { host: '127.0.0.1', port })).toEqual([expect.objectContaining({ outcome: 'ECONNREFUSED' })]);
    const probe = (await server.exec('iptables', ['-w', '-v', '-S', 'INPUT'])).split('\n').find((line) => line.includes('probe'));
    expect(probe).toMatch(/-c 1 \d+/);
    await gate.command('close', 'closed');
  });

  it('names the missing addon and how to build it', async () => {
    const gate = new FixtureServer(server, { host: '127.0.0.1', port: 7303, policy: { mode: 'before' } }, { HANDCHECK_NFQUEUE_ADDON: '/nonexistent/handcheck_nfqueue.node' });
    const error = await gate.next(['error', 'listening']);
    expect(error).toMatchObject({ event: 'error', code: 'ERR_GATE_MODE_UNAVAILABLE', causeCode: 'ERR_NFQUEUE_UNAVAILABLE' });
    expect(error.message).toContain('the NFQUEUE addon is not built (looked for /nonexistent/handcheck_nfqueue.node)');
    expect(error.message).toContain('npm run build:native');
  });
});

