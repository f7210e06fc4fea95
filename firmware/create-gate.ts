/**
 * A gate for a server the firmware author owns (the library's `createGate`): the device-state
 * manager's components and the author's own checks make the self-diagnosis, and every connection the
 * gate admits is handed to their `net.Server`, `http.Server` or `tls.Server` (as its 'connection'
 * event, which is how those servers take a socket) or to their own function. The gate listens; their
 * server does not.
 */
import type { Server, Socket } from 'node:net';
import { type Logger, pino } from 'pino';
import type { GatePolicyInput } from '../config/board-config.js';
import { HandcheckError } from '../config/errors.js';
import { gatePolicy } from '../config/gate-policy.js';
import { type DeviceStateManager, UnknownComponentError } from './device-state.js';
import { EventLoopMonitor } from './event-loop.js';
import { Gate } from './gate/gate.js';
import { selfDiagnosis } from './self-diagnosis.js';
import type { Failure } from './verdict.js';

/** What one of the author's checks says: healthy, or why not (with an `ERR_*` code of theirs, if they have one). */
export type CheckResult = { ok: true } | { ok: false; reason: string; code?: string };

/**
 * One of the author's own checks: a queue not backed up, a database reachable, a licence valid. Runs
 * alongside the components on every diagnosis and should honour `signal`, which aborts at the
 * diagnosis deadline. Throwing or rejecting counts as failed.
 */
export type ServiceCheck = (signal: AbortSignal) => CheckResult | Promise<CheckResult>;

export interface CreateGateOptions {
  /** The service's name, in logs, decisions and verdicts. */
  service: string;
  devices: DeviceStateManager;
  /** Component ids the service depends on. Default: every component of the board. */
  dependsOn?: readonly string[];
  /** The author's own checks by name; a failed one is a failure of component `name`. */
  checks?: Readonly<Record<string, ServiceCheck>>;
  /** The gate policy as a board entry's `gate` object spells it; the same defaults apply. */
  policy?: GatePolicyInput;
  /** Default: pino at info on stdout. */
  logger?: Logger;
  /** Where admitted connections go: a server (emitted as its 'connection'), or a function. One of the two. */
  server?: Server;
  onConnection?: (socket: Socket) => void;
}

export class GateOptionsError extends HandcheckError {
  constructor(service: string, message: string) {
    super('ERR_GATE_OPTIONS', `service ${service}: ${message}`);
  }
}

/** Code of a failure from an author's check that gave none of its own. */
export const ERR_APP_CHECK = 'ERR_APP_CHECK';

/** One event loop per process, so one monitor for every gate made here; its timer does not hold the process open. */
let eventLoop: EventLoopMonitor | undefined;

async function run(name: string, check: ServiceCheck, signal: AbortSignal): Promise<Failure | undefined> {
  try {
    const result = await check(signal);
    return result.ok ? undefined : { component: name, code: result.code ?? ERR_APP_CHECK, reason: result.reason };
  } catch (err) {
    return { component: name, code: ERR_APP_CHECK, reason: `the check threw: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * A gate in front of the author's server, not yet listening: `await gate.listen(host, port)`, and
 * `gate.close()` to stop. Throws ERR_GATE_OPTIONS for a missing or doubled destination,
 * ERR_UNKNOWN_COMPONENT for a `dependsOn` the board lacks, ERR_BOARDS_SCHEMA for a bad policy field.
 */
export function createGate(options: CreateGateOptions): Gate {
  const { service, devices, server, onConnection } = options;
  if ((server === undefined) === (onConnection === undefined)) {
    throw new GateOptionsError(service, 'give exactly one of server (a net, http or tls Server) and onConnection');
  }
  const dependsOn = [...(options.dependsOn ?? devices.componentIds)];
  const unknown = dependsOn.find((id) => !devices.componentIds.includes(id));
  if (unknown !== undefined) throw new UnknownComponentError(unknown, devices.componentIds);
  const checks = Object.entries(options.checks ?? {});
  eventLoop ??= new EventLoopMonitor();
  eventLoop.start();
  const diagnose = selfDiagnosis({
    service,
    dependsOn,
    devices,
    eventLoop,
    clock: devices.clock,
    app: () => ({ ok: true }),
    ...(checks.length > 0
      ? {
          appProbe: async (signal: AbortSignal) => {
            const failures = await Promise.all(checks.map(([name, check]) => run(name, check, signal)));
            return failures.find((failure) => failure !== undefined);
          },
        }
      : {}),
  });
  return new Gate({
    service,
    policy: gatePolicy(options.policy ?? {}, `createGate ${service} policy`),
    diagnose,
    logger: options.logger ?? pino(),
    clock: devices.clock,
    onConnection: server ? (socket) => server.emit('connection', socket) : onConnection!,
    watchDependencies: (onChange) => devices.watchDependencies(dependsOn, onChange),
  });
}
