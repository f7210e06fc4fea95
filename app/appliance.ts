/**
 * The appliance process: opens the board chosen by its entry, runs the firmware on it, serves the
 * control endpoint, and brings the firmware back up when the (simulated) watchdog resets the board -
 * what a reboot does on a Pi, where systemd restarts the service.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BoardConfig } from '../config/board-config.js';
import type { GpioValue } from '../hal/gpio.js';
import { type OpenedBoard, openBoard } from './board-select.js';
import { type ControlApi, type ControlServer, type FaultApi, startControlServer } from './control.js';
import { Firmware, type FirmwareStatus, listenAddress } from '../firmware/firmware.js';
import type { GateDecision } from '../firmware/gate/gate.js';
import { FirmwareMetrics } from '../firmware/metrics.js';
import { SimPage } from './sim-page.js';
import { formatHostPort } from '../config/host-port.js';

/** First wait before retrying a failed restart; it doubles up to the maximum. */
const firstRestartBackoffMs = 250;
const maxRestartBackoffMs = 30_000;
/** A linux board's state directory when neither the entry nor the command line names one (systemd's StateDirectory=handcheck). */
export const defaultStateDir = '/var/lib/handcheck';

export interface ApplianceOptions {
  config: Readonly<BoardConfig>;
  logger: Logger;
  listen?: Record<string, string>;
  modes?: Record<string, 'after' | 'before'>;
  /** `HOST:PORT` of the control endpoint; default 127.0.0.1:9502. Empty string: no endpoint. */
  control?: string;
  controlToken?: string | undefined;
  forceSim?: boolean;
  simSpeed?: number;
  /** Overrides the entry's `stateDir` and the default (/var/lib/handcheck; a temporary directory on the sim board). */
  stateDir?: string;
}

export interface SimStatus {
  clock: { now: number; mode: string; speed: number };
  resets: number;
  gpio: Record<string, GpioValue>;
  watchdog: { armed: boolean; timeLeftS: number | null; kicks: number } | undefined;
  faults: ReturnType<FaultApi['list']>;
}

/** The firmware failed to come back after a reset and is retrying; its services are not listening meanwhile. */
export interface FirmwareDown {
  /** Board-clock ms of the first failed attempt. */
  since: number;
  attempts: number;
  lastError: { code: string; message: string };
  retryInMs: number;
}

export interface ApplianceStatus extends FirmwareStatus {
  restarts: number;
  /** Present while the firmware is down after a reset, retrying. */
  down: FirmwareDown | undefined;
  /** The last gate decisions, oldest first, each stamped with the board-clock time it was made. */
  recentDecisions: RecordedDecision[];
  sim: SimStatus | undefined;
}

/** A gate decision stamped with the board-clock time the appliance learned of it. */
export interface RecordedDecision extends GateDecision {
  at: number;
}

/** The last `size` decisions, kept without shifting an array on every connection. */
class DecisionLog {
  private readonly slots: Array<RecordedDecision | undefined>;
  private next = 0;

  constructor(size: number) {
    this.slots = new Array<RecordedDecision | undefined>(size);
  }

  add(decision: RecordedDecision): void {
    this.slots[this.next] = decision;
    this.next = (this.next + 1) % this.slots.length;
  }

  list(): RecordedDecision[] {
    return [...this.slots.slice(this.next), ...this.slots.slice(0, this.next)].filter((d): d is RecordedDecision => d !== undefined);
  }
}

export class Appliance {
  private firmware!: Firmware;
  private control: ControlServer | undefined;
  private page: SimPage | undefined;
  private restarts = 0;
  private restarting: Promise<void> | undefined;
  private resetDuringRestart = false;
  private down: FirmwareDown | undefined;
  /** Cuts a restart backoff short when the appliance stops. */
  private readonly stopSignal = new AbortController();
  private stopping: Promise<void> | undefined;
  private readonly decisions = new DecisionLog(200);
  private readonly decisionListeners = new Set<(decision: RecordedDecision) => void>();
  /** Ports actually bound at first start, reused after a restart so clients find the service again. */
  private bound: Record<string, string> = {};
  readonly metrics: FirmwareMetrics;

  private constructor(
    private readonly options: ApplianceOptions,
    readonly board: OpenedBoard,
    readonly stateDir: string,
    /** A temporary directory made for this run, removed when it stops. */
    private readonly temporaryStateDir: boolean,
  ) {
    this.metrics = new FirmwareMetrics({ board: options.config.id });
  }

  static async start(options: ApplianceOptions): Promise<Appliance> {
    const board = await openBoard(options.config, { forceSim: options.forceSim ?? false, simSpeed: options.simSpeed ?? 1 });
    const named = options.stateDir ?? options.config.stateDir;
    // The sim board's reboots are this process's: its record lives as long as the process.
    const stateDir = named ?? (board.sim ? await mkdtemp(join(tmpdir(), 'handcheck-state-')) : defaultStateDir);
    const appliance = new Appliance(options, board, stateDir, named === undefined && board.sim !== undefined);
    try {
      await appliance.startFirmware(options.listen ?? {});
      appliance.bound = Object.fromEntries(appliance.firmware.services.map((s) => [s.config.id, formatHostPort(s)]));
      if (options.control !== '') await appliance.startControl(options.control ?? '127.0.0.1:9502');
      board.sim?.onReset((event) => {
        options.logger.error({ cause: event.cause, count: event.count }, 'board reset by the watchdog; restarting the firmware');
        void appliance.restart();
      });
    } catch (err) {
      await appliance.stop({ magic: true });
      throw err;
    }
    return appliance;
  }

  private async startFirmware(listen: Record<string, string>): Promise<void> {
    this.firmware = await Firmware.start({
      board: this.board.hal,
      logger: this.options.logger,
      metrics: this.metrics,
      stateDir: this.stateDir,
      listen,
      ...(this.options.modes ? { modes: this.options.modes } : {}),
      onDecision: (decision) => {
        const recorded: RecordedDecision = { ...decision, at: this.board.hal.clock.now() };
        this.decisions.add(recorded);
        for (const listener of this.decisionListeners) listener(recorded);
      },
    });
  }

  private async startControl(where: string): Promise<void> {
    const { host, port } = listenAddress('control', where);
    const sim = this.board.sim;
    const faults: FaultApi | undefined = sim?.faults;
    this.page = new SimPage(this, { logger: this.options.logger.child({ subsystem: 'sim-page' }) });
    const api: ControlApi = { status: () => this.status(), metrics: () => this.metrics.render(), faults, routes: this.page };
    this.control = await startControlServer({ host, port, token: this.options.controlToken, api, logger: this.options.logger.child({ subsystem: 'control' }) });
  }

  get controlAddress(): { host: string; port: number } | undefined {
    return this.control && { host: this.control.address.address, port: this.control.address.port };
  }

  get services(): Firmware['services'] {
    return this.firmware.services;
  }

  get devices(): Firmware['devices'] {
    return this.firmware.devices;
  }

  get restartCount(): number {
    return this.restarts;
  }

  onDecision(listener: (decision: RecordedDecision) => void): () => void {
    this.decisionListeners.add(listener);
    return () => this.decisionListeners.delete(listener);
  }

  /**
   * After a reset, brings the firmware back; an attempt that fails (its port briefly taken, a device
   * not back yet) is retried with backoff, on the board clock, until it succeeds or the appliance stops.
   * A reset that comes while a restart runs (the watchdog the new firmware armed fired before it was
   * up) is another reboot: the firmware is brought back again once this restart ends.
   */
  private restart(): Promise<void> {
    if (this.restarting) {
      this.resetDuringRestart = true;
      return this.restarting;
    }
    this.restarting = (async () => {
      do {
        this.resetDuringRestart = false;
        await this.firmware.stop({ magic: false });
        await this.bringBack();
      } while (this.resetDuringRestart && !this.stopping);
    })()
      .catch((err: unknown) => this.options.logger.fatal({ err }, 'firmware failed to come back after a reset'))
      .finally(() => {
        this.restarting = undefined;
      });
    return this.restarting;
  }

  private async bringBack(): Promise<void> {
    const clock = this.board.hal.clock;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await this.startFirmware(this.bound);
        this.restarts += 1;
        if (this.down) this.options.logger.info({ attempts: attempt }, 'firmware back after a reset');
        this.down = undefined;
        return;
      } catch (err) {
        const retryInMs = Math.min(maxRestartBackoffMs, firstRestartBackoffMs * 2 ** (attempt - 1));
        const lastError = { code: (err as { code?: string }).code ?? 'ERR_UNEXPECTED', message: (err as Error).message };
        this.down = { since: this.down?.since ?? clock.now(), attempts: attempt, lastError, retryInMs };
        this.options.logger.error({ err, attempt, retryInMs }, 'firmware failed to come back after a reset; retrying');
        await clock.sleep(retryInMs, this.stopSignal.signal).catch(() => undefined);
      }
    }
  }

  status(): ApplianceStatus {
    const sim = this.board.sim;
    const wdt = sim?.watchdogModel;
    return {
      ...this.firmware.status(),
      restarts: this.restarts,
      down: this.down,
      recentDecisions: this.decisions.list(),
      sim: sim && {
        clock: { now: sim.clock.now(), mode: sim.clock.mode, speed: sim.clock.speed },
        resets: sim.resets,
        gpio: Object.fromEntries(Object.keys(sim.config.gpio ?? {}).map((name) => [name, sim.gpio.level(name)])),
        watchdog: wdt && { armed: wdt.isArmed, timeLeftS: wdt.peekTimeLeft(), kicks: wdt.kicks },
        faults: sim.faults.list(),
      },
    };
  }

  /** Orderly stop: firmware first (gates FIN their connections), then the control endpoint, then the board. */
  stop(options: { magic: boolean } = { magic: true }): Promise<void> {
    this.stopping ??= (async () => {
      this.stopSignal.abort();
      await this.restarting;
      this.page?.close();
      await this.firmware?.stop(options);
      await this.control?.close();
      this.board.sim?.clock.stopRealtime();
      await this.board.hal.close();
      if (this.temporaryStateDir) await rm(this.stateDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }
}
