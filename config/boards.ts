/**
 * Loads `boards.json` once, at start-up: strict JSON (positions for syntax errors, no silently
 * repeated keys), the JSON schema in `boards.schema.json` (defaults filled in, unknown keys refused),
 * then what a schema cannot say: ranges in order, references between entries, duplicates. Every
 * stage reports all of its problems, each with the JSON path that holds it. The result is deeply
 * frozen, so no part of the firmware can change the board under another's feet.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseAddressRule } from './address-list.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import schema from '../boards.schema.json' with { type: 'json' };
import type { BoardConfig, BoardsFile, GpioLineConfig, Range, ServiceKind } from './board-config.js';
import { gpioReferences, i2cAddresses, i2cBusOf, kindSpec } from './component-kinds.js';
import { HandcheckError, type HandcheckErrorOptions } from './errors.js';
import { type ConfigIssue, count, schemaIssues } from './issues.js';
import { parseHostPort } from './host-port.js';
import { pointer, scanJson } from './json-text.js';

export type { BoardConfig, BoardsFile } from './board-config.js';

/** One problem in a boards file: where (a JSON pointer, `/boards/1/components/3/address`) and what. */
export type BoardsIssue = ConfigIssue;

/** Base of the errors about a boards file; `source` names the file (or what the text came from). */
export class BoardsError extends HandcheckError {
  readonly source: string;
  readonly issues: readonly BoardsIssue[];

  constructor(code: string, source: string, summary: string, issues: readonly BoardsIssue[], options: HandcheckErrorOptions = {}) {
    const lines = issues.map((issue) => `\n  ${issue.path || '/'}: ${issue.message}`).join('');
    super(code, `${source}: ${summary}${lines}`, options);
    this.source = source;
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}

/** The file could not be read: missing, a directory, no permission. */
export class BoardsReadError extends BoardsError {
  constructor(source: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('ERR_BOARDS_READ', source, `cannot read the boards file: ${detail}`, [], { cause });
  }
}

/** The text is not valid JSON; `line` and `column` (both from 1) point at the offending character. */
export class BoardsJsonError extends BoardsError {
  readonly line: number;
  readonly column: number;

  constructor(source: string, line: number, column: number, detail: string) {
    super('ERR_BOARDS_JSON', source, `invalid JSON at line ${line}, column ${column}: ${detail}`, []);
    this.line = line;
    this.column = column;
  }
}

/** The document does not match boards.schema.json, or a value is out of order or out of its domain. */
export class BoardsSchemaError extends BoardsError {
  constructor(source: string, issues: readonly BoardsIssue[]) {
    super('ERR_BOARDS_SCHEMA', source, `${count(issues.length, 'schema error')}:`, issues);
  }
}

/** A name that should point at another entry points at nothing, or at an entry of the wrong kind. */
export class BoardsReferenceError extends BoardsError {
  constructor(source: string, issues: readonly BoardsIssue[]) {
    super('ERR_BOARDS_REFERENCE', source, `${count(issues.length, 'broken reference')}:`, issues);
  }
}

/** Two entries claim what only one may have: an id, an I2C address, a port, a GPIO line, a JSON key. */
export class BoardsDuplicateError extends BoardsError {
  constructor(source: string, issues: readonly BoardsIssue[]) {
    super('ERR_BOARDS_DUPLICATE', source, `${count(issues.length, 'duplicate')}:`, issues);
  }
}

/** `selectBoard` was asked for an id the file does not define. */
export class BoardNotFoundError extends HandcheckError {
  readonly id: string;
  readonly available: readonly string[];

  constructor(id: string, available: readonly string[]) {
    super('ERR_BOARD_NOT_FOUND', `no board "${id}" in the boards file; available: ${available.join(', ')}`);
    this.id = id;
    this.available = Object.freeze([...available]);
  }
}

/** Reads, validates and freezes a boards file. */
export async function loadBoards(path: string): Promise<BoardsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BoardsReadError(path, err);
  }
  return parseBoards(text, path);
}

/** Validates and freezes the text of a boards file; `source` names it in errors. */
export function parseBoards(text: string, source: string): BoardsFile {
  // Editors on Windows save a byte order mark, which JSON.parse refuses.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const scan = scanJson(body);
  if (!scan.ok) throw new BoardsJsonError(source, scan.syntax.line, scan.syntax.column, scan.syntax.detail);
  if (scan.duplicates.length > 0) throw new BoardsDuplicateError(source, scan.duplicates);
  const data: unknown = JSON.parse(body);
  // What the file itself says, before the schema fills in defaults: which service fields were written.
  const written = writtenServiceFields(data);

  if (!validate(data)) throw new BoardsSchemaError(source, schemaIssues(validate.errors ?? [], showValue));
  const file = data as unknown as BoardsFile;
  const valueIssues = file.boards.flatMap((board, b) => [...checkValues(board, `/boards/${b}`), ...checkServiceKinds(board, `/boards/${b}`, written)]);
  if (valueIssues.length > 0) throw new BoardsSchemaError(source, valueIssues);

  const duplicates = checkDuplicates(file);
  if (duplicates.length > 0) throw new BoardsDuplicateError(source, duplicates);
  const references = file.boards.flatMap((board, b) => checkReferences(board, `/boards/${b}`));
  if (references.length > 0) throw new BoardsReferenceError(source, references);

  return deepFreeze(file);
}

/** The board with this id; ERR_BOARD_NOT_FOUND (listing the ids there are) when none has it. */
export function selectBoard(file: BoardsFile, id: string): BoardConfig {
  const board = file.boards.find((candidate) => candidate.id === id);
  if (!board) throw new BoardNotFoundError(id, file.boards.map((candidate) => candidate.id));
  return board;
}

const ajv = new Ajv2020({ allErrors: true, useDefaults: true, discriminator: true, verbose: true, strict: true });
const validate = ajv.compile(schema);

function showValue(value: unknown, path: string): string {
  if (typeof value === 'number' && Number.isInteger(value) && /\/(address|ddmAddress)$/.test(path)) {
    return `0x${value.toString(16).padStart(2, '0')} (${value})`;
  }
  return JSON.stringify(value) ?? String(value);
}

// ---- values a schema cannot check ---------------------------------------------------------------

const rangeOrder = ['min', 'warnMin', 'warnMax', 'max'] as const;

function checkRange(range: Range, path: string): BoardsIssue[] {
  const present = rangeOrder.filter((key) => range[key] !== undefined);
  const issues: BoardsIssue[] = [];
  for (let i = 0; i < present.length; i++) {
    for (let j = i + 1; j < present.length; j++) {
      const low = present[i] as (typeof rangeOrder)[number];
      const high = present[j] as (typeof rangeOrder)[number];
      if ((range[low] as number) > (range[high] as number)) {
        issues.push({ path: pointer(path, high), message: `${high} ${String(range[high])} is below ${low} ${String(range[low])}` });
      }
    }
  }
  return issues;
}

function checkGpioLine(name: string, line: GpioLineConfig, path: string): BoardsIssue[] {
  const issues: BoardsIssue[] = [];
  const keys = line.direction === 'out' ? (['edge', 'debounceMs'] as const) : (['initial'] as const);
  for (const key of keys) {
    if (line[key] !== undefined) {
      issues.push({ path: pointer(path, key), message: `${key} does not apply to ${line.direction === 'out' ? 'output' : 'input'} line ${JSON.stringify(name)}` });
    }
  }
  return issues;
}

/**
 * Quantities a board may read: the Modbus map gives each two input registers from 100 and keeps the
 * boot record at 1000 and after (firmware/modbus-service.ts), so 450 fit.
 */
export const maxQuantities = 450;

function checkValues(board: BoardConfig, path: string): BoardsIssue[] {
  const issues: BoardsIssue[] = [];
  for (const [name, line] of Object.entries(board.gpio ?? {})) issues.push(...checkGpioLine(name, line, pointer(pointer(path, 'gpio'), name)));
  board.components.forEach((component, c) => {
    const at = pointer(pointer(path, 'components'), c);
    for (const [quantity, range] of Object.entries(component.thresholds ?? {})) {
      issues.push(...checkRange(range, pointer(pointer(at, 'thresholds'), quantity)));
    }
    for (const issue of kindSpec(component.kind).check?.(component) ?? []) issues.push({ path: pointer(at, issue.field), message: issue.message });
  });
  const quantities = board.components.reduce((sum, component) => sum + kindSpec(component.kind).quantities.length, 0);
  if (quantities > maxQuantities) {
    issues.push({ path: pointer(path, 'components'), message: `the components read ${quantities} quantities; the Modbus register map holds at most ${maxQuantities}` });
  }
  (board.serial ?? []).forEach((port, p) => {
    const rs485 = port.rs485;
    if (!rs485) return;
    const at = pointer(pointer(pointer(path, 'serial'), p), 'rs485');
    if (rs485.direction === 'gpio' && rs485.deLine === undefined) {
      issues.push({ path: pointer(at, 'deLine'), message: 'direction "gpio" needs deLine: the output in the gpio table wired to the transceiver\'s DE' });
    }
    if (rs485.direction === 'kernel' && rs485.deLine !== undefined) {
      issues.push({ path: pointer(at, 'deLine'), message: 'direction "kernel" switches DE by the UART\'s RTS; deLine applies only to direction "gpio"' });
    }
    if (rs485.direction === 'gpio' && rs485.rtsWhileSending !== undefined) {
      issues.push({ path: pointer(at, 'rtsWhileSending'), message: 'rtsWhileSending applies only to direction "kernel"; a gpio DE line is driven high while sending' });
    }
  });
  if (board.watchdog?.kickIntervalMs !== undefined && board.watchdog.kickIntervalMs >= board.watchdog.timeoutS * 1000) {
    issues.push({
      path: pointer(pointer(path, 'watchdog'), 'kickIntervalMs'),
      message: `kicking every ${board.watchdog.kickIntervalMs} ms lets a ${board.watchdog.timeoutS} s watchdog expire; kick more often than the timeout`,
    });
  }
  board.services.forEach((service, s) => {
    const at = pointer(pointer(path, 'services'), s);
    if (service.protocol === 'modbus-tls' && service.tls === undefined) {
      issues.push({ path: pointer(at, 'tls'), message: 'protocol modbus-tls needs tls: { cert, key, ca, roles }' });
    }
    if ((service.kind ?? 'modbus') === 'modbus' && service.protocol !== 'modbus-tls' && service.tls !== undefined) {
      issues.push({ path: pointer(at, 'tls'), message: `tls applies only to protocol "modbus-tls", this service's is ${JSON.stringify(service.protocol)}` });
    }
    (service.writeAllow ?? []).forEach((address, w) => {
      if (!parseAddressRule(address)) {
        issues.push({ path: pointer(pointer(pointer(pointer(path, 'services'), s), 'writeAllow'), w), message: `${JSON.stringify(address)} is not an IP address or a CIDR subnet (10.0.0.0/24)` });
      }
    });
  });
  if (board.sim !== undefined && board.backend !== 'sim') {
    issues.push({ path: pointer(path, 'sim'), message: `sim settings apply only to backend "sim", this board's backend is ${JSON.stringify(board.backend)}` });
  }
  return issues;
}

// ---- kinds of service ---------------------------------------------------------------------------

/** Fields of a service entry that only some kinds read. */
const kindOnlyFields: Record<string, readonly ServiceKind[]> = {
  protocol: ['modbus'],
  unitIds: ['modbus'],
  writeAllow: ['modbus'],
  tls: ['modbus'],
  upstream: ['proxy'],
  connectTimeoutMs: ['proxy'],
  probe: ['proxy', 'guard'],
};

/**
 * Gate fields a guard takes. The others act on sockets (onFail's FIN, rechecks that reset held
 * connections, limits, idle and keepalive timers) or on held connections (reuse), and a guard never
 * has a socket: the daemon behind the port accepts its connections.
 */
const guardGateFields = new Set(['mode', 'reuse', 'failClosed', 'queue']);

interface WrittenFields {
  service: Set<string>;
  gate: Record<string, unknown>;
}

/** Per board and service index, the keys the file wrote (the schema reports anything malformed). */
function writtenServiceFields(data: unknown): Map<string, WrittenFields> {
  const written = new Map<string, WrittenFields>();
  const boards = (data as { boards?: unknown } | null)?.boards;
  if (!Array.isArray(boards)) return written;
  boards.forEach((board: unknown, b) => {
    const services = (board as { services?: unknown } | null)?.services;
    if (!Array.isArray(services)) return;
    services.forEach((service: unknown, s) => {
      if (typeof service !== 'object' || service === null) return;
      const gate = (service as { gate?: unknown }).gate;
      written.set(`${b}/${s}`, { service: new Set(Object.keys(service)), gate: typeof gate === 'object' && gate !== null ? { ...gate } : {} });
    });
  });
  return written;
}

/**
 * Each field where its kind reads it, and what a kind needs: a modbus entry its protocol, a proxy its
 * upstream, a guard a fixed port and before mode. Defaults the schema filled into fields another kind
 * reads are taken out again, and a guard's gate is set to what it does: before mode, no reuse.
 */
function checkServiceKinds(board: BoardConfig, path: string, written: Map<string, WrittenFields>): BoardsIssue[] {
  const issues: BoardsIssue[] = [];
  const b = Number(path.slice('/boards/'.length));
  board.services.forEach((service, s) => {
    const at = pointer(pointer(path, 'services'), s);
    const kind = service.kind ?? 'modbus';
    const fields = written.get(`${b}/${s}`) ?? { service: new Set<string>(), gate: {} };
    const record = service as unknown as Record<string, unknown>;
    for (const [field, only] of Object.entries(kindOnlyFields)) {
      if (only.includes(kind)) continue;
      if (fields.service.has(field)) issues.push({ path: pointer(at, field), message: `${field} applies to services of kind ${only.map((k) => `"${k}"`).join(' or ')} only; this one is kind "${kind}"` });
      else delete record[field];
    }
    if (kind === 'modbus' && service.protocol === undefined) issues.push({ path: at, message: 'a service of kind "modbus" needs "protocol" ("modbus-tcp" or "modbus-tls")' });
    if (kind === 'proxy' && service.upstream === undefined) issues.push({ path: at, message: 'a service of kind "proxy" needs "upstream": the HOST:PORT it splices admitted clients to' });
    if (kind === 'proxy' && service.upstream !== undefined && parseHostPort(service.upstream) === undefined) {
      issues.push({ path: pointer(at, 'upstream'), message: `${JSON.stringify(service.upstream)} is not HOST:PORT with a port 1-65535` });
    }
    if (kind === 'guard') {
      const listen = parseHostPort(service.listen);
      if (listen === undefined) {
        issues.push({ path: pointer(at, 'listen'), message: `a guard listens nowhere itself: "listen" is where the guarded process listens, and port 0 cannot name it (${JSON.stringify(service.listen)})` });
      } else if (isIP(listen.host) === 0) {
        issues.push({ path: pointer(at, 'listen'), message: `a guard's rules match the destination address: write the IP address the guarded process binds (0.0.0.0 or :: for all), not ${JSON.stringify(listen.host)}` });
      }
      for (const [field, value] of Object.entries(fields.gate)) {
        const there = pointer(pointer(at, 'gate'), field);
        if (!guardGateFields.has(field)) issues.push({ path: there, message: `${field} does not apply to a guard: handcheck holds none of its connections (a guard takes ${[...guardGateFields].join(', ')})` });
        else if (field === 'mode' && value !== 'before') issues.push({ path: there, message: `a guard holds SYNs: its mode is "before", not ${JSON.stringify(value)}` });
        else if (field === 'reuse' && value !== 'never') issues.push({ path: there, message: `a guard holds no connection whose verdict could be reused: its reuse is "never", not ${JSON.stringify(value)}` });
      }
      service.gate.mode = 'before';
      service.gate.reuse = 'never';
    }
  });
  return issues;
}

// ---- duplicates ---------------------------------------------------------------------------------

/** Remembers the first path that claimed each value and reports every later claim. */
class Claims {
  private readonly first = new Map<string, string>();

  constructor(private readonly issues: BoardsIssue[]) {}

  claim(key: string, path: string, message: (firstPath: string) => string): void {
    const earlier = this.first.get(key);
    if (earlier === undefined) this.first.set(key, path);
    else this.issues.push({ path, message: message(earlier) });
  }
}

const wildcardHosts = new Set(['0.0.0.0', '::', '']);

function checkDuplicates(file: BoardsFile): BoardsIssue[] {
  const issues: BoardsIssue[] = [];
  const boardIds = new Claims(issues);
  file.boards.forEach((board, b) => {
    const path = `/boards/${b}`;
    boardIds.claim(board.id, pointer(path, 'id'), (first) => `board id ${JSON.stringify(board.id)} is already used by ${first}`);

    const bySection = <T>(section: string, entries: T[] | undefined, key: (entry: T) => string, field: string, what: string): void => {
      const claims = new Claims(issues);
      (entries ?? []).forEach((entry, i) => {
        const value = key(entry);
        claims.claim(value, pointer(pointer(pointer(path, section), i), field), (first) => `${what} ${JSON.stringify(value)} is already used by ${first}`);
      });
    };
    bySection('i2c', board.i2c, (bus) => bus.id, 'id', 'I2C bus id');
    bySection('i2c', board.i2c, (bus) => bus.device, 'device', 'I2C device');
    bySection('serial', board.serial, (port) => port.id, 'id', 'serial port id');
    bySection('serial', board.serial, (port) => port.path, 'path', 'serial device');
    bySection('net', board.net, (net) => net.name, 'name', 'network interface');
    bySection('components', board.components, (component) => component.id, 'id', 'component id');
    bySection('services', board.services, (service) => service.id, 'id', 'service id');

    // The kernel grants a line to one requester; a second entry for it would fail with EBUSY at run time.
    const lines = new Claims(issues);
    for (const [name, line] of Object.entries(board.gpio ?? {})) {
      lines.claim(`${line.chip}\0${line.line}`, pointer(pointer(pointer(path, 'gpio'), name), 'line'), (first) => `GPIO ${line.chip}/${line.line} is already claimed by ${first}`);
    }

    const addresses = new Claims(issues);
    board.components.forEach((component, c) => {
      const bus = i2cBusOf(component);
      if (bus === undefined) return;
      for (const { field, address } of i2cAddresses(component)) {
        const hex = `0x${address.toString(16).padStart(2, '0')}`;
        addresses.claim(`${bus}\0${address}`, pointer(pointer(pointer(path, 'components'), c), field), (first) => `I2C address ${hex} on bus ${JSON.stringify(bus)} is already taken by ${first}`);
      }
    });

    const listening: { host: string; port: number; path: string }[] = [];
    board.services.forEach((service, s) => {
      const at = pointer(pointer(pointer(path, 'services'), s), 'listen');
      // The schema's pattern admitted the text; an address it cannot parse is reported by the firmware.
      const parsed = parseHostPort(service.listen, { allowPortZero: true });
      if (!parsed) {
        issues.push({ path: at, message: `${JSON.stringify(service.listen)} is not HOST:PORT with a port 0-65535` });
        return;
      }
      const { host, port } = parsed;
      // Port 0 asks the kernel for a free port, so any number of services may use it.
      if (port === 0) return;
      const clash = listening.find((other) => other.port === port && (other.host === host || wildcardHosts.has(other.host) || wildcardHosts.has(host)));
      if (clash) issues.push({ path: at, message: `${service.listen} overlaps ${clash.path} on port ${port}` });
      listening.push({ host, port, path: at });
    });

    // One NFQUEUE is bound fail-open or fail-closed as a whole (--queue-bypass is per queue), so
    // before-mode services that share a queue must agree on failClosed.
    const queues = new Map<number, { failClosed: boolean; path: string }>();
    board.services.forEach((service, s) => {
      const { mode, queue, failClosed } = service.gate;
      if (mode !== 'before') return;
      const at = pointer(pointer(pointer(pointer(path, 'services'), s), 'gate'), 'queue');
      const first = queues.get(queue);
      if (!first) queues.set(queue, { failClosed, path: at });
      else if (first.failClosed !== failClosed) {
        issues.push({ path: at, message: `NFQUEUE ${queue} is already used by ${first.path} with failClosed ${String(first.failClosed)}; give this service another queue or the same failClosed` });
      }
    });
  });
  return issues;
}

// ---- references ---------------------------------------------------------------------------------

function checkReferences(board: BoardConfig, path: string): BoardsIssue[] {
  const issues: BoardsIssue[] = [];
  const gpio = board.gpio ?? {};
  const busIds = new Set((board.i2c ?? []).map((bus) => bus.id));
  const serialIds = new Set((board.serial ?? []).map((port) => port.id));
  const netNames = new Set((board.net ?? []).map((net) => net.name));
  const componentIds = new Map(board.components.map((component) => [component.id, component]));

  const known = (names: Iterable<string>): string => {
    const list = [...names];
    return list.length > 0 ? `known: ${list.join(', ')}` : 'none defined';
  };
  const line = (name: string, at: string, direction: 'in' | 'out', role: string): void => {
    const entry = gpio[name];
    if (!entry) issues.push({ path: at, message: `${role} names GPIO line ${JSON.stringify(name)}, which the gpio table does not define (${known(Object.keys(gpio))})` });
    else if (entry.direction !== direction) {
      issues.push({ path: at, message: `${role} needs an ${direction === 'in' ? 'input' : 'output'} line, but GPIO line ${JSON.stringify(name)} has direction ${JSON.stringify(entry.direction)}` });
    }
  };

  board.components.forEach((component, c) => {
    const at = pointer(pointer(path, 'components'), c);
    const role = `component ${JSON.stringify(component.id)}`;
    const value = (field: string): string => String((component as unknown as Record<string, unknown>)[field]);
    for (const reference of kindSpec(component.kind).references) {
      switch (reference.to) {
        case 'i2c-bus':
          if (!busIds.has(value(reference.field))) {
            issues.push({ path: pointer(at, reference.field), message: `${role} is on I2C bus ${JSON.stringify(value(reference.field))}, which the board does not define (${known(busIds)})` });
          }
          break;
        case 'net-interface':
          if (!netNames.has(value(reference.field))) {
            issues.push({ path: pointer(at, reference.field), message: `${role} watches interface ${JSON.stringify(value(reference.field))}, which the board's net list does not define (${known(netNames)})` });
          }
          break;
        case 'serial-port':
          if (!serialIds.has(value(reference.field))) {
            issues.push({ path: pointer(at, reference.field), message: `${role} uses serial port ${JSON.stringify(value(reference.field))}, which the board does not define (${known(serialIds)})` });
          }
          break;
        case 'watchdog':
          if (!board.watchdog) issues.push({ path: at, message: `${role} diagnoses the board's watchdog, but the board has no "watchdog" entry` });
          break;
        case 'gpio-line':
          break;
      }
    }
    for (const { field, role: within, name, direction } of gpioReferences(component)) {
      const where = within === undefined ? pointer(at, field) : pointer(pointer(at, field), within);
      // A component's one `line` is the component itself; other fields and roles are named.
      line(name, where, direction, field === 'line' ? role : `${role} ${within ?? field}`);
    }
  });

  if (board.statusLed !== undefined) line(board.statusLed, pointer(path, 'statusLed'), 'out', 'statusLed');

  // A DE line is the serial port's alone: anything else writing it would key the transceiver.
  const otherUses = new Map<string, string>();
  if (board.statusLed !== undefined) otherUses.set(board.statusLed, 'statusLed');
  for (const component of board.components) {
    for (const { name } of gpioReferences(component)) otherUses.set(name, `component ${JSON.stringify(component.id)}`);
  }
  (board.serial ?? []).forEach((port, p) => {
    const deLine = port.rs485?.direction === 'gpio' ? port.rs485.deLine : undefined;
    if (deLine === undefined) return;
    const at = pointer(pointer(pointer(pointer(path, 'serial'), p), 'rs485'), 'deLine');
    line(deLine, at, 'out', `serial port ${JSON.stringify(port.id)} rs485.deLine`);
    const other = otherUses.get(deLine);
    if (other) issues.push({ path: at, message: `GPIO line ${JSON.stringify(deLine)} drives serial port ${JSON.stringify(port.id)}'s RS-485 DE, but ${other} uses it too; give the DE its own line` });
    otherUses.set(deLine, `serial port ${JSON.stringify(port.id)}`);
  });

  board.services.forEach((service, s) => {
    service.dependsOn.forEach((id, d) => {
      if (!componentIds.has(id)) {
        issues.push({ path: pointer(pointer(pointer(pointer(path, 'services'), s), 'dependsOn'), d), message: `service ${JSON.stringify(service.id)} depends on component ${JSON.stringify(id)}, which the board does not define (${known(componentIds.keys())})` });
      }
    });
  });

  for (const [id, values] of Object.entries(board.sim?.initial ?? {})) {
    const at = pointer(pointer(pointer(path, 'sim'), 'initial'), id);
    const component = componentIds.get(id);
    if (!component) {
      issues.push({ path: at, message: `sim.initial names component ${JSON.stringify(id)}, which the board does not define (${known(componentIds.keys())})` });
      continue;
    }
    const quantities = kindSpec(component.kind).quantities;
    for (const quantity of Object.keys(values)) {
      if (!quantities.includes(quantity)) {
        issues.push({ path: pointer(at, quantity), message: `a ${component.kind} has no quantity ${JSON.stringify(quantity)} (it reads: ${quantities.join(', ') || 'nothing'})` });
      }
    }
  }
  return issues;
}

// ---- freezing -----------------------------------------------------------------------------------

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
