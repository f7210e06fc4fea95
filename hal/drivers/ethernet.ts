/**
 * The Ethernet link of a network interface: carrier, operational state, negotiated speed, and the
 * error counters turned into rates. Counters are cumulative, so a rate needs two readings; the first
 * read reports 0 and every later one the rate since the read before it, over the board's clock.
 */
import type { Clock } from '../clock.js';
import { withDeadline } from '../deadline.js';
import type { GpioLine } from '../gpio.js';
import type { NetCounterName, NetInterface, NetStatus } from '../net.js';
import { type DriverCallOptions, type Driver, type Identity } from './driver.js';

export type EthernetReading = {
  carrier: boolean;
  operstate: string;
  /** Negotiated speed; 0 when the link is down or the driver does not report one. */
  speedMbps: number;
  crcErrorsPerS: number;
  rxErrorsPerS: number;
} & Record<NetCounterName, number>;

const defaultTimeoutMs = 100;

interface Sample {
  at: number;
  counters: Record<NetCounterName, number>;
}

export class EthernetDriver implements Driver<EthernetReading> {
  readonly target: string;
  private previous: Sample | undefined;

  constructor(
    private readonly net: NetInterface,
    private readonly clock: Clock,
    private readonly led?: GpioLine,
  ) {
    this.target = `net:${net.name}`;
  }

  private status(options: DriverCallOptions): Promise<NetStatus> {
    return withDeadline(this.clock, this.net.status(), 'read status', this.target, {
      timeoutMs: options.timeoutMs ?? defaultTimeoutMs,
      signal: options.signal,
    });
  }

  async identify(options: DriverCallOptions = {}): Promise<Identity> {
    const status = await this.status(options);
    return {
      part: `ethernet ${status.name}`,
      details: { interface: status.name, operstate: status.operstate, carrier: status.carrier, ...(status.speedMbps === null ? {} : { speedMbps: status.speedMbps }) },
    };
  }

  async read(options: DriverCallOptions = {}): Promise<EthernetReading> {
    const status = await this.status(options);
    const now = this.clock.now();
    const previous = this.previous;
    this.previous = { at: now, counters: { ...status.counters } };
    // A link LED on a GPIO output is the driver's to drive: it shows the carrier each read found.
    if (this.led?.spec.direction === 'out') await this.led.write(status.carrier ? 1 : 0);
    const rate = (name: NetCounterName): number => {
      if (!previous || now <= previous.at) return 0;
      const delta = status.counters[name] - previous.counters[name];
      // Counters restart from 0 when the interface is re-created; that is no negative error rate.
      return delta < 0 ? 0 : (delta * 1000) / (now - previous.at);
    };
    return {
      carrier: status.carrier,
      operstate: status.operstate,
      speedMbps: status.speedMbps ?? 0,
      crcErrorsPerS: rate('rx_crc_errors'),
      rxErrorsPerS: rate('rx_errors'),
      ...status.counters,
    };
  }
}
