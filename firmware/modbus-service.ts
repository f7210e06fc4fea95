/**
 * The appliance's Modbus TCP service: the board behind a Modbus register map (README, "Register
 * map"), served on every connection the gate lets through.
 *
 * - Input registers: 0..N-1 the state of each component (0 unknown, 1 ok, 2 degraded, 3 failed);
 *   from 100, two registers per quantity, a signed 32-bit value in thousandths of the unit, high word
 *   first (0x8000 0x0000 when there is no reading).
 * - Discrete inputs: the board's GPIO inputs, in the order of its `gpio` table.
 * - Coils: its GPIO outputs except those the firmware drives itself (status LED, link LEDs, RS-485 DE).
 * - Input registers from 1000: the boot record (bootRegisters).
 * - Device identification (43/14): the extended objects 0x80.. name each component's state and why.
 * - Holding registers: 0..15 an asset tag, 32 ASCII characters, two per register, kept until restart.
 */
import type { X509Certificate } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { addressMatcher, isLoopback } from '../config/address-list.js';
import type { GpioLineConfig, ServiceConfig, TlsConfig } from '../config/board-config.js';
import { maxQuantities } from '../config/boards.js';
import { gpioReferences, kindSpec } from '../config/component-kinds.js';
import type { BoardHal } from '../hal/board.js';
import type { GpioLine } from '../hal/gpio.js';
import { type BootStatus, resetCauses } from './boot-record.js';
import type { DeviceStateManager } from './device-state.js';
import type { ServiceHandler } from './firmware.js';
import { type DeviceIdentification, type ModbusDataModel, firstExtendedObject } from './modbus/data-model.js';
import { LogSummary } from './log-summary.js';
import { asciiObjectText } from './modbus/device-id.js';
import { ModbusIllegalAddressError } from './modbus/errors.js';
import { isWriteFunction } from './modbus/pdu.js';
import { ROLE_OID, roleOf } from './modbus/role.js';
import { type TlsTermination, TlsConfigError, tlsTermination } from './tls-termination.js';
import { type ModbusSession, serveModbus } from './modbus/session.js';

export const quantityBase = 100;
export const assetTagRegisters = 16;
/**
 * The boot record's input registers, past any quantity map a board can have (the boards loader keeps
 * quantities below it): boot count (32 bits, high word first), uptime in s (32 bits, high word first),
 * the last reset cause (resetCauses' index: 0 unknown, 1 power-on, 2 watchdog, 3 orderly), the
 * unclean resets (watchdog, unknown) within the reset-loop window, and the board's reset-loop limit
 * (`resetLoopCount`, 0 without one), so a monitor can tell a loop from the count alone. All 0 when the
 * board could not say which boot this is.
 */
export const bootBase = quantityBase + 2 * maxQuantities;
export const bootRegisters = 7;
const stateCodes = { unknown: 0, ok: 1, degraded: 2, failed: 3 } as const;
/** Readings older than this are refreshed before a read of input registers is answered. */
const freshForMs = 1000;
/** A model call outstanding longer than this makes the service unhealthy. */
const unresponsiveAfterMs = 1000;

export interface MapEntry {
  register: number;
  component: string;
  quantity: string;
}

export function quantityMap(board: BoardHal['config']): MapEntry[] {
  const entries: MapEntry[] = [];
  for (const component of board.components) {
    // Register order is the driver's quantity list, so the map never depends on what a reading happens to hold.
    for (const quantity of kindSpec(component.kind).quantities) {
      entries.push({ register: quantityBase + 2 * entries.length, component: component.id, quantity });
    }
  }
  return entries;
}

function checkRange(table: string, size: number, address: number, quantity: number): void {
  if (address < 0 || address + quantity > size) throw new ModbusIllegalAddressError(table, address, quantity, size);
}

class BoardDataModel implements ModbusDataModel {
  private readonly quantities: MapEntry[];
  private readonly inputs: Array<[string, GpioLineConfig]>;
  private readonly outputs: Array<[string, GpioLineConfig]>;
  private readonly lines = new Map<string, Promise<GpioLine>>();
  private readonly assetTag = new Array<number>(assetTagRegisters).fill(0);
  /** Start times of model calls in progress, to tell a responsive service from a stuck one. */
  readonly pending = new Set<number>();

  constructor(
    private readonly board: BoardHal,
    private readonly devices: DeviceStateManager,
    private readonly boot: () => BootStatus | undefined,
  ) {
    this.quantities = quantityMap(board.config);
    const gpio = Object.entries(board.config.gpio ?? {});
    this.inputs = gpio.filter(([, l]) => l.direction === 'in');
    // Output lines a component names (link LEDs) are driven by the firmware, like the status LED and
    // an RS-485 port's DE line, which the serial port holds and no client may key.
    const firmwareOwned = new Set([
      board.config.statusLed,
      ...board.config.components.flatMap((c) => gpioReferences(c).filter((r) => r.direction === 'out').map((r) => r.name)),
      ...(board.config.serial ?? []).map((port) => port.rs485?.deLine),
    ]);
    this.outputs = gpio.filter(([name, l]) => l.direction === 'out' && !firmwareOwned.has(name));
  }

  private async track<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    this.pending.add(started);
    try {
      return await work();
    } finally {
      this.pending.delete(started);
    }
  }

  private line(name: string, spec: GpioLineConfig): Promise<GpioLine> {
    let line = this.lines.get(name);
    if (!line) {
      line = this.board.gpio.open(spec);
      line.catch(() => this.lines.delete(name));
      this.lines.set(name, line);
    }
    return line;
  }

  async readInputRegisters(address: number, quantity: number): Promise<number[]> {
    const states = this.devices.states();
    const size = bootBase + bootRegisters;
    checkRange('input registers', size, address, quantity);
    return this.track(async () => {
      const now = this.board.clock.now();
      if (states.some((s) => s.diagnosedAt === null || now - s.diagnosedAt > freshForMs)) await this.devices.diagnose();
      const registers = new Array<number>(size).fill(0);
      this.devices.states().forEach((s, i) => {
        registers[i] = stateCodes[s.state];
      });
      this.quantities.forEach(({ register, component, quantity: name }) => {
        const value = this.devices.state(component).reading?.[name];
        const scaled = typeof value === 'number' && Number.isFinite(value) ? Math.round(value * 1000) : -0x80000000;
        const clamped = Math.max(-0x80000000, Math.min(0x7fffffff, scaled)) >>> 0;
        registers[register] = clamped >>> 16;
        registers[register + 1] = clamped & 0xffff;
      });
      const boot = this.boot();
      if (boot) {
        const uptime = Math.min(boot.uptimeS, 0xffffffff);
        const count = Math.min(boot.count, 0xffffffff);
        registers.splice(bootBase, bootRegisters, count >>> 16, count & 0xffff, uptime >>> 16, uptime & 0xffff, resetCauses.indexOf(boot.lastResetCause), Math.min(boot.uncleanResets, 0xffff), boot.resetLoop?.count ?? 0);
      }
      return registers.slice(address, address + quantity);
    });
  }

  async readDiscreteInputs(address: number, quantity: number): Promise<boolean[]> {
    checkRange('discrete inputs', this.inputs.length, address, quantity);
    return this.track(() =>
      Promise.all(this.inputs.slice(address, address + quantity).map(async ([name, spec]) => (await (await this.line(name, spec)).read()) === 1)),
    );
  }

  async readCoils(address: number, quantity: number): Promise<boolean[]> {
    checkRange('coils', this.outputs.length, address, quantity);
    return this.track(() =>
      Promise.all(this.outputs.slice(address, address + quantity).map(async ([name, spec]) => (await (await this.line(name, spec)).read()) === 1)),
    );
  }

  async writeCoils(address: number, values: readonly boolean[]): Promise<void> {
    checkRange('coils', this.outputs.length, address, values.length);
    const targets = this.outputs.slice(address, address + values.length);
    await this.track(async () => {
      const lines = await Promise.all(targets.map(([name, spec]) => this.line(name, spec)));
      await Promise.all(lines.map((line, i) => line.write(values[i] ? 1 : 0)));
    });
  }

  readHoldingRegisters(address: number, quantity: number): number[] {
    checkRange('holding registers', this.assetTag.length, address, quantity);
    return this.assetTag.slice(address, address + quantity);
  }

  writeRegisters(address: number, values: readonly number[]): void {
    checkRange('holding registers', this.assetTag.length, address, values.length);
    values.forEach((value, i) => {
      this.assetTag[address + i] = value;
    });
  }

  /** With one extended object per component, in register order: `ID STATE` and, when it is not ok, `: REASON`. */
  async deviceIdentification(): Promise<DeviceIdentification> {
    return this.track(async () => {
      const now = this.board.clock.now();
      if (this.devices.states().some((s) => s.diagnosedAt === null || now - s.diagnosedAt > freshForMs)) await this.devices.diagnose();
      return {
        vendorName: 'handcheck',
        productCode: asciiObjectText(this.board.config.id),
        majorMinorRevision: process.env.npm_package_version ?? '0.1',
        vendorUrl: 'https://github.com/handcheck/handcheck',
        productName: 'handcheck appliance',
        modelName: asciiObjectText(this.board.config.name),
        userApplicationName: 'handcheck firmware',
        extended: this.devices
          .states()
          .slice(0, 0x100 - firstExtendedObject)
          .map((c) => asciiObjectText(c.state === 'ok' || !c.reason ? `${c.id} ${c.state}` : `${c.id} ${c.state}: ${c.reason}`)),
      };
    });
  }

  async close(): Promise<void> {
    for (const line of [...this.lines.values()].reverse()) await (await line.catch(() => undefined))?.close();
    this.lines.clear();
  }
}

function readOnly(functionCode: number): boolean {
  return !isWriteFunction(functionCode);
}

export interface ModbusServiceOptions {
  board: BoardHal;
  devices: DeviceStateManager;
  boot: () => BootStatus | undefined;
  service: Readonly<ServiceConfig>;
  logger: Logger;
}

const nothing = (): boolean => false;

/**
 * MODBUS/TCP Security's authorization: a client may use the function codes its certificate's role is
 * given in `tls.roles`. A certificate without a role is handed to the rules as the spec's NULL role,
 * and a role the rules do not name, like a malformed one, is given nothing: the client stays connected
 * and every request is answered exception 01, the spec's answer to a role without the right.
 */
function roleAuthorization(tls: Readonly<TlsConfig>, logger: Logger): (certificate: X509Certificate, peer: string) => (functionCode: number) => boolean {
  const roles = new Map(Object.entries(tls.roles).map(([role, codes]) => [role, new Set(codes)]));
  const noRights = 'every request will be answered exception 01';
  const logs = {
    none: new LogSummary(logger, 'warn', `TLS client's certificate carries no Modbus role (extension ${ROLE_OID}): the NULL role has no rights in tls.roles; ${noRights}`),
    unknown: new LogSummary(logger, 'warn', `TLS client's role is not in tls.roles; ${noRights}`),
    malformed: new LogSummary(logger, 'warn', `TLS client's role extension is malformed, taken as no role; ${noRights}`),
  };
  return (certificate, peer) => {
    const found = roleOf(certificate.raw);
    const context = { action: 'tls-role', peer, subject: certificate.subject.replaceAll('\n', ', ') };
    if (found.kind === 'none') logs.none.note({ ...context, role: null });
    else if (found.kind === 'malformed') logs.malformed.note({ ...context, role: null, error: found.reason });
    else {
      const codes = roles.get(found.role);
      if (codes) {
        logger.debug({ ...context, role: found.role, functionCodes: [...codes] }, 'TLS client admitted with its role');
        return (functionCode) => codes.has(functionCode);
      }
      logs.unknown.note({ ...context, role: found.role, roles: [...roles.keys()] });
    }
    return nothing;
  };
}

export function createModbusService({ board, devices, boot, service, logger }: ModbusServiceOptions): ServiceHandler {
  const model = new BoardDataModel(board, devices, boot);
  const sessions = new Set<Socket>();
  const writers = service.writeAllow ? addressMatcher(service.writeAllow) : undefined;
  // Without writeAllow, whether anyone may write depends on where the gate bound; until it says, no one
  // may (no connection is handed over before then anyway).
  let anyoneWrites = false;
  const notModbus = new LogSummary(logger, 'warn', 'closing a connection: the byte stream is not Modbus TCP');

  const serve = (socket: Socket, permits: ((functionCode: number) => boolean) | undefined): void => {
    const session: ModbusSession = serveModbus(socket, {
      model,
      ...(service.unitIds ? { unitIds: [...service.unitIds] } : {}),
      ...(permits ? { permits } : {}),
      logger,
      notModbus: (context) => notModbus.note(context),
    });
    sessions.add(socket);
    void session.closed.then(() => sessions.delete(socket));
  };

  let termination: TlsTermination | undefined;
  if (service.protocol === 'modbus-tls') {
    if (!service.tls) throw new TlsConfigError(service.id, 'protocol modbus-tls needs tls');
    const authorize = roleAuthorization(service.tls, logger);
    termination = tlsTermination({
      service: service.id,
      tls: service.tls,
      logger,
      onSecure: (socket, certificate) => {
        const remote = socket.remoteAddress ?? '';
        const role = authorize(certificate, `${remote}:${socket.remotePort ?? 0}`);
        // writeAllow, when given, narrows a role's rights by address.
        const writes = writers ? writers(remote) : true;
        serve(socket, writes ? role : (functionCode) => role(functionCode) && !isWriteFunction(functionCode));
      },
    });
  }

  return {
    listening(address: AddressInfo): void {
      if (writers || termination) return;
      anyoneWrites = isLoopback(address.address);
      if (!anyoneWrites) {
        logger.warn(
          { listen: address.address, port: address.port },
          `service ${service.id} listens beyond loopback and its entry has no writeAllow: writes (function codes 5, 6, 15, 16) are refused with exception 01. ` +
            'To allow them, list the clients in the service\'s writeAllow as addresses or subnets ("writeAllow": ["10.0.0.0/24"]; ["0.0.0.0/0", "::/0"] for everyone)' +
            ', or serve protocol modbus-tls, where client certificates\' roles decide',
        );
      }
    },
    onConnection(socket: Socket): void {
      if (termination) {
        termination.onConnection(socket);
        return;
      }
      const writes = writers ? writers(socket.remoteAddress ?? '') : anyoneWrites;
      serve(socket, writes ? undefined : readOnly);
    },
    health() {
      let oldest = 0;
      const now = performance.now();
      for (const started of model.pending) oldest = Math.max(oldest, now - started);
      if (oldest > unresponsiveAfterMs) {
        return { ok: false, code: 'ERR_APP_UNRESPONSIVE', reason: `a Modbus request has waited ${Math.round(oldest)} ms for the board` };
      }
      return { ok: true };
    },
    async close(): Promise<void> {
      for (const socket of sessions) socket.destroy();
      await model.close();
    },
  };
}
