/**
 * A serial peer as the firmware diagnoses it on a real board: the device-state manager on a LinuxBoard
 * runs the serial-peer component's SerialPeerDriver over the real @serialport/bindings-cpp binding on
 * one end of a socat pty pair, and a separate process plays the Modbus RTU energy meter on the other
 * end. The meter answering, going silent, answering again, and the pty vanishing must each show in
 * the component's state with the right code.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardConfig } from '../../config/board-config.js';
import { LinuxBoard } from '../../hal/linux/board.js';
import { DeviceStateManager } from '../../firmware/device-state.js';
import { ptyPair } from './pty.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PEER = fileURLToPath(new URL('./modbus-rtu-peer.js', import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function board(path: string): BoardConfig {
  return {
    id: 'serial-test',
    name: 'serial peer on a pty',
    backend: 'linux',
    serial: [{ id: 'rs485', path, baudRate: 19200, dataBits: 8, stopBits: 1, parity: 'even' }],
    components: [{ id: 'meter', kind: 'serial-peer', port: 'rs485', protocol: 'modbus-rtu', unitId: 1, timeoutMs: 300 }],
    services: [],
  };
}

describe('serial-peer component over the real binding', () => {
  it('is ok while the meter answers, failed on silence (timeout), ok again, failed once the pty is gone', async () => {
    const pair = await ptyPair();
    cleanups.push(() => void pair.proc.kill());
    const peer = spawn(process.execPath, ['--import', 'tsx', PEER, pair.b], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    cleanups.push(() => void peer.kill());
    const lines = createInterface({ input: peer.stdout! });
    const said = (word: string): Promise<void> =>
      new Promise((resolve) => {
        const listener = (line: string): void => {
          if (line !== word) return;
          lines.off('line', listener);
          resolve();
        };
        lines.on('line', listener);
      });
    await said('ready');

    const hal = new LinuxBoard(board(pair.a));
    const devices = new DeviceStateManager({
      board: hal,
      logger: pino({ level: 'silent' }),
      watchdogHealth: () => ({ health: 'ok', reason: '', reading: {} }),
    });
    cleanups.push(async () => {
      await devices.close();
      await hal.close();
    });

    const [answering] = await devices.diagnose(['meter']);
    expect(answering).toMatchObject({ state: 'ok', identity: { part: 'Modbus RTU unit 1', details: { unitId: 1, register0: 0x1234 } } });
    expect(answering?.reading).toMatchObject({ responding: true, exceptionCode: 0 });
    // A pty has no baud-rate timing and the real board's clock counts whole milliseconds: the answer
    // may well come back within the same millisecond.
    expect(answering?.reading?.latencyMs).toBeGreaterThanOrEqual(0);
    expect(answering?.reading?.latencyMs).toBeLessThan(100);

    const silenced = said('silent');
    peer.stdin!.write('silent\n');
    await silenced;
    const [silent] = await devices.diagnose(['meter']);
    expect(silent).toMatchObject({ state: 'failed', code: 'ERR_HAL_TIMEOUT' });
    // The driver's wait and the component's deadline are both 300 ms; whichever fires first names it.
    expect(silent?.reason).toMatch(/^(diagnosis on meter timed out after 300 ms|serial:\S+: no answer from Modbus unit 1 within 300 ms)$/);

    const resumed = said('answering');
    peer.stdin!.write('answer\n');
    await resumed;
    expect((await devices.diagnose(['meter']))[0]?.state).toBe('ok');

    // socat gone: the pty's slave side hangs up under the open port, then its path disappears.
    const gone = new Promise((resolve) => pair.proc.once('exit', resolve));
    pair.proc.kill();
    await gone;
    // The hang-up reaches the open port as an error or a close, depending on which the binding sees
    // first; after a close the check reopens the port, and then the missing device is named.
    const codes: Array<string | undefined> = [];
    let reopened = (await devices.diagnose(['meter']))[0];
    codes.push(reopened?.code);
    while (reopened?.code !== 'ERR_HAL_NOT_FOUND' && codes.length < 5) {
      reopened = (await devices.diagnose(['meter']))[0];
      codes.push(reopened?.code);
    }
    expect(codes.every((code) => ['ERR_HAL_CLOSED', 'ERR_HAL_IO', 'ERR_HAL_TIMEOUT', 'ERR_HAL_NOT_FOUND'].includes(code ?? ''))).toBe(true);
    expect(reopened).toMatchObject({ state: 'failed', code: 'ERR_HAL_NOT_FOUND' });
    expect(reopened?.reason).toContain(pair.a);
  });
});
