/**
 * Failures that are not the target's answer get their own state: a name that does not resolve, a
 * prohibit or blackhole route on the monitor's host (in a namespace the test makes), and a firmware
 * killed with SIGKILL, whose FIN on an open connection is not an `onFail: close` diagnosis.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome } from '../../monitor/monitor.js';
import { classifyConnectError, probe } from '../../monitor/probe.js';
import { cli, startFirmware } from '../helpers/processes.js';
import { describeWhen, notRoot } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { nextTransition, startMonitor } from './helpers.js';

const exec = promisify(execFile);
const target = { graceMs: 50, connectTimeoutMs: 2000 };

describe('local connect errors', () => {
  it('a name that does not resolve is an error with ENOTFOUND, not refused', async () => {
    // RFC 6761: .invalid never resolves.
    const outcome = await probe({ host: 'handcheck-monitor-test.invalid', port: 502, graceMs: 50 });
    expect(outcome).toMatchObject({ result: 'error', errno: 'ENOTFOUND' });
    expect(describeOutcome({ ...outcome, socket: undefined }, target)).toBe('ENOTFOUND: the name does not resolve (DNS)');
  });

  it('classifies the errnos decided on the monitor host as error, the target-made ones as before', () => {
    expect(['ENOTFOUND', 'EAI_AGAIN', 'EACCES', 'EINVAL', 'EPERM', 'EADDRNOTAVAIL'].map(classifyConnectError)).toEqual(Array(6).fill('error'));
    expect(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'].map(classifyConnectError)).toEqual(['refused', 'reset', 'timeout', 'unreachable', 'unreachable']);
  });

  it('shows a SIGKILLed firmware by the second connect (FIN, then RST), never as closed', async () => {
    const firmware = await startFirmware(['--log-level', 'silent']);
    const monitor = startMonitor({ targets: [{ name: 'killed', address: `127.0.0.1:${firmware.port}`, intervalMs: 60_000, graceMs: 30_000 }] }, { random: () => 0 });
    try {
      const first = nextTransition(monitor, 'killed', undefined, 30_000);
      // The firmware has accepted the probe's connection (its process owns the socket): the probe
      // is inside its grace window.
      await until(async () => (await exec('ss', ['-Htnp', 'state', 'established', `( sport = :${firmware.port} )`])).stdout.includes(`pid=${firmware.process.pid},`), 'the firmware to accept the probe', 20_000);
      await firmware.stop('SIGKILL');
      const transition = await first;
      // The kernel closes the dying process's sockets one by one: the second SYN meets no listener
      // (refused), or a listener about to close, which resets it as the handshake completes.
      expect(['refused', 'reset']).toContain(transition.to);
      expect(transition.reason).toMatch(/^FIN [\d.]+ ms after the handshake, then (RST to the SYN|RST as the handshake completed|RST [\d.]+ ms after the handshake) on a second connect \(the firmware stopped, not a diagnosis\)$/);
    } finally {
      await monitor.close();
      await firmware.stop('SIGKILL');
    }
  }, 60_000);
});

describeWhen(notRoot('the route suite (ip netns, prohibit and blackhole routes)'), 'local routes in a namespace', () => {
  const ns = `hcle-${process.pid}`;
  const inNs = (...args: string[]): Promise<{ stdout: string; stderr: string }> => exec('ip', ['netns', 'exec', ns, ...args]);
  beforeAll(async () => {
    await exec('ip', ['netns', 'add', ns]);
    await inNs('ip', 'link', 'set', 'lo', 'up');
    // Addresses from the benchmarking range, routed nowhere but into these two route types.
    await inNs('ip', 'route', 'add', 'prohibit', '198.19.91.0/24');
    await inNs('ip', 'route', 'add', 'blackhole', '198.19.92.0/24');
  });
  afterAll(async () => {
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  // The route types' errnos are the kernel's fib_props table (net/ipv4/fib_semantics.c):
  // RTN_PROHIBIT -> -EACCES, RTN_BLACKHOLE -> -EINVAL.
  for (const [route, address, errno, words] of [
    ['prohibit', '198.19.91.1', 'EACCES', 'a prohibit route'],
    ['blackhole', '198.19.92.1', 'EINVAL', 'a blackhole route'],
  ] as const) {
    it(`a ${route} route is an error with ${errno}, not refused`, async () => {
      const run = await inNs(process.execPath, cli, 'probe', `${address}:502`).catch((err: { code: number; stdout: string }) => err);
      expect('code' in run ? run.code : 0).toBe(7);
      expect(run.stdout).toMatch(new RegExp(`^${address}:502 error after [\\d.]+ ms \\(${errno}\\)\\n$`));
      expect(describeOutcome({ result: 'error', errno, connectMs: 0, socket: undefined }, target)).toContain(words);
    });
  }
});
