/**
 * The three kinds of service in boards.json: what each takes, what it needs, and the defaults a loaded
 * entry has. Errors name the JSON path, like every other boards file error.
 */
import { readFile } from 'node:fs/promises';
import schema from '../../boards.schema.json' with { type: 'json' };
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BoardsSchemaError, parseBoards, selectBoard } from '../../config/boards.js';
import type { ServiceConfig } from '../../config/board-config.js';

const minimal = await readFile(fileURLToPath(new URL('../fixtures/boards/valid-minimal.json', import.meta.url)), 'utf8');

function withService(service: Record<string, unknown>): string {
  const doc = JSON.parse(minimal) as { boards: Array<{ services: unknown[] }> };
  doc.boards[0]!.services.push(service);
  return JSON.stringify(doc);
}

function load(service: Record<string, unknown>): ServiceConfig {
  const board = selectBoard(parseBoards(withService(service), 'inline'), 'fixture');
  return board.services[1]!;
}

function issues(service: Record<string, unknown>): Array<{ path: string; message: string }> {
  try {
    parseBoards(withService(service), 'inline');
  } catch (err) {
    expect(err).toBeInstanceOf(BoardsSchemaError);
    return [...(err as BoardsSchemaError).issues];
  }
  throw new Error('the boards file loaded');
}

const guard = { id: 'broker', kind: 'guard', listen: '0.0.0.0:1883', dependsOn: ['power-good'] };
const proxy = { id: 'api', kind: 'proxy', listen: '0.0.0.0:8080', upstream: '127.0.0.1:8081', dependsOn: ['board-temp'] };

describe('service kinds in boards.json', () => {
  it('loads a guard with before mode, no reuse, and no field of another kind', () => {
    const loaded = load(guard);
    expect(loaded.kind).toBe('guard');
    expect(loaded.gate).toMatchObject({ mode: 'before', reuse: 'never', failClosed: false, queue: 0 });
    expect(loaded).not.toHaveProperty('unitIds');
    expect(loaded).not.toHaveProperty('connectTimeoutMs');
  });

  it('loads a proxy with its defaults: a connect probe when none is given, 2000 ms to connect', () => {
    const loaded = load(proxy);
    expect(loaded).toMatchObject({ kind: 'proxy', upstream: '127.0.0.1:8081', connectTimeoutMs: 2000 });
    expect(loaded.probe).toBeUndefined();
    expect(loaded.gate.mode).toBe('after');
    expect(loaded).not.toHaveProperty('unitIds');
  });

  it('fills in each probe type defaults', () => {
    expect(load({ ...proxy, probe: { type: 'http' } }).probe).toEqual({ type: 'http', path: '/', timeoutMs: 500 });
    expect(load({ ...proxy, probe: { type: 'modbus' } }).probe).toEqual({ type: 'modbus', unitId: 1, function: 3, address: 0, count: 1, timeoutMs: 500 });
    expect(load({ ...proxy, probe: { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' } }).probe).toEqual({
      type: 'send-expect',
      send: 'PING\r\n',
      expect: '+PONG',
      encoding: 'utf8',
      timeoutMs: 500,
    });
  });

  it('keeps the built-in Modbus server the default kind', () => {
    const board = selectBoard(parseBoards(minimal, 'inline'), 'fixture');
    expect(board.services[0]).toMatchObject({ kind: 'modbus', protocol: 'modbus-tcp', unitIds: [1] });
  });

  it('refuses each field on a kind that does not read it, naming the path', () => {
    expect(issues({ ...guard, protocol: 'modbus-tcp', upstream: '127.0.0.1:1' })).toEqual([
      { path: '/boards/0/services/1/protocol', message: 'protocol applies to services of kind "modbus" only; this one is kind "guard"' },
      { path: '/boards/0/services/1/upstream', message: 'upstream applies to services of kind "proxy" only; this one is kind "guard"' },
    ]);
    expect(issues({ id: 'm', protocol: 'modbus-tcp', listen: '127.0.0.1:1', dependsOn: [], probe: { type: 'connect' } })).toEqual([
      { path: '/boards/0/services/1/probe', message: 'probe applies to services of kind "proxy" or "guard" only; this one is kind "modbus"' },
    ]);
  });

  it('refuses a proxy without an upstream and a Modbus entry without its protocol', () => {
    expect(issues({ ...proxy, upstream: undefined })).toEqual([
      { path: '/boards/0/services/1', message: 'a service of kind "proxy" needs "upstream": the HOST:PORT it splices admitted clients to' },
    ]);
    expect(issues({ id: 'm', listen: '127.0.0.1:1', dependsOn: [] })).toEqual([{ path: '/boards/0/services/1', message: 'a service of kind "modbus" needs "protocol" ("modbus-tcp" or "modbus-tls")' }]);
  });

  it('refuses a guard gate field that acts on held connections, and after mode or reuse', () => {
    expect(issues({ ...guard, gate: { mode: 'after', reuse: 'while-held', recheckMs: 500, failClosed: true } })).toEqual([
      { path: '/boards/0/services/1/gate/mode', message: 'a guard holds SYNs: its mode is "before", not "after"' },
      { path: '/boards/0/services/1/gate/reuse', message: 'a guard holds no connection whose verdict could be reused: its reuse is "never", not "while-held"' },
      { path: '/boards/0/services/1/gate/recheckMs', message: 'recheckMs does not apply to a guard: handcheck holds none of its connections (a guard takes mode, reuse, failClosed, queue)' },
    ]);
  });

  it('refuses a guard on port 0 or on a host name', () => {
    expect(issues({ ...guard, listen: '0.0.0.0:0' })[0]?.message).toMatch(/port 0 cannot name it/);
    expect(issues({ ...guard, listen: 'localhost:1883' })[0]?.message).toMatch(/write the IP address the guarded process binds/);
  });

  it('loads a guard without a probe as before (only the listener is checked), and with one of each type, defaults filled in', () => {
    expect(load(guard)).not.toHaveProperty('probe');
    expect(load({ ...guard, probe: { type: 'connect' } }).probe).toEqual({ type: 'connect', timeoutMs: 500 });
    expect(load({ ...guard, probe: { type: 'http', path: '/health', expectStatus: [200] } }).probe).toEqual({ type: 'http', path: '/health', expectStatus: [200], timeoutMs: 500 });
    expect(load({ ...guard, probe: { type: 'modbus', unitId: 3, function: 4 } }).probe).toEqual({ type: 'modbus', unitId: 3, function: 4, address: 0, count: 1, timeoutMs: 500 });
    expect(load({ ...guard, probe: { type: 'send-expect', send: '100e00044d5154540402000a00026863', expect: '20020000', encoding: 'hex' } }).probe).toMatchObject({ encoding: 'hex', timeoutMs: 500 });
  });

  it("checks a guard's probe as a proxy's, naming the path", () => {
    expect(issues({ ...guard, probe: { type: 'http', timeoutMs: 1501 } })).toEqual([{ path: '/boards/0/services/1/probe/timeoutMs', message: expect.stringContaining('1-1500') as string }]);
    expect(issues({ ...guard, probe: { type: 'modbus', function: 6 } })[0]?.path).toBe('/boards/0/services/1/probe/function');
    expect(issues({ ...guard, probe: { type: 'modbus', count: 126 } })[0]?.path).toBe('/boards/0/services/1/probe/count');
    expect(issues({ ...guard, probe: { type: 'send-expect', send: 'x' } })[0]?.path).toBe('/boards/0/services/1/probe/expect');
    expect(issues({ ...guard, probe: { type: 'ping' } })[0]?.path).toBe('/boards/0/services/1/probe/type');
    expect(issues({ ...guard, probe: { type: 'connect', path: '/' } })[0]?.path).toBe('/boards/0/services/1/probe/path');
  });

  it('bounds probe timeouts under the diagnosis deadline and checks the HTTP path', () => {
    expect(issues({ ...proxy, probe: { type: 'http', timeoutMs: 1501 } })).toEqual([{ path: '/boards/0/services/1/probe/timeoutMs', message: expect.stringContaining('1-1500') as string }]);
    expect(issues({ ...proxy, probe: { type: 'http', path: 'health' } })[0]?.path).toBe('/boards/0/services/1/probe/path');
    expect(issues({ ...proxy, probe: { type: 'send-expect', send: 'x' } })[0]?.path).toBe('/boards/0/services/1/probe/expect');
  });

  it('README: the proxy fields table has the schema defaults and bounds', async () => {
    const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const row = (field: string): string[] => {
      const line = readme.split('\n').find((l) => l.startsWith(`| \`${field}\``));
      if (!line) throw new Error(`README has no row for ${field}`);
      return line.split('|').map((cell) => cell.trim());
    };
    const service = schema.$defs.service.properties;
    expect(row('connectTimeoutMs').slice(2, 4)).toEqual([String(service.connectTimeoutMs.default), `${service.connectTimeoutMs.minimum}-${service.connectTimeoutMs.maximum}`]);
    const timeout = schema.$defs['probe-http'].properties.timeoutMs;
    expect(row('probe.timeoutMs').slice(2, 4)).toEqual([String(timeout.default), `${timeout.minimum}-${timeout.maximum}`]);
    const modbus = schema.$defs['probe-modbus'].properties;
    expect(row('probe.unitId` (modbus)'.replace('` (modbus)', '')).slice(2, 4)).toEqual([String(modbus.unitId.default), `${modbus.unitId.minimum}-${modbus.unitId.maximum}`]);
    expect(row('probe.path').slice(2, 3)).toEqual([`\`${schema.$defs['probe-http'].properties.path.default}\``]);
  });
});
