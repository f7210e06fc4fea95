/**
 * The firmware running on one board: the device-state manager, the watchdog keeper, the status LED,
 * and one gate per service in front of that service's handler. It is started on a BoardHal and knows
 * nothing of whether the board is real or simulated.
 */
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ServiceConfig, ServiceKind } from '../config/board-config.js';
import type { BoardHal } from '../hal/board.js';
import { HandcheckError } from '../config/errors.js';
import { type HostPort, parseHostPort } from '../config/host-port.js';
import { BootRecord, type BootStatus } from './boot-record.js';
import type { WatchdogHealth } from './components.js';
import { DeviceStateManager } from './device-state.js';
import { EventLoopMonitor } from './event-loop.js';
import { Gate, type GateDecision, type GateStats } from './gate/gate.js';
import { bypassSockets } from './gate/bypass-socket.js';
import { Guard } from './gate/guard.js';
import { guardCheck } from './guard-listener.js';
import { ProxyService, type ProxyStats } from './proxy-service.js';
import { upstreamProbe } from './upstream-probe.js';
import type { FirmwareMetrics } from './metrics.js';
import { createModbusService } from './modbus-service.js';
import { type AppHealthCheck, UnknownServiceError, selfDiagnosis } from './self-diagnosis.js';
import { StatusLed } from './status-led.js';
import type { Failure, Verdict } from './verdict.js';
import { WatchdogKeeper } from './watchdog-keeper.js';

/** The application behind a service port. */
export interface ServiceHandler {
  onConnection(socket: Socket): void;
  health: AppHealthCheck;
  /** The gate is bound to `address`; called before any connection is handed over. */
  listening?(address: AddressInfo): void;
  close(): Promise<void>;
}

/** A service's gate: a Gate in front of a handcheck server (modbus, proxy), or a Guard of another process's port. */
export type ServiceGate = Gate | Guard;

export interface RunningService {
  config: Readonly<ServiceConfig>;
  gate: ServiceGate;
  /** Undefined for a guard: the process behind its port is not handcheck's. */
  handler: ServiceHandler | undefined;
  host: string;
  port: number;
}

export interface FirmwareOptions {
  board: BoardHal;
  logger: Logger;
  metrics: FirmwareMetrics;
  /** `HOST:PORT` per service id, overriding the board entry's `listen`. */
  listen?: Readonly<Record<string, string>>;
  /** Gate mode per service id, overriding the board entry's policy. */
  modes?: Readonly<Record<string, 'after' | 'before'>>;
  /** Called for every gate decision (logs are written by the gate itself). */
  onDecision?: (decision: GateDecision) => void;
  /** Where the boot record is kept (firmware/boot-record.ts). */
  stateDir: string;
}

export class ListenAddressError extends HandcheckError {
  constructor(service: string, value: string) {
    super('ERR_LISTEN_ADDRESS', `service ${service}: listen address "${value}" is not HOST:PORT with a port 0-65535`);
  }
}

/** `value` as HOST:PORT (port 0 picks a free port), or ERR_LISTEN_ADDRESS naming the service it was for. */
export class UpstreamAddressError extends HandcheckError {
  constructor(service: string, value: string | undefined) {
    super('ERR_UPSTREAM_ADDRESS', `service ${service}: upstream "${value ?? ''}" is not HOST:PORT with a port 1-65535`);
  }
}

/** A proxy's upstream as HOST:PORT, or ERR_UPSTREAM_ADDRESS naming the service. */
export function upstreamAddress(config: Readonly<ServiceConfig>): HostPort {
  const address = config.upstream === undefined ? undefined : parseHostPort(config.upstream);
  if (!address) throw new UpstreamAddressError(config.id, config.upstream);
  return address;
}

export function listenAddress(service: string, value: string): HostPort {
  const address = parseHostPort(value, { allowPortZero: true });
  if (!address) throw new ListenAddressError(service, value);
  return address;
}

export interface FirmwareStatus {
  board: { id: string; name: string; backend: string };
  startedAt: number;
  components: ReturnType<DeviceStateManager['states']>;
  services: Array<{
    id: string;
    kind: ServiceKind;
    protocol: string | undefined;
    /** Kind proxy: where admitted clients are spliced to. */
    upstream: string | undefined;
    host: string;
    port: number;
    dependsOn: readonly string[];
    policy: Gate['policy'];
    stats: GateStats;
    /** Kind proxy: spliced connections. */
    proxy: ProxyStats | undefined;
  }>;
  watchdog: WatchdogHealth | undefined;
  /** Undefined when the board could not say which boot this is. */
  boot: BootStatus | undefined;
  eventLoopLagMs: number;
}

export class Firmware {
  readonly devices: DeviceStateManager;
  readonly services: RunningService[] = [];
  readonly eventLoop = new EventLoopMonitor();
  private keeper: WatchdogKeeper | undefined;
  private bootRecord: BootRecord | undefined;
  private led: StatusLed | undefined;
  private readonly startedAt: number;
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;

  private constructor(private readonly options: FirmwareOptions) {
    this.log = options.logger;
    this.startedAt = options.board.clock.now();
    this.devices = new DeviceStateManager({
      board: options.board,
      logger: options.logger.child({ subsystem: 'devices' }),
      watchdogHealth: () => this.keeper?.health() ?? { health: 'failed', reason: 'no watchdog keeper running', reading: {} },
    });
    options.metrics.watchDevices(this.devices);
    options.metrics.watchBoot(() => this.bootRecord?.status());
  }

  static async start(options: FirmwareOptions): Promise<Firmware> {
    const firmware = new Firmware(options);
    try {
      await firmware.boot();
    } catch (err) {
      await firmware.stop({ magic: true });
      throw err;
    }
    return firmware;
  }

  private async boot(): Promise<void> {
    const { board, logger } = this.options;
    const services = board.config.services.map((s) => s.id);
    for (const id of [...Object.keys(this.options.listen ?? {}), ...Object.keys(this.options.modes ?? {})]) {
      if (!services.includes(id)) throw new UnknownServiceError(id, services);
    }
    this.eventLoop.start();
    if (board.config.watchdog) {
      this.keeper = new WatchdogKeeper({
        watchdog: await board.watchdog(),
        config: board.config.watchdog,
        clock: board.clock,
        eventLoop: this.eventLoop,
        logger: logger.child({ subsystem: 'watchdog' }),
        oldestDiagnosisMs: () => this.devices.oldestRunningMs(),
        resetLoop: () => this.bootRecord?.resetLoop(),
      });
      await this.keeper.start();
    }
    await this.recordBoot();
    if (board.config.statusLed) {
      const spec = board.config.gpio?.[board.config.statusLed];
      if (spec) {
        this.led = new StatusLed(await board.gpio.open(spec), board.clock);
        this.led.start();
        this.devices.onChange(() => this.led?.show(this.devices.states()));
      }
    }
    await this.devices.diagnose();
    this.led?.show(this.devices.states());
    if (board.config.refreshMs !== undefined) this.devices.startRefresh(board.config.refreshMs);
    for (const config of board.config.services) await this.startService(config);
  }

  /** After the keeper, whose watchdog tells whether its reset began this boot. */
  private async recordBoot(): Promise<void> {
    const { board, logger, stateDir } = this.options;
    const identity = await board.boot().catch((err: unknown) => {
      logger.warn({ err }, 'the board cannot say which boot this is; no boot record');
      return undefined;
    });
    if (!identity) return;
    const watchdog = board.config.watchdog;
    this.bootRecord = await BootRecord.open({
      stateDir,
      identity,
      resetByWatchdog: this.keeper?.resetByWatchdog,
      clock: board.clock,
      logger: logger.child({ subsystem: 'boot' }),
      ...(watchdog?.resetLoopCount !== undefined && watchdog.resetLoopWindowS !== undefined
        ? { resetLoop: { count: watchdog.resetLoopCount, windowS: watchdog.resetLoopWindowS } }
        : {}),
    });
  }

  private async startService(config: Readonly<ServiceConfig>): Promise<void> {
    const { board, logger, metrics } = this.options;
    const listen = listenAddress(config.id, this.options.listen?.[config.id] ?? config.listen);
    const kind = config.kind ?? 'modbus';
    const handler = kind === 'guard' ? undefined : this.handlerOf(config);
    const diagnose = selfDiagnosis({
      service: config.id,
      dependsOn: config.dependsOn,
      devices: this.devices,
      eventLoop: this.eventLoop,
      clock: board.clock,
      app: handler?.health ?? (() => ({ ok: true })),
      appProbe: this.appProbeOf(config, listen),
    });
    const measured = async (signal: AbortSignal): Promise<Verdict> => {
      const verdict: Verdict = await diagnose(signal);
      metrics.observeDiagnosis(config.id, verdict.durationMs, verdict.failures);
      return verdict;
    };
    if (handler === undefined) {
      const guard = new Guard({ service: config.id, policy: config.gate, diagnose: measured, logger, clock: board.clock });
      if (this.options.onDecision) guard.on('decision', this.options.onDecision);
      metrics.watchGate(guard);
      const address = await guard.start(listen.host, listen.port);
      this.services.push({ config, gate: guard, handler, host: address.address, port: address.port });
      return;
    }
    const mode = this.options.modes?.[config.id];
    const gate = new Gate({
      service: config.id,
      policy: { ...config.gate, ...(mode ? { mode } : {}) },
      diagnose: measured,
      logger,
      // Verdict ages, rechecks and diagnosis deadlines follow the board: virtual time on the sim board.
      clock: board.clock,
      allowHalfOpen: kind === 'proxy',
      onConnection: (socket) => handler.onConnection(socket),
      watchDependencies: (onChange) => this.devices.watchDependencies(config.dependsOn, onChange),
    });
    if (this.options.onDecision) gate.on('decision', this.options.onDecision);
    metrics.watchGate(gate);
    const address = await gate.listen(listen.host, listen.port);
    handler.listening?.(address);
    this.services.push({ config, gate, handler, host: address.address, port: address.port });
  }

  private handlerOf(config: Readonly<ServiceConfig>): ServiceHandler {
    const { board, logger } = this.options;
    if (config.kind === 'proxy') {
      return new ProxyService({
        service: config.id,
        upstream: upstreamAddress(config),
        connectTimeoutMs: config.connectTimeoutMs ?? 2000,
        keepAliveMs: config.gate.keepAliveMs,
        logger: logger.child({ subsystem: 'proxy', service: config.id }),
      });
    }
    return createModbusService({ board, devices: this.devices, boot: () => this.bootRecord?.status(), service: config, logger: logger.child({ subsystem: 'modbus', service: config.id }) });
  }

  /** What of the application behind the port must be checked over I/O: a proxy's upstream, a guard's daemon. */
  private appProbeOf(config: Readonly<ServiceConfig>, listen: HostPort): ((signal: AbortSignal) => Promise<Failure | undefined>) | undefined {
    if (config.kind === 'proxy') return upstreamProbe(upstreamAddress(config), config.probe);
    if (config.kind === 'guard') return guardCheck(listen, config.probe && { config: config.probe, socket: bypassSockets(config.id) });
    return undefined;
  }

  status(): FirmwareStatus {
    const { board } = this.options;
    return {
      board: { id: board.config.id, name: board.config.name, backend: board.config.backend },
      startedAt: this.startedAt,
      components: this.devices.states(),
      services: this.services.map(({ config, gate, handler, host, port }) => ({
        id: config.id,
        kind: config.kind ?? 'modbus',
        protocol: config.protocol,
        upstream: config.upstream,
        proxy: handler instanceof ProxyService ? handler.stats() : undefined,
        host,
        port,
        dependsOn: config.dependsOn,
        policy: gate.policy,
        stats: gate.stats(),
      })),
      watchdog: this.keeper?.health(),
      boot: this.bootRecord?.status(),
      eventLoopLagMs: this.eventLoop.currentLagMs(),
    };
  }

  /**
   * Orderly stop, in reverse order of start: gates stop accepting and end held connections with FIN,
   * handlers close, then the LED, the watchdog (magic close when `magic`, so an intended exit does not
   * reset the board) and the devices. Idempotent.
   */
  stop(options: { magic: boolean }): Promise<void> {
    this.stopping ??= (async () => {
      for (const service of [...this.services].reverse()) {
        await service.gate.close();
        await service.handler?.close();
      }
      await this.led?.stop();
      await this.keeper?.stop(options);
      if (options.magic) await this.bootRecord?.markOrderly();
      await this.devices.close();
      this.eventLoop.stop();
      this.log.info({ magic: options.magic }, 'firmware stopped');
    })();
    return this.stopping;
  }
}
