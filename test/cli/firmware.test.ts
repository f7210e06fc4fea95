/**
 * The `handcheck` command end to end: the firmware as a process on the sim board, driven by its own
 * CLI, curl-free HTTP (fetch), and real Modbus clients from Debian (mbpoll, python3-pymodbus).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admitted } from '../firmware/helpers.js';
import { requireOrSkip } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { type Firmware, handcheck, program, startFirmware } from '../helpers/processes.js';

const python = '/usr/bin/python3';

describe('handcheck run on the sim board', () => {
  let fw: Firmware;
  beforeAll(async () => {
    fw = await startFirmware();
  });
  afterAll(() => fw.stop());

  it('serves status and Prometheus metrics on the control endpoint', async () => {
    expect((await handcheck('probe', `127.0.0.1:${fw.port}`)).code).toBe(0);
    const status = (await (await fetch(`http://${fw.control}/status`)).json()) as {
      board: { id: string };
      components: Array<{ id: string; state: string }>;
      services: Array<{ id: string; port: number; policy: { mode: string } }>;
      sim: { faults: unknown[] };
    };
    expect(status.board.id).toBe('sim-appliance');
    expect(status.components.map((c) => c.state)).toEqual(status.components.map(() => 'ok'));
    expect(status.services).toMatchObject([{ id: 'modbus', port: fw.port, policy: { mode: 'after' } }]);
    const metrics = await (await fetch(`http://${fw.control}/metrics`)).text();
    expect(metrics).toMatch(/handcheck_component_state\{component="board-temp",kind="tmp102",board="sim-appliance"\} 1/);
    expect(metrics).toMatch(/handcheck_gate_accepted_total\{service="modbus",board="sim-appliance"\} \d+/);
    expect(metrics).toMatch(/handcheck_diagnosis_duration_seconds_bucket/);
  });

  // Six CLI processes; each start can take seconds on a loaded machine.
  it('probe, fault inject, probe again: up, then reset, then up after clear', { timeout: 120_000 }, async () => {
    const target = `127.0.0.1:${fw.port}`;
    const up = await handcheck('probe', target);
    expect(up).toMatchObject({ code: 0, stdout: expect.stringContaining(' up ') });
    const injected = await handcheck('fault', 'inject', 'uplink-sfp', 'los', '--control', fw.control);
    expect(injected.code).toBe(0);
    const fault = JSON.parse(injected.stdout) as { id: string; kind: string };
    expect(fault.kind).toBe('los');
    const listed = JSON.parse((await handcheck('fault', 'list', '--json', '--control', fw.control)).stdout) as { active: Array<{ id: string }>; kinds: Record<string, unknown> };
    expect(listed.active.map((f) => f.id)).toEqual([fault.id]);
    expect(Object.keys(listed.kinds)).toContain('board-temp');
    // For a person: a table by target - target, kind, its params, what it models - then the active faults.
    const text = (await handcheck('fault', 'list', '--control', fw.control)).stdout;
    expect(text).toMatch(/^TARGET +KIND +PARAMS +WHAT IT MODELS$/m);
    expect(text).toMatch(/^uplink-sfp +[a-z-]+ +\S.*$/m);
    expect(text).toMatch(/^ +los +\S.*$/m);
    expect(text).toMatch(/^eth0 +carrier-down .*$/m);
    expect(text).toMatch(/crc-errors +ratePerS=0\.\.\d+/);
    expect(text).toMatch(new RegExp(`^${fault.id} +uplink-sfp +los +`, 'm'));
    expect(text).not.toContain('{');
    expect(await handcheck('probe', target)).toMatchObject({ code: 3, stdout: expect.stringContaining(' reset ') });
    expect((await handcheck('fault', 'clear', fault.id, '--control', fw.control)).code).toBe(0);
    expect((await handcheck('probe', target)).code).toBe(0);
    expect(fw.logs()).toMatch(/"msg":"connection reset: self-diagnosis abnormal"/);
    expect(fw.logs()).toMatch(/"failures":\[\{"component":"uplink-sfp"/);
  });

  it('refuses bad fault requests with a code naming what is wrong', async () => {
    expect(await handcheck('fault', 'inject', 'nowhere', 'nack', '--control', fw.control)).toMatchObject({ code: 1, stderr: expect.stringContaining('ERR_SIM_FAULT_TARGET') });
    expect(await handcheck('fault', 'inject', 'board-temp', 'los', '--control', fw.control)).toMatchObject({ code: 1, stderr: expect.stringContaining('ERR_SIM_FAULT_KIND') });
    const response = await fetch(`http://${fw.control}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"target":' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('ERR_CONTROL_BAD_REQUEST');
    expect((await fetch(`http://${fw.control}/nope`)).status).toBe(404);
  });

  it('mbpoll reads the register map: component states, then sensor values in thousandths', async (ctx) => {
    requireOrSkip(ctx, existsSync('/usr/bin/mbpoll') ? null : 'mbpoll is not installed (apt-get install mbpoll)');
    const status = (await (await fetch(`http://${fw.control}/status`)).json()) as { components: Array<{ id: string; reading?: Record<string, number> }> };
    const states = await program('mbpoll', ['-m', 'tcp', '-a', '1', '-r', '1', '-c', '8', '-t', '3', '-1', '-p', String(fw.port), '127.0.0.1']);
    expect(states.code).toBe(0);
    expect([...states.stdout.matchAll(/^\[\d+\]:\s+(\d+)/gm)].map((m) => Number(m[1]))).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    const values = await program('mbpoll', ['-m', 'tcp', '-a', '1', '-r', '101', '-c', '1', '-t', '3:int', '-B', '-1', '-p', String(fw.port), '127.0.0.1']);
    const temp = Number(/^\[101\]:\s+(-?\d+)/m.exec(values.stdout)?.[1]);
    expect(temp / 1000).toBeCloseTo(status.components[0]!.reading!.temperatureC!, 1);
    const write = await program('mbpoll', ['-m', 'tcp', '-a', '1', '-r', '1', '-t', '0', '-1', '-p', String(fw.port), '127.0.0.1', '1']);
    expect(write.code).toBe(0);
    const sim = (await (await fetch(`http://${fw.control}/status`)).json()) as { sim: { gpio: Record<string, number> } };
    expect(sim.sim.gpio.relay).toBe(1);
  });

  it('python3-pymodbus reads device identification, discrete inputs and the asset tag it wrote', async (ctx) => {
    const probe = await program(python, ['-c', 'import pymodbus.client']);
    requireOrSkip(ctx, probe.code === 0 ? null : 'pymodbus is not importable (apt-get install python3-pymodbus python3-serial-asyncio)');
    const script = `
import json, sys
from pymodbus.client import ModbusTcpClient
from pymodbus.mei_message import ReadDeviceInformationRequest
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=3, retries=0)
assert c.connect()
info = c.execute(ReadDeviceInformationRequest(read_code=2, object_id=0, unit=1))
di = c.read_discrete_inputs(0, 4, slave=1)
c.write_registers(0, [0x4142, 0x4344], slave=1)
hr = c.read_holding_registers(0, 2, slave=1)
bad = c.read_input_registers(60000, 2, slave=1)
print(json.dumps({"info": {str(k): v.decode() for k, v in info.information.items()}, "di": di.bits[:4], "hr": hr.registers, "bad": bad.exception_code}))
`;
    const result = await program(python, ['-c', script, String(fw.port)]);
    expect(result.stderr).toBe('');
    const seen = JSON.parse(result.stdout) as { info: Record<string, string>; di: boolean[]; hr: number[]; bad: number };
    expect(seen.info).toMatchObject({ '0': 'handcheck', '1': 'sim-appliance', '6': 'handcheck firmware' });
    expect(seen.di).toEqual([true, true, false, false]);
    expect(seen.hr).toEqual([0x4142, 0x4344]);
    expect(seen.bad).toBe(2);
  });
});

describe('handcheck run lifecycle', () => {
  it('SIGTERM ends held connections with FIN and exits 0', async () => {
    const fw = await startFirmware();
    // Held: the service has answered on it.
    const socket = await admitted(fw.port);
    const ended = new Promise<string>((resolve) => {
      socket.once('end', () => resolve('FIN'));
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    socket.resume();
    expect(await fw.stop('SIGTERM')).toBe(0);
    expect(await ended).toBe('FIN');
    expect(fw.logs()).toMatch(/"msg":"firmware stopped"/);
  });

  it('--state-dir keeps the boot record there: a second run on the sim board is a new power-on, counted on, and SIGTERM records the orderly stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), `handcheck-cli-state-${process.pid}-`));
    try {
      for (const count of [1, 2]) {
        const fw = await startFirmware(['--state-dir', dir]);
        const status = (await (await fetch(`http://${fw.control}/status`)).json()) as { boot: { count: number; lastResetCause: string; file: string } };
        expect(status.boot).toMatchObject({ count, lastResetCause: 'power-on', file: join(dir, 'boot-record.json') });
        const metrics = await (await fetch(`http://${fw.control}/metrics`)).text();
        expect(metrics).toMatch(new RegExp(`^handcheck_boot_count\\{board="sim-appliance"\\} ${count}$`, 'm'));
        expect(metrics).toMatch(/^handcheck_last_reset_cause\{cause="power-on",board="sim-appliance"\} 1$/m);
        expect(await fw.stop('SIGTERM')).toBe(0);
        expect(JSON.parse(readFileSync(join(dir, 'boot-record.json'), 'utf8'))).toMatchObject({ bootCount: count, shutdown: 'orderly' });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await handcheck('run', '--state-dir', '')).toMatchObject({ code: 64, stderr: expect.stringContaining('--state-dir must name a directory') });
  });

  it('refuses a control endpoint reachable from the network without a token', async () => {
    const result = await handcheck('run', '--listen', 'modbus=127.0.0.1:0', '--control', '0.0.0.0:0');
    expect(result).toMatchObject({ code: 1, stderr: expect.stringContaining('ERR_CONTROL_TOKEN_REQUIRED') });
  });

  it('asks for the bearer token when one is set', async () => {
    const fw = await startFirmware(['--control-token', 's3cret-token-for-tests']);
    try {
      expect((await fetch(`http://${fw.control}/status`)).status).toBe(401);
      expect((await fetch(`http://${fw.control}/status`, { headers: { authorization: 'Bearer s3cret-token-for-tests' } })).status).toBe(200);
    } finally {
      await fw.stop();
    }
  });

  it('names a port that is taken', async () => {
    const fw = await startFirmware();
    try {
      const result = await handcheck('run', '--listen', `modbus=127.0.0.1:${fw.port}`, '--control', '');
      expect(result).toMatchObject({ code: 1, stderr: expect.stringMatching(/ERR_GATE_LISTEN.*EADDRINUSE/s) });
    } finally {
      await fw.stop();
    }
  });
});

describe('one-shot commands', () => {
  it('diag prints a table and exits by result', async () => {
    const healthy = await handcheck('diag');
    expect(healthy.code).toBe(0);
    expect(healthy.stdout).toMatch(/^COMPONENT\s+KIND\s+STATE/);
    expect(healthy.stdout).toMatch(/board-temp\s+tmp102\s+ok/);
    const broken = await handcheck('diag', '--fault', 'rail-5v:nack');
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/rail-5v\s+ina219\s+failed\s+[\d.]+\s+.*no acknowledge/);
  });

  it('boards lists and validates, and names the JSON path of a malformed file', async () => {
    const listed = await handcheck('boards');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/sim-appliance\s+sim/);
    expect(listed.stdout).toMatch(/rpi5\s+linux/);
    const broken = await handcheck('boards', '--boards', new URL('../fixtures/boards/address-out-of-range.json', import.meta.url).pathname);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/ERR_BOARDS_SCHEMA.*\/boards\/0\/components\/2\/ddmAddress: 0x78 \(120\) is invalid/s);
  });

  it('probe tells refused from reset, and on a reset prints the connect time and the reset after it, not the time to the RST as the connect', async () => {
    const refused = await handcheck('probe', '127.0.0.1:1');
    expect(refused).toMatchObject({ code: 2, stdout: expect.stringMatching(/^127\.0\.0\.1:1 refused RST to the SYN after [\d.]+ ms \(ECONNREFUSED\)\n$/) });
    // A server that resets each connection 250 ms after accepting it (SO_LINGER 0 on close: tcp_disconnect sends RST).
    const server = createServer((socket) => void setTimeout(() => socket.resetAndDestroy(), 250));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const reset = await handcheck('probe', target, '--grace', '2000');
      expect(reset.code).toBe(3);
      const [, connectMs, resetMs] = /^\S+ reset connected in ([\d.]+) ms, reset ([\d.]+) ms later \(ECONNRESET\)\n$/.exec(reset.stdout) ?? [];
      expect(connectMs, reset.stdout).toBeDefined();
      // The RST cannot come before the server sent it: the 250 ms are the reset's, not the connect's.
      expect(Number(resetMs)).toBeGreaterThanOrEqual(240);
      expect(Number(connectMs)).toBeLessThan(Number(resetMs));
    } finally {
      server.close();
    }
    expect(await handcheck('nonsense')).toMatchObject({ code: 64 });
    expect(await handcheck('probe')).toMatchObject({ code: 64, stderr: expect.stringContaining('ERR_USAGE') });
  });
});

describe('handcheck run against faults that used to kill it', () => {
  it('survives a serial fault that uses up its one time as it starts (it used to kill the process when its duration ran out)', async () => {
    const own = await startFirmware();
    try {
      const boardNow = async () => ((await (await fetch(`http://${own.control}/status`)).json()) as { sim: { clock: { now: number } } }).sim.clock.now;
      const injectedAt = await boardNow();
      const injected = await handcheck('fault', 'inject', 'meter', 'unplugged', '--times', '1', '--duration', '500', '--control', own.control);
      expect(injected.code).toBe(0);
      // The board clock follows real time: wait until it is well past the fault's duration.
      await until(async () => (await boardNow()) >= injectedAt + 1500, "the board clock past the fault's duration");
      expect(own.process.exitCode).toBeNull();
      expect(own.logs()).not.toMatch(/no active fault with id/);
      // And it heals: a port that went away is reopened by the next diagnosis after it (firmware/
      // components.ts), so the first connect after the fault may still meet the closed one.
      let probed = -1;
      await until(async () => (probed = (await handcheck('probe', `127.0.0.1:${own.port}`)).code) === 0, `a probe accepted once the meter is back (last exit ${probed})`);
    } finally {
      await own.stop();
    }
  });
});
