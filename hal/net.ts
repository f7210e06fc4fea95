/**
 * Network interfaces, as /sys/class/net/IF shows them.
 *
 * Rules:
 * - `status` reads everything at once so the values belong together.
 * - `speedMbps` is null when the link is down or the driver does not report it (sysfs gives -1 or
 *   EINVAL then).
 * - Counters are cumulative since the interface came up; callers compare successive readings.
 * - An interface that does not exist rejects with ERR_HAL_NOT_FOUND.
 * - `watch`, where the backend can tell carrier changes as they happen, calls its watcher once per
 *   change, with the new carrier; backends that cannot leave it out, and callers poll `status`.
 */

export type OperState = 'up' | 'down' | 'dormant' | 'lowerlayerdown' | 'notpresent' | 'testing' | 'unknown';

export const netCounterNames = [
  'rx_packets',
  'tx_packets',
  'rx_errors',
  'tx_errors',
  'rx_dropped',
  'tx_dropped',
  'rx_crc_errors',
  'rx_frame_errors',
  'rx_missed_errors',
  'collisions',
] as const;

export type NetCounterName = (typeof netCounterNames)[number];

export interface NetStatus {
  name: string;
  carrier: boolean;
  operstate: OperState;
  speedMbps: number | null;
  counters: Record<NetCounterName, number>;
}

export interface NetInterface {
  readonly name: string;
  status(): Promise<NetStatus>;
  /** Registers a watcher for carrier changes; returns a function that removes it. */
  watch?(watcher: (carrier: boolean) => void): () => void;
}

export interface NetController {
  open(name: string): Promise<NetInterface>;
}
