/**
 * GPIO lines. A line is named by its chip's label (`pinctrl-bcm2711`, `pinctrl-rp1`, `sim-gpio`) and
 * the line's name or offset on that chip - never by a global sysfs number, which shifts between
 * kernels (GPIO 17 is 529 on Raspberry Pi OS Bookworm with kernel 6.6, 17 before it).
 *
 * Rules:
 * - Values are logical: with `activeLow`, a line driven low reads 1. Edges are logical too.
 * - `read`, `write` and `close` settle asynchronously, never synchronously.
 * - Writing an input line rejects with ERR_HAL_INVALID_ARG.
 * - Watchers see each debounced change once, in order. `debounceMs` swallows changes that revert
 *   within that time; the value reported is the one that stayed.
 * - After `close`, operations reject with ERR_HAL_CLOSED (`canceled: true`) and watchers stop.
 */

import type { GpioEdge, GpioValue } from '../config/board-config.js';

export type { GpioEdge, GpioValue };
export type GpioDirection = 'in' | 'out';

export interface GpioLineSpec {
  /** Label of the GPIO chip, as in /sys/class/gpio/gpiochipN/label or `gpiodetect`. */
  chip: string;
  /** Line name (`GPIO17`) or offset on that chip. */
  line: string | number;
  direction: GpioDirection;
  activeLow?: boolean;
  /** For inputs: which edges watchers are told about. Default `both`. */
  edge?: GpioEdge;
  /** For inputs: ignore changes that revert within this many ms. Default 0. */
  debounceMs?: number;
  /** For outputs: the logical value driven when the line is opened. Default 0. */
  initial?: GpioValue;
}

export type GpioWatcher = (value: GpioValue, atMs: number) => void;

export interface GpioLine {
  readonly spec: Readonly<GpioLineSpec>;
  /** A name for messages: `chip/line`. */
  readonly target: string;
  read(): Promise<GpioValue>;
  write(value: GpioValue): Promise<void>;
  /** Registers a watcher for edges; returns a function that removes it. */
  watch(watcher: GpioWatcher): () => void;
  close(): Promise<void>;
}

export interface GpioController {
  /** Opens a line; rejects with ERR_HAL_NOT_FOUND if the chip or line does not exist. */
  open(spec: GpioLineSpec): Promise<GpioLine>;
  close(): Promise<void>;
}

export function gpioTarget(spec: Pick<GpioLineSpec, 'chip' | 'line'>): string {
  return `${spec.chip}/${spec.line}`;
}
