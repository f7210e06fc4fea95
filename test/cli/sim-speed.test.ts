/**
 * `--sim-speed` against serial peers that keep real time, through the `handcheck` command as a user
 * runs it. The only real-time peers a firmware meets are a real board's: a UART, a USB adapter, or here
 * a socat pty with a separate process playing the Modbus RTU meter at its far end. The sim board has
 * none - its peers are models on the board clock (sim/serial.ts, sim/peers) - so a sped-up clock there
 * speeds them up too. A faster clock on a real board would count the Modbus RTU master's response
 * timeout and 3.5-character frame gap (Modbus over Serial Line V1.02, section 2.5.1.1) on a clock the
 * meter does not follow: the combination is refused before any device is touched.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ptyPair } from '../linux/pty.js';
import { handcheck, startFirmware } from '../helpers/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PEER = fileURLToPath(new URL('../linux/modbus-rtu-peer.ts', import.meta.url));

interface Status {
  components: Array<{ id: string; state: string; reading?: Record<string, unknown> }>;
  sim?: { clock: { speed: number } };
}

describe('--sim-speed with a serial peer that keeps real time', () => {
  let socat: ChildProcess;
  let peer: ChildProcess;
  let tty: string;
  let dir: string;
  let boards: string;
  const requests: string[] = [];

  beforeAll(async () => {
    const pair = await ptyPair();
    socat = pair.proc;
    tty = pair.a;
    peer = spawn(process.execPath, ['--import', 'tsx', PEER, pair.b], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: peer.stdout! });
    await new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        if (line === 'ready') resolve();
        if (line === 'request') requests.push(line);
      });
    });
    dir = mkdtempSync(join(tmpdir(), 'hc-sim-speed-'));
    boards = join(dir, 'boards.json');
    writeFileSync(
      boards,
      JSON.stringify({
        boards: [
          {
            id: 'pty-meter',
            name: 'a meter on a pty, played by another process',
            backend: 'linux',
            serial: [{ id: 'rs485', path: tty, baudRate: 19200, parity: 'even' }],
            components: [{ id: 'meter', kind: 'serial-peer', port: 'rs485', protocol: 'modbus-rtu', unitId: 1, timeoutMs: 1000 }],
            services: [{ id: 'modbus', protocol: 'modbus-tcp', listen: '127.0.0.1:0', dependsOn: ['meter'] }],
          },
        ],
      }),
    );
  });

  afterAll(() => {
    peer?.kill();
    socat?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a sped-up clock on the real board, naming the option and the peer, before the self-check touches a device', async () => {
    const result = await handcheck('run', '--boards', boards, '--board', 'pty-meter', '--sim-speed', '10', '--control', '', '--state-dir', dir);
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(/^handcheck run: ERR_SIM_SPEED_REAL_TIME: --sim-speed 10 runs the sim board's clock at 10 times real time, but board pty-meter runs on real hardware/);
    expect(result.stderr).toContain(`its serial peer meter on ${tty} keeps real time`);
    expect(result.stderr).toContain('drop --sim-speed, or add --sim');
    // The self-check's table (AREA ITEM STATUS DETAIL) never printed, and the meter heard nothing.
    expect(result.stderr).not.toMatch(/AREA +ITEM/);
    expect(requests).toEqual([]);
  });

  it('runs the same entry at real time, where the meter behind the pty answers', { timeout: 60_000 }, async () => {
    const fw = await startFirmware(['--boards', boards, '--board', 'pty-meter', '--state-dir', dir, '--log-level', 'silent']);
    try {
      const status = (await (await fetch(`http://${fw.control}/status`)).json()) as Status;
      expect(status.components).toMatchObject([{ id: 'meter', state: 'ok', reading: { responding: true, exceptionCode: 0 } }]);
      expect(status.sim).toBeUndefined();
      expect(requests.length).toBeGreaterThan(0);
    } finally {
      await fw.stop();
    }
  });

  it('simulates the whole entry with --sim at 10 times real time: the meter is a model on the board clock and keeps up', { timeout: 60_000 }, async () => {
    const fw = await startFirmware(['--boards', boards, '--board', 'pty-meter', '--sim', '--sim-speed', '10', '--log-level', 'silent']);
    try {
      const status = (await (await fetch(`http://${fw.control}/status`)).json()) as Status;
      expect(status.sim?.clock.speed).toBe(10);
      expect(status.components).toMatchObject([{ id: 'meter', state: 'ok', reading: { responding: true } }]);
    } finally {
      await fw.stop();
    }
  });
});
