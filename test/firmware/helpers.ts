import { readFileSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import pino from 'pino';
import { Appliance, type ApplianceOptions } from '../../app/appliance.js';
import type { BoardConfig, GatePolicyInput } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import type { FaultKind } from '../../sim/faults.js';
import { parseBoards, selectBoard } from '../../config/boards.js';

export const boards = parseBoards(readFileSync(new URL('../../boards.json', import.meta.url), 'utf8'), 'boards.json');

/** The sim appliance's entry with the Modbus service's gate policy replaced and everything on port 0. */
export function applianceConfig(gate: GatePolicyInput = {}, patch: (config: BoardConfig) => BoardConfig = (c) => c): BoardConfig {
  const base = structuredClone(selectBoard(boards, 'sim-appliance')) as BoardConfig;
  base.services = base.services.map((s) => ({ ...s, listen: '127.0.0.1:0', gate: gatePolicy({ ...s.gate, ...gate }) }));
  return patch(base);
}

export async function startAppliance(config: BoardConfig, options: Partial<ApplianceOptions> = {}): Promise<{ appliance: Appliance; port: number }> {
  const appliance = await Appliance.start({ config, logger: pino({ level: 'silent' }), control: '', ...options });
  return { appliance, port: appliance.services[0]!.port };
}

/** Opens a connection and resolves once it is established. */
export function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Connects and resolves with what became of the connection within `ms` (see `fate`). */
export async function attempt(port: number, ms: number): Promise<'reset' | 'closed' | 'open' | 'refused'> {
  let socket: Socket;
  try {
    socket = await open(port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNRESET') return 'reset';
    if (code === 'ECONNREFUSED') return 'refused';
    throw err;
  }
  const result = await fate(socket, ms);
  socket.destroy();
  return result;
}

/** Resolves with how a connection ended: 'reset' (RST), 'closed' (FIN), or 'open' if neither within `ms`. */
export function fate(socket: Socket, ms: number): Promise<'reset' | 'closed' | 'open'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms);
    socket.on('data', () => undefined);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNRESET' ? 'reset' : 'closed');
    });
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

/** A Modbus TCP read of input registers, as raw bytes: enough to prove the service answers. */
export function readInputRegisters(transactionId: number, address: number, quantity: number): Buffer {
  const frame = Buffer.alloc(12);
  frame.writeUInt16BE(transactionId, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(6, 4);
  frame[6] = 1;
  frame[7] = 4;
  frame.writeUInt16BE(address, 8);
  frame.writeUInt16BE(quantity, 10);
  return frame;
}

/**
 * The fault targets a service depends on - its components, their buses, and the GPIO lines they
 * judge - with each line's healthy physical level (pinning a line there is no fault), and fault
 * parameters steep enough to cross the limits between two diagnoses.
 */
export function serviceFaultMatrix(config: BoardConfig): {
  targets: string[];
  healthyLevel: Map<string, 0 | 1>;
  params: Partial<Record<FaultKind, Record<string, number>>>;
} {
  const service = config.services[0]!;
  const dependencies = config.components.filter((c) => service.dependsOn.includes(c.id));
  const buses = new Set(dependencies.flatMap((c) => ('bus' in c ? [c.bus] : [])));
  const healthyLevel = new Map<string, 0 | 1>();
  for (const c of dependencies) {
    if (c.kind === 'gpio-status') healthyLevel.set(c.line, c.expect);
    if (c.kind === 'sfp' && c.lines) for (const line of Object.values(c.lines)) if (line) healthyLevel.set(line, 0);
  }
  return {
    targets: [...new Set([...dependencies.map((c) => c.id), ...buses, ...healthyLevel.keys()])],
    healthyLevel,
    params: { drift: { ratePerS: 1e6 }, 'crc-errors': { ratePerS: 1e6 } },
  };
}
