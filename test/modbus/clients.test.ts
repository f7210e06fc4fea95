/**
 * The Modbus TCP service against real third-party clients from Debian: mbpoll (libmodbus) and
 * pymodbus (python3-pymodbus, driven by pymodbus_client.py). Each runs as a real process against a
 * server on 127.0.0.1 port 0 that serves specModel().
 *
 * A missing client skips its tests with the reason, unless HANDCHECK_REQUIRE_ROOT=1 (CI), where it fails.
 */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { required, requireOrSkip } from '../helpers/requirements.js';
import type { TableDataModel } from '../../firmware/modbus/data-model.js';
import { specModel, startServer, type TestServer } from './helpers.js';

const run = promisify(execFile);

function works(command: string, args: string[]): boolean {
  return spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 }).status === 0;
}

const mbpollMissing = works('mbpoll', ['-V']) ? null : 'mbpoll is not installed (apt-get install mbpoll)';
// Debian's pymodbus lives in the system interpreter, which a pyenv or venv python3 on PATH may hide;
// its client package also imports serial_asyncio, a Recommends that --no-install-recommends leaves out.
const python = ['/usr/bin/python3', 'python3'].find((candidate) => works(candidate, ['-c', 'import pymodbus.client, pymodbus.mei_message']));
const pymodbusMissing = python ? null : 'pymodbus is not importable (apt-get install python3-pymodbus python3-serial-asyncio)';

for (const missing of [mbpollMissing, pymodbusMissing]) {
  if (missing && !required) console.warn(`test/modbus/clients.test.ts: skipping the tests that need it: ${missing}`);
}


let server: TestServer | undefined;
let model: TableDataModel;

beforeEach(async () => {
  model = specModel();
  server = await startServer({ model, unitIds: [1] });
});

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface MbpollResult {
  code: number;
  values: Map<number, number>;
  output: string;
}

/** Runs mbpoll once against the test server; `values` maps each printed reference to its value. */
async function mbpoll(args: string[]): Promise<MbpollResult> {
  const full = ['-m', 'tcp', '-p', String(server?.port), '-o', '2', ...args];
  let stdout: string;
  let stderr: string;
  let code = 0;
  try {
    ({ stdout, stderr } = await run('mbpoll', full, { timeout: 20_000 }));
  } catch (err) {
    const failed = err as { stdout?: string; stderr?: string; code?: number };
    stdout = failed.stdout ?? '';
    stderr = failed.stderr ?? '';
    code = typeof failed.code === 'number' ? failed.code : -1;
  }
  const values = new Map<number, number>();
  for (const match of stdout.matchAll(/^\[(\d+)\]:\s+(-?\d+)\s*$/gm)) values.set(Number(match[1]), Number(match[2]));
  return { code, values, output: `${stdout}\n${stderr}` };
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

describe('mbpoll (libmodbus)', () => {
  it('reads holding registers 108-110 (-t 4) and with PDU addressing (-0)', async (ctx) => {
    requireOrSkip(ctx, mbpollMissing);
    const read = await mbpoll(['-a', '1', '-r', '108', '-c', '3', '-t', '4', '-1', '127.0.0.1']);
    expect(read.code, read.output).toBe(0);
    expect([...read.values]).toEqual([
      [108, 555],
      [109, 0],
      [110, 100],
    ]);
    const pdu = await mbpoll(['-a', '1', '-0', '-r', '107', '-c', '3', '-t', '4', '-1', '127.0.0.1']);
    expect([...pdu.values.values()]).toEqual([555, 0, 100]);
  });

  it('reads coils (-t 0), discrete inputs (-t 1) and input registers (-t 3) as the tables hold them', async (ctx) => {
    requireOrSkip(ctx, mbpollMissing);
    const coils = await mbpoll(['-a', '1', '-r', '20', '-c', '19', '-t', '0', '-1', '127.0.0.1']);
    expect(coils.code, coils.output).toBe(0);
    expect(range(20, 19).map((ref) => coils.values.get(ref))).toEqual(model.coils.slice(19, 38).map(Number));
    expect(coils.values.get(20)).toBe(1);
    const inputs = await mbpoll(['-a', '1', '-r', '197', '-c', '22', '-t', '1', '-1', '127.0.0.1']);
    expect(range(197, 22).map((ref) => inputs.values.get(ref))).toEqual(model.discreteInputs.slice(196, 218).map(Number));
    const registers = await mbpoll(['-a', '1', '-r', '1', '-c', '125', '-t', '3', '-1', '127.0.0.1']);
    expect(registers.values.size).toBe(125);
    expect(registers.values.get(9)).toBe(10);
    expect(registers.values.get(125)).toBe(2124);
  });

  it('writes single and multiple registers and coils into the model', async (ctx) => {
    requireOrSkip(ctx, mbpollMissing);
    const registers = await mbpoll(['-a', '1', '-r', '2', '-t', '4', '127.0.0.1', '77', '88']);
    expect(registers.code, registers.output).toBe(0);
    expect(model.holdingRegisters.slice(1, 3)).toEqual([77, 88]);
    await mbpoll(['-a', '1', '-r', '5', '-t', '4', '127.0.0.1', '4242']);
    expect(model.holdingRegisters[4]).toBe(4242);
    const coils = await mbpoll(['-a', '1', '-r', '51', '-t', '0', '127.0.0.1', '1', '0', '1', '1']);
    expect(coils.code, coils.output).toBe(0);
    expect(model.coils.slice(50, 54)).toEqual([true, false, true, true]);
    await mbpoll(['-a', '1', '-r', '61', '-t', '0', '127.0.0.1', '1']);
    expect(model.coils[60]).toBe(true);
  });

  it('reports exception 2 past the table and 0x0B for a unit id the device does not serve, and answers unit 255', async (ctx) => {
    requireOrSkip(ctx, mbpollMissing);
    const past = await mbpoll(['-a', '1', '-r', '300', '-c', '2', '-t', '4', '-1', '127.0.0.1']);
    expect(past.code).not.toBe(0);
    expect(past.output).toContain('Illegal data address');
    const otherUnit = await mbpoll(['-a', '5', '-r', '1', '-c', '1', '-t', '4', '-1', '127.0.0.1']);
    expect(otherUnit.code).not.toBe(0);
    expect(otherUnit.output).toContain('Target device failed to respond');
    const thisDevice = await mbpoll(['-a', '255', '-r', '9', '-c', '1', '-t', '3', '-1', '127.0.0.1']);
    expect(thisDevice.values.get(9)).toBe(10);
  });
});

interface PymodbusDevice {
  readCode?: number;
  conformity?: number;
  moreFollows?: number;
  objects?: Record<string, string>;
  exception?: number;
}

interface PymodbusSeen {
  readCoils: boolean[];
  readDiscreteInputs: boolean[];
  readHoldingRegisters: number[];
  readInputRegisters: number[];
  readInputRegistersMax: number[];
  writeCoil: boolean;
  writeRegister: number;
  writeCoils: number;
  writeRegisters: number;
  readBackCoils: boolean[];
  readBackRegisters: number[];
  unit0: number[];
  unit255: number[];
  unit5: { exception: number; function: number };
  illegalAddress: { exception: number; function: number };
  illegalValue: { exception: number; function: number };
  illegalCoilValue: { exception: number; function: number };
  deviceBasic: PymodbusDevice;
  deviceRegular: PymodbusDevice;
  deviceIndividual: PymodbusDevice;
  deviceMissing: PymodbusDevice;
}

describe('pymodbus', () => {
  it('reads and writes with every function code, and reads the device identification', async (ctx) => {
    requireOrSkip(ctx, pymodbusMissing);
    const script = fileURLToPath(new URL('./pymodbus_client.py', import.meta.url));
    const { stdout } = await run(python ?? 'python3', [script, String(server?.port)], { timeout: 60_000 });
    const seen = JSON.parse(stdout) as PymodbusSeen;

    expect(seen.readCoils).toEqual(model.coils.slice(19, 38));
    expect(seen.readDiscreteInputs).toEqual(model.discreteInputs.slice(196, 218));
    expect(seen.readHoldingRegisters).toEqual([555, 0, 100]);
    expect(seen.readInputRegisters).toEqual([10]);
    expect(seen.readInputRegistersMax).toEqual(model.inputRegisters.slice(0, 125));

    expect(seen.writeCoil).toBe(true);
    expect(model.coils[172]).toBe(true);
    expect(seen.writeRegister).toBe(3);
    expect(model.holdingRegisters[1]).toBe(3);
    expect(seen.writeCoils).toBe(10);
    expect(model.coils.slice(40, 50)).toEqual([true, false, true, true, false, false, true, true, true, false]);
    expect(seen.readBackCoils).toEqual(model.coils.slice(40, 50));
    expect(seen.writeRegisters).toBe(3);
    expect(model.holdingRegisters.slice(200, 203)).toEqual([10, 258, 65535]);
    expect(seen.readBackRegisters).toEqual([10, 258, 65535]);

    expect(seen.unit0).toEqual([10]);
    expect(seen.unit255).toEqual([10]);
    expect(seen.unit5).toEqual({ exception: 0x0b, function: 0x84 });
    expect(seen.illegalAddress).toEqual({ exception: 2, function: 0x83 });
    expect(seen.illegalValue).toEqual({ exception: 3, function: 0x83 });
    expect(seen.illegalCoilValue).toEqual({ exception: 3, function: 0x8f });

    const basic = { '0': 'Company identification', '1': 'Product code XX', '2': 'V2.11' };
    expect(seen.deviceBasic).toMatchObject({ readCode: 1, conformity: 0x82, moreFollows: 0, objects: basic });
    expect(seen.deviceRegular).toMatchObject({
      readCode: 2,
      conformity: 0x82,
      moreFollows: 0,
      objects: { ...basic, '3': 'https://handcheck.example/', '4': 'handcheck appliance', '5': 'sim-pi4', '6': 'modbus tests' },
    });
    expect(seen.deviceIndividual).toMatchObject({ readCode: 4, objects: { '5': 'sim-pi4' } });
    expect(seen.deviceMissing).toEqual({ exception: 2 });
  });
});
