/**
 * The status LED on a GPIO output tells a person at the cabinet what the firmware knows:
 * - steady on: every component ok;
 * - slow blink (1 s on, 1 s off): something degraded;
 * - blink code: N short blinks, then a pause, where N names the first failed component's class
 *   (each kind's `blinkCode` in firmware/component-kinds.ts).
 * The pattern runs on the board clock so a sim board's virtual time shows it at its own speed.
 */
import type { Clock, Timer } from '../hal/clock.js';
import type { GpioLine, GpioValue } from '../hal/gpio.js';
import { componentDrivers } from './component-kinds.js';
import type { ComponentState } from './device-state.js';

const stepMs = 250;

/** One cycle of the LED as levels per 250 ms step. */
export function ledPattern(states: readonly Pick<ComponentState, 'kind' | 'state'>[]): GpioValue[] {
  const failed = states.find((s) => s.state === 'failed');
  if (failed) {
    const blinks = componentDrivers[failed.kind].blinkCode;
    return [...Array.from({ length: blinks }, () => [1, 0] as GpioValue[]).flat(), 0, 0, 0, 0];
  }
  if (states.some((s) => s.state === 'degraded')) return [1, 1, 1, 1, 0, 0, 0, 0];
  return [1];
}

export class StatusLed {
  private timer: Timer | undefined;
  private pattern: GpioValue[] = [1];
  private step = 0;

  constructor(
    private readonly line: GpioLine,
    private readonly clock: Clock,
  ) {}

  start(): void {
    this.timer ??= this.clock.setInterval(() => {
      this.step = (this.step + 1) % this.pattern.length;
      void this.line.write(this.pattern[this.step] ?? 0).catch(() => undefined);
    }, stepMs);
  }

  show(states: readonly Pick<ComponentState, 'kind' | 'state'>[]): void {
    const next = ledPattern(states);
    if (next.join() === this.pattern.join()) return;
    this.pattern = next;
    this.step = 0;
    void this.line.write(next[0] ?? 0).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.line.write(0).catch(() => undefined);
    await this.line.close();
  }
}
