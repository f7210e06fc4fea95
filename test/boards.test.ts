import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import schema from '../boards.schema.json' with { type: 'json' };
import type { BoardsFile, ComponentConfig, ComponentKind } from '../config/board-config.js';
import { componentKinds } from '../config/component-kinds.js';
import {
  BoardNotFoundError,
  BoardsDuplicateError,
  BoardsError,
  BoardsJsonError,
  BoardsReadError,
  BoardsReferenceError,
  BoardsSchemaError,
  loadBoards,
  parseBoards,
  selectBoard,
} from '../config/boards.js';
import { HandcheckError } from '../config/errors.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'test/fixtures/boards');
const boardsPath = join(root, 'boards.json');

interface ExpectedIssue {
  path: string;
  message: string;
}
type Expected = { code: string; line: number; column: number; message: string } | { code: string; issues: ExpectedIssue[] };

const expected = JSON.parse(await readFile(join(fixtures, 'expected.json'), 'utf8')) as Record<string, Expected>;
const fixtureFiles = (await readdir(fixtures)).filter((file) => file !== 'expected.json').sort();
const validMinimal = await readFile(join(fixtures, 'valid-minimal.json'), 'utf8');

function component(board: { components: ComponentConfig[] }, id: string): ComponentConfig {
  const found = board.components.find((candidate) => candidate.id === id);
  if (!found) throw new Error(`no component ${id}`);
  return found;
}

async function fixtureText(name: string): Promise<string> {
  return readFile(join(fixtures, name), 'utf8');
}

describe('malformed boards files', () => {
  it('has an expectation for every fixture that is not valid-*, and a fixture for every expectation', () => {
    const malformed = fixtureFiles.filter((file) => !file.startsWith('valid-'));
    expect(Object.keys(expected).sort()).toEqual(malformed);
    expect(malformed.length).toBeGreaterThanOrEqual(12);
  });

  for (const [file, want] of Object.entries(expected)) {
    it(`${file} fails with ${want.code}`, async () => {
      const path = join(fixtures, file);
      const err = await loadBoards(path).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(err).toBeInstanceOf(BoardsError);
      expect(err).toBeInstanceOf(HandcheckError);
      const error = err as BoardsError;
      expect(error.code).toBe(want.code);
      expect(error.source).toBe(path);
      expect(error.message.startsWith(`${path}: `)).toBe(true);
      if ('line' in want) {
        expect(error).toBeInstanceOf(BoardsJsonError);
        const jsonError = error as BoardsJsonError;
        expect({ line: jsonError.line, column: jsonError.column }).toEqual({ line: want.line, column: want.column });
        expect(error.message).toContain(`line ${want.line}, column ${want.column}: ${want.message}`);
      } else {
        expect(error.issues.map((issue) => issue.path)).toEqual(want.issues.map((issue) => issue.path));
        want.issues.forEach((issue, i) => {
          expect(error.issues[i]?.message).toContain(issue.message);
          expect(error.message).toContain(`\n  ${issue.path}: ${issue.message}`);
        });
      }
    });
  }

  it('reports a JSON syntax error at the character that breaks it', async () => {
    const text = await fixtureText('bad-json-trailing-comma.json');
    const err = (() => {
      try {
        parseBoards(text, 'inline');
      } catch (caught) {
        return caught as BoardsJsonError;
      }
      throw new Error('parsed');
    })();
    const offending = text.split('\n')[err.line - 1]?.[err.column - 1];
    expect(offending).toBe('}');
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
  });

  it('uses the specific error classes', async () => {
    const classes: Record<string, new (...args: never[]) => BoardsError> = {
      ERR_BOARDS_JSON: BoardsJsonError,
      ERR_BOARDS_SCHEMA: BoardsSchemaError,
      ERR_BOARDS_REFERENCE: BoardsReferenceError,
      ERR_BOARDS_DUPLICATE: BoardsDuplicateError,
    };
    for (const [file, want] of Object.entries(expected)) {
      const Class = classes[want.code];
      expect(Class, want.code).toBeDefined();
      let thrown: unknown;
      try {
        parseBoards(await fixtureText(file), file);
      } catch (caught) {
        thrown = caught;
      }
      expect(thrown, file).toBeInstanceOf(Class as NonNullable<typeof Class>);
    }
  });

  it('refuses a file that is missing or is a directory with ERR_BOARDS_READ', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handcheck-boards-'));
    const missing = join(dir, 'nope.json');
    await expect(loadBoards(missing)).rejects.toMatchObject({ code: 'ERR_BOARDS_READ', source: missing });
    await expect(loadBoards(missing)).rejects.toBeInstanceOf(BoardsReadError);
    await expect(loadBoards(missing)).rejects.toThrow(/ENOENT/);
    await expect(loadBoards(dir)).rejects.toMatchObject({ code: 'ERR_BOARDS_READ' });
    await expect(loadBoards(dir)).rejects.toThrow(/EISDIR/);
  });

  it('accepts I2C addresses 0x03-0x77 and nothing else', () => {
    const base = JSON.parse(validMinimal) as BoardsFile;
    fc.assert(
      fc.property(fc.integer({ min: -5, max: 300 }), (address) => {
        const doc = structuredClone(base) as unknown as { boards: { i2c: unknown[]; components: unknown[] }[] };
        const board = doc.boards[0] as { i2c: unknown[]; components: unknown[] };
        board.i2c.push({ id: 'i2c-2', device: '/dev/i2c-2' });
        // Clear of the DDM page so the only thing under test is the range.
        board.components.push({ id: 'uplink', kind: 'sfp', bus: 'i2c-2', address, ddmAddress: address === 0x51 ? 0x52 : 0x51 });
        const text = JSON.stringify(doc);
        if (address >= 0x03 && address <= 0x77) {
          expect(() => parseBoards(text, 'prop')).not.toThrow();
        } else {
          expect(() => parseBoards(text, 'prop')).toThrow(BoardsSchemaError);
        }
      }),
    );
  });
});

describe('writeAllow', () => {
  function withWriteAllow(writeAllow: string[]): string {
    const doc = JSON.parse(validMinimal) as { boards: { services: Record<string, unknown>[] }[] };
    doc.boards[0]!.services[0]!.writeAllow = writeAllow;
    return JSON.stringify(doc);
  }

  it('takes IP addresses and CIDR subnets of either family', () => {
    expect(() => parseBoards(withWriteAllow(['10.0.0.9', '10.0.0.0/24', '0.0.0.0/0', 'fd00::9', 'fd00::/8', '::/0']), 'prop')).not.toThrow();
  });

  it('refuses anything else, naming the entry', () => {
    const err = (() => {
      try {
        parseBoards(withWriteAllow(['10.0.0.0/33', 'plc.local', '10.0.0.0/', 'fd00::/129']), 'prop');
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(BoardsSchemaError);
    expect((err as BoardsSchemaError).issues.map((issue) => issue.path)).toEqual([0, 1, 2, 3].map((i) => `/boards/0/services/0/writeAllow/${i}`));
    expect((err as BoardsSchemaError).issues[1]?.message).toBe('"plc.local" is not an IP address or a CIDR subnet (10.0.0.0/24)');
  });
});

describe('defaults and freezing', () => {
  it('fills in every default the schema names', () => {
    const file = parseBoards(validMinimal, 'valid-minimal.json');
    const board = selectBoard(file, 'fixture');
    expect(board.i2c?.[0]?.timeoutMs).toBe(50);
    expect(component(board, 'board-temp').timeoutMs).toBe(100);
    expect(board.gpio?.['power-good']?.activeLow).toBe(false);
    expect(board.services[0]?.gate).toEqual({ mode: 'after', onFail: 'reset', reuse: 'while-held', maxAgeMs: 30000, recheckMs: 1000, failClosed: false, queue: 0, keepAliveMs: 60000 });
    expect(board.services[0]?.unitIds).toEqual([1]);
    expect(board.refreshMs).toBe(2000);
  });

  it("fills in the watchdog's reset-loop limits, and refuses more quantities than the Modbus map holds below the boot record", () => {
    const shipped = parseBoards(validMinimal, 'valid-minimal.json');
    const doc = JSON.parse(validMinimal) as { boards: Array<Record<string, unknown> & { components: unknown[] }> };
    doc.boards[0]!.watchdog = { device: '/dev/watchdog', timeoutS: 10 };
    expect(selectBoard(parseBoards(JSON.stringify(doc), 'watchdog.json'), 'fixture').watchdog).toMatchObject({ resetLoopCount: 3, resetLoopWindowS: 3600 });
    expect(selectBoard(shipped, 'fixture').watchdog).toBeUndefined();
    // memory-pressure reads 4 quantities: 113 of them and the fixture's thermometer need 453 pairs of registers, past IR 999.
    doc.boards[0]!.components.push(...Array.from({ length: 113 }, (_, i) => ({ id: `psi-${i}`, kind: 'memory-pressure' })));
    let err: unknown;
    try {
      parseBoards(JSON.stringify(doc), 'many.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BoardsSchemaError);
    expect((err as BoardsSchemaError).issues).toContainEqual({ path: '/boards/0/components', message: 'the components read 453 quantities; the Modbus register map holds at most 450' });
  });

  it('fills in SFF-8472 addresses, serial framing and the Modbus unit id', () => {
    const doc = JSON.parse(validMinimal) as { boards: Record<string, unknown>[] };
    const board = doc.boards[0] as { i2c: unknown[]; components: unknown[]; serial?: unknown[] };
    board.i2c.push({ id: 'i2c-2', device: '/dev/i2c-2' });
    board.serial = [{ id: 'rs485', path: '/dev/ttyUSB0', baudRate: 9600 }];
    board.components.push({ id: 'uplink', kind: 'sfp', bus: 'i2c-2' }, { id: 'meter', kind: 'serial-peer', port: 'rs485', protocol: 'modbus-rtu' });
    const loaded = selectBoard(parseBoards(JSON.stringify(doc), 'inline'), 'fixture');
    expect(component(loaded, 'uplink')).toMatchObject({ address: 0x50, ddmAddress: 0x51 });
    expect(component(loaded, 'meter')).toMatchObject({ unitId: 1 });
    expect(loaded.serial?.[0]).toEqual({ id: 'rs485', path: '/dev/ttyUSB0', baudRate: 9600, dataBits: 8, stopBits: 1, parity: 'none', rtscts: false });
  });

  it('checks an RS-485 port: delays within the kernel clamp, deLine only and always for direction gpio, an output of its own', () => {
    const load = (rs485: Record<string, unknown>, gpio: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): unknown => {
      const doc = JSON.parse(validMinimal) as { boards: Record<string, unknown>[] };
      const board = doc.boards[0]!;
      Object.assign(board, { gpio: { ...(board.gpio as object), ...gpio }, serial: [{ id: 'rs485', path: '/dev/ttyAMA0', baudRate: 19200, rs485 }], ...extra });
      try {
        return selectBoard(parseBoards(JSON.stringify(doc), 'inline'), 'fixture');
      } catch (err) {
        return err;
      }
    };
    const de = { chip: 'pinctrl-bcm2711', line: 'GPIO24', direction: 'out' };
    expect(load({ direction: 'gpio', deLine: 'de' }, { de })).toMatchObject({ serial: [{ rs485: { direction: 'gpio', deLine: 'de', delayBeforeSendMs: 0, delayAfterSendMs: 0, echo: false } }] });
    expect(load({ direction: 'kernel', delayAfterSendMs: 101 })).toMatchObject({ code: 'ERR_BOARDS_SCHEMA', issues: [{ path: '/boards/0/serial/0/rs485/delayAfterSendMs' }] });
    expect(load({ direction: 'gpio' })).toMatchObject({ code: 'ERR_BOARDS_SCHEMA', issues: [{ path: '/boards/0/serial/0/rs485/deLine', message: expect.stringContaining('needs deLine') }] });
    expect(load({ direction: 'kernel', deLine: 'de' }, { de })).toMatchObject({ code: 'ERR_BOARDS_SCHEMA', issues: [{ path: '/boards/0/serial/0/rs485/deLine' }] });
    expect(load({ direction: 'gpio', deLine: 'nope' })).toMatchObject({ code: 'ERR_BOARDS_REFERENCE', issues: [{ path: '/boards/0/serial/0/rs485/deLine', message: expect.stringContaining('does not define') }] });
    expect(load({ direction: 'gpio', deLine: 'de' }, { de: { ...de, direction: 'in' } })).toMatchObject({ code: 'ERR_BOARDS_REFERENCE', issues: [{ message: expect.stringContaining('needs an output line') }] });
    expect(load({ direction: 'gpio', deLine: 'de' }, { de }, { statusLed: 'de' })).toMatchObject({
      code: 'ERR_BOARDS_REFERENCE',
      issues: [{ path: '/boards/0/serial/0/rs485/deLine', message: expect.stringContaining('statusLed uses it too') }],
    });
  });

  it('freezes the whole result', () => {
    const file = parseBoards(validMinimal, 'valid-minimal.json');
    const board = selectBoard(file, 'fixture');
    expect(Object.isFrozen(file)).toBe(true);
    expect(Object.isFrozen(file.boards)).toBe(true);
    expect(Object.isFrozen(board.services[0]?.gate)).toBe(true);
    expect(Object.isFrozen(board.components[0]?.thresholds?.temperatureC)).toBe(true);
    expect(() => {
      (board.services[0]?.dependsOn as string[]).push('x');
    }).toThrow(TypeError);
    expect(() => {
      (board.components[0] as { address: number }).address = 0x49;
    }).toThrow(TypeError);
  });

  it('gives independent results for independent parses', () => {
    const text = validMinimal;
    const first = parseBoards(text, 'a');
    const second = parseBoards(text, 'b');
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
  });

  it('accepts a byte order mark', () => {
    const file = parseBoards(`\uFEFF${validMinimal}`, 'bom.json');
    expect(file.boards.map((board) => board.id)).toEqual(['fixture']);
  });
});

describe('selectBoard', () => {
  it('names the ids there are when the one asked for is missing', async () => {
    const file = await loadBoards(boardsPath);
    expect(() => selectBoard(file, 'rpi3')).toThrow(BoardNotFoundError);
    try {
      selectBoard(file, 'rpi3');
    } catch (caught) {
      const err = caught as BoardNotFoundError;
      expect(err.code).toBe('ERR_BOARD_NOT_FOUND');
      expect(err.available).toEqual(['sim-appliance', 'rpi4', 'rpi5', 'rpi-zero-2w']);
      expect(err.message).toBe('no board "rpi3" in the boards file; available: sim-appliance, rpi4, rpi5, rpi-zero-2w');
    }
  });
});

describe('the real boards.json', () => {
  it('loads, with the four boards', async () => {
    const file = await loadBoards(boardsPath);
    expect(file.boards.map((board) => [board.id, board.backend])).toEqual([
      ['sim-appliance', 'sim'],
      ['rpi4', 'linux'],
      ['rpi5', 'linux'],
      ['rpi-zero-2w', 'linux'],
    ]);
  });

  it('describes the simulated appliance', async () => {
    const board = selectBoard(await loadBoards(boardsPath), 'sim-appliance');
    expect(board.i2c?.map((bus) => bus.id)).toEqual(['i2c-1', 'i2c-2']);
    expect(component(board, 'board-temp')).toMatchObject({ kind: 'tmp102', bus: 'i2c-1', address: 0x48 });
    expect(component(board, 'ambient')).toMatchObject({ kind: 'bme280', bus: 'i2c-1', address: 0x76 });
    expect(component(board, 'rail-5v')).toMatchObject({ kind: 'ina219', bus: 'i2c-1', address: 0x40, shuntOhms: 0.1, maxCurrentA: 3.2 });
    expect(component(board, 'uplink-sfp')).toMatchObject({
      kind: 'sfp',
      bus: 'i2c-2',
      lines: { modDef0: 'sfp-mod-def0', los: 'sfp-los', txFault: 'sfp-tx-fault' },
    });
    expect(component(board, 'eth0')).toMatchObject({ kind: 'ethernet', interface: 'eth0', ledLine: 'eth0-link-led' });
    expect(component(board, 'meter')).toMatchObject({ kind: 'serial-peer', port: 'rs485', protocol: 'modbus-rtu' });
    expect(board.serial?.[0]).toMatchObject({ id: 'rs485', path: '/dev/ttyAMA0', baudRate: 19200 });
    expect(component(board, 'power-good')).toMatchObject({ kind: 'gpio-status', line: 'power-good', expect: 1 });
    expect(board.gpio?.['power-good']?.direction).toBe('in');
    expect(board.gpio?.['status-led']?.direction).toBe('out');
    expect(board.gpio?.relay?.direction).toBe('out');
    expect(board.statusLed).toBe('status-led');
    expect(board.watchdog).toEqual({ device: '/dev/watchdog', timeoutS: 10, driver: 'generic', resetLoopCount: 3, resetLoopWindowS: 3600 });
    expect(component(board, 'board-temp').thresholds?.temperatureC).toMatchObject({ warnMax: 70, max: 85 });
    expect(component(board, 'rail-5v').thresholds?.busVoltageV).toMatchObject({ min: 4.75, max: 5.25 });
    expect(board.services).toHaveLength(1);
    expect(board.services[0]).toMatchObject({
      id: 'modbus',
      protocol: 'modbus-tcp',
      listen: '127.0.0.1:1502',
      dependsOn: ['board-temp', 'ambient', 'rail-5v', 'uplink-sfp', 'eth0', 'meter', 'watchdog', 'power-good', 'supply', 'soc-temp', 'root-fs', 'memory'],
      gate: { mode: 'after', onFail: 'reset', reuse: 'while-held', maxAgeMs: 30000, recheckMs: 1000 },
    });
  });

  it('names the GPIO chips by the labels the Pi kernels give them, and has no SFP on a Pi', async () => {
    const file = await loadBoards(boardsPath);
    const chips = (id: string): string[] => [...new Set(Object.values(selectBoard(file, id).gpio ?? {}).map((line) => line.chip))];
    expect(chips('rpi4')).toEqual(['pinctrl-bcm2711']);
    expect(chips('rpi5')).toEqual(['pinctrl-rp1']);
    expect(chips('rpi-zero-2w')).toEqual(['pinctrl-bcm2835']);
    for (const id of ['rpi4', 'rpi5', 'rpi-zero-2w']) {
      const board = selectBoard(file, id);
      expect(board.components.some((candidate) => candidate.kind === 'sfp')).toBe(false);
      expect(board.i2c?.[0]?.device).toBe('/dev/i2c-1');
      expect(board.serial?.[0]?.path).toBe('/dev/ttyAMA0');
      expect(board.services.map((service) => service.listen)).toEqual(['0.0.0.0:502']);
    }
    expect(selectBoard(file, 'rpi-zero-2w').net).toEqual([{ name: 'wlan0' }]);
    expect(selectBoard(file, 'rpi5').net).toEqual([{ name: 'eth0' }]);
  });

  it('gives every measured component thresholds for only the quantities its driver reads', async () => {
    const file = await loadBoards(boardsPath);
    for (const board of file.boards) {
      for (const part of board.components) {
        const quantities: readonly string[] = componentKinds[part.kind].quantities;
        for (const key of Object.keys(part.thresholds ?? {})) expect(quantities, `${board.id}/${part.id}`).toContain(key);
      }
    }
  });

  it('survives a rewrite to disk and back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handcheck-boards-'));
    const copy = join(dir, 'boards.json');
    const loaded = await loadBoards(boardsPath);
    await writeFile(copy, JSON.stringify(loaded));
    expect(await loadBoards(copy)).toEqual(loaded);
  });
});

describe('boards.schema.json', () => {
  it('lists for each kind exactly the quantities the drivers read', () => {
    const defs = schema.$defs as Record<string, { properties?: Record<string, unknown> }>;
    for (const [kind, { quantities }] of Object.entries(componentKinds) as [ComponentKind, { quantities: readonly string[] }][]) {
      const branch = defs[`component-${kind}`];
      expect(branch, kind).toBeDefined();
      const thresholds = defs[`thresholds-${kind}`];
      if (quantities.length === 0) {
        expect(thresholds, kind).toBeUndefined();
        expect(branch?.properties?.thresholds, kind).toBeUndefined();
      } else {
        expect(Object.keys(thresholds?.properties ?? {}), kind).toEqual([...quantities]);
      }
    }
    expect(schema.$defs.component.properties.kind.enum).toEqual(Object.keys(componentKinds));
  });

  it('has in each kind the I2C address fields (with the defaults) and reference fields the registry names', () => {
    const defs = schema.$defs as Record<string, { required?: string[]; properties?: Record<string, { default?: unknown }> }>;
    for (const [kind, spec] of Object.entries(componentKinds) as [ComponentKind, (typeof componentKinds)[ComponentKind]][]) {
      const branch = defs[`component-${kind}`];
      for (const { field, ...rest } of 'i2c' in spec ? spec.i2c : []) {
        const fallback = 'default' in rest ? rest.default : undefined;
        expect(branch?.properties?.[field]?.default, `${kind}.${field}`).toBe(fallback);
        if (fallback === undefined) expect(branch?.required, `${kind}.${field}`).toContain(field);
      }
      for (const reference of spec.references) {
        if ('field' in reference) expect(Object.keys(branch?.properties ?? {}), kind).toContain(reference.field);
      }
    }
  });
});
