import { readFileSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import pino from 'pino';
import { Appliance, type ApplianceOptions } from '../../app/appliance.js';
import type { GateDecision } from '../../firmware/gate/gate.js';
import type { BoardConfig, GatePolicyInput } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import type { FaultKind } from '../../sim/faults.js';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { until } from '../helpers/wait.js';

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

/**
 * Connects to the appliance's first service and resolves with what its gate made of the connection:
 * 'open' once the gate's decision for it is to accept, else the client's 'reset' (RST) or 'closed'
 * (FIN), or 'refused'. Decided by events alone, so a slow machine cannot pass a late RST for 'open';
 * the bound only turns a hang into a failure. Nothing is sent: a request would start reads of its own.
 * Resolves once the gate has let the connection go, so that the next connect cannot reuse its verdict.
 */
export async function attempt(appliance: Appliance, boundMs = 10_000): Promise<'reset' | 'closed' | 'open' | 'refused'> {
  const { gate, port } = appliance.services[0]!;
  const heldBefore = gate.stats().held;
  const accepted = new Set<string>();
  let peer: string | undefined;
  let settle: (result: 'reset' | 'closed' | 'open' | 'refused') => void = () => undefined;
  const onDecision = (decision: GateDecision): void => {
    if (decision.action !== 'accept') return;
    accepted.add(decision.peer);
    if (decision.peer === peer) settle('open');
  };
  gate.on('decision', onDecision);
  const socket = connect({ host: '127.0.0.1', port });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection to ${port}: no decision, RST or FIN within ${boundMs} ms`)), boundMs);
      settle = (result) => {
        clearTimeout(timer);
        resolve(result);
      };
      socket.on('data', () => undefined);
      socket.once('connect', () => {
        peer = `127.0.0.1:${socket.localPort}`;
        if (accepted.has(peer)) settle('open');
      });
      socket.once('end', () => settle('closed'));
      socket.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET') settle('reset');
        else if (err.code === 'ECONNREFUSED') settle('refused');
        else {
          clearTimeout(timer);
          reject(err);
        }
      });
    });
  } finally {
    gate.off('decision', onDecision);
    socket.destroy();
    await until(() => gate.stats().held <= heldBefore, 'the gate to let the connection go');
  }
}

/** A connection the gate admitted: resolves once the service has answered a request on it. */
export async function admitted(port: number): Promise<Socket> {
  const socket = await open(port);
  socket.write(readInputRegisters(1, 0, 1));
  await new Promise<void>((resolve, reject) => {
    socket.once('data', () => resolve());
    socket.once('error', reject);
    socket.once('end', () => reject(new Error('closed by the gate instead of admitted')));
  });
  return socket;
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
  /** `target:kind` of faults the entry judges degraded, which by design let connections through. */
  degrading: Set<string>;
} {
  const service = config.services[0]!;
  // A starved watchdog shows at the keeper's next kick, seconds later, not at the next connect: its
  // own tests (keeper-led.test.ts) cover it.
  const dependencies = config.components.filter((c) => service.dependsOn.includes(c.id) && c.kind !== 'watchdog');
  const buses = new Set(dependencies.flatMap((c) => ('bus' in c ? [c.bus] : [])));
  const healthyLevel = new Map<string, 0 | 1>();
  for (const c of dependencies) {
    if (c.kind === 'gpio-status') healthyLevel.set(c.line, c.expect);
    if (c.kind === 'sfp' && c.lines) for (const line of Object.values(c.lines)) if (line) healthyLevel.set(line, 0);
  }
  // Throttling with only a warnMax (the Pi entries') degrades the supply without cutting connections.
  const degrading = new Set(dependencies.filter((c) => c.kind === 'power' && c.thresholds?.throttled?.max === undefined).map((c) => `${c.id}:throttled`));
  return {
    targets: [...new Set([...dependencies.map((c) => c.id), ...buses, ...healthyLevel.keys()])],
    healthyLevel,
    degrading,
    params: { drift: { ratePerS: 1e6 }, 'crc-errors': { ratePerS: 1e6 } },
  };
}
