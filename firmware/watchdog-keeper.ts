/**
 * Keeps the hardware watchdog fed while, and only while, the firmware is healthy enough to be trusted
 * to run: the event loop answers and no diagnosis is stuck. A wedged firmware therefore stops kicking
 * and the watchdog resets the board - on a Pi the SoC reboots, on the sim board the firmware restarts.
 * Kicks follow the board clock so the sim board's virtual time and its watchdog agree.
 */
import type { Logger } from 'pino';
import type { WatchdogConfig } from '../config/board-config.js';
import type { Clock, Timer } from '../hal/clock.js';
import { type Watchdog, WDIOF_CARDRESET } from '../hal/watchdog.js';
import type { WatchdogHealth } from './components.js';
import type { EventLoopMonitor } from './event-loop.js';

export interface WatchdogKeeperOptions {
  watchdog: Watchdog;
  config: WatchdogConfig;
  clock: Clock;
  eventLoop: EventLoopMonitor;
  logger: Logger;
  /** Age in ms of the oldest diagnosis still running (0 when none runs). */
  oldestDiagnosisMs?: () => number;
  /** Default 1000 ms. */
  maxEventLoopLagMs?: number;
  /** A diagnosis running longer than this counts as stuck; default 5000 ms. */
  maxDiagnosisMs?: number;
  /** Why the board's unclean resets amount to a reset loop (the boot record), or undefined. */
  resetLoop?: () => string | undefined;
}

export class WatchdogKeeper {
  private timer: Timer | undefined;
  private appliedTimeoutS: number | undefined;
  private lastKickAt: number | undefined;
  private withheld: string | undefined;
  private failure: string | undefined;
  /** From the driver's boot status (WDIOF_CARDRESET); undefined where the driver cannot tell. */
  private lastResetByWatchdog: boolean | undefined;
  /** Set while the countdown shows that kicks do not restart it. */
  private unheeded: string | undefined;
  kicks = 0;

  constructor(private readonly options: WatchdogKeeperOptions) {}

  /** Whether the driver's boot status says this boot began with its reset; undefined where it cannot tell. */
  get resetByWatchdog(): boolean | undefined {
    return this.lastResetByWatchdog;
  }

  async start(): Promise<void> {
    const { watchdog, config, clock, logger } = this.options;
    try {
      const info = await watchdog.open();
      if (info.bootStatus !== undefined) {
        this.lastResetByWatchdog = (info.bootStatus & WDIOF_CARDRESET) !== 0;
        if (this.lastResetByWatchdog) logger.warn({ identity: info.identity, bootStatus: info.bootStatus }, 'the last reset of this board was the watchdog\'s');
      }
      // A driver that refuses the timeout (EINVAL above its maximum, as bcm2835_wdt above 15 s) keeps
      // the one in force, which the hardware is known to hold: the keeper kicks for that one.
      this.appliedTimeoutS = await watchdog.setTimeout(config.timeoutS).catch((err: unknown) => {
        logger.warn({ err, requestedS: config.timeoutS, appliedS: info.timeoutS }, 'watchdog refused the requested timeout; keeping the timeout in force');
        return info.timeoutS;
      });
    } catch (err) {
      this.failure = err instanceof Error ? err.message : String(err);
      logger.error({ err }, 'watchdog could not be armed');
      return;
    }
    if (this.appliedTimeoutS < config.timeoutS) {
      logger.warn({ requestedS: config.timeoutS, appliedS: this.appliedTimeoutS }, 'watchdog timeout clamped by the hardware');
    }
    const intervalMs = Math.min(config.kickIntervalMs ?? (this.appliedTimeoutS * 1000) / 3, (this.appliedTimeoutS * 1000) / 2);
    this.timer = clock.setInterval(() => void this.tick(), intervalMs);
    await this.tick();
  }

  /** Why the keeper is not kicking right now, or undefined while it kicks. */
  private reasonToWithhold(): string | undefined {
    const { eventLoop, oldestDiagnosisMs } = this.options;
    const maxLag = this.options.maxEventLoopLagMs ?? 1000;
    const lag = eventLoop.currentLagMs();
    if (lag > maxLag) return `event loop lag ${Math.round(lag)} ms > ${maxLag} ms`;
    const stuck = oldestDiagnosisMs?.() ?? 0;
    const maxDiag = this.options.maxDiagnosisMs ?? 5000;
    if (stuck > maxDiag) return `a diagnosis has run for ${Math.round(stuck)} ms > ${maxDiag} ms`;
    return undefined;
  }

  private async tick(): Promise<void> {
    const { watchdog, clock, logger } = this.options;
    const reason = this.reasonToWithhold();
    if (reason !== this.withheld) {
      if (reason) logger.error({ reason }, 'withholding watchdog kicks');
      else if (this.withheld) logger.info('watchdog kicks resumed');
      this.withheld = reason;
    }
    if (reason) return;
    try {
      await watchdog.kick();
      this.kicks += 1;
      this.lastKickAt = clock.now();
      this.failure = undefined;
    } catch (err) {
      this.failure = err instanceof Error ? err.message : String(err);
      return;
    }
    await this.checkCountdown();
  }

  /**
   * A kick that reached the watchdog restarts its countdown, so right after one the time left is the
   * whole timeout (less the second WDIOC_GETTIMELEFT truncates to). Less means the kicks are lost on
   * the way and the board will reset however healthy the firmware is. Drivers without the time left
   * (ERR_HAL_UNSUPPORTED) cannot tell; the reset loop then shows in the boot record instead.
   */
  private async checkCountdown(): Promise<void> {
    const timeoutS = this.appliedTimeoutS ?? 0;
    let left: number;
    try {
      left = await this.options.watchdog.timeLeft();
    } catch {
      return;
    }
    const unheeded = left < timeoutS - 1 ? `kicks do not reach the watchdog: ${left} s left right after a kick, timeout ${timeoutS} s` : undefined;
    if (unheeded && !this.unheeded) this.options.logger.error({ timeLeftS: left, timeoutS }, 'watchdog kicks are not restarting its countdown');
    this.unheeded = unheeded;
  }

  health(): WatchdogHealth {
    const reading = {
      timeoutS: this.appliedTimeoutS ?? 0,
      kicks: this.kicks,
      sinceKickMs: this.lastKickAt === undefined ? -1 : this.options.clock.now() - this.lastKickAt,
      ...(this.lastResetByWatchdog === undefined ? {} : { lastResetByWatchdog: this.lastResetByWatchdog }),
    };
    if (this.failure) return { health: 'failed', reason: this.failure, reading };
    if (this.withheld) return { health: 'failed', reason: `kicks withheld: ${this.withheld}`, reading };
    if (this.unheeded) return { health: 'failed', reason: this.unheeded, reading };
    if (this.lastKickAt === undefined) return { health: 'failed', reason: 'watchdog not armed yet', reading };
    // Failed, not degraded: a degraded part passes the verdict, and clients of a board that reboots
    // every few minutes would be admitted only to be cut at the next reset.
    const loop = this.options.resetLoop?.();
    if (loop) return { health: 'failed', reason: loop, reading };
    return { health: 'ok', reason: '', reading };
  }

  /**
   * Stops kicking. With `magic` (orderly exit) the watchdog is disarmed; without it the watchdog stays
   * armed, and the board resets unless a new firmware instance takes over in time.
   */
  async stop(options: { magic: boolean }): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.options.watchdog.close({ magic: options.magic }).catch(() => undefined);
  }
}
